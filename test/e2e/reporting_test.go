package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStatusShowsReportingFailure runs the real agent with a status
// repository it cannot push to: `gitgw status` says reporting fails, with
// the error, and the agent keeps running its node.
func TestStatusShowsReportingFailure(t *testing.T) {
	l := newStatusLab(t)
	l.repo.Commit(t, "main", labFiles(t, nil), "lab site")
	sock := filepath.Join(l.state, "gitgw.sock")
	a := l.startAgent(t, "--status-repo", filepath.Join(l.base, "gone.git"), "--socket", sock)
	deadline := time.Now().Add(2 * time.Minute)
	var out, errOut string
	for {
		var code int
		out, errOut, code = runGitgw(t, "status", "--socket", sock)
		if code == 0 && strings.Contains(out, "reporting  FAILING (") {
			break
		}
		select {
		case <-a.done:
			t.Fatalf("the agent exited:\n%s", a.stderr())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("gitgw status never shows the failing status push:\n%s%s", out, errOut)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(out, "failed pushes of the status branch") || !strings.Contains(out, "gone.git") {
		t.Errorf("the reporting line does not say what fails:\n%s", out)
	}
	json, _, code := runGitgw(t, "status", "--socket", sock, "--json")
	if code != 0 || !strings.Contains(json, `"reporting": {`) || !strings.Contains(json, `"last_error": "gitrepo: push gitgw/status/gw1`) {
		t.Errorf("status --json lacks the reporting failure:\n%s", json)
	}
}
