package gitrepo

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
)

// A new commit is fetched no sooner than the node's offset in the spread
// window, polls meanwhile cost one request each (the ref advertisement)
// and return the commit the node has; the first fetch never waits.
func TestFetchSpread(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rem := startHTTPSRemote(t)
	c1 := rem.repo.Commit(t, "main", map[string]string{"site.cue": "a: 1\n"}, "one")
	srv := rem.srv
	const spread = 3 * time.Second
	c2 := rem.repo.Prepare(t, "main", map[string]string{"site.cue": "a: 2\n"}, "two")
	// A node whose offset for c2 is at least a second: the search is
	// deterministic for a given commit.
	node := ""
	for i := 0; node == ""; i++ {
		n := fmt.Sprintf("gw%d", i)
		if spreadOffset(n, plumbing.NewHash(c2), spread) >= time.Second {
			node = n
		}
	}
	off := spreadOffset(node, plumbing.NewHash(c2), spread)
	s, err := Open(ctx, Options{URL: rem.url, TokenFile: rem.token, CAFile: rem.caFile, Dir: filepath.Join(t.TempDir(), "src"),
		Node: node, FetchSpread: spread})
	if err != nil {
		t.Fatal(err)
	}
	if rev, err := s.Sync(ctx); err != nil || rev.Commit != c1 {
		t.Fatalf("first sync = %s, %v; want %s at once", rev.Commit, err, c1)
	}
	rem.repo.Push(t, "main")
	t0 := time.Now()
	before := srv.Stats()
	rev, err := s.Sync(ctx)
	if err != nil || rev.Commit != c1 {
		t.Fatalf("sync right after the push = %s, %v; want %s until the offset %v", rev.Commit, err, c1, off)
	}
	if n := srv.Stats().Sub(before).Requests; n != 1 {
		t.Fatalf("a waiting poll made %d requests, want 1 (the ref advertisement)", n)
	}
	deadline := time.Now().Add(time.Minute)
	for rev.Commit != c2 {
		if time.Now().After(deadline) {
			t.Fatalf("%s not fetched within a minute (offset %v)", c2, off)
		}
		time.Sleep(50 * time.Millisecond)
		if rev, err = s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(t0); took < off {
		t.Fatalf("fetched %v after the push, before the node's offset %v", took, off)
	}
}
