// Package siteplan plans a revision of the site for one node or for every
// node against what the nodes last reported on their status branches,
// without touching any host: the view CI shows on a merge request
// (`gitgw plan --all-nodes --observed status`). A node's live state is only
// on that node; its status branch is the only copy CI can read.
//
// For every node at once, the site is evaluated once for the proposed
// revision and once per distinct commit the nodes report as applied (most
// nodes run the same one), never once per node.
package siteplan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"time"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/drift"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// Report is a node's last report: the status file of the newest commit of
// its status branch.
type Report struct {
	Status drift.Status
	// Commit and Time are the status commit's.
	Commit string
	Time   time.Time
}

// Options configure Site.
type Options struct {
	// Reports are the nodes' last reports, by node. A node without one
	// (new in this revision, or never started) is planned as new.
	Reports map[string]Report
	// Checkout writes the tree of a commit a node reports as applied and
	// returns it as a revision; the returned cleanup removes it.
	Checkout func(ctx context.Context, commit string) (reconcile.Revision, func(), error)
	// Check vets each node's view of the revision against its applied
	// view (guardrails, change policies, site policies): what the node's
	// own agent would refuse. Nil checks nothing.
	Check  reconcile.CheckFunc
	Logger *slog.Logger
}

// Site plans rev for every node of the site. Errors of the site, or a
// node's refusal by a check, come back as positioned errors (deduplicated:
// a guardrail broken for a pair is reported once); other failures as err.
func Site(ctx context.Context, rev reconcile.Revision, o Options) (*plan.Site, loader.Errors, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	views, labels, errs, err := evaluate(ctx, rev.Dir)
	if len(errs) > 0 || err != nil {
		return nil, errs, err
	}
	applied := map[string]appliedViews{}
	defer func() {
		for _, a := range applied {
			if a.cleanup != nil {
				a.cleanup()
			}
		}
	}()
	out := &plan.Site{Commit: rev.Commit, WaitsFor: map[string][]string{}}
	var refused loader.Errors
	for _, node := range slices.Sorted(maps.Keys(views)) {
		desired := views[node]
		rep, reported := o.Reports[node]
		var prev *spec.Node
		var notes []string
		switch {
		case !reported:
			notes = append(notes, fmt.Sprintf("%s has no status branch (new, or it never reported): every resource is planned as new", node))
		case !fullHash.MatchString(rep.Status.Applied):
			// Observed notes it.
		default:
			a, ok := applied[rep.Status.Applied]
			if !ok {
				a = loadApplied(ctx, o.Checkout, rep.Status.Applied)
				applied[rep.Status.Applied] = a
				log.Debug("applied commit evaluated", "commit", rep.Status.Applied, "err", a.err)
			}
			if a.err != nil {
				notes = append(notes, fmt.Sprintf("the applied commit %s could not be loaded (%v): every resource is planned as new", drift.Short(rep.Status.Applied), a.err))
			} else if prev = a.views[node]; prev == nil {
				notes = append(notes, fmt.Sprintf("%s is not in its applied commit %s: every resource is planned as new", node, drift.Short(rep.Status.Applied)))
			}
		}
		if o.Check != nil {
			if es := o.Check(ctx, rev, prev, desired); len(es) > 0 {
				refused = append(refused, es...)
				continue
			}
		}
		var r *Report
		if reported {
			r = &rep
		}
		p, err := Observed(ctx, node, rev.Commit, desired, prev, r)
		if err != nil {
			return nil, nil, fmt.Errorf("siteplan: %s: %w", node, err)
		}
		p.Notes = append(notes, p.Notes...)
		p.Notes = append(p.Notes, reconcile.RolloutNotes(desired, labels)...)
		for _, w := range reconcile.Waits(desired, labels) {
			out.WaitsFor[node] = append(out.WaitsFor[node], w.Node)
		}
		out.Plans = append(out.Plans, p)
	}
	if len(refused) > 0 {
		return nil, dedupe(refused), nil
	}
	return out, nil, nil
}

var fullHash = regexp.MustCompile(`^[0-9a-f]{40}$`)

// evaluate loads the site in dir once and derives every node's view, and
// the nodes' labels when the site rolls out in waves.
func evaluate(ctx context.Context, dir string) (map[string]*spec.Node, map[string]map[string]string, loader.Errors, error) {
	site, _, err := loader.LoadWith(ctx, dir, "", loader.Options{Scope: loader.ScopeSite})
	if err == nil {
		var views map[string]*spec.Node
		if views, err = site.Views(); err == nil {
			var labels map[string]map[string]string
			if whole, _ := site.Whole(); whole != nil && len(whole.Site.Rollout.Waves) > 0 {
				labels = map[string]map[string]string{}
				for n, ns := range whole.Nodes {
					labels[n] = ns.Labels
				}
			}
			return views, labels, nil, nil
		}
	}
	if errs, ok := loader.AsErrors(err); ok {
		return nil, nil, errs, nil
	}
	return nil, nil, nil, err
}

type appliedViews struct {
	views   map[string]*spec.Node
	cleanup func()
	err     error
}

// loadApplied evaluates a commit some node reports as applied.
func loadApplied(ctx context.Context, checkout func(context.Context, string) (reconcile.Revision, func(), error), commit string) appliedViews {
	if checkout == nil {
		return appliedViews{err: errors.New("no repository to read it from")}
	}
	rev, cleanup, err := checkout(ctx, commit)
	if err != nil {
		return appliedViews{err: err}
	}
	views, _, errs, err := evaluate(ctx, rev.Dir)
	if len(errs) > 0 {
		err = fmt.Errorf("invalid at %s: %w", drift.Short(commit), errs)
	}
	return appliedViews{views: views, cleanup: cleanup, err: err}
}

// Observed plans desired (revision commit) for node against its report:
// what it runs is prev, the desired state of the commit it reported as
// applied (nil when that is unknown: everything is new), corrected by the
// resources it reported as differing. rep nil means the node never
// reported. No driver and no host is consulted.
func Observed(ctx context.Context, node, commit string, desired, prev *spec.Node, rep *Report) (*plan.Plan, error) {
	p := &plan.Plan{Node: node, Commit: commit}
	var st drift.Status
	if rep != nil {
		st = rep.Status
		p.Notes = append(p.Notes, fmt.Sprintf("planned against the status %s reported at %s (status commit %s), not the live host",
			node, rep.Time.UTC().Format("2006-01-02 15:04:05Z"), drift.Short(rep.Commit)))
		if !fullHash.MatchString(st.Applied) {
			p.Notes = append(p.Notes, fmt.Sprintf("the node reports no applied commit of the repository (%q): every resource is planned as new", st.Applied))
		}
	}
	next, err := Enumerate(ctx, desired)
	if err != nil {
		return nil, err
	}
	var before []plan.Change
	if prev != nil {
		if before, err = Enumerate(ctx, prev); err != nil {
			return nil, err
		}
	}
	p.Changes = drift.ObservedPlan(before, next, st)
	p.Notes = append(p.Notes, reconcile.Notes(desired)...)
	p.Sort()
	return p, nil
}

// Enumerate lists every resource of a desired state, driver-independently.
func Enumerate(ctx context.Context, n *spec.Node) ([]plan.Change, error) {
	var out []plan.Change
	for _, fam := range plan.Families {
		cs, err := reconcile.Pending{Family: fam}.Plan(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, cs...)
	}
	return out, nil
}

// dedupe drops repeated errors: a guardrail that both nodes of a pair break
// is one error of the site.
func dedupe(errs loader.Errors) loader.Errors {
	seen := map[string]bool{}
	var out loader.Errors
	for _, e := range errs {
		if k := e.Error(); !seen[k] {
			seen[k] = true
			out = append(out, e)
		}
	}
	return out
}
