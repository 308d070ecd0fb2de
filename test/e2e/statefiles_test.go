package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gitgw/gitgw/reconcile/drift"
	"github.com/gitgw/gitgw/test/gitremote"
	"github.com/gitgw/gitgw/test/lab"
)

// stateFiles are the agent's state files (relative to the state dir) and,
// for the JSON ones, a valid content to cut short. Refs are go-git's loose
// refs, which it rewrites in place: the clone's synced ref and the status
// writer's branch.
var stateFiles = []struct {
	path string
	good string
	ref  bool
}{
	{path: "last-applied.json"},
	{path: "pinned.json", good: `{"commit": "0123456789abcdef0123456789abcdef01234567", "reason": "service web: 0 healthy servers", "at": "2026-01-01T00:00:00Z"}`},
	{path: "overrides.json", good: `[{"action": "drain", "target": "web/s2", "commit": "0123456789abcdef0123456789abcdef01234567"}]`},
	{path: "vrrp-state.json", good: `{"masters": [{"name": "VI_1", "interface": "eth0", "version": 3, "vrid": 51, "interval": 100000000, "src": "203.0.113.11", "dsts": ["224.0.0.18"], "advertised": ["203.0.113.100"], "vips": []}]}`},
	{path: "source/repo.git/refs/gitgw/synced", ref: true},
	{path: "status.git/refs/heads/gitgw/status/gw1", ref: true},
}

// stop ends the agent with SIGTERM and waits for it.
func (a *netnsAgent) stop(t *testing.T) {
	t.Helper()
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-a.exited:
		a.exited <- err
	case <-time.After(30 * time.Second):
		t.Fatalf("%s agent did not stop on SIGTERM", a.name)
	}
}

// TestAgentStartsOnCorruptState: a crash (or a power loss on a file system
// that kept the rename, not the data) can leave any state file empty or
// cut short. The real agent is started on a state dir where every one of
// them is corrupt in turn, empty then truncated: it starts, logs one ERROR
// line naming the file, moves it aside, and keeps running: it applies the
// next commit and reports it on its status branch.
func TestAgentStartsOnCorruptState(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "git")
	gitremote.RequireGit(t)
	repo := gitremote.NewBare(t)
	c := repo.Commit(t, "main", sigSite("0"), "rev 0")
	ns := lab.NewNetns(t, "cst")
	state := filepath.Join(t.TempDir(), "state")
	units := filepath.Join(t.TempDir(), "units")
	start := func(name string) *rolloutAgent {
		a := &rolloutAgent{node: "gw1", state: state}
		a.netnsAgent = startNetnsAgent(t, ns, name,
			"--repo", repo.Dir, "--node", "gw1", "--state-dir", state, "--interval", "1s", "--resync", "1h",
			"--status-coalesce", "0", "--socket", "", "--listen", "", "--unit-dir", units, "--systemd-socket", filepath.Join(units, "none"))
		return a
	}
	applied := func(c string) func(drift.Status) bool {
		return func(st drift.Status) bool {
			return st.Applied == c && (st.LastPass.Outcome == drift.Converged || st.LastPass.Outcome == drift.Incomplete)
		}
	}
	a := start("gw1-first")
	firstStatus(t, repo, a, 90*time.Second, "first commit applied", applied(c))
	a.stop(t)

	// One file at a time, so that each is shown to be handled by itself.
	rev := 0
	for _, f := range stateFiles {
		for i, how := range []string{"empty", "truncated"} {
			path := filepath.Join(state, filepath.FromSlash(f.path))
			var content []byte
			if how == "truncated" {
				good := []byte(f.good)
				if f.good == "" { // written by the previous run
					b, err := os.ReadFile(path)
					if err != nil {
						t.Fatalf("%s: %v", f.path, err)
					}
					good = b
				}
				content = good[:len(good)/2]
			}
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			rev++
			c = repo.Commit(t, "main", sigSite(fmt.Sprint(rev)), fmt.Sprintf("rev %d: %s %s", rev, how, f.path))
			a := start(fmt.Sprintf("gw1-%s-%s", how, filepath.Base(f.path)))
			firstStatus(t, repo, a, 90*time.Second, fmt.Sprintf("commit applied after the %s %s", how, f.path), applied(c))
			a.alive(t, "checking the state files")
			var errLines []string
			for _, line := range strings.Split(a.logs.String(), "\n") {
				var rec struct{ Level, Msg string }
				if json.Unmarshal([]byte(line), &rec) == nil && rec.Level == "ERROR" && strings.HasPrefix(rec.Msg, "state file corrupt") {
					errLines = append(errLines, line)
				}
			}
			if len(errLines) != 1 || !strings.Contains(errLines[0], filepath.Base(path)) {
				t.Errorf("%s %s: want one ERROR line naming it, got:\n%s", how, f.path, strings.Join(errLines, "\n"))
			}
			var aside []string
			if f.ref {
				gitDir := path[:strings.Index(path, ".git/")+len(".git")]
				aside, _ = filepath.Glob(filepath.Join(gitDir, "gitgw-corrupt", "*.corrupt-*"))
			} else {
				aside, _ = filepath.Glob(path + ".corrupt-*")
			}
			if len(aside) != i+1 {
				t.Errorf("%s %s: moved aside %d times (%v), want %d", how, f.path, len(aside), aside, i+1)
			}
			a.stop(t)
		}
	}
}
