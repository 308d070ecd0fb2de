// Package gitremote gives gitgw's Git tests real remotes to talk to: bare
// repositories on disk, a user's way of committing and pushing to them (the
// git CLI, as an operator would), an sshd on 127.0.0.1 with a throwaway host
// key, key authentication and a known_hosts file, and an https endpoint
// (git http-backend behind a TLS test server) that wants a token.
//
// It deliberately does not import go-git: the code under test
// (reconcile/gitrepo) is the only go-git user, and a remote written by the
// reference implementation checks it better than one written by itself.
// Every process is started by the test, stopped by PID, and every file lives
// in the test's temporary directories.
package gitremote

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/gitgw/gitgw/test/lab"
)

// Repo is a bare repository on disk plus a private work clone that commits
// and pushes to it the way a user would.
type Repo struct {
	// Dir is the bare repository's directory.
	Dir string

	mu   sync.Mutex
	work string
}

// gitEnv isolates git from the host's and the user's configuration and gives
// it a fixed identity.
func gitEnv() []string {
	env := os.Environ()
	return append(env,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Site Operator",
		"GIT_AUTHOR_EMAIL=operator@example.com",
		"GIT_COMMITTER_NAME=Site Operator",
		"GIT_COMMITTER_EMAIL=operator@example.com",
		"GIT_TERMINAL_PROMPT=0",
	)
}

// Git runs git with args (in dir when dir is not empty) and returns its
// trimmed standard output.
func Git(dir string, args ...string) (string, error) {
	if dir != "" {
		args = append([]string{"-C", dir}, args...)
	}
	cmd := exec.Command("git", args...)
	cmd.Env = gitEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

func mustGit(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := Git(dir, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// RequireGit stops the test unless the git CLI is installed.
func RequireGit(t testing.TB) {
	t.Helper()
	lab.RequireCommand(t, "git")
}

// NewBare creates an empty bare repository (default branch main) in a
// temporary directory of the test.
func NewBare(t testing.TB) *Repo {
	t.Helper()
	RequireGit(t)
	dir := filepath.Join(t.TempDir(), "site.git")
	mustGit(t, "", "init", "-q", "--bare", "-b", "main", dir)
	return &Repo{Dir: dir}
}

// FileURL is the repository as a file:// URL.
func (r *Repo) FileURL() string { return "file://" + r.Dir }

func (r *Repo) workClone(t testing.TB) string {
	t.Helper()
	if r.work != "" {
		return r.work
	}
	w := filepath.Join(t.TempDir(), "work")
	mustGit(t, "", "init", "-q", "-b", "main", w)
	mustGit(t, w, "remote", "add", "origin", r.Dir)
	r.work = w
	return w
}

// checkout puts the work clone on branch, at the remote's tip when the
// remote has it, or on a fresh orphan branch otherwise.
func (r *Repo) checkout(t testing.TB, w, branch string) {
	t.Helper()
	mustGit(t, w, "fetch", "-q", "--prune", "origin", "+refs/heads/*:refs/remotes/origin/*")
	if _, err := Git(w, "rev-parse", "-q", "--verify", "refs/remotes/origin/"+branch); err == nil {
		mustGit(t, w, "checkout", "-q", "-f", "-B", branch, "refs/remotes/origin/"+branch)
		mustGit(t, w, "clean", "-q", "-fdx")
		return
	}
	mustGit(t, w, "checkout", "-q", "-f", "--orphan", branch)
	mustGit(t, w, "rm", "-q", "-rf", "--ignore-unmatch", ".")
	mustGit(t, w, "clean", "-q", "-fdx")
}

func writeFiles(t testing.TB, w string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(w, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Commit writes files (path → content, paths with '/') on top of branch,
// commits them with msg and pushes, as a user would. It returns the new
// commit's hash.
func (r *Repo) Commit(t testing.TB, branch string, files map[string]string, msg string) string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.commitLocked(t, branch, files, msg)
	mustGit(t, r.workClone(t), "push", "-q", "origin", "HEAD:refs/heads/"+branch)
	return c
}

// Prepare commits files on top of branch in the work clone without
// pushing, so that a benchmark can time Push alone. It returns the commit.
func (r *Repo) Prepare(t testing.TB, branch string, files map[string]string, msg string) string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.commitLocked(t, branch, files, msg)
}

// commitLocked commits files on top of branch in the work clone; r.mu is
// held.
func (r *Repo) commitLocked(t testing.TB, branch string, files map[string]string, msg string) string {
	t.Helper()
	w := r.workClone(t)
	r.checkout(t, w, branch)
	writeFiles(t, w, files)
	mustGit(t, w, "add", "-A")
	mustGit(t, w, "commit", "-q", "--allow-empty", "-m", msg)
	return mustGit(t, w, "rev-parse", "HEAD")
}

// Push pushes what Prepare committed on branch.
func (r *Repo) Push(t testing.TB, branch string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	mustGit(t, r.workClone(t), "push", "-q", "origin", "HEAD:refs/heads/"+branch)
}

// TryPush pushes what Prepare committed on branch and returns git's
// output, the server's hook messages included ("remote: …"), and whether
// the push failed: for tests of server-side hooks that refuse a push. env
// is added to the environment of the push (and so of the server's hooks,
// for a local repository).
func (r *Repo) TryPush(t testing.TB, branch string, env ...string) (string, error) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	cmd := exec.Command("git", "-C", r.workClone(t), "push", "origin", "HEAD:refs/heads/"+branch)
	cmd.Env = append(gitEnv(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Rewrite replaces the tip of branch by a new commit on top of its parent
// and force-pushes it: the history rewrite a fast-forward guard must catch.
func (r *Repo) Rewrite(t testing.TB, branch string, files map[string]string, msg string) string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.workClone(t)
	r.checkout(t, w, branch)
	mustGit(t, w, "reset", "-q", "--hard", "HEAD~1")
	writeFiles(t, w, files)
	mustGit(t, w, "add", "-A")
	mustGit(t, w, "commit", "-q", "--allow-empty", "-m", msg)
	mustGit(t, w, "push", "-q", "-f", "origin", "HEAD:refs/heads/"+branch)
	return mustGit(t, w, "rev-parse", "HEAD")
}

// Head is the commit branch points at in the bare repository, or "".
func (r *Repo) Head(t testing.TB, branch string) string {
	t.Helper()
	out, err := Git(r.Dir, "rev-parse", "-q", "--verify", "refs/heads/"+branch)
	if err != nil {
		return ""
	}
	return out
}

// LogEntry is one commit of a branch's history.
type LogEntry struct {
	Hash    string
	Subject string
	// Message is the full commit message, trailers included.
	Message string
}

// Log is branch's history in the bare repository, oldest first (first
// parents only); nil when the branch does not exist.
func (r *Repo) Log(t testing.TB, branch string) []LogEntry {
	t.Helper()
	if r.Head(t, branch) == "" {
		return nil
	}
	out := mustGit(t, r.Dir, "log", "--first-parent", "--reverse", "--format=%H%x00%s%x00%B%x01", "refs/heads/"+branch)
	var log []LogEntry
	for _, rec := range strings.Split(out, "\x01") {
		rec = strings.TrimLeft(rec, "\n")
		if rec == "" {
			continue
		}
		f := strings.SplitN(rec, "\x00", 3)
		if len(f) != 3 {
			t.Fatalf("gitremote: unexpected log record %q", rec)
		}
		log = append(log, LogEntry{Hash: f[0], Subject: f[1], Message: f[2]})
	}
	return log
}

// Show is the content of path at rev (a commit or branch) in the bare
// repository.
func (r *Repo) Show(t testing.TB, rev, path string) string {
	t.Helper()
	cmd := exec.Command("git", "-C", r.Dir, "show", rev+":"+path)
	cmd.Env = gitEnv()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gitremote: git show %s:%s: %v", rev, path, err)
	}
	return string(out)
}

// Branches lists the branch names (without refs/heads/) that start with
// prefix, sorted.
func (r *Repo) Branches(t testing.TB, prefix string) []string {
	t.Helper()
	out := mustGit(t, r.Dir, "for-each-ref", "--format=%(refname:lstrip=2)", "refs/heads/")
	var names []string
	for _, l := range strings.Split(out, "\n") {
		if l != "" && strings.HasPrefix(l, prefix) {
			names = append(names, l)
		}
	}
	sort.Strings(names)
	return names
}

// ImportBranches creates many branches at once (git fast-import, one
// process), each with one commit holding its files: fixtures such as a
// thousand nodes' status branches. branches maps a branch name to its files.
func (r *Repo) ImportBranches(t testing.TB, branches map[string]map[string]string, msg string) {
	t.Helper()
	refs := make(map[string]map[string]string, len(branches))
	for b, files := range branches {
		refs["refs/heads/"+b] = files
	}
	r.ImportRefs(t, refs, msg)
}

// ImportRefs is ImportBranches for full ref names (refs/gitgw/alive/gw1):
// each ref gets one parentless commit holding its files, message msg.
func (r *Repo) ImportRefs(t testing.TB, refs map[string]map[string]string, msg string) {
	t.Helper()
	names := make([]string, 0, len(refs))
	for b := range refs {
		names = append(names, b)
	}
	sort.Strings(names)
	var in bytes.Buffer
	for _, b := range names {
		fmt.Fprintf(&in, "commit %s\ncommitter gitgw <gitgw@%s> 1700000000 +0000\ndata %d\n%s\n",
			b, path.Base(b), len(msg), msg)
		files := refs[b]
		paths := make([]string, 0, len(files))
		for p := range files {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		for _, p := range paths {
			fmt.Fprintf(&in, "M 100644 inline %s\ndata %d\n%s\n", p, len(files[p]), files[p])
		}
		in.WriteString("\n")
	}
	// --force: a ref replaced by a parentless commit (an alive ref).
	cmd := exec.Command("git", "-C", r.Dir, "fast-import", "--quiet", "--force")
	cmd.Env = gitEnv()
	cmd.Stdin = &in
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gitremote: fast-import: %v: %s", err, out)
	}
}

// ImportHistory is ImportBranches with history: each branch gets commits
// commits in a chain (fast-import continues a branch it has written in the
// same stream), the i-th holding files(branch, i), message msg.
func (r *Repo) ImportHistory(t testing.TB, branches []string, commits int, files func(branch string, i int) map[string]string, msg string) {
	t.Helper()
	var in bytes.Buffer
	for _, b := range branches {
		for i := 0; i < commits; i++ {
			fmt.Fprintf(&in, "commit refs/heads/%s\ncommitter gitgw <gitgw@%s> %d +0000\ndata %d\n%s\n",
				b, path.Base(b), 1700000000+i*60, len(msg), msg)
			fs := files(b, i)
			paths := make([]string, 0, len(fs))
			for p := range fs {
				paths = append(paths, p)
			}
			sort.Strings(paths)
			for _, p := range paths {
				fmt.Fprintf(&in, "M 100644 inline %s\ndata %d\n%s\n", p, len(fs[p]), fs[p])
			}
			in.WriteString("\n")
		}
	}
	cmd := exec.Command("git", "-C", r.Dir, "fast-import", "--quiet")
	cmd.Env = gitEnv()
	cmd.Stdin = &in
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gitremote: fast-import: %v: %s", err, out)
	}
}

// Size is the bytes of the repository's objects (loose and packed), as
// `git count-objects -v` counts them.
func (r *Repo) Size(t testing.TB) int64 {
	t.Helper()
	out := mustGit(t, r.Dir, "count-objects", "-v")
	var total int64
	for _, l := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(l, ": ")
		if !ok || (k != "size" && k != "size-pack") {
			continue
		}
		var kib int64
		if _, err := fmt.Sscan(v, &kib); err != nil {
			t.Fatalf("gitremote: count-objects %q: %v", l, err)
		}
		total += kib << 10
	}
	return total
}

// Unreachable lists the objects no ref reaches (reflogs ignored): what
// the server's gc deletes.
func (r *Repo) Unreachable(t testing.TB) []string {
	t.Helper()
	out := mustGit(t, r.Dir, "fsck", "--unreachable", "--no-reflogs", "--no-progress")
	var objs []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "unreachable" {
			objs = append(objs, f[2])
		}
	}
	return objs
}

// GC runs the server side's garbage collection, unreachable objects
// pruned at once (a Git host prunes them after a grace period).
func (r *Repo) GC(t testing.TB) {
	t.Helper()
	mustGit(t, r.Dir, "gc", "-q", "--prune=now")
}
