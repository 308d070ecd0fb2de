package reconcile

import (
	"context"
	"os"
	"path/filepath"
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
