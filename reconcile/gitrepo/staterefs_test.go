package gitrepo

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/gitgw/gitgw/test/gitremote"
)

// corruptRef overwrites a loose ref the way a crash leaves it.
func corruptRef(t *testing.T, gitDir, name, how string) {
	t.Helper()
	path := filepath.Join(gitDir, filepath.FromSlash(name))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var content []byte
	if how == "truncated" {
		content = b[:20]
	}
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestStatusWriterCorruptRef: the status writer's branch ref left empty
// or truncated in the state dir is moved aside with an ERROR line; the
// writer starts, commits, and continues the remote's branch.
func TestStatusWriterCorruptRef(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"empty", "truncated"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			r := gitremote.NewBare(t)
			dir := filepath.Join(t.TempDir(), "status.git")
			w, err := NewStatusWriter(ctx, StatusOptions{Node: "gw1", URL: r.Dir, Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(ctx, statusFiles("gw1", 1), Message{Subject: "status(gw1): one"}); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			first := r.Head(t, "gitgw/status/gw1")
			corruptRef(t, dir, "refs/heads/gitgw/status/gw1", how)

			var log bytes.Buffer
			w2, err := NewStatusWriter(ctx, StatusOptions{Node: "gw1", URL: r.Dir, Dir: dir, Logger: slog.New(slog.NewTextHandler(&log, nil))})
			if err != nil {
				t.Fatalf("NewStatusWriter after a corrupt ref: %v", err)
			}
			defer w2.Close()
			if _, err := w2.Write(ctx, statusFiles("gw1", 2), Message{Subject: "status(gw1): two"}); err != nil {
				t.Fatalf("Write after a corrupt ref: %v", err)
			}
			if err := w2.Flush(ctx); err != nil {
				t.Fatalf("push after a corrupt ref: %v", err)
			}
			got := subjects(r.Log(t, "gitgw/status/gw1"))
			if !slices.Equal(got, []string{"status(gw1): one", "status(gw1): two"}) {
				t.Errorf("remote branch: %q; want the new commit on top of %.7s", got, first)
			}
			l := log.String()
			if !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "state file corrupt") || !strings.Contains(l, "gitgw/status/gw1") {
				t.Errorf("no ERROR line for the corrupt ref; log:\n%s", l)
			}
			if aside, _ := filepath.Glob(filepath.Join(dir, corruptRefsDir, "*.corrupt-*")); len(aside) != 1 {
				t.Errorf("refs moved aside: %v, want one", aside)
			}
		})
	}
}

// TestRepairRefs: an empty ref makes go-git fail every listing of refs
// (so every fetch), a truncated one names a commit that does not exist;
// RepairRefs moves both out of refs/ and leaves good refs alone.
func TestRepairRefs(t *testing.T) {
	t.Parallel()
	r := gitremote.NewBare(t)
	c := r.Commit(t, "main", map[string]string{"a": "1"}, "one")
	for _, name := range []string{"refs/gitgw/synced", "refs/remotes/origin/main", "refs/heads/keep"} {
		p := filepath.Join(r.Dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	corruptRef(t, r.Dir, "refs/gitgw/synced", "empty")
	corruptRef(t, r.Dir, "refs/remotes/origin/main", "truncated")
	repo, err := git.PlainOpen(r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Storer.IterReferences(); err == nil {
		t.Fatal("go-git lists refs past an empty one: this test no longer shows the trap")
	}
	var log bytes.Buffer
	moved, err := RepairRefs(r.Dir, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(moved)
	if want := []string{"refs/gitgw/synced", "refs/remotes/origin/main"}; !slices.Equal(moved, want) {
		t.Errorf("moved %q, want %q", moved, want)
	}
	if n := strings.Count(log.String(), "level=ERROR"); n != 2 {
		t.Errorf("%d ERROR lines, want 2:\n%s", n, log.String())
	}
	repo, err = git.PlainOpen(r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	it, err := repo.Storer.IterReferences()
	if err != nil {
		t.Fatalf("refs still unreadable after the repair: %v", err)
	}
	var names []string
	_ = it.ForEach(func(ref *plumbing.Reference) error { names = append(names, ref.Name().String()); return nil })
	if !slices.Contains(names, "refs/heads/keep") || !slices.Contains(names, "refs/heads/main") || slices.Contains(names, "refs/gitgw/synced") {
		t.Errorf("refs after the repair: %q", names)
	}
	// Nothing left to repair; a missing repository is fine.
	if moved, err := RepairRefs(r.Dir, nil); err != nil || len(moved) != 0 {
		t.Errorf("second repair: %q, %v", moved, err)
	}
	if _, err := RepairRefs(filepath.Join(t.TempDir(), "none.git"), nil); err != nil {
		t.Errorf("missing repository: %v", err)
	}
}

// TestReadStatusBranchesHeadsOnly: reading a remote's status branches into
// a cache fetches each branch's head (depth 1), not its history, writes no
// ref file into the cache (a file per ref was most of a read's time at
// 10,000 nodes), and the next read sees a branch that moved.
func TestReadStatusBranchesHeadsOnly(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rem := startHTTPSRemote(t)
	w := startWriter(t, StatusOptions{Node: "gw1", URL: rem.repo.Dir})
	for i := 1; i <= 3; i++ {
		if _, err := w.Write(ctx, statusFiles("gw1", i), Message{Subject: fmt.Sprintf("status(gw1): %d", i)}); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	log := rem.repo.Log(t, "gitgw/status/gw1")
	opts := ReadOptions{URL: rem.url, TokenFile: rem.token, CAFile: rem.caFile, CacheDir: filepath.Join(t.TempDir(), "peers.git")}
	read := func(seq int) {
		t.Helper()
		bs, err := ReadStatusBranches(ctx, opts)
		if err != nil {
			t.Fatalf("ReadStatusBranches: %v", err)
		}
		if len(bs) != 1 || !strings.Contains(string(bs[0].Files["status.json"]), fmt.Sprintf(`"seq": %d`, seq)) {
			t.Fatalf("read %+v, want seq %d", bs, seq)
		}
	}
	read(3)
	if len(log) != 3 {
		t.Fatalf("status branch has %d commits, want 3", len(log))
	}
	if _, err := gitremote.Git(opts.CacheDir, "cat-file", "-e", log[2].Hash); err != nil {
		t.Fatalf("the head is not in the cache: %v", err)
	}
	if _, err := gitremote.Git(opts.CacheDir, "cat-file", "-e", log[0].Hash); err == nil {
		t.Errorf("the branch's first commit %s was fetched into the cache: want the head only", log[0].Hash)
	}
	if refs, _ := gitremote.Git(opts.CacheDir, "for-each-ref"); strings.TrimSpace(refs) != "" {
		t.Errorf("refs written into the cache:\n%s", refs)
	}
	if _, err := w.Write(ctx, statusFiles("gw1", 4), Message{Subject: "status(gw1): 4"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	read(4)
}
