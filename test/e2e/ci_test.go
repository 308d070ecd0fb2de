package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/test/gitremote"
)

// dupVRID adds to the lab site a second VRRP instance with VI_1's VRID on
// the same segment, and returns the line of its vrid field.
func dupVRID(site string) (string, int) {
	if !strings.HasSuffix(site, "\n") {
		site += "\n"
	}
	line := strings.Count(site, "\n") + 4
	return site + `
vrrp: VI_2: {
	interface: "eth0"
	vrid:      51
	nodes: {gw1: priority: 100, gw2: priority: 150}
	vips: ["203.0.113.101/24"]
}
`, line
}

// TestPreReceiveHook runs examples/ci/pre-receive as the hook of a real
// bare repository, with the gitgw under test on its PATH: a push of a
// valid site to main is accepted; a push that breaks a guardrail (one VRID
// twice on a segment) is refused with the positioned error in the pusher's
// output, and main does not move; the same commit pushed to another branch
// is accepted (only the tracked branch is checked); with gitgw.branch set,
// that branch is the one checked.
func TestPreReceiveHook(t *testing.T) {
	gitremote.RequireGit(t)
	r := gitremote.NewBare(t)
	hook, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "ci", "pre-receive"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.Dir, "hooks", "pre-receive"), hook, 0o755); err != nil {
		t.Fatal(err)
	}
	path := "PATH=" + filepath.Dir(gitgwBin) + string(os.PathListSeparator) + os.Getenv("PATH")

	good := r.Prepare(t, "main", labFiles(t, nil), "lab site")
	if out, err := r.TryPush(t, "main", path); err != nil {
		t.Fatalf("push of a valid site refused: %v\n%s", err, out)
	}
	if h := r.Head(t, "main"); h != good {
		t.Fatalf("main at %s after an accepted push, want %s", h, good)
	}

	var line int
	bad := r.Prepare(t, "main", labFiles(t, func(s string) string {
		s, line = dupVRID(s)
		return s
	}), "second instance, same VRID")
	out, err := r.TryPush(t, "main", path)
	want := fmt.Sprintf("remote: site.cue:%d:13: vrrp.VI_2.vrid: [vrid-unique] VRID 51 (IPv4) is also instance VI_1's on segment 203.0.113.0/24 on eth0", line)
	if err == nil || !strings.Contains(out, want) || !strings.Contains(out, "remote: gitgw: push to main refused") {
		t.Errorf("push of a guardrail violation: err %v, want refused with\n%s\ngot:\n%s", err, want, out)
	}
	if h := r.Head(t, "main"); h != good {
		t.Errorf("main moved to %s after a refused push, want %s", h, good)
	}
	if strings.Contains(out, "gitgw-pre-receive.") {
		t.Errorf("the refusal names the hook's temporary directory:\n%s", out)
	}

	// Not the tracked branch: accepted as it is.
	if out, err := r.TryPush(t, "wip", path); err != nil || r.Head(t, "wip") != bad {
		t.Errorf("push to wip: err %v, head %s, want %s\n%s", err, r.Head(t, "wip"), bad, out)
	}

	// The agents track prod: main is free, prod is checked.
	if out, err := gitremote.Git(r.Dir, "config", "gitgw.branch", "prod"); err != nil {
		t.Fatal(err, out)
	}
	if out, err := r.TryPush(t, "main", path); err != nil || r.Head(t, "main") != bad {
		t.Errorf("push to main with gitgw.branch=prod: err %v\n%s", err, out)
	}
	if out, err := r.TryPush(t, "prod", path); err == nil || !strings.Contains(out, want) || r.Head(t, "prod") != "" {
		t.Errorf("push of a guardrail violation to prod: err %v, head %q\n%s", err, r.Head(t, "prod"), out)
	}
}
