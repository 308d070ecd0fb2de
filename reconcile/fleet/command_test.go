package fleet

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/reconcile/gitrepo"
	"github.com/gitgw/gitgw/test/gitremote"
)

// TestCommandRun: a repository without status branches says so, and for a
// clone how to fetch them; with one branch, the text view lists the node;
// a page that would re-read more than once a second is refused.
func TestCommandRun(t *testing.T) {
	gitremote.RequireGit(t)
	r := gitremote.NewBare(t)
	r.Commit(t, "main", map[string]string{"README": "site\n"}, "site")
	ctx := context.Background()
	var out bytes.Buffer
	c := &Command{Read: Options{URL: r.Dir, Prefix: gitrepo.DefaultStatusPrefix, Ref: "main"}, Clone: r.Dir, Stdout: &out}
	if err := c.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if want := "No status branches (" + gitrepo.DefaultStatusPrefix + "*) in " + r.Dir + ".\nIn a clone, fetch them as branches first:\n  git -C " + r.Dir; !strings.HasPrefix(out.String(), want) {
		t.Fatalf("printed %q, want it to start with %q", out.String(), want)
	}
	r.Commit(t, gitrepo.DefaultStatusPrefix+"gw1", map[string]string{"status.json": status(t, "gw1", "c1", "VI_1", 51, "lan", "MASTER")}, "status")
	out.Reset()
	if err := c.Run(ctx); err != nil || !strings.Contains(out.String(), "gw1") {
		t.Fatalf("one node: %v, printed %q", err, out.String())
	}
	out.Reset()
	c.JSON = true
	if err := c.Run(ctx); err != nil || !strings.Contains(out.String(), `"gw1"`) {
		t.Fatalf("--json: %v, printed %q", err, out.String())
	}
	c = &Command{Serve: "127.0.0.1:0", Refresh: 100e6, Logger: slog.New(slog.DiscardHandler), Stdout: &out}
	if err := c.Run(ctx); err == nil || !strings.Contains(err.Error(), "--refresh 100ms: give at least 1s") {
		t.Fatalf("a refresh below 1s: %v", err)
	}
}

// TestCommandCache: a run over a remote keeps the status objects in the
// default cache ($XDG_CACHE_HOME/gitgw/fleet-HASH.git), so that the next
// run fetches no pack; NoCache (--no-cache) keeps nothing on disk.
func TestCommandCache(t *testing.T) {
	gitremote.RequireGit(t)
	cacheHome := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cacheHome)
	r := gitremote.NewBare(t)
	r.Commit(t, "main", map[string]string{"README": "site\n"}, "site")
	r.Commit(t, gitrepo.DefaultStatusPrefix+"gw1", map[string]string{"status.json": status(t, "gw1", "c1", "VI_1", 51, "lan", "MASTER")}, "status")
	srv := gitremote.StartHTTPS(t, filepath.Dir(r.Dir), "tok")
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url := srv.RepoURL(t, r.Dir)
	packs := func() []string {
		m, _ := filepath.Glob(filepath.Join(cacheHome, "gitgw", "*", "objects", "pack", "*.pack"))
		return m
	}
	run := func(noCache bool) {
		t.Helper()
		var out bytes.Buffer
		c := &Command{Read: Options{URL: url, Prefix: gitrepo.DefaultStatusPrefix, Ref: "main", TokenFile: token, CAFile: srv.CAFile},
			NoCache: noCache, Stdout: &out}
		if err := c.Run(context.Background()); err != nil || !strings.Contains(out.String(), "gw1") {
			t.Fatalf("run (no cache %v): %v, printed %q", noCache, err, out.String())
		}
	}
	run(true)
	if m, _ := filepath.Glob(filepath.Join(cacheHome, "*")); len(m) != 0 {
		t.Fatalf("--no-cache left %q", m)
	}
	run(false)
	dir, err := DefaultCacheDir(url)
	if err != nil {
		t.Fatal(err)
	}
	first := packs()
	if len(first) != 1 || !strings.HasPrefix(first[0], dir+"/") || !strings.HasPrefix(dir, filepath.Join(cacheHome, "gitgw", "fleet-")) {
		t.Fatalf("cache packs %q, want one in %s", first, dir)
	}
	run(false)
	if again := packs(); len(again) != 1 || again[0] != first[0] {
		t.Fatalf("second run: packs %q, want only %q (nothing fetched)", again, first[0])
	}
	// The cache does not depend on the credentials in the URL.
	if d2, _ := DefaultCacheDir(strings.Replace(url, "https://", "https://user:secret@", 1)); d2 != dir {
		t.Errorf("cache dir with credentials in the URL: %s, want %s", d2, dir)
	}
}
