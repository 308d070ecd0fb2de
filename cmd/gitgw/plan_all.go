package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gitgw/gitgw/reconcile"
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
	src, cleanup, err := f.site.open(ctx, "", f.stateDir)
	if err != nil {
		return fail(err)
	}
	defer cleanup()
	rev, err := src.Sync(ctx)
	if err != nil {
		return fail(err)
	}
	reports, err := siteplan.ReadReports(ctx, f.observed.readOptions(&f.site), "")
	if err != nil {
		return fail(err)
	}
	if len(reports) == 0 && f.observed.repo == "" && f.site.Git.URL == "" {
		return fail(fmt.Errorf("no status branch %s* in %s: in a clone, give the repository with --status-repo URL, or fetch the status branches as branches", f.observed.prefix, f.observed.url(&f.site)))
	}
	site, perrs, err := siteplan.Site(ctx, rev, siteplan.Options{
		Reports: reports, Checkout: f.site.opened.History.Checkout, Logger: log,
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
