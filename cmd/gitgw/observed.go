package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"

	"github.com/spf13/pflag"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/drift"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
	"github.com/gitgw/gitgw/reconcile/plan"
	"github.com/gitgw/gitgw/reconcile/siteplan"
)

// observedFlags select what `gitgw plan` plans against: the live host
// (default) or, with --observed status, the node's last reported status.
type observedFlags struct {
	source string
	repo   string
	prefix string
}

func (f *observedFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.source, "observed", "", `plan against "status": the node's last reported state, read from its status branch, instead of the live host`)
	fl.StringVar(&f.repo, "status-repo", "", "repository holding the status branches (default: --repo, or the --site directory's repository)")
	fl.StringVar(&f.prefix, "status-branch-prefix", gitrepo.DefaultStatusPrefix, "prefix of the nodes' status branches")
}

var fullHash = regexp.MustCompile(`^[0-9a-f]{40}$`)

// planObserved plans desired (revision rev) for node against the status
// the node last reported (siteplan.Observed): what it runs is the desired
// state of the commit it reported as applied (loaded from the repository),
// corrected by the resources it reported as differing. No driver and no
// host is consulted.
func planObserved(ctx context.Context, f *observedFlags, sf *siteFlags, node string, src reconcile.Source,
	runner *reconcile.Runner, rev reconcile.Revision, desired *spec.Node) (*plan.Plan, error) {
	if f.source != "status" {
		return nil, fmt.Errorf("--observed %q: the only observed source is \"status\"", f.source)
	}
	url := statusURL(f, sf)
	branches, err := gitrepo.ReadStatusBranches(ctx, gitrepo.ReadOptions{
		URL: url, Prefix: f.prefix, Files: []string{drift.StatusFile},
		SSHKeyFile: sf.sshKey, KnownHostsFile: sf.knownHosts, TokenFile: sf.tokenFile, CAFile: sf.caFile,
	})
	if err != nil {
		return nil, err
	}
	var rep *siteplan.Report
	for _, b := range branches {
		if b.Node != node {
			continue
		}
		s, err := drift.Parse(b.Files[drift.StatusFile])
		if err != nil {
			return nil, fmt.Errorf("status of %s (%s): %w", node, b.Branch, err)
		}
		rep = &siteplan.Report{Status: s, Commit: b.Commit, Time: b.Time}
	}
	if rep == nil {
		hint := "has the node ever reported?"
		if f.repo == "" && sf.repo == "" {
			hint = "in a clone, give the repository with --status-repo URL, or fetch the status branches as branches"
		}
		return nil, fmt.Errorf("no status branch %s%s in %s: %s", f.prefix, node, url, hint)
	}
	var prevSpec *spec.Node
	var loadNote string
	if fullHash.MatchString(rep.Status.Applied) {
		prevSpec, err = loadApplied(ctx, sf, src, runner, rep.Status.Applied)
		if err != nil {
			loadNote = fmt.Sprintf("the applied commit %s could not be loaded (%v): every resource is planned as new", drift.Short(rep.Status.Applied), err)
		}
	}
	p, err := siteplan.Observed(ctx, node, rev.Commit, desired, prevSpec, rep)
	if err != nil {
		return nil, err
	}
	if loadNote != "" {
		p.Notes = slices.Insert(p.Notes, 1, loadNote)
	}
	return p, nil
}

// loadApplied evaluates the site at commit for the node.
func loadApplied(ctx context.Context, sf *siteFlags, src reconcile.Source, runner *reconcile.Runner, commit string) (*spec.Node, error) {
	var repo *gitrepo.Source
	if g, ok := src.(*reconcile.GitSource); ok {
		repo = g.Repo()
	} else {
		// A --site directory: its own repository holds the history.
		tmp, err := os.MkdirTemp("", "gitgw-observed-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		if repo, err = gitrepo.Open(ctx, gitrepo.Options{URL: sf.site, Ref: sf.ref, Dir: tmp}); err != nil {
			return nil, err
		}
		if _, err := repo.Sync(ctx); err != nil {
			return nil, err
		}
	}
	r, err := repo.Checkout(ctx, commit)
	if err != nil {
		return nil, err
	}
	n, errs, err := runner.Evaluate(ctx, reconcile.Revision{Commit: r.Commit, Dir: r.Dir, Subject: r.Subject})
	if err != nil {
		return nil, err
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("invalid at %s: %w", drift.Short(commit), errs)
	}
	return n, nil
}
