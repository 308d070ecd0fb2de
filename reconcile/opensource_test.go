package reconcile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/reconcile/gitrepo"
	"github.com/gitgw/gitgw/test/gitremote"
)

// TestOpenSourceHistory: past commits are checked out from the repository
// copy of a --repo source, and from a --site directory's own repository
// (opened on first use); Close removes the temporary copies.
func TestOpenSourceHistory(t *testing.T) {
	r := gitremote.NewBare(t)
	old := r.Commit(t, "main", map[string]string{"site.cue": "a: 1\n"}, "first")
	r.Commit(t, "main", map[string]string{"site.cue": "a: 2\n"}, "second")
	ctx := context.Background()
	for name, cfg := range map[string]SourceConfig{
		"repo": {Git: gitrepo.Options{URL: r.Dir, Ref: "main"}},
		"dir":  {Dir: r.Dir, Git: gitrepo.Options{Ref: "main"}},
	} {
		t.Run(name, func(t *testing.T) {
			o, err := OpenSource(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := o.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if (o.Repo != nil) != (name == "repo") {
				t.Errorf("Repo %v for a %s source", o.Repo, name)
			}
			rev, _, err := o.History.Checkout(ctx, old)
			if err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(filepath.Join(rev.Dir, "site.cue")); err != nil || string(b) != "a: 1\n" || rev.Commit != old {
				t.Fatalf("checkout of %s: %s %q %v", old, rev.Commit, b, err)
			}
			o.Close()
			if _, err := os.Stat(rev.Dir); !os.IsNotExist(err) {
				t.Errorf("checkout %s left after Close (%v)", rev.Dir, err)
			}
		})
	}
}

// TestSourceConfigCheck: a configuration naming no site, or two, or a
// file for a directory, is refused before anything is opened.
func TestSourceConfigCheck(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "site.cue")
	if err := os.WriteFile(file, []byte("a: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg  SourceConfig
		want string // "" for none
	}{
		{SourceConfig{}, "say where the site is: --site DIR or --repo URL"},
		{SourceConfig{Dir: dir, Git: gitrepo.Options{URL: "file:///x"}}, "--site and --repo exclude each other"},
		{SourceConfig{Dir: dir, Git: gitrepo.Options{Path: "site"}}, "--path goes with --repo"},
		{SourceConfig{Git: gitrepo.Options{URL: "file:///x", Tree: gitrepo.TreeLimits{MaxBytes: -1}}}, "must be positive"},
		{SourceConfig{Dir: file}, "is a file: give the site's directory"},
		{SourceConfig{Dir: filepath.Join(dir, "missing")}, "no such file or directory"},
		{SourceConfig{Dir: dir}, ""},
		{SourceConfig{Git: gitrepo.Options{URL: "file:///x", Path: "site"}}, ""},
	} {
		err := tc.cfg.Check()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
