package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/control"
	"github.com/gitgw/gitgw/reconcile/plan"
	"github.com/gitgw/gitgw/reconcile/planapply"
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
	socket      string
	timeout     time.Duration
	out         string
	kinds       string
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
	fl.StringVar(&f.socket, "socket", control.DefaultSocket, `the agent's control socket: when an agent answers there, it makes the plan with what it runs (VRRP roles and VIPs, proxy binds and servers), and apply hands the plan to it; "" never asks it`)
	fl.DurationVar(&f.timeout, "timeout", 30*time.Minute, "how long to wait for the agent's plan, or for its pass to apply the plan (the bake window included)")
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
		Short: "Show what applying the site would change on this node (asking its running agent), or on every node (a dry run)",
		Long: `plan evaluates the site and shows what applying it would change on this node.
When the agent answers on its control socket (--socket), the plan is made by the
agent's own drivers, against what it runs: VRRP roles and VIPs, proxy binds,
servers and health. A converged node then plans "No changes". With no agent,
this process plans, and the in-process state (VRRP, proxy) is predicted as if
nothing ran; a note says which. -out FILE saves the plan for gitgw apply FILE.`,
		Example: `  gitgw plan --site examples/seed-site --node server-1
  gitgw plan --repo /srv/git/site.git --node gw1 --json --detailed-exitcode
  gitgw plan --repo /srv/git/site.git --node gw1 -out gw1.plan && gitgw apply gw1.plan
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
			return runPlan(cmd, &f)
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&f.allNodes, "all-nodes", false, "plan every node of the site in one run, against each node's status branch (needs --observed status), with a summary table")
	cmd.Flags().StringVar(&f.format, "format", "text", "output: text, json, or markdown (a review comment; with --all-nodes)")
	cmd.Flags().StringVar(&f.out, "out", "", "save the plan to this file, for gitgw apply FILE to apply exactly it (Terraform's -out; -out FILE works too)")
	cmd.Flags().IntVar(&f.markdownMax, "markdown-max-bytes", 0, "with --format markdown, leave out the plans that do not fit in this many bytes (the summary table stays whole; GitHub takes 65536 characters per comment); 0 for no limit")
	return cmd
}

// planned is a plan and what it was made from.
type planned struct {
	p       *plan.Plan
	rev     reconcile.Revision
	desired *spec.Node
	// agent answered on the socket and made the plan; nil: this process
	// planned (or --observed status did).
	agent *control.AgentInfo
	cl    *control.Client
}

// makePlan evaluates the site once and plans it for the node: by the
// running agent when one answers on --socket (its drivers see what it
// runs), otherwise by this process's drivers, or against the node's status
// branch with --observed status. fail reports an error per
// --detailed-exitcode.
func makePlan(cmd *cobra.Command, f *planFlags, fail func(error) error) (*planned, func(), error) {
	ctx := cmd.Context()
	log := newLogger(cmd, f.debug)
	if f.node == "" {
		return nil, nil, fail(fmt.Errorf("--node is empty and the hostname is unknown"))
	}
	src, cleanup, err := f.site.open(ctx, f.node, f.stateDir)
	if err != nil {
		return nil, nil, fail(err)
	}
	pl, err := planWith(cmd, f, src, log, fail)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return pl, cleanup, nil
}

func planWith(cmd *cobra.Command, f *planFlags, src reconcile.Source, log *slog.Logger, fail func(error) error) (*planned, error) {
	ctx := cmd.Context()
	rev, err := src.Sync(ctx)
	if err != nil {
		return nil, fail(err)
	}
	scope, err := parseScope(f.scope)
	if err != nil {
		return nil, fail(err)
	}
	// Evaluation needs no driver: the drivers are built only if this
	// process plans itself.
	evalRunner, err := reconcile.NewRunner(reconcile.RunnerOptions{Node: f.node, StateDir: f.stateDir, Logger: log, Scope: scope,
		Check: reconcile.PolicyCheck(reconcile.PolicyOptions{Logger: log})})
	if err != nil {
		return nil, fail(err)
	}
	desired, perrs, err := evalRunner.Evaluate(ctx, rev)
	if len(perrs) > 0 {
		printErrors(cmd.ErrOrStderr(), perrs)
		return nil, exitError{1}
	}
	if err != nil {
		return nil, fail(err)
	}
	pl := &planned{rev: rev, desired: desired, cl: control.NewClient(f.socket)}
	if f.observed.source != "" {
		if pl.p, err = planObserved(ctx, &f.observed, &f.site, f.node, src, evalRunner, rev, desired); err != nil {
			return nil, fail(err)
		}
	} else {
		actx, cancel := context.WithTimeout(ctx, f.timeout)
		defer cancel()
		r, err := planapply.Plan(actx, planapply.PlanOptions{Client: pl.cl, Socket: f.socket, Node: f.node, Commit: rev.Commit, Desired: desired, Logger: log,
			Local: func(ctx context.Context) (*plan.Plan, error) {
				drv := reconcile.BuildDrivers(f.drivers.config(f.stateDir, log))
				defer drv.Close(context.Background())
				runner, err := reconcile.NewRunner(reconcile.RunnerOptions{Node: f.node, Drivers: drv.List, Logger: log})
				if err != nil {
					return nil, err
				}
				return runner.PlanFor(ctx, desired, rev.Commit)
			}})
		if err != nil {
			return nil, fail(err)
		}
		pl.p, pl.agent = r.Plan, r.Agent
	}
	pl.p.Notes = append(pl.p.Notes, evalRunner.RolloutNotes(ctx, rev, desired)...)
	return pl, nil
}

// runPlan is `gitgw plan` for one node.
func runPlan(cmd *cobra.Command, f *planFlags) error {
	out := cmd.OutOrStdout()
	fail := failer(cmd, f)
	if f.out != "" && f.observed.source != "" {
		return fail(fmt.Errorf("--out saves a plan for gitgw apply, which applies on the node: plan against the node (without --observed)"))
	}
	pl, cleanup, err := makePlan(cmd, f, fail)
	if err != nil {
		return err
	}
	defer cleanup()
	if f.json {
		err = plan.WriteJSON(out, pl.p)
	} else {
		err = plan.WriteText(out, pl.p, plan.TextOptions{Color: !f.noColor && isTerminal(out), Verbose: f.verbose})
	}
	if err != nil {
		return fail(err)
	}
	if f.out != "" {
		src := plan.Source{Repo: f.site.Git.URL, Site: f.site.Dir, Path: f.site.Git.Path}
		if src.Repo != "" {
			src.Ref = f.site.Git.Ref
		}
		if err := planapply.Save(f.out, planapply.Planned{Plan: pl.p, Agent: pl.agent}, src, time.Now()); err != nil {
			return fail(err)
		}
		if !f.json {
			fmt.Fprintf(out, "\nSaved the plan to %s. To apply exactly this plan: gitgw apply %s\n", f.out, f.out)
		}
	}
	if f.detailed && pl.p.HasChanges() {
		return exitError{2}
	}
	return nil
}

// terraformArgs lets Terraform's single-dash spelling `-out FILE` (and
// -out=FILE) mean --out: pflag would read it as -o -u -t.
func terraformArgs(args []string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		if a == "--" {
			break
		}
		if a == "-out" || strings.HasPrefix(a, "-out=") {
			out[i] = "-" + a
		}
	}
	return out
}

// failer reports an error as --detailed-exitcode wants it: exit 1.
func failer(cmd *cobra.Command, f *planFlags) func(error) error {
	return func(err error) error {
		if f.detailed {
			fmt.Fprintln(cmd.ErrOrStderr(), "gitgw:", err)
			return exitError{1}
		}
		return err
	}
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
