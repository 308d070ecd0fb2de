package gitrepo

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/gitremote"
)

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func readFile(t testing.TB, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func openSource(t testing.TB, opts Options) *Source {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = filepath.Join(t.TempDir(), "source")
	}
	s, err := Open(testCtx(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSyncLocal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		url  func(r *gitremote.Repo) string
	}{
		{"path", func(r *gitremote.Repo) string { return r.Dir }},
		{"file-url", func(r *gitremote.Repo) string { return r.FileURL() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			r := gitremote.NewBare(t)
			c1 := r.Commit(t, "main", map[string]string{
				"cue.mod/module.cue": "module: \"example.com/site\"\n",
				"site.cue":           "vrid: 51\n",
			}, "first version\n\nSigned-off-by: Site Operator <operator@example.com>")
			s := openSource(t, Options{URL: tc.url(r)})
			rev, err := s.Sync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if rev.Commit != c1 || rev.Subject != "first version" || !strings.Contains(rev.Author, "operator@example.com") {
				t.Fatalf("revision = %+v", rev)
			}
			if got := rev.Trailers.Get("Signed-off-by"); got != "Site Operator <operator@example.com>" {
				t.Fatalf("trailers = %v", rev.Trailers)
			}
			if got := readFile(t, rev.Dir, "site.cue"); got != "vrid: 51\n" {
				t.Fatalf("site.cue = %q", got)
			}
			if got := readFile(t, rev.Dir, "cue.mod/module.cue"); !strings.Contains(got, "example.com/site") {
				t.Fatalf("module.cue = %q", got)
			}

			// Nothing moved: no fetch, same revision.
			transfers := s.transfers
			rev2, err := s.Sync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if rev2.Commit != c1 || rev2.Dir != rev.Dir || s.transfers != transfers {
				t.Fatalf("second sync: %+v, transfers %d → %d", rev2, transfers, s.transfers)
			}

			c2 := r.Commit(t, "main", map[string]string{"site.cue": "vrid: 52\n"}, "second")
			rev3, err := s.Sync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if rev3.Commit != c2 || readFile(t, rev3.Dir, "site.cue") != "vrid: 52\n" {
				t.Fatalf("third sync = %+v", rev3)
			}
			// The earlier tree is untouched and can be read again.
			if readFile(t, rev.Dir, "site.cue") != "vrid: 51\n" {
				t.Fatal("earlier tree modified")
			}
			old, err := s.ReadTree(ctx, c1)
			if err != nil || string(old["site.cue"]) != "vrid: 51\n" {
				t.Fatalf("ReadTree(c1) = %v, %v", old, err)
			}
			back, err := s.Checkout(ctx, c1)
			if err != nil || readFile(t, back.Dir, "site.cue") != "vrid: 51\n" {
				t.Fatalf("Checkout(c1) = %+v, %v", back, err)
			}
		})
	}
}

func TestSyncMissingBranch(t *testing.T) {
	t.Parallel()
	r := gitremote.NewBare(t)
	r.Commit(t, "other", map[string]string{"a": "1"}, "x")
	s := openSource(t, Options{URL: r.Dir})
	if _, err := s.Sync(testCtx(t)); !errors.Is(err, ErrRefNotFound) {
		t.Fatalf("err = %v, want ErrRefNotFound", err)
	}
}

func TestSyncRefusesRewrite(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	r := gitremote.NewBare(t)
	r.Commit(t, "main", map[string]string{"site.cue": "a: 1\n"}, "one")
	c2 := r.Commit(t, "main", map[string]string{"site.cue": "a: 2\n"}, "two")
	dir := filepath.Join(t.TempDir(), "source")
	s := openSource(t, Options{URL: r.Dir, Dir: dir})
	if rev, err := s.Sync(ctx); err != nil || rev.Commit != c2 {
		t.Fatalf("sync = %+v, %v", rev, err)
	}
	c3 := r.Rewrite(t, "main", map[string]string{"site.cue": "a: 3\n"}, "rewritten")

	for i := 0; i < 2; i++ { // refused again on the next poll, without a fetch
		_, err := s.Sync(ctx)
		var rw *RewriteError
		if !errors.As(err, &rw) || !errors.Is(err, ErrRewrite) {
			t.Fatalf("sync after rewrite: err = %v, want *RewriteError", err)
		}
		if rw.Old != c2 || rw.New != c3 || !strings.Contains(rw.Reason, "rewritten") {
			t.Fatalf("rewrite error = %+v", rw)
		}
		if !strings.Contains(err.Error(), "allow-rewrite") {
			t.Fatalf("message does not say how to allow it: %v", err)
		}
	}
	if s.Synced() != c2 {
		t.Fatalf("synced = %s, want %s kept", s.Synced(), c2)
	}

	allow := openSource(t, Options{URL: r.Dir, Dir: dir, AllowRewrite: true})
	rev, err := allow.Sync(ctx)
	if err != nil || rev.Commit != c3 {
		t.Fatalf("sync with AllowRewrite = %+v, %v", rev, err)
	}
}

func TestSyncRefusesMoveBack(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	r := gitremote.NewBare(t)
	c1 := r.Commit(t, "main", map[string]string{"site.cue": "a: 1\n"}, "one")
	r.Commit(t, "main", map[string]string{"site.cue": "a: 2\n"}, "two")
	s := openSource(t, Options{URL: r.Dir})
	if _, err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := gitremote.Git(r.Dir, "update-ref", "refs/heads/main", c1); err != nil {
		t.Fatal(err)
	}
	var rw *RewriteError
	if _, err := s.Sync(ctx); !errors.As(err, &rw) || !strings.Contains(rw.Reason, "older") {
		t.Fatalf("err = %v, want a move back refused", err)
	}
}

func TestSyncSSH(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	r := gitremote.NewBare(t)
	c1 := r.Commit(t, "main", map[string]string{"site.cue": "a: 1\n"}, "one")
	sshd := gitremote.StartSSHD(t)

	s := openSource(t, Options{URL: sshd.URL(r.Dir), SSHKeyFile: sshd.ClientKey, KnownHostsFile: sshd.KnownHosts})
	rev, err := s.Sync(ctx)
	if err != nil {
		t.Fatalf("sync over ssh: %v\nsshd: %s", err, sshd.Log())
	}
	if rev.Commit != c1 || readFile(t, rev.Dir, "site.cue") != "a: 1\n" {
		t.Fatalf("revision = %+v", rev)
	}
	c2 := r.Commit(t, "main", map[string]string{"site.cue": "a: 2\n"}, "two")
	if rev, err := s.Sync(ctx); err != nil || rev.Commit != c2 {
		t.Fatalf("second sync over ssh = %+v, %v", rev, err)
	}

	wrong := openSource(t, Options{URL: sshd.URL(r.Dir), SSHKeyFile: sshd.ClientKey, KnownHostsFile: sshd.WrongKnownHosts})
	if _, err := wrong.Sync(ctx); err == nil {
		t.Fatal("sync through a wrong host key succeeded")
	} else if !strings.Contains(err.Error(), "key") || !strings.Contains(err.Error(), "--known-hosts") {
		t.Fatalf("wrong host key: unexpected error %v", err)
	}
	if _, err := Open(ctx, Options{URL: sshd.URL(r.Dir), KnownHostsFile: sshd.KnownHosts, Dir: t.TempDir()}); err == nil {
		t.Fatal("opening an ssh source without a key succeeded")
	}
}

func TestSyncHTTPS(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	r := gitremote.NewBare(t)
	c1 := r.Commit(t, "main", map[string]string{"site.cue": "a: 1\n"}, "one")
	srv := gitremote.StartHTTPS(t, filepath.Dir(r.Dir), "tok-123")
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(good, []byte("tok-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url := srv.RepoURL(t, r.Dir)
	s := openSource(t, Options{URL: url, TokenFile: good, CAFile: srv.CAFile})
	rev, err := s.Sync(ctx)
	if err != nil || rev.Commit != c1 || readFile(t, rev.Dir, "site.cue") != "a: 1\n" {
		t.Fatalf("sync over https = %+v, %v", rev, err)
	}
	wrong := openSource(t, Options{URL: url, TokenFile: bad, CAFile: srv.CAFile})
	if _, err := wrong.Sync(ctx); err == nil {
		t.Fatal("sync with a wrong token succeeded")
	} else if !strings.Contains(err.Error(), "--token-file") {
		t.Errorf("a wrong token: the error does not name --token-file: %v", err)
	}
	untrusted := openSource(t, Options{URL: url, TokenFile: good})
	if _, err := untrusted.Sync(ctx); err == nil {
		t.Fatal("sync to an untrusted certificate succeeded")
	}
}

func TestWatchSeesPush(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	r := gitremote.NewBare(t)
	r.Commit(t, "main", map[string]string{"site.cue": "a: 1\n"}, "one")
	s := openSource(t, Options{URL: r.FileURL()})
	if _, err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !s.CanWatch() {
		t.Fatal("a file:// source cannot be watched")
	}
	events, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= 4; i++ {
		want := r.Commit(t, "main", map[string]string{"site.cue": "a: " + string(rune('0'+i)) + "\n"}, "next")
		select {
		case <-events:
		case <-time.After(30 * time.Second):
			t.Fatalf("push %d not seen by Watch", i)
		}
		rev, err := s.Sync(ctx)
		if err != nil || rev.Commit != want {
			t.Fatalf("sync after watch event = %+v, %v (want %s)", rev, err, want)
		}
	}
	// git gc packs the refs: still seen.
	if _, err := gitremote.Git(r.Dir, "pack-refs", "--all"); err != nil {
		t.Fatal(err)
	}
	drain(events)
	want := r.Commit(t, "main", map[string]string{"site.cue": "a: 9\n"}, "after pack-refs")
	select {
	case <-events:
	case <-time.After(30 * time.Second):
		t.Fatal("push after pack-refs not seen by Watch")
	}
	if rev, err := s.Sync(ctx); err != nil || rev.Commit != want {
		t.Fatalf("sync = %+v, %v", rev, err)
	}
	cancel()
	for range events { // closed when ctx ends
	}
}

func drain(c <-chan struct{}) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

func TestWatchRemoteNotLocal(t *testing.T) {
	t.Parallel()
	s := openSource(t, Options{URL: "https://127.0.0.1:1/site.git"})
	if s.CanWatch() {
		t.Fatal("an https source claims it can be watched")
	}
	ctx, cancel := context.WithCancel(context.Background())
	c, err := s.Watch(ctx)
	if err == nil {
		t.Fatal("Watch of an https remote: no error")
	}
	cancel()
	for range c {
	}
}

func TestJitter(t *testing.T) {
	t.Parallel()
	for i := 0; i < 1000; i++ {
		d := Jitter(time.Second, 0.1)
		if d < 900*time.Millisecond || d > 1100*time.Millisecond {
			t.Fatalf("Jitter(1s, 0.1) = %v", d)
		}
	}
}

func TestWriteBranchAdoptProposal(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	r := gitremote.NewBare(t)
	base := r.Commit(t, "main", map[string]string{"site.cue": "rps: \"0-1\"\n", "nodes/gw1.cue": "gw1: {}\n", "keep.txt": "k\n"}, "site")
	s := openSource(t, Options{URL: r.Dir, Node: "gw1"})
	if _, err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	msg := Message{Subject: "adopt(gw1): rps_cpus of eth0 set by hand to 1", Drift: "1 adopted"}
	files := map[string][]byte{"site.cue": []byte("rps: \"1\"\n"), "nodes/gw1.cue": nil}
	h, err := s.WriteBranch(ctx, "gitgw/adopt/gw1", base, files, msg)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Head(t, "gitgw/adopt/gw1"); got != h {
		t.Fatalf("remote adopt branch = %s, want %s", got, h)
	}
	log := r.Log(t, "gitgw/adopt/gw1")
	if len(log) != 2 || log[0].Hash != base || log[1].Subject != msg.Subject {
		t.Fatalf("adopt log = %+v", log)
	}
	if !strings.Contains(log[1].Message, "Gitgw-Node: gw1") {
		t.Fatalf("adopt message lacks the node trailer: %q", log[1].Message)
	}
	if got := r.Show(t, h, "site.cue"); got != "rps: \"1\"\n" {
		t.Fatalf("site.cue = %q", got)
	}
	if got := r.Show(t, h, "keep.txt"); got != "k\n" {
		t.Fatalf("keep.txt = %q", got)
	}
	if _, err := gitremote.Git(r.Dir, "cat-file", "-e", h+":nodes/gw1.cue"); err == nil {
		t.Fatal("deleted file still present")
	}
	// The same proposal again: nothing new.
	h2, err := s.WriteBranch(ctx, "gitgw/adopt/gw1", base, files, msg)
	if err != nil || h2 != h {
		t.Fatalf("repeat proposal = %s, %v; want %s", h2, err, h)
	}
	// A new proposal replaces the old one.
	h3, err := s.WriteBranch(ctx, "gitgw/adopt/gw1", base, map[string][]byte{"site.cue": []byte("rps: \"0\"\n")}, msg)
	if err != nil || h3 == h || r.Head(t, "gitgw/adopt/gw1") != h3 {
		t.Fatalf("new proposal = %s, %v", h3, err)
	}
	if _, err := s.WriteBranch(ctx, "main", base, files, msg); err == nil {
		t.Fatal("WriteBranch wrote the tracked branch")
	}
	if _, err := s.WriteBranch(ctx, "gitgw/adopt/gw1", base, map[string][]byte{"../x": []byte("y")}, msg); err == nil {
		t.Fatal("WriteBranch accepted a path escaping the tree")
	}
}

// A plain work tree (non-bare repository) that the operator commits to
// directly, on a branch whose name has a slash.
func TestSyncAndWatchNonBareNestedBranch(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	gitremote.RequireGit(t)
	dir := filepath.Join(t.TempDir(), "site")
	commit := func(content string) string {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "site.cue"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"add", "-A"}, {"commit", "-q", "-m", content}} {
			if _, err := gitremote.Git(dir, args...); err != nil {
				t.Fatal(err)
			}
		}
		h, err := gitremote.Git(dir, "rev-parse", "HEAD")
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if _, err := gitremote.Git("", "init", "-q", "-b", "release/v1", dir); err != nil {
		t.Fatal(err)
	}
	c1 := commit("a: 1\n")
	s := openSource(t, Options{URL: dir, Ref: "refs/heads/release/v1"})
	if rev, err := s.Sync(ctx); err != nil || rev.Commit != c1 {
		t.Fatalf("sync = %+v, %v", rev, err)
	}
	events, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c2 := commit("a: 2\n")
	select {
	case <-events:
	case <-time.After(30 * time.Second):
		t.Fatal("commit in a work tree not seen by Watch")
	}
	if rev, err := s.Sync(ctx); err != nil || rev.Commit != c2 || readFile(t, rev.Dir, "site.cue") != "a: 2\n" {
		t.Fatalf("sync = %+v, %v", rev, err)
	}
}

func TestOpenForgetsAnotherRepository(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	a, b := gitremote.NewBare(t), gitremote.NewBare(t)
	a.Commit(t, "main", map[string]string{"site.cue": "a: 1\n"}, "a")
	cb := b.Commit(t, "main", map[string]string{"site.cue": "b: 1\n"}, "b")
	dir := filepath.Join(t.TempDir(), "source")
	if _, err := openSource(t, Options{URL: a.Dir, Dir: dir}).Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// The same state dir pointed at another repository: a new history, not
	// a rewrite.
	s := openSource(t, Options{URL: b.Dir, Dir: dir})
	if s.Synced() != "" {
		t.Fatalf("synced = %s after switching repositories", s.Synced())
	}
	if rev, err := s.Sync(ctx); err != nil || rev.Commit != cb {
		t.Fatalf("sync = %+v, %v", rev, err)
	}
}
