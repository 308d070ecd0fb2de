package siteplan

import (
	"context"
	"fmt"
	"slices"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/drift"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// ReadReports reads the nodes' last reports from their status branches
// (opts.Files is set to the status file). With node set, only that node's
// report is read and parsed: another node's broken status does not keep
// this one from being planned.
func ReadReports(ctx context.Context, opts gitrepo.ReadOptions, node string) (map[string]Report, error) {
	opts.Files = []string{drift.StatusFile}
	branches, err := gitrepo.ReadStatusBranches(ctx, opts)
	if err != nil {
		return nil, err
	}
	out := map[string]Report{}
	for _, b := range branches {
		if node != "" && b.Node != node {
			continue
		}
		st, err := drift.Parse(b.Files[drift.StatusFile])
		if err != nil {
			return nil, fmt.Errorf("status of %s (%s): %w", b.Node, b.Branch, err)
		}
		out[b.Node] = Report{Status: st, Commit: b.Commit, Time: b.Time}
	}
	return out, nil
}

// NodeOptions configure Node.
type NodeOptions struct {
	// Checkout writes the tree of the commit the node reports as applied
	// (reconcile.History.Checkout).
	Checkout func(ctx context.Context, commit string) (reconcile.Revision, func(), error)
	// Evaluate evaluates a revision for the node, as the node's own agent
	// does (reconcile.Runner.Evaluate).
	Evaluate func(ctx context.Context, rev reconcile.Revision) (*spec.Node, loader.Errors, error)
}

// Node plans desired (revision commit) for node against rep, its last
// report (`gitgw plan --observed status`): what it runs is the desired
// state of the commit it reported as applied, evaluated as its agent
// would, corrected by the resources it reported as differing. An applied
// commit that cannot be loaded is noted, and everything is planned as new.
func Node(ctx context.Context, node, commit string, desired *spec.Node, rep Report, o NodeOptions) (*plan.Plan, error) {
	var prev *spec.Node
	var loadNote string
	if fullHash.MatchString(rep.Status.Applied) {
		var err error
		if prev, err = loadNode(ctx, o, rep.Status.Applied); err != nil {
			loadNote = fmt.Sprintf("the applied commit %s could not be loaded (%v): every resource is planned as new", drift.Short(rep.Status.Applied), err)
		}
	}
	p, err := Observed(ctx, node, commit, desired, prev, &rep)
	if err != nil {
		return nil, err
	}
	if loadNote != "" {
		p.Notes = slices.Insert(p.Notes, 1, loadNote)
	}
	return p, nil
}

// loadNode evaluates the node's view of commit.
func loadNode(ctx context.Context, o NodeOptions, commit string) (*spec.Node, error) {
	if o.Checkout == nil || o.Evaluate == nil {
		return nil, fmt.Errorf("no repository to read it from")
	}
	rev, cleanup, err := o.Checkout(ctx, commit)
	if err != nil {
		return nil, err
	}
	if cleanup != nil {
		defer cleanup()
	}
	n, errs, err := o.Evaluate(ctx, rev)
	if err != nil {
		return nil, err
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("invalid at %s: %w", drift.Short(commit), errs)
	}
	return n, nil
}
