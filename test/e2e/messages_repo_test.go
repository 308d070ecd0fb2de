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
		{"site not at the repository's root", []string{"--repo", subdirSiteRepo(t).Dir, "--node", "gw1"},
			[]string{"no site at the repository's root", "--path sites/prod"}},
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

// TestSitePath: a site in a subdirectory of a real repository is used with
// --path; without it, the error names the path in the repository and the
// --path to give, not the temporary copy; a path leading out of the
// repository is refused.
func TestSitePath(t *testing.T) {
	gitremote.RequireGit(t)
	repo := subdirSiteRepo(t)
	root := filepath.Join(repoRoot(t), "examples/lab")
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr []string
	}{
		{name: "with --path", args: []string{"validate", "--repo", repo.Dir, "--path", "sites/prod"},
			stdout: "site valid: 2 nodes"},
		{name: "plan with --path", args: []string{"plan", "--repo", repo.FileURL(), "--path", "./sites/prod/", "--node", "gw1", "--unit-dir", t.TempDir()},
			stdout: "Plan:"},
		{name: "without --path", args: []string{"validate", "--repo", repo.Dir},
			code: 1, stderr: []string{"no site at the repository's root: cue.mod/module.cue missing", "give it with --path sites/prod"}},
		{name: "a wrong --path", args: []string{"validate", "--repo", repo.Dir, "--path", "sites"},
			code: 1, stderr: []string{`no site at "sites" (--path)`, "--path sites/prod"}},
		{name: "out of the repository", args: []string{"validate", "--repo", repo.Dir, "--path", "sites/../../etc"},
			code: 1, stderr: []string{`--path "sites/../../etc": the site's directory must be inside the repository`}},
		{name: "absolute", args: []string{"validate", "--repo", repo.Dir, "--path", "/etc"},
			code: 1, stderr: []string{`--path "/etc": give the site's directory relative to the repository's root`}},
		{name: "with --site", args: []string{"validate", "--site", root, "--path", "sites/prod"},
			code: 1, stderr: []string{"--path goes with --repo"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runGitgw(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			if tc.stdout != "" && !strings.Contains(out, tc.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tc.stdout, out)
			}
			for _, w := range tc.stderr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if strings.Contains(errOut, "gitgw-src-") {
				t.Errorf("stderr names the temporary copy:\n%s", errOut)
			}
		})
	}
}

// subdirSiteRepo is a bare repository holding examples/lab in sites/prod.
func subdirSiteRepo(t *testing.T) *gitremote.Repo {
	t.Helper()
	files := map[string]string{"README": "the site is in sites/prod\n"}
	root := filepath.Join(repoRoot(t), "examples/lab")
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		files[filepath.ToSlash(filepath.Join("sites/prod", rel))] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	repo := gitremote.NewBare(t)
	repo.Commit(t, "main", files, "the lab site in a subdirectory")
	return repo
}
