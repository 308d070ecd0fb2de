package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/drift"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
	"github.com/gitgw/gitgw/reconcile/plan"
	"github.com/gitgw/gitgw/reconcile/siteplan"
)

// parseFormat checks --format; --json is its older spelling.
func parseFormat(format string, json bool) (string, error) {
	switch format {
	case "text", "json", "markdown":
	default:
		return "", fmt.Errorf("--format %q: want text, json or markdown", format)
	}
	if json {
		if format != "text" && format != "json" {
			return "", fmt.Errorf("--json and --format %s: give one of them", format)
		}
		return "json", nil
	}
	return format, nil
}

// runPlanAll is `plan --all-nodes`: every node's plan against its status
// branch, from one evaluation of the site (siteplan).
func runPlanAll(cmd *cobra.Command, f *planFlags) error {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	log := newLogger(cmd, f.debug)
	fail := func(err error) error {
		if f.detailed {
			fmt.Fprintln(cmd.ErrOrStderr(), "gitgw:", err)
			return exitError{1}
		}
		return err
	}
	format, err := parseFormat(f.format, f.json)
	if err != nil {
		return fail(err)
	}
	if f.observed.source != "status" {
		// Without it every node would be planned against this host, or
		// against nothing: neither says what a merge would do.
		return fail(fmt.Errorf("--all-nodes plans against the nodes' status branches: add --observed status (a node's live state is only on that node)"))
	}
	if cmd.Flags().Changed("node") {
		return fail(fmt.Errorf("--node and --all-nodes: give one of them"))
	}
	if _, err := parseScope(f.scope); err != nil {
		return fail(err)
	}
	src, cleanup, err := f.site.open(ctx, "", f.stateDir, false)
	if err != nil {
		return fail(err)
	}
	defer cleanup()
	rev, err := src.Sync(ctx)
	if err != nil {
		return fail(err)
	}
	reports, err := readReports(ctx, &f.observed, &f.site)
	if err != nil {
		return fail(err)
	}
	checkout, closeCheckout := appliedCheckout(&f.site, src)
	defer closeCheckout()
	site, perrs, err := siteplan.Site(ctx, rev, siteplan.Options{
		Reports: reports, Checkout: checkout, Logger: log,
		Check: reconcile.PolicyCheck(reconcile.PolicyOptions{Logger: log}),
	})
	if len(perrs) > 0 {
		printErrors(cmd.ErrOrStderr(), perrs)
		return exitError{1}
	}
	if err != nil {
		return fail(err)
	}
	switch format {
	case "json":
		err = plan.WriteSiteJSON(out, site)
	case "markdown":
		err = plan.WriteSiteMarkdown(out, site, plan.MarkdownOptions{MaxBytes: f.markdownMax})
	default:
		err = plan.WriteSiteText(out, site, plan.TextOptions{Color: !f.noColor && isTerminal(out), Verbose: f.verbose})
	}
	if err != nil {
		return fail(err)
	}
	if f.detailed && site.HasChanges() {
		return exitError{2}
	}
	return nil
}

// statusURL is the repository holding the status branches.
func statusURL(f *observedFlags, sf *siteFlags) string {
	switch {
	case f.repo != "":
		return f.repo
	case sf.repo != "":
		return sf.repo
	}
	return sf.site
}

// readReports reads every node's last report from its status branch.
func readReports(ctx context.Context, f *observedFlags, sf *siteFlags) (map[string]siteplan.Report, error) {
	url := statusURL(f, sf)
	branches, err := gitrepo.ReadStatusBranches(ctx, gitrepo.ReadOptions{
		URL: url, Prefix: f.prefix, Files: []string{drift.StatusFile},
		SSHKeyFile: sf.sshKey, KnownHostsFile: sf.knownHosts, TokenFile: sf.tokenFile, CAFile: sf.caFile,
	})
	if err != nil {
		return nil, err
	}
	out := map[string]siteplan.Report{}
	for _, b := range branches {
		st, err := drift.Parse(b.Files[drift.StatusFile])
		if err != nil {
			return nil, fmt.Errorf("status of %s (%s): %w", b.Node, b.Branch, err)
		}
		out[b.Node] = siteplan.Report{Status: st, Commit: b.Commit, Time: b.Time}
	}
	if len(out) == 0 && f.repo == "" && sf.repo == "" {
		return nil, fmt.Errorf("no status branch %s* in %s: in a clone, give the repository with --status-repo URL, or fetch the status branches as branches", f.prefix, url)
	}
	return out, nil
}

// appliedCheckout exports the commits the nodes report as applied: from
// the --repo copy, or from the --site directory's own repository (opened
// once, on first use).
func appliedCheckout(sf *siteFlags, src reconcile.Source) (func(context.Context, string) (reconcile.Revision, func(), error), func()) {
	var repo *gitrepo.Source
	var tmp string
	if g, ok := src.(*reconcile.GitSource); ok {
		repo = g.Repo()
	}
	checkout := func(ctx context.Context, commit string) (reconcile.Revision, func(), error) {
		if repo == nil {
			dir, err := os.MkdirTemp("", "gitgw-observed-")
			if err != nil {
				return reconcile.Revision{}, nil, err
			}
			r, err := gitrepo.Open(ctx, gitrepo.Options{URL: sf.site, Ref: sf.ref, Dir: dir})
			if err == nil {
				_, err = r.Sync(ctx)
			}
			if err != nil {
				os.RemoveAll(dir)
				return reconcile.Revision{}, nil, err
			}
			repo, tmp = r, dir
		}
		r, err := repo.Checkout(ctx, commit)
		if err != nil {
			return reconcile.Revision{}, nil, err
		}
		return reconcile.Revision{Commit: r.Commit, Dir: r.Dir, Subject: r.Subject}, nil, nil
	}
	return checkout, func() {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
	}
}
