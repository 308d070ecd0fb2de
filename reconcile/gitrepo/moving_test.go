package gitrepo

import (
	"sync"
	"testing"
)

// TestReadWhileRefsMove: a status branch rewritten between the ref
// advertisement and the fetch's wants (a fold, or an alive ref replaced:
// the advertised commit is then reachable from no ref, and git-upload-pack
// answers "not our ref" over smart HTTP) is read again, and the read
// returns the branch's new head.
func TestReadWhileRefsMove(t *testing.T) {
	ctx := testCtx(t)
	rem := startHTTPSRemote(t)
	r := rem.repo
	r.Commit(t, "gitgw/status/gw1", map[string]string{"status.json": "{\"seq\": 1}\n"}, "status(gw1): 1")
	r.Commit(t, "gitgw/status/gw1", map[string]string{"status.json": "{\"seq\": 2}\n"}, "status(gw1): 2")
	var once sync.Once
	var moved string
	rem.srv.OnAdvertise(func() {
		once.Do(func() {
			moved = r.Rewrite(t, "gitgw/status/gw1", map[string]string{"status.json": "{\"seq\": 3}\n"}, "status(gw1): folded, 3")
		})
	})
	got, err := ReadStatusBranches(ctx, ReadOptions{URL: rem.url, TokenFile: rem.token, CAFile: rem.caFile, Files: []string{"status.json"}})
	if err != nil {
		t.Fatalf("read while the branch moved: %v", err)
	}
	if len(got) != 1 || got[0].Commit != moved || string(got[0].Files["status.json"]) != "{\"seq\": 3}\n" {
		t.Fatalf("read %+v, want gw1 at %s (seq 3)", got, moved)
	}
}
