package gitremote

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestRepoCommitLogRewrite(t *testing.T) {
	t.Parallel()
	r := NewBare(t)
	c1 := r.Commit(t, "main", map[string]string{"site.cue": "a: 1\n"}, "first")
	c2 := r.Commit(t, "main", map[string]string{"sub/x.cue": "b: 2\n"}, "second")
	if got := r.Head(t, "main"); got != c2 {
		t.Fatalf("head = %s, want %s", got, c2)
	}
	log := r.Log(t, "main")
	if len(log) != 2 || log[0].Hash != c1 || log[1].Subject != "second" {
		t.Fatalf("log = %+v", log)
	}
	if got := r.Show(t, "main", "site.cue"); got != "a: 1\n" {
		t.Fatalf("site.cue = %q", got)
	}
	c3 := r.Rewrite(t, "main", map[string]string{"site.cue": "a: 3\n"}, "rewritten")
	log = r.Log(t, "main")
	if len(log) != 2 || log[0].Hash != c1 || log[1].Hash != c3 {
		t.Fatalf("log after rewrite = %+v", log)
	}
	r.Commit(t, "gitgw/status/gw1", map[string]string{"status.json": "{}"}, "status")
	if b := r.Branches(t, "gitgw/status/"); len(b) != 1 || b[0] != "gitgw/status/gw1" {
		t.Fatalf("branches = %v", b)
	}
}

func sshGit(s *SSHD, known string) []string {
	return append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_SSH_COMMAND=ssh -F /dev/null -i "+s.ClientKey+" -o IdentitiesOnly=yes -o BatchMode=yes"+
			" -o StrictHostKeyChecking=yes -o UserKnownHostsFile="+known)
}

func TestSSHDServesGit(t *testing.T) {
	t.Parallel()
	r := NewBare(t)
	head := r.Commit(t, "main", map[string]string{"a": "1"}, "one")
	s := StartSSHD(t)

	cmd := exec.Command("git", "ls-remote", s.URL(r.Dir), "refs/heads/main")
	cmd.Env = sshGit(s, s.KnownHosts)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ls-remote over ssh: %v: %s\nsshd: %s", err, out, s.Log())
	}
	if !strings.HasPrefix(string(out), head) {
		t.Fatalf("ls-remote = %q, want %s", out, head)
	}

	cmd = exec.Command("git", "ls-remote", s.URL(r.Dir))
	cmd.Env = sshGit(s, s.WrongKnownHosts)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("ls-remote with a wrong host key succeeded: %s", out)
	}

	s.Stop(t)
	cmd = exec.Command("git", "ls-remote", s.URL(r.Dir))
	cmd.Env = sshGit(s, s.KnownHosts)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("ls-remote to a stopped sshd succeeded: %s", out)
	}
	s.Start(t)
	cmd = exec.Command("git", "ls-remote", s.URL(r.Dir))
	cmd.Env = sshGit(s, s.KnownHosts)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ls-remote after restart: %v: %s", err, out)
	}
}

func TestHTTPSServesGit(t *testing.T) {
	t.Parallel()
	r := NewBare(t)
	head := r.Commit(t, "main", map[string]string{"a": "1"}, "one")
	h := StartHTTPS(t, filepath.Dir(r.Dir), "s3cret")
	url := h.RepoURL(t, r.Dir)
	env := append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_SSL_CAINFO="+h.CAFile, "GIT_TERMINAL_PROMPT=0")

	cmd := exec.Command("git", "ls-remote", strings.Replace(url, "https://", "https://x:s3cret@", 1), "refs/heads/main")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), head) {
		t.Fatalf("ls-remote over https: %v: %s", err, out)
	}
	cmd = exec.Command("git", "ls-remote", strings.Replace(url, "https://", "https://x:wrong@", 1))
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("ls-remote with a wrong token succeeded: %s", out)
	}
	// Two requests (one refused), and the advertisement's bytes counted.
	if st := h.Stats(); st.Requests != 2 || st.BytesOut < int64(len(head)) {
		t.Fatalf("server stats %+v after two ls-remotes", st)
	}
}

// A rewritten branch leaves unreachable objects, and GC prunes them.
func TestUnreachableAndGC(t *testing.T) {
	t.Parallel()
	r := NewBare(t)
	r.Commit(t, "b", map[string]string{"a": "1"}, "one")
	old := r.Commit(t, "b", map[string]string{"a": "2"}, "two")
	r.Rewrite(t, "b", map[string]string{"a": "3"}, "three")
	if u := r.Unreachable(t); !slices.Contains(u, old) {
		t.Fatalf("unreachable %v lacks the rewritten commit %s", u, old)
	}
	if r.Size(t) == 0 {
		t.Fatal("size 0 of a repository with commits")
	}
	r.GC(t)
	if u := r.Unreachable(t); len(u) != 0 {
		t.Fatalf("after GC, unreachable %v", u)
	}
	if _, err := Git(r.Dir, "cat-file", "-e", old); err == nil {
		t.Fatalf("%s still present after GC", old)
	}
}

func TestImportBranchesAndPrepare(t *testing.T) {
	t.Parallel()
	r := NewBare(t)
	r.ImportBranches(t, map[string]map[string]string{
		"gitgw/status/gw1": {"status.json": "{\"node\":\"gw1\"}\n"},
		"gitgw/status/gw2": {"status.json": "{\"node\":\"gw2\"}\n", "STATUS.md": "# gw2\n"},
	}, "imported")
	if b := r.Branches(t, "gitgw/status/"); len(b) != 2 {
		t.Fatalf("branches = %v", b)
	}
	if got := r.Show(t, "gitgw/status/gw2", "STATUS.md"); got != "# gw2\n" {
		t.Fatalf("STATUS.md = %q", got)
	}
	c := r.Prepare(t, "main", map[string]string{"a": "1"}, "prepared")
	if r.Head(t, "main") != "" {
		t.Fatal("Prepare pushed")
	}
	r.Push(t, "main")
	if r.Head(t, "main") != c {
		t.Fatal("Push did not push the prepared commit")
	}
}
