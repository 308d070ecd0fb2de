package gitrepo

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/test/gitremote"
)

// TestReadStatusBranchesCorruptCache: a fleet read's cache that a crash or
// a full disk left damaged still reads. A cache whose objects cannot be
// read (a pack cut short, an index overwritten) or that is no repository
// at all is moved aside to CacheDir.corrupt, said so in the log, and the
// read done again into a new cache; the temporary files of a read killed
// while it wrote are removed; a ref file left in the cache by an older
// gitgw (it kept refs there) is ignored.
func TestReadStatusBranchesCorruptCache(t *testing.T) {
	t.Parallel()
	packFile := func(t *testing.T, dir, ext string) string {
		t.Helper()
		m, _ := filepath.Glob(filepath.Join(dir, "objects", "pack", "*."+ext))
		if len(m) != 1 {
			t.Fatalf("cache holds %d .%s files, want 1", len(m), ext)
		}
		return m[0]
	}
	for _, c := range []struct {
		name    string
		corrupt func(t *testing.T, dir string)
		aside   bool
	}{
		{"pack cut short", func(t *testing.T, dir string) {
			p := packFile(t, dir, "pack")
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(p, st.Size()/2); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"index overwritten", func(t *testing.T, dir string) {
			if err := os.WriteFile(packFile(t, dir, "idx"), bytes.Repeat([]byte("x"), 1100), 0o644); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"not a repository", func(t *testing.T, dir string) {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dir, []byte("not a repository\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"a read killed while it wrote", func(t *testing.T, dir string) {
			for _, name := range []string{"tmp_pack_1", "tmp_idx_1"} {
				if err := os.WriteFile(filepath.Join(dir, "objects", "pack", name), []byte("PACK"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}, false},
		{"older ref file empty", func(t *testing.T, dir string) {
			ref := filepath.Join(dir, "refs", "heads", "gitgw", "status", "gw1")
			if err := os.MkdirAll(filepath.Dir(ref), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(ref, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			rem := startHTTPSRemote(t)
			w := startWriter(t, StatusOptions{Node: "gw1", URL: rem.repo.Dir})
			if _, err := w.Write(ctx, statusFiles("gw1", 1), Message{Subject: "status(gw1): one"}); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			opts := ReadOptions{URL: rem.url, TokenFile: rem.token, CAFile: rem.caFile, CacheDir: filepath.Join(t.TempDir(), "fleet.git"),
				Logger: slog.New(slog.NewTextHandler(&log, nil))}
			read := func() {
				t.Helper()
				bs, err := ReadStatusBranches(ctx, opts)
				if err != nil {
					t.Fatalf("ReadStatusBranches: %v", err)
				}
				if len(bs) != 1 || bs[0].Node != "gw1" || !strings.Contains(string(bs[0].Files["status.json"]), `"seq": 1`) {
					t.Fatalf("read %+v", bs)
				}
			}
			read()
			c.corrupt(t, opts.CacheDir)
			read()
			_, err := os.Stat(opts.CacheDir + ".corrupt")
			moved := strings.Contains(log.String(), "fleet cache unreadable; moved aside")
			if c.aside != (err == nil) || c.aside != moved {
				t.Fatalf("moved aside: %v (%v), want %v; log:\n%s", moved, err, c.aside, log.String())
			}
			if tmps, _ := filepath.Glob(filepath.Join(opts.CacheDir, "objects", "pack", "tmp_*")); len(tmps) != 0 {
				t.Errorf("temporary files left: %q", tmps)
			}
			// The new cache reads without another move.
			log.Reset()
			read()
			if log.Len() != 0 {
				t.Errorf("a read of the new cache logged:\n%s", log.String())
			}
		})
	}
}

// TestReadStatusBranchesCacheBound: each read that finds a head moved adds
// a pack to the cache (with its index, both as git reads them); past
// MaxCachePacks packs the cache starts over: the read leaves one pack, and
// says so.
func TestReadStatusBranchesCacheBound(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rem := startHTTPSRemote(t)
	w := startWriter(t, StatusOptions{Node: "gw1", URL: rem.repo.Dir})
	if _, err := w.Write(ctx, statusFiles("gw1", 1), Message{Subject: "status(gw1): one"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	opts := ReadOptions{URL: rem.url, TokenFile: rem.token, CAFile: rem.caFile, CacheDir: filepath.Join(t.TempDir(), "fleet.git"),
		Logger: slog.New(slog.NewTextHandler(&log, nil))}
	// Each read that finds a head moved adds a pack of its objects.
	branch := "refs/heads/" + w.Branch()
	for i := 0; i <= MaxCachePacks; i++ {
		if i > 0 {
			tree, err := gitremote.Git(rem.repo.Dir, "rev-parse", branch+"^{tree}")
			if err != nil {
				t.Fatal(err)
			}
			c, err := gitremote.Git(rem.repo.Dir, "commit-tree", "-p", branch, "-m", fmt.Sprintf("status(gw1): %d", i), tree)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := gitremote.Git(rem.repo.Dir, "update-ref", branch, c); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := ReadStatusBranches(ctx, opts); err != nil {
			t.Fatal(err)
		}
		if n := cachePacks(opts.CacheDir); n != i+1 {
			t.Fatalf("%d packs after %d reads, want one a read", n, i+1)
		}
	}
	if log.Len() != 0 {
		t.Fatalf("reads up to the bound logged:\n%s", log.String())
	}
	// Git reads what the reads wrote: each pack matches its index.
	idxs, _ := filepath.Glob(filepath.Join(opts.CacheDir, "objects", "pack", "*.idx"))
	if len(idxs) != MaxCachePacks+1 {
		t.Fatalf("%d indexes for %d packs", len(idxs), MaxCachePacks+1)
	}
	for _, idx := range idxs {
		if out, err := gitremote.Git(opts.CacheDir, "verify-pack", idx); err != nil {
			t.Fatalf("git verify-pack %s: %v\n%s", idx, err, out)
		}
	}
	// Once more: past the bound.
	if _, err := gitremote.Git(rem.repo.Dir, "update-ref", branch, branch+"~1"); err != nil {
		t.Fatal(err)
	}
	bs, err := ReadStatusBranches(ctx, opts)
	if err != nil || len(bs) != 1 {
		t.Fatalf("read %d branches: %v", len(bs), err)
	}
	if n := cachePacks(opts.CacheDir); n != 1 || !strings.Contains(log.String(), "fleet cache full; starting it over") {
		t.Fatalf("%d packs after a read of a full cache, want 1; log:\n%s", n, log.String())
	}
}
