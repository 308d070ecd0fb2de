package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/plan"
)

type planFlags struct {
	site        siteFlags
	node        string
	stateDir    string
	json        bool
	detailed    bool
	verbose     bool
	noColor     bool
	debug       bool
	autoApprove bool
	observed    observedFlags
	scope       string
	drivers     driverFlags
	allNodes    bool
	format      string
	markdownMax int
}

func (f *planFlags) register(cmd *cobra.Command) {
	f.site.register(cmd)
	fl := cmd.Flags()
	nodeFlag(fl, &f.node, "node to plan for")
	fl.StringVar(&f.stateDir, "state-dir", "", "state directory (last applied state); none by default for one-shot commands")
	fl.BoolVar(&f.json, "json", false, "print the plan as versioned JSON")
	fl.BoolVar(&f.detailed, "detailed-exitcode", false, "exit 0 when there are no changes, 2 when there are, 1 on error")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "also list resources that are already as desired")
	fl.BoolVar(&f.noColor, "no-color", false, "never colour the output")
	fl.BoolVar(&f.debug, "debug", false, "debug logging")
	f.observed.register(fl)
	fl.StringVar(&f.scope, "scope", "auto", scopeHelp)
	f.drivers.register(fl)
}

const scopeHelp = "what the schema is applied to: site (everything: an error anywhere rejects the commit), node (this node's part; validate the site in CI), auto (site up to 200 nodes)"

func parseScope(s string) (loader.Scope, error) {
	switch sc := loader.Scope(s); sc {
	case loader.ScopeAuto, loader.ScopeSite, loader.ScopeNode:
		return sc, nil
	}
	return "", fmt.Errorf("--scope %q: want auto, site or node", s)
}

func newPlanCmd() *cobra.Command {
	var f planFlags
	cmd := &cobra.Command{
		Use:   "plan (--site DIR | --repo URL) [--node NAME | --all-nodes --observed status]",
		Short: "Show what applying the site would change on this node, or on every node (a dry run)",
		Example: `  gitgw plan --site examples/seed-site --node server-1
  gitgw plan --repo /srv/git/site.git --node gw1 --json --detailed-exitcode
  gitgw plan --site . --all-nodes --observed status --status-repo "$URL" --format markdown`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.allNodes {
				return runPlanAll(cmd, &f)
			}
			if cmd.Flags().Changed("format") {
				if f.format == "markdown" {
					return fmt.Errorf("--format markdown renders every node's plan: add --all-nodes --observed status")
				}
				if _, err := parseFormat(f.format, f.json); err != nil {
					return err
				}
				f.json = f.format == "json"
			}
			_, _, err := runPlan(cmd, &f, false)
			return err
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&f.allNodes, "all-nodes", false, "plan every node of the site in one run, against each node's status branch (needs --observed status), with a summary table")
	cmd.Flags().StringVar(&f.format, "format", "text", "output: text, json, or markdown (a review comment; with --all-nodes)")
	cmd.Flags().IntVar(&f.markdownMax, "markdown-max-bytes", 0, "with --format markdown, leave out the plans that do not fit in this many bytes (the summary table stays whole; GitHub takes 65536 characters per comment); 0 for no limit")
	return cmd
}

func newApplyCmd() *cobra.Command {
	var f planFlags
	cmd := &cobra.Command{
		Use:     "apply (--site DIR | --repo URL) [--node NAME] [--auto-approve]",
		Short:   "Print the plan, then apply it once (asks first unless --auto-approve)",
		Example: `  sudo gitgw apply --site examples/lab --node gw1 --auto-approve`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, _, err := runPlan(cmd, &f, true)
			return err
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&f.autoApprove, "auto-approve", false, "apply without asking")
	return cmd
}

// runPlan plans (and with apply, applies) one revision for one node.
func runPlan(cmd *cobra.Command, f *planFlags, apply bool) (*plan.Plan, *reconcile.Result, error) {
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
	if f.node == "" {
		return nil, nil, fail(fmt.Errorf("--node is empty and the hostname is unknown"))
	}
	src, cleanup, err := f.site.open(ctx, f.node, f.stateDir, false)
	if err != nil {
		return nil, nil, fail(err)
	}
	defer cleanup()
	rev, err := src.Sync(ctx)
	if err != nil {
		return nil, nil, fail(err)
	}
	drv := buildDrivers(reconcile.DriverConfig{StateDir: f.stateDir, Logger: log, Live: apply,
		UnitDir: f.drivers.unitDir, SystemdSocket: f.drivers.systemdSocket})
	defer drv.Close(context.Background())
	scope, err := parseScope(f.scope)
	if err != nil {
		return nil, nil, fail(err)
	}
	runner, err := reconcile.NewRunner(reconcile.RunnerOptions{Node: f.node, StateDir: f.stateDir, Drivers: drv.List, Logger: log, Scope: scope,
		Check: reconcile.PolicyCheck(reconcile.PolicyOptions{Logger: log})})
	if err != nil {
		return nil, nil, fail(err)
	}
	desired, perrs, err := runner.Evaluate(ctx, rev)
	if len(perrs) > 0 {
		printErrors(cmd.ErrOrStderr(), perrs)
		return nil, nil, exitError{1}
	}
	if err != nil {
		return nil, nil, fail(err)
	}
	var p *plan.Plan
	if f.observed.source != "" && !apply {
		p, err = planObserved(ctx, &f.observed, &f.site, f.node, src, runner, rev, desired)
		if err != nil {
			return nil, nil, fail(err)
		}
	} else if p, err = runner.PlanFor(ctx, desired, rev.Commit); err != nil {
		// The plan still lists everything, the failing driver's part as
		// pending with the reason.
		log.Warn("some drivers could not plan", "err", err)
	}
	if p != nil {
		p.Notes = append(p.Notes, rolloutNotes(ctx, f.node, rev, desired, log)...)
	}
	if f.json && !apply {
		if err := plan.WriteJSON(out, p); err != nil {
			return nil, nil, fail(err)
		}
	} else if err := plan.WriteText(out, p, plan.TextOptions{Color: !f.noColor && isTerminal(out), Verbose: f.verbose}); err != nil {
		return nil, nil, fail(err)
	}
	if !apply {
		if f.detailed && p.HasChanges() {
			return p, nil, exitError{2}
		}
		return p, nil, nil
	}
	if !p.HasChanges() {
		return p, nil, nil
	}
	if !f.autoApprove && !confirm(cmd.InOrStdin(), out) {
		fmt.Fprintln(out, "Apply cancelled.")
		return p, nil, exitError{1}
	}
	res := runner.Pass(ctx, rev, reconcile.PassOptions{})
	fmt.Fprintln(out, res.Summary())
	for _, ch := range res.Remaining {
		fmt.Fprintf(out, "  still differs: %s %s %s\n", ch.Driver, ch.Kind, ch.ID)
	}
	if res.Outcome == reconcile.Failed || res.Outcome == reconcile.Rejected {
		return p, &res, exitError{1}
	}
	return p, &res, nil
}

func printErrors(w io.Writer, errs loader.Errors) {
	for _, e := range errs {
		fmt.Fprintln(w, e.Error())
	}
}

func confirm(in io.Reader, out io.Writer) bool {
	if f, ok := in.(*os.File); ok && !isTerminal(f) {
		fmt.Fprintln(out, "Not a terminal: use --auto-approve to apply without asking.")
		return false
	}
	fmt.Fprint(out, "\nApply these changes? Only 'yes' is accepted: ")
	line, _ := bufio.NewReader(in).ReadString('\n')
	return strings.TrimSpace(line) == "yes"
}
