package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/gitremote"
	"github.com/gitgw/gitgw/test/lab"
)

// TestRepoFlagErrors: what is wrong with the repository flags is said
// with the flag that fixes it, not with go-git's words or a temporary path.
func TestRepoFlagErrors(t *testing.T) {
	gitremote.RequireGit(t)
	dir := t.TempDir()
	key, _ := gitremote.SSHSigningKey(t, dir, "id_ed25519")
	missing := filepath.Join(dir, "missing")
	repo := gitremote.NewBare(t)
	repo.Commit(t, "main", map[string]string{"README": "site\n"}, "one")
	const sshURL = "ssh://git@127.0.0.1:1/site.git"
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"ssh without a key", []string{"validate", "--repo", sshURL}, "give its file with --ssh-key FILE"},
		{"ssh key missing", []string{"validate", "--repo", sshURL, "--ssh-key", missing}, "--ssh-key " + missing},
		{"known hosts missing", []string{"plan", "--node", "gw1", "--repo", sshURL, "--ssh-key", key, "--known-hosts", missing}, "--known-hosts: stat " + missing},
		{"token file missing", []string{"validate", "--repo", "https://git.example.net/site.git", "--token-file", missing}, "--token-file: open " + missing},
		{"CA file missing", []string{"validate", "--repo", "https://git.example.net/site.git", "--ca-file", missing}, "--ca-file: open " + missing},
		{"unknown scheme", []string{"validate", "--repo", "ftp://git.example.net/site.git"}, `unsupported scheme "ftp"`},
		{"branch not found", []string{"validate", "--repo", repo.Dir, "--ref", "prod"}, `"prod" (choose the branch with --ref)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := runGitgw(t, tc.args...)
			if code != 1 {
				t.Fatalf("exit %d, want 1\nstderr: %s", code, errOut)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, errOut)
			}
			if strings.Contains(errOut, "SSH_KNOWN_HOSTS env") {
				t.Errorf("stderr sends the operator to an environment variable:\n%s", errOut)
			}
		})
	}
}

// TestAgentCannotStart: an agent that can never work exits 1 at start,
// saying what to do (its node is not in the site; its ssh credentials are
// missing), while one whose remote is merely unreachable keeps running and
// retries. Each agent runs in its own network namespace, so that a
// regression (an agent that does start) touches nothing of the host.
func TestAgentCannotStart(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "git")
	dir := t.TempDir()
	key, _ := gitremote.SSHSigningKey(t, dir, "id_ed25519")
	known := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(known, []byte("[127.0.0.1]:1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMgHoY5lZ7jtGJp1rPH2zGRz4kSSNgK2dYaKxQ3y8rn0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	site := filepath.Join(repoRoot(t), "examples/lab")
	const sshURL = "ssh://git@127.0.0.1:1/site.git"
	common := func(t *testing.T) []string {
		return []string{"--state-dir", t.TempDir(), "--unit-dir", t.TempDir(), "--socket", "", "--listen", "",
			"--no-status", "--interval", "1s", "--log-format", "text"}
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"node not in the site", []string{"--site", site, "--node", "gw9"},
			[]string{`node "gw9" is not declared in the site`, "gw1, gw2", "--node"}},
		{"ssh without a key", []string{"--repo", sshURL, "--known-hosts", known, "--node", "gw1"},
			[]string{"--ssh-key FILE"}},
		{"ssh key missing", []string{"--repo", sshURL, "--ssh-key", missing, "--known-hosts", known, "--node", "gw1"},
			[]string{"--ssh-key " + missing}},
		{"known hosts missing", []string{"--repo", sshURL, "--ssh-key", key, "--known-hosts", missing, "--node", "gw1"},
			[]string{"--known-hosts", missing}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := lab.NewNetns(t, "e2m")
			ag := startNetnsAgent(t, ns, "gw", append(tc.args, common(t)...)...)
			select {
			case err := <-ag.exited:
				ag.exited <- err
				ee, ok := err.(*exec.ExitError)
				if !ok || ee.ExitCode() != 1 {
					t.Fatalf("agent exit: %v, want status 1\n%s", err, ag.logs.String())
				}
			case <-time.After(60 * time.Second):
				t.Fatalf("the agent still runs after 60 s; it can never work and must exit\n%s", nicLastLines(ag.logs.String(), 20))
			}
			for _, w := range tc.want {
				if !strings.Contains(ag.logs.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, ag.logs.String())
				}
			}
			if strings.Contains(ag.logs.String(), "agent starting") {
				t.Errorf("the agent got as far as starting its loop:\n%s", ag.logs.String())
			}
		})
	}

	t.Run("unreachable remote is retried", func(t *testing.T) {
		ns := lab.NewNetns(t, "e2m")
		ag := startNetnsAgent(t, ns, "gw", append([]string{"--repo", sshURL, "--ssh-key", key, "--known-hosts", known, "--node", "gw1"}, common(t)...)...)
		nicEventually(t, 60*time.Second, "two failed syncs", func() (bool, string) {
			ag.alive(t, "its second sync")
			l := ag.logs.String()
			return strings.Count(l, "sync failed") >= 2, nicLastLines(l, 10)
		})
		ag.alive(t, "the test's end")
	})
}
