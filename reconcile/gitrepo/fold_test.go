package gitrepo

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/gitremote"
)

// httpsRemote is a bare repository served by a real Git server process
// (git http-backend, one per request) over https with a token.
type httpsRemote struct {
	repo               *gitremote.Repo
	srv                *gitremote.HTTPS
	url, token, caFile string
}

func startHTTPSRemote(t *testing.T) httpsRemote {
	t.Helper()
	r := gitremote.NewBare(t)
	srv := gitremote.StartHTTPS(t, filepath.Dir(r.Dir), "tok-fold")
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("tok-fold\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return httpsRemote{repo: r, srv: srv, url: srv.RepoURL(t, r.Dir), token: token, caFile: srv.CAFile}
}

// writeAndPush commits change i and pushes it, then runs the writer's
// maintenance as Run does after a push, pushing a fold when it made one.
func writeAndPush(t *testing.T, w *StatusWriter, i int) (folded bool) {
	t.Helper()
	ctx := testCtx(t)
	if _, err := w.Write(ctx, statusFiles("gw1", i), Message{Subject: fmt.Sprintf("status(gw1): change %d", i)}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("push change %d: %v", i, err)
	}
	return w.maintain(ctx)
}

// A status branch past its bound is folded: the remote keeps the last N
// commits on top of one parentless commit that says what it replaces, the
// head stays signed by the node, readers see the same head status, and the
// server's gc deletes what was folded away. All through a real Git server.
func TestStatusHistoryBounded(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rem := startHTTPSRemote(t)
	r := rem.repo
	key, pub := gitremote.SSHSigningKey(t, t.TempDir(), "gw1")
	w, err := NewStatusWriter(ctx, StatusOptions{Node: "gw1", URL: rem.url, TokenFile: rem.token, CAFile: rem.caFile,
		Dir: filepath.Join(t.TempDir(), "status.git"), SigningKeyFile: key, HistoryCommits: 4, HistoryAge: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	const branch = "gitgw/status/gw1"
	var originals []string
	folds := 0
	for i := 1; i <= 13; i++ {
		if writeAndPush(t, w, i) {
			folds++
		}
		if i == 1 {
			originals = append(originals, r.Head(t, branch))
		}
		if n := len(r.Log(t, branch)); n > 4+2+1 {
			t.Fatalf("after change %d the branch has %d commits, bound 4 (+2 slack, +1 fold)", i, n)
		}
	}
	if folds < 2 {
		t.Fatalf("%d folds in 13 changes with a bound of 4", folds)
	}
	log := r.Log(t, branch)
	fold := log[0]
	if parents, _ := gitremote.Git(r.Dir, "rev-list", "--parents", "-n1", fold.Hash); strings.Contains(parents, " ") {
		t.Fatalf("fold commit %s has parents: %s", fold.Hash, parents)
	}
	tr := CommitTrailers(fold.Message)
	kept := len(log) - 1
	if want := fmt.Sprint(13 - kept); tr.Get(TrailerFoldCount) != want || !strings.HasPrefix(fold.Subject, "fold(gw1): "+want+" status commits from ") {
		t.Fatalf("fold commit %q %v, want %s commits folded", fold.Subject, tr, want)
	}
	if tr.Get(TrailerFoldFirst) != originals[0] {
		t.Fatalf("fold's first commit = %s, want the branch's first %s", tr.Get(TrailerFoldFirst), originals[0])
	}
	if want := []string{"status(gw1): change 12", "status(gw1): change 13"}; strings.Join(subjects(log[len(log)-2:]), "|") != strings.Join(want, "|") {
		t.Fatalf("kept commits %v", subjects(log))
	}
	// The fold's tree is the state of the newest commit it folds.
	if got, want := r.Show(t, fold.Hash, "status.json"), string(statusFiles("gw1", 13-kept)["status.json"]); got != want {
		t.Fatalf("fold tree status.json = %q, want %q", got, want)
	}
	head := headOf(t, r.Dir, "gw1")
	if _, err := head.VerifySignedBy(pub); err != nil {
		t.Fatalf("head after folding: %v", err)
	}
	gitVerify(t, r.Dir, fold.Hash, pub)
	gitVerify(t, r.Dir, head.Commit, pub)
	fsck(t, r)
	got, err := ReadStatusBranches(ctx, ReadOptions{URL: rem.url, TokenFile: rem.token, CAFile: rem.caFile})
	if err != nil || len(got) != 1 || got[0].Subject != "status(gw1): change 13" ||
		string(got[0].Files["status.json"]) != string(statusFiles("gw1", 13)["status.json"]) {
		t.Fatalf("fleet read after folding = %+v, %v", got, err)
	}

	// What was folded away is unreferenced, and the server's gc deletes it.
	unreachable := r.Unreachable(t)
	if len(unreachable) == 0 {
		t.Fatal("no unreachable objects after folding: the old history is still referenced")
	}
	before := r.Size(t)
	r.GC(t)
	if u := r.Unreachable(t); len(u) != 0 {
		t.Fatalf("after gc --prune=now, %d objects still unreachable", len(u))
	}
	t.Logf("server repository: %d bytes before gc, %d after (%d unreachable objects pruned)", before, r.Size(t), len(unreachable))
	if _, err := gitremote.Git(r.Dir, "cat-file", "-e", originals[0]); err == nil {
		t.Fatalf("the first commit %s is still on the server after gc", originals[0])
	}
}

// A fold is force-pushed over what the node last pushed, never over a
// commit it did not see: the push fails as diverged and keeps the remote.
func TestStatusFoldLease(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rem := startHTTPSRemote(t)
	r := rem.repo
	w, err := NewStatusWriter(ctx, StatusOptions{Node: "gw1", URL: rem.url, TokenFile: rem.token, CAFile: rem.caFile,
		Dir: filepath.Join(t.TempDir(), "status.git"), HistoryCommits: 2, HistoryAge: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := 1; i <= 4; i++ {
		if _, err := w.Write(ctx, statusFiles("gw1", i), Message{Subject: fmt.Sprintf("change %d", i)}); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Someone else pushes to the node's branch before the fold is pushed.
	foreign := r.Commit(t, "gitgw/status/gw1", map[string]string{"status.json": "{}\n"}, "not from gw1")
	if w.maintain(ctx) {
		t.Fatal("folded over a commit gw1 never saw")
	}
	if st := w.State(); !st.Diverged || !errors.Is(st.LastError, ErrDiverged) {
		t.Fatalf("state after a refused lease = %+v, want diverged", st)
	}
	if h := r.Head(t, "gitgw/status/gw1"); h != foreign {
		t.Fatalf("remote head %s, want the foreign commit %s kept", h, foreign)
	}
	if n := len(r.Log(t, "gitgw/status/gw1")); n != 5 {
		t.Fatalf("remote branch has %d commits, want gw1's 4 and the foreign one", n)
	}
}

// A server that refuses to rewrite the branch (branch protection; here
// receive.denyNonFastForwards) turns folding off, loudly; status keeps
// flowing and no commit is lost.
func TestStatusFoldRefused(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rem := startHTTPSRemote(t)
	r := rem.repo
	if _, err := gitremote.Git(r.Dir, "config", "receive.denyNonFastForwards", "true"); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	var mu sync.Mutex
	w, err := NewStatusWriter(ctx, StatusOptions{Node: "gw1", URL: rem.url, TokenFile: rem.token, CAFile: rem.caFile,
		Dir: filepath.Join(t.TempDir(), "status.git"), HistoryCommits: 2, HistoryAge: -1,
		Logger: slog.New(slog.NewTextHandler(lockedBuilder{&mu, &logs}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := 1; i <= 8; i++ {
		if writeAndPush(t, w, i) {
			t.Fatalf("folded after change %d although the server refuses rewrites", i)
		}
	}
	if n := len(r.Log(t, "gitgw/status/gw1")); n != 8 {
		t.Fatalf("remote branch has %d commits, want all 8", n)
	}
	if st := w.State(); st.LastError != nil || st.Pushed != st.Head {
		t.Fatalf("state = %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if c := strings.Count(logs.String(), "refuses to rewrite"); c != 1 {
		t.Fatalf("the refusal is logged %d times, want once:\n%s", c, logs.String())
	}
}

type lockedBuilder struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (l lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// A quiet node's history is bounded by age: commits older than the bound
// are folded once the oldest is a tenth past it.
func TestStatusHistoryAge(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rem := startHTTPSRemote(t)
	w, err := NewStatusWriter(ctx, StatusOptions{Node: "gw1", URL: rem.url, TokenFile: rem.token, CAFile: rem.caFile,
		Dir: filepath.Join(t.TempDir(), "status.git"), HistoryCommits: 100, HistoryAge: 10 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := 1; i <= 3; i++ {
		writeAndPush(t, w, i)
	}
	if n := len(rem.repo.Log(t, "gitgw/status/gw1")); n != 3 {
		t.Fatalf("%d commits before they age, want 3", n)
	}
	w.now = func() time.Time { return time.Now().Add(10*time.Hour + 59*time.Minute) }
	if w.maintain(ctx) {
		t.Fatal("folded before the oldest commit was a tenth past the age bound")
	}
	w.now = func() time.Time { return time.Now().Add(11*time.Hour + time.Minute) }
	if !w.maintain(ctx) {
		t.Fatal("commits 11 hours old with a bound of 10 hours not folded")
	}
	log := rem.repo.Log(t, "gitgw/status/gw1")
	// Everything is past the age: the head alone is kept, on the fold.
	if len(log) != 2 || CommitTrailers(log[0].Message).Get(TrailerFoldCount) != "2" || log[1].Subject != "status(gw1): change 3" {
		t.Fatalf("after the age fold: %v", subjects(log))
	}
}
