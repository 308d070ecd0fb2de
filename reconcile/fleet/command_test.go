package fleet

import (
	"bytes"
	"context"
	"log/slog"
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
