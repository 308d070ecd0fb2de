package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/gitremote"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startWriter opens a status writer and runs its pusher until the test ends.
func startWriter(t testing.TB, opts StatusOptions) *StatusWriter {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = filepath.Join(t.TempDir(), "status.git")
	}
	if opts.RetryMin == 0 {
		opts.RetryMin = 20 * time.Millisecond
		opts.RetryMax = 500 * time.Millisecond
	}
	w, err := NewStatusWriter(testCtx(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; _ = w.Close() })
	return w
}

func statusFiles(node string, seq int) map[string][]byte {
	return map[string][]byte{
		"status.json": fmt.Appendf(nil, "{\n  \"node\": %q,\n  \"seq\": %d\n}\n", node, seq),
		"STATUS.md":   fmt.Appendf(nil, "# %s\n\nchange %d\n", node, seq),
	}
}

// fsck checks that the remote holds every object its refs need.
func fsck(t testing.TB, r *gitremote.Repo) {
	t.Helper()
	if out, err := gitremote.Git(r.Dir, "fsck", "--connectivity-only", "--no-dangling"); err != nil {
		t.Fatalf("remote repository broken: %v\n%s", err, out)
	}
}

func subjects(log []gitremote.LogEntry) []string {
	var s []string
	for _, e := range log {
		s = append(s, e.Subject)
	}
	return s
}

func TestStatusWriterCommitsOnlyChanges(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	r := gitremote.NewBare(t)
	w := startWriter(t, StatusOptions{Node: "gw1", URL: r.Dir})
	if w.Branch() != "gitgw/status/gw1" {
		t.Fatalf("branch = %s", w.Branch())
	}
	msg := Message{Subject: "apply(gw1): 3a9c1e2, 4 changes", Desired: "3a9c1e2", Applied: "3a9c1e2", Drift: "none"}
	for i, want := range []bool{true, false, false} {
		got, err := w.Write(ctx, statusFiles("gw1", 1), msg)
		if err != nil || got != want {
			t.Fatalf("write %d: committed = %v, %v; want %v", i, got, err, want)
		}
	}
	waitFor(t, time.Minute, "the commit on the remote", func() bool { return len(r.Log(t, "gitgw/status/gw1")) == 1 })
	log := r.Log(t, "gitgw/status/gw1")
	want := "apply(gw1): 3a9c1e2, 4 changes\n\nGitgw-Node: gw1\nGitgw-Desired: 3a9c1e2\nGitgw-Applied: 3a9c1e2\nGitgw-Drift: none\n"
	if log[0].Message != want {
		t.Fatalf("message = %q, want %q", log[0].Message, want)
	}
	if got := r.Show(t, "gitgw/status/gw1", "status.json"); got != string(statusFiles("gw1", 1)["status.json"]) {
		t.Fatalf("status.json = %q", got)
	}
	// The remote holds the commit a moment before the writer has heard
	// back from its push and recorded it.
	waitFor(t, time.Minute, "the writer's record of its push", func() bool { return w.State().Pushed != "" })
	st := w.State()
	if st.Head != log[0].Hash || st.Pushed != st.Head || st.LastError != nil || st.Diverged {
		t.Fatalf("state = %+v", st)
	}
	// The tracked branch is untouched: the writer pushes its own branch only.
	if b := r.Branches(t, ""); len(b) != 1 {
		t.Fatalf("branches = %v", b)
	}
}

func TestStatusWriterFiftyNodes(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	r := gitremote.NewBare(t)
	r.Commit(t, "main", map[string]string{"site.cue": "a: 1\n"}, "site")
	const nodes, changes = 50, 20
	var wg sync.WaitGroup
	errs := make(chan error, nodes)
	for n := 0; n < nodes; n++ {
		node := fmt.Sprintf("gw%02d", n)
		w := startWriter(t, StatusOptions{Node: node, URL: r.FileURL()})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= changes; i++ {
				ok, err := w.Write(ctx, statusFiles(node, i), Message{Subject: fmt.Sprintf("apply(%s): change %d", node, i)})
				if err != nil || !ok {
					errs <- fmt.Errorf("%s change %d: committed %v, %v", node, i, ok, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitFor(t, 2*time.Minute, "every status commit on the remote", func() bool {
		got, err := ReadStatusBranches(ctx, ReadOptions{URL: r.Dir, Files: []string{"status.json"}})
		if err != nil || len(got) != nodes {
			return false
		}
		for _, b := range got {
			if !strings.Contains(string(b.Files["status.json"]), fmt.Sprintf("\"seq\": %d", changes)) {
				return false
			}
		}
		return true
	})
	fsck(t, r)
	for n := 0; n < nodes; n++ {
		node := fmt.Sprintf("gw%02d", n)
		s := subjects(r.Log(t, "gitgw/status/"+node))
		if len(s) != changes {
			t.Fatalf("%s: %d commits on the remote, want %d: %v", node, len(s), changes, s)
		}
		for i, subj := range s {
			if want := fmt.Sprintf("apply(%s): change %d", node, i+1); subj != want {
				t.Fatalf("%s commit %d = %q, want %q", node, i, subj, want)
			}
		}
	}
}

// checkAllArrive writes 30 changes while the remote is down, brings it back
// and checks that all 30 reach it, in order.
func checkAllArrive(t *testing.T, r *gitremote.Repo, w *StatusWriter, down, up func()) {
	ctx := testCtx(t)
	write := func(i int) {
		t.Helper()
		if ok, err := w.Write(ctx, statusFiles("gw1", i), Message{Subject: fmt.Sprintf("drift(gw1): change %d", i)}); err != nil || !ok {
			t.Fatalf("write %d: %v, %v", i, ok, err)
		}
	}
	write(0)
	waitFor(t, time.Minute, "the first commit pushed", func() bool { return len(r.Log(t, "gitgw/status/gw1")) == 1 })
	down()
	for i := 1; i <= 30; i++ {
		write(i)
	}
	waitFor(t, time.Minute, "a push failure", func() bool { return w.State().LastError != nil })
	if n := len(r.Log(t, "gitgw/status/gw1")); n > 1 { // 0 when renamed away
		t.Fatalf("%d commits on a remote that is down", n)
	}
	up()
	waitFor(t, 2*time.Minute, "all 31 commits on the remote", func() bool { return len(r.Log(t, "gitgw/status/gw1")) == 31 })
	for i, s := range subjects(r.Log(t, "gitgw/status/gw1")) {
		if want := fmt.Sprintf("drift(gw1): change %d", i); s != want {
			t.Fatalf("commit %d = %q, want %q", i, s, want)
		}
	}
	fsck(t, r)
	waitFor(t, time.Minute, "a clean push state", func() bool {
		st := w.State()
		return st.LastError == nil && st.Pushed == st.Head
	})
}

// pushLog records what OnPush is told.
type pushLog struct {
	mu       sync.Mutex
	ok, fail int
	last     error
}

func (p *pushLog) observe(_ time.Time, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last = err
	if err != nil {
		p.fail++
	} else {
		p.ok++
	}
}

func (p *pushLog) get() (ok, fail int, last error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ok, p.fail, p.last
}

func TestStatusWriterRemoteGoneAndBack(t *testing.T) {
	t.Parallel()
	r := gitremote.NewBare(t)
	var pushes pushLog
	w := startWriter(t, StatusOptions{Node: "gw1", URL: r.Dir, OnPush: pushes.observe})
	// OnPush hears of the failures while the remote is away, and of the
	// success that ends them (what the agent's status and metrics show).
	defer func() {
		// The state is clean before OnPush is called: wait for the call.
		waitFor(t, time.Minute, "OnPush told of the last push", func() bool { ok, _, last := pushes.get(); return ok >= 2 && last == nil })
		if ok, fail, last := pushes.get(); fail == 0 {
			t.Errorf("OnPush: %d pushes, %d failures, last error %v; want successes before and after failures, the last one a success", ok, fail, last)
		}
	}()
	away := r.Dir + ".away"
	checkAllArrive(t, r, w,
		func() {
			if err := os.Rename(r.Dir, away); err != nil {
				t.Fatal(err)
			}
		},
		func() {
			if err := os.Rename(away, r.Dir); err != nil {
				t.Fatal(err)
			}
		})
}

func TestStatusWriterSSHStopped(t *testing.T) {
	t.Parallel()
	r := gitremote.NewBare(t)
	sshd := gitremote.StartSSHD(t)
	w := startWriter(t, StatusOptions{
		Node: "gw1", URL: sshd.URL(r.Dir),
		SSHKeyFile: sshd.ClientKey, KnownHostsFile: sshd.KnownHosts,
	})
	checkAllArrive(t, r, w, func() { sshd.Stop(t) }, func() { sshd.Start(t) })
}

func TestStatusWriterSurvivesRestart(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	r := gitremote.NewBare(t)
	away := r.Dir + ".away"
	if err := os.Rename(r.Dir, away); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "status.git")
	// Committed while the remote is unreachable, then the agent stops.
	w1, err := NewStatusWriter(ctx, StatusOptions{Node: "gw1", URL: r.Dir, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if _, err := w1.Write(ctx, statusFiles("gw1", i), Message{Subject: fmt.Sprintf("change %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(away, r.Dir); err != nil {
		t.Fatal(err)
	}
	// The next run pushes them.
	startWriter(t, StatusOptions{Node: "gw1", URL: r.Dir, Dir: dir})
	waitFor(t, time.Minute, "commits of the previous run", func() bool { return len(r.Log(t, "gitgw/status/gw1")) == 3 })
}

func TestStatusWriterLostStateContinuesHistory(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	r := gitremote.NewBare(t)
	w1 := startWriter(t, StatusOptions{Node: "gw1", URL: r.Dir})
	for i := 1; i <= 2; i++ {
		if _, err := w1.Write(ctx, statusFiles("gw1", i), Message{Subject: fmt.Sprintf("change %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, time.Minute, "2 commits", func() bool { return len(r.Log(t, "gitgw/status/gw1")) == 2 })
	_ = w1.Close()
	// A new state dir (the old one was lost): the history continues.
	w2 := startWriter(t, StatusOptions{Node: "gw1", URL: r.Dir})
	if _, err := w2.Write(ctx, statusFiles("gw1", 3), Message{Subject: "change 3"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "3 commits", func() bool { return len(r.Log(t, "gitgw/status/gw1")) == 3 })
	if s := subjects(r.Log(t, "gitgw/status/gw1")); s[2] != "change 3" {
		t.Fatalf("log = %v", s)
	}
	if st := w2.State(); st.Diverged || st.LastError != nil {
		t.Fatalf("state = %+v", st)
	}
}

func TestStatusWriterDuplicateNodeIsLoud(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	r := gitremote.NewBare(t)
	a := startWriter(t, StatusOptions{Node: "gw1", URL: r.Dir})
	b := startWriter(t, StatusOptions{Node: "gw1", URL: r.Dir})
	if _, err := a.Write(ctx, statusFiles("a", 1), Message{Subject: "a 1"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "a's commit", func() bool { return len(r.Log(t, "gitgw/status/gw1")) == 1 })
	if _, err := b.Write(ctx, statusFiles("b", 1), Message{Subject: "b 1"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "b's commit", func() bool { return len(r.Log(t, "gitgw/status/gw1")) == 2 })
	// Both keep reporting: one of them must now be refused, loudly.
	for i := 2; i <= 3; i++ {
		_, _ = a.Write(ctx, statusFiles("a", i), Message{Subject: fmt.Sprintf("a %d", i)})
		_, _ = b.Write(ctx, statusFiles("b", i), Message{Subject: fmt.Sprintf("b %d", i)})
	}
	var loser *StatusWriter
	waitFor(t, time.Minute, "a diverged writer", func() bool {
		for _, w := range []*StatusWriter{a, b} {
			if w.State().Diverged {
				loser = w
				return true
			}
		}
		return false
	})
	st := loser.State()
	var d *DivergedError
	if !errors.As(st.LastError, &d) || !errors.Is(st.LastError, ErrDiverged) {
		t.Fatalf("last error = %v, want *DivergedError", st.LastError)
	}
	if d.Node != "gw1" || d.Branch != "gitgw/status/gw1" || !strings.Contains(d.Error(), "same name") {
		t.Fatalf("diverged error = %+v: %v", d, d)
	}
	// Writes still commit locally, and say so.
	_, err := loser.Write(ctx, statusFiles("loser", 9), Message{Subject: "after"})
	if !errors.Is(err, ErrDiverged) {
		t.Fatalf("write on a diverged branch: err = %v", err)
	}
	// Never forced: every commit on the remote descends from the first.
	log := r.Log(t, "gitgw/status/gw1")
	if log[0].Subject != "a 1" {
		t.Fatalf("remote history rewritten: %v", subjects(log))
	}
}

func TestStatusWriterCoalesces(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	r := gitremote.NewBare(t)
	// A window far longer than the test: Flush ends it, deterministically.
	w := startWriter(t, StatusOptions{Node: "gw1", URL: r.Dir, Coalesce: time.Hour})
	ok, err := w.Write(ctx, statusFiles("gw1", 0), Message{Subject: "failover(gw1): VI_1 BACKUP -> MASTER"})
	if err != nil || !ok {
		t.Fatalf("first write: %v, %v (the first change is committed at once)", ok, err)
	}
	for i := 1; i <= 5; i++ {
		subject := "failover(gw1): VI_1 MASTER -> BACKUP"
		if i%2 == 0 {
			subject = "failover(gw1): VI_1 BACKUP -> MASTER"
		}
		ok, err := w.Write(ctx, statusFiles("gw1", i), Message{Subject: subject})
		if err != nil || ok {
			t.Fatalf("write %d inside the window: %v, %v", i, ok, err)
		}
	}
	if !w.Pending() {
		t.Fatal("nothing pending inside the window")
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	log := r.Log(t, "gitgw/status/gw1")
	if len(log) != 2 {
		t.Fatalf("%d commits, want 2: %v", len(log), subjects(log))
	}
	if log[1].Subject != "failover(gw1): VI_1 MASTER -> BACKUP (+4 more)" || !strings.Contains(log[1].Message, "5 changes in this commit") {
		t.Fatalf("coalesced commit: %q", log[1].Message)
	}
	if got := r.Show(t, "gitgw/status/gw1", "status.json"); !strings.Contains(got, "\"seq\": 5") {
		t.Fatalf("coalesced content = %q", got)
	}
	// A flap back to the committed state inside the window: no commit.
	for _, seq := range []int{6, 5} {
		if _, err := w.Write(ctx, statusFiles("gw1", seq), Message{Subject: "flap"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if w.Pending() {
		t.Fatal("still pending after Flush")
	}
	if n := len(r.Log(t, "gitgw/status/gw1")); n != 2 {
		t.Fatalf("%d commits after a flap back, want 2", n)
	}
}

func TestStatusWriterCoalesceWindowEnds(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	r := gitremote.NewBare(t)
	w := startWriter(t, StatusOptions{Node: "gw1", URL: r.Dir, Coalesce: 100 * time.Millisecond})
	for i := 0; i <= 3; i++ {
		if _, err := w.Write(ctx, statusFiles("gw1", i), Message{Subject: fmt.Sprintf("change %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	// However the writes fell into windows, the last one ends up on the
	// remote once its window has passed, without a Flush.
	waitFor(t, time.Minute, "the last change on the remote", func() bool {
		return !w.Pending() && r.Head(t, "gitgw/status/gw1") != "" &&
			strings.Contains(r.Show(t, "gitgw/status/gw1", "status.json"), "\"seq\": 3")
	})
}

func TestReadStatusBranches(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	r := gitremote.NewBare(t)
	r.Commit(t, "main", map[string]string{"site.cue": "a: 1\n"}, "site")
	for _, node := range []string{"gw2", "gw1"} {
		w := startWriter(t, StatusOptions{Node: node, URL: r.Dir})
		msg := Message{Subject: "apply(" + node + "): abc, 1 change", Applied: "abc", Drift: "2 open"}
		if _, err := w.Write(ctx, statusFiles(node, 7), msg); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	check := func(t *testing.T, got []BranchStatus, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Node != "gw1" || got[1].Node != "gw2" {
			t.Fatalf("branches = %+v", got)
		}
		b := got[0]
		if b.Branch != "gitgw/status/gw1" || b.Commit != r.Head(t, "gitgw/status/gw1") ||
			b.Subject != "apply(gw1): abc, 1 change" || b.Trailers.Get(TrailerDrift) != "2 open" ||
			b.Trailers.Get(TrailerNode) != "gw1" || time.Since(b.Time) > time.Hour {
			t.Fatalf("gw1 = %+v", b)
		}
		if string(b.Files["status.json"]) != string(statusFiles("gw1", 7)["status.json"]) {
			t.Fatalf("gw1 status.json = %q", b.Files["status.json"])
		}
	}
	t.Run("local", func(t *testing.T) {
		got, err := ReadStatusBranches(ctx, ReadOptions{URL: r.Dir})
		check(t, got, err)
		if len(got[0].Files) != 2 {
			t.Fatalf("files = %v", got[0].Files)
		}
	})
	t.Run("ssh", func(t *testing.T) {
		sshd := gitremote.StartSSHD(t)
		opts := ReadOptions{URL: sshd.URL(r.Dir), SSHKeyFile: sshd.ClientKey, KnownHostsFile: sshd.KnownHosts, Files: []string{"status.json"}}
		got, err := ReadStatusBranches(ctx, opts)
		check(t, got, err)
		if len(got[0].Files) != 1 {
			t.Fatalf("files = %v", got[0].Files)
		}
		opts.CacheDir = filepath.Join(t.TempDir(), "fleet.git")
		for i := 0; i < 2; i++ {
			got, err := ReadStatusBranches(ctx, opts)
			check(t, got, err)
		}
	})
	t.Run("none", func(t *testing.T) {
		empty := gitremote.NewBare(t)
		got, err := ReadStatusBranches(ctx, ReadOptions{URL: empty.Dir})
		if err != nil || len(got) != 0 {
			t.Fatalf("empty repository: %v, %v", got, err)
		}
	})
}

func TestStatusWriterHTTPS(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	r := gitremote.NewBare(t)
	srv := gitremote.StartHTTPS(t, filepath.Dir(r.Dir), "tok-456")
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("tok-456\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url := srv.RepoURL(t, r.Dir)
	w := startWriter(t, StatusOptions{Node: "gw1", URL: url, TokenFile: token, CAFile: srv.CAFile})
	for i := 1; i <= 3; i++ {
		if _, err := w.Write(ctx, statusFiles("gw1", i), Message{Subject: fmt.Sprintf("change %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, time.Minute, "3 commits over https", func() bool { return len(r.Log(t, "gitgw/status/gw1")) == 3 })
	got, err := ReadStatusBranches(ctx, ReadOptions{URL: url, TokenFile: token, CAFile: srv.CAFile})
	if err != nil || len(got) != 1 || got[0].Subject != "change 3" {
		t.Fatalf("read over https = %+v, %v", got, err)
	}
}
