package gitrepo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/gitremote"
)

// looseObjects counts the loose object files of a repository.
func looseObjects(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	fans, _ := os.ReadDir(filepath.Join(dir, "objects"))
	for _, f := range fans {
		if len(f.Name()) != 2 {
			continue
		}
		files, _ := os.ReadDir(filepath.Join(dir, "objects", f.Name()))
		n += len(files)
	}
	return n
}

func TestStatusWriterRepacks(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	r := gitremote.NewBare(t)
	dir := filepath.Join(t.TempDir(), "status.git")
	w, err := NewStatusWriter(ctx, StatusOptions{Node: "gw1", URL: r.Dir, Dir: dir, RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w.repackAt = 5
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(runCtx); close(done) }()
	defer func() { cancel(); <-done }()
	for i := 1; i <= 12; i++ {
		if _, err := w.Write(ctx, statusFiles("gw1", i), Message{Subject: fmt.Sprintf("change %d", i)}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Minute, fmt.Sprintf("change %d pushed", i), func() bool { return len(r.Log(t, "gitgw/status/gw1")) == i })
	}
	// Ten commits were packed (two repacks); at most the last two
	// commits' objects are loose.
	waitFor(t, time.Minute, "a repack", func() bool { return looseObjects(t, dir) <= 2*4 })
	packs, _ := filepath.Glob(filepath.Join(dir, "objects", "pack", "*.pack"))
	if len(packs) != 1 {
		t.Fatalf("%d packs after repacking, want 1", len(packs))
	}
	fsck(t, r)
	if out, err := gitremote.Git(dir, "fsck", "--connectivity-only", "--no-dangling"); err != nil {
		t.Fatalf("local repository broken after repack: %v\n%s", err, out)
	}
}

func TestSourceRepacks(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	r := gitremote.NewBare(t)
	r.Commit(t, "main", map[string]string{"site.cue": "a: 0\n"}, "c0")
	s := openSource(t, Options{URL: r.Dir})
	s.repackAt = 3
	for i := 1; i <= 7; i++ {
		want := r.Commit(t, "main", map[string]string{"site.cue": fmt.Sprintf("a: %d\n", i)}, fmt.Sprintf("c%d", i))
		rev, err := s.Sync(ctx)
		if err != nil || rev.Commit != want {
			t.Fatalf("sync %d = %+v, %v", i, rev, err)
		}
	}
	packs, _ := filepath.Glob(filepath.Join(s.opts.Dir, "repo.git", "objects", "pack", "*.pack"))
	if len(packs) > 2 { // one repacked, at most one fetched since
		t.Fatalf("%d packs: not repacked", len(packs))
	}
	old, err := s.ReadTree(ctx, r.Log(t, "main")[1].Hash)
	if err != nil || string(old["site.cue"]) != "a: 1\n" {
		t.Fatalf("history after repack: %v, %v", old, err)
	}
}
