package main

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile"
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

// planObserved plans desired (revision rev) for node against the status
// the node last reported (siteplan.Node); no driver and no host is
// consulted. The applied commit comes from the opened source's history.
func planObserved(ctx context.Context, f *observedFlags, sf *siteFlags, node string, _ reconcile.Source,
	runner *reconcile.Runner, rev reconcile.Revision, desired *spec.Node) (*plan.Plan, error) {
	if f.source != "status" {
		return nil, fmt.Errorf("--observed %q: the only observed source is \"status\"", f.source)
	}
	reps, err := siteplan.ReadReports(ctx, f.readOptions(sf), node)
	if err != nil {
		return nil, err
	}
	rep, ok := reps[node]
	if !ok {
		hint := "has the node ever reported?"
		if f.repo == "" && sf.Git.URL == "" {
			hint = "in a clone, give the repository with --status-repo URL, or fetch the status branches as branches"
		}
		return nil, fmt.Errorf("no status branch %s%s in %s: %s", f.prefix, node, f.url(sf), hint)
	}
	return siteplan.Node(ctx, node, rev.Commit, desired, rep, siteplan.NodeOptions{Checkout: sf.opened.History.Checkout, Evaluate: runner.Evaluate})
}

// url is the repository holding the status branches.
func (f *observedFlags) url(sf *siteFlags) string {
	switch {
	case f.repo != "":
		return f.repo
	case sf.Git.URL != "":
		return sf.Git.URL
	}
	return sf.Dir
}

func (f *observedFlags) readOptions(sf *siteFlags) gitrepo.ReadOptions {
	return gitrepo.ReadOptions{URL: f.url(sf), Prefix: f.prefix,
		SSHKeyFile: sf.Git.SSHKeyFile, KnownHostsFile: sf.Git.KnownHostsFile, TokenFile: sf.Git.TokenFile, CAFile: sf.Git.CAFile}
}
