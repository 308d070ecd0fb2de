package siteplan

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/drift"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
	"github.com/gitgw/gitgw/test/gitremote"
)

// TestReadReports reads the reports off real status branches: every node's
// for --all-nodes, where one broken status fails the read naming it, and
// one node's alone, which another node's broken status does not disturb.
func TestReadReports(t *testing.T) {
	r := gitremote.NewBare(t)
	r.Commit(t, "main", map[string]string{"site.cue": "a: 1\n"}, "site")
	gw1 := r.Commit(t, "gitgw/status/gw1", map[string]string{"status.json": `{"node": "gw1", "applied_commit": "` + applied + `"}`}, "apply(gw1)")
	r.Commit(t, "gitgw/status/gw2", map[string]string{"status.json": `{"node": "gw2", "appl`}, "apply(gw2)")
	ctx := context.Background()
	opts := gitrepo.ReadOptions{URL: r.Dir}
	_, err := ReadReports(ctx, opts, "")
	if err == nil || !strings.Contains(err.Error(), "status of gw2 (gitgw/status/gw2)") {
		t.Fatalf("every node with gw2's broken: %v, want an error naming gw2's branch", err)
	}
	reps, err := ReadReports(ctx, opts, "gw1")
	if err != nil {
		t.Fatalf("gw1 alone: %v", err)
	}
	if rep, ok := reps["gw1"]; len(reps) != 1 || !ok || rep.Commit != gw1 || rep.Status.Applied != applied || rep.Time.IsZero() {
		t.Fatalf("gw1 alone: %+v", reps)
	}
}

// evaluateLab evaluates a revision for gw1 as the node's agent would.
func evaluateLab(ctx context.Context, rev reconcile.Revision) (*spec.Node, loader.Errors, error) {
	views, _, errs, err := evaluate(ctx, rev.Dir)
	return views["gw1"], errs, err
}

// TestNode plans gw1 against its report: a node that runs the very site
// it is offered plans no change; when its applied commit cannot be loaded,
// the plan says so right after the report's note and plans everything
// as new.
func TestNode(t *testing.T) {
	ctx := context.Background()
	views, _, _, err := evaluate(ctx, lab)
	if err != nil {
		t.Fatal(err)
	}
	rep := Report{Status: drift.Status{Node: "gw1", Applied: applied}, Commit: "status1"}
	checkout := func(_ context.Context, commit string) (reconcile.Revision, func(), error) {
		return reconcile.Revision{Commit: commit, Dir: lab}, nil, nil
	}
	p, err := Node(ctx, "gw1", "next", views["gw1"], rep, NodeOptions{Checkout: checkout, Evaluate: evaluateLab})
	if err != nil {
		t.Fatal(err)
	}
	if got := actionable(p); len(got) != 0 {
		t.Errorf("converged node plans %v, want nothing", got)
	}
	gone := func(context.Context, string) (reconcile.Revision, func(), error) {
		return reconcile.Revision{}, nil, errors.New("object not found")
	}
	p, err = Node(ctx, "gw1", "next", views["gw1"], rep, NodeOptions{Checkout: gone, Evaluate: evaluateLab})
	if err != nil {
		t.Fatal(err)
	}
	if c := p.Count(); c.Create == 0 || c.Update+c.Delete+c.NoOp != 0 {
		t.Errorf("applied commit unknown: %+v, want everything new", c)
	}
	if len(p.Notes) < 2 || !strings.HasPrefix(p.Notes[1], "the applied commit 0123456 could not be loaded (object not found)") {
		t.Errorf("notes %q", p.Notes)
	}
}
