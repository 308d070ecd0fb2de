package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/control"
	"github.com/gitgw/gitgw/reconcile/plan"
	"github.com/gitgw/gitgw/reconcile/planapply"
)

func newApplyCmd() *cobra.Command {
	var f planFlags
	cmd := &cobra.Command{
		Use:   "apply [FILE] [--site DIR | --repo URL] [--node NAME] [--auto-approve] [--kinds tuning,units]",
		Short: "Print the plan, then apply it: through the running agent, or once for what outlives this process",
		Long: `apply plans the site for this node and applies that plan (asking first unless
--auto-approve). When the agent answers on its control socket, the agent makes
the plan and applies it in its own loop, and keeps running it. With no agent,
this process applies only what outlives it (tuning, units): VRRP and the proxy
run inside the agent, and apply refuses a plan that changes them unless
--kinds limits it.

apply FILE applies exactly a plan saved by gitgw plan -out FILE, and refuses it
if the site's head or the node moved since.`,
		Example: `  sudo gitgw apply --repo /srv/git/site.git --node gw1 --auto-approve
  sudo gitgw plan --repo /srv/git/site.git -out gw1.plan && sudo gitgw apply gw1.plan
  sudo gitgw apply --site examples/lab --node gw1 --kinds tuning,units   # no agent here`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kinds, err := planapply.ParseKinds(f.kinds)
			if err != nil {
				return err
			}
			if f.observed.source != "" {
				return fmt.Errorf("--observed plans against a status branch: apply plans against the node (drop --observed)")
			}
			if len(args) == 1 {
				return applySaved(cmd, &f, args[0], kinds)
			}
			return runApply(cmd, &f, kinds)
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&f.autoApprove, "auto-approve", false, "apply without asking")
	cmd.Flags().StringVar(&f.kinds, "kinds", "", "with no agent running: apply only these kinds (tuning, units), leaving VRRP and the proxy to the agent")
	return cmd
}

// runApply plans, asks, and applies through the agent or once.
func runApply(cmd *cobra.Command, f *planFlags, kinds map[string]bool) error {
	out := cmd.OutOrStdout()
	pl, cleanup, err := makePlan(cmd, f, func(err error) error { return err })
	if err != nil {
		return err
	}
	defer cleanup()
	if err := plan.WriteText(out, pl.p, plan.TextOptions{Color: !f.noColor && isTerminal(out), Verbose: f.verbose}); err != nil {
		return err
	}
	if pl.agent == nil {
		if err := planapply.CheckOneShot(pl.p, kinds, f.socket); err != nil {
			return err
		}
	} else if kinds != nil {
		return fmt.Errorf("--kinds limits a one-shot apply: the agent answers on %s and applies the whole plan", f.socket)
	}
	if !planapply.Only(pl.p, oneShotKinds(pl.agent, kinds)).HasChanges() {
		return nil
	}
	if !f.autoApprove && !confirm(cmd.InOrStdin(), out) {
		fmt.Fprintln(out, "Apply cancelled.")
		return exitError{1}
	}
	if pl.agent != nil {
		return applyThroughAgent(cmd, f, pl.cl, pl.rev.Commit, pl.p)
	}
	return applyOnce(cmd, f, pl.rev, pl.p, kinds)
}

// oneShotKinds is what this process applies: everything the agent does
// (nil) when it answers, else the kinds asked for or all a one-shot
// process can keep.
func oneShotKinds(agent *control.AgentInfo, kinds map[string]bool) map[string]bool {
	if agent != nil {
		return nil
	}
	if kinds == nil {
		kinds = map[string]bool{}
		for _, k := range planapply.OneShot {
			kinds[k] = true
		}
	}
	return kinds
}

// applyThroughAgent hands the approved plan to the agent and prints what
// its pass did.
func applyThroughAgent(cmd *cobra.Command, f *planFlags, cl *control.Client, commit string, p *plan.Plan) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	r, err := cl.Apply(ctx, commit, p)
	if err != nil {
		return fmt.Errorf("handing the plan to the agent on %s: %w", f.socket, err)
	}
	return printAgentResult(cmd, r, commit)
}

func printAgentResult(cmd *cobra.Command, r control.ApplyReply, commit string) error {
	out := cmd.OutOrStdout()
	if err := planapply.Refusal(r, commit); err != nil {
		return err
	}
	fmt.Fprintf(out, "applied by the agent (pid %d): %s\n", r.Agent.PID, r.Summary)
	for _, ch := range r.Remaining {
		fmt.Fprintf(out, "  still differs: %s %s %s\n", ch.Driver, ch.Kind, ch.ID)
	}
	fmt.Fprintln(out, "The agent keeps running it: gitgw status shows what it runs.")
	return nil
}

// applyOnce applies, in this process, the part of p a one-shot process can
// keep: only those drivers are built, so that nothing of VRRP or the proxy
// is brought up, or torn down as it exits.
func applyOnce(cmd *cobra.Command, f *planFlags, rev reconcile.Revision, p *plan.Plan, kinds map[string]bool) error {
	ctx, out := cmd.Context(), cmd.OutOrStdout()
	log := newLogger(cmd, f.debug)
	scope, err := parseScope(f.scope)
	if err != nil {
		return err
	}
	only := oneShotKinds(nil, kinds)
	drivers, closeDrivers := buildDrivers(ctx, driverEnv{Node: f.node, StateDir: f.stateDir, Logger: log, Live: true,
		UnitDir: f.drivers.unitDir, SystemdSocket: f.drivers.systemdSocket, Only: only})
	defer closeDrivers()
	runner, err := reconcile.NewRunner(reconcile.RunnerOptions{Node: f.node, StateDir: f.stateDir, Drivers: drivers, Logger: log, Scope: scope,
		Check: reconcile.PolicyCheck(reconcile.PolicyOptions{Logger: log})})
	if err != nil {
		return err
	}
	res := runner.Pass(ctx, rev, reconcile.PassOptions{Expect: planapply.Only(p, only)})
	if errors.Is(res.Err, reconcile.ErrPlanMoved) {
		return fmt.Errorf("nothing applied: %w; plan again and review the new plan", res.Err)
	}
	fmt.Fprintf(out, "applied by this process (%s): %s\n", strings.Join(slices.Sorted(maps.Keys(only)), ", "), res.Summary())
	for _, ch := range res.Remaining {
		fmt.Fprintf(out, "  still differs: %s %s %s\n", ch.Driver, ch.Kind, ch.ID)
	}
	if left := len(p.Actionable()) - len(planapply.Only(p, only).Actionable()); left > 0 {
		fmt.Fprintf(out, "%d changes left to the agent (VRRP and the proxy run inside it): start it to apply them.\n", left)
	}
	if res.Outcome == reconcile.Failed || res.Outcome == reconcile.Rejected {
		return exitError{1}
	}
	return nil
}

// applySaved applies a plan saved by `gitgw plan -out FILE`, exactly: the
// agent (or this process) applies it only if it would make the same
// changes now, at the same commit.
func applySaved(cmd *cobra.Command, f *planFlags, file string, kinds map[string]bool) error {
	out := cmd.OutOrStdout()
	fh, err := os.Open(file)
	if err != nil {
		return err
	}
	s, err := plan.ReadSaved(fh, file)
	fh.Close()
	if err != nil {
		return err
	}
	if cmd.Flags().Changed("node") && f.node != s.Node {
		return fmt.Errorf("%s is a plan for node %s, not %s", file, s.Node, f.node)
	}
	f.node = s.Node
	p := s.Planned()
	fmt.Fprintf(out, "Saved plan %s, made %s against %s:\n\n", file, s.Created.Format("2006-01-02 15:04:05Z07:00"), observedBy(s.Observed))
	if err := plan.WriteText(out, p, plan.TextOptions{Color: !f.noColor && isTerminal(out), Verbose: f.verbose}); err != nil {
		return err
	}
	if f.socket != "" {
		ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
		defer cancel()
		cl := control.NewClient(f.socket)
		var err error
		if kinds != nil {
			// Only to know whether an agent runs: it applies the whole plan.
			if _, err = cl.Status(ctx); err == nil {
				return fmt.Errorf("--kinds limits a one-shot apply: the agent answers on %s and applies the whole plan", f.socket)
			}
		} else {
			var r control.ApplyReply
			if r, err = cl.Apply(ctx, s.Commit, p); err == nil {
				return printAgentResult(cmd, r, s.Commit)
			}
		}
		if !planapply.NoAgent(err) {
			return fmt.Errorf("the agent on %s: %w", f.socket, err)
		}
	}
	// No agent: this process applies what it can keep, at the commit the
	// plan was made at and nowhere else.
	if err := planapply.CheckOneShot(p, kinds, f.socket); err != nil {
		return err
	}
	if f.site.repo == "" && f.site.site == "" {
		f.site.repo, f.site.ref, f.site.path, f.site.site = s.Source.Repo, s.Source.Ref, s.Source.Path, s.Source.Site
	}
	src, cleanup, err := f.site.open(cmd.Context(), f.node, f.stateDir, false)
	if err != nil {
		return err
	}
	defer cleanup()
	rev, err := src.Sync(cmd.Context())
	if err != nil {
		return err
	}
	if rev.Commit != s.Commit {
		return fmt.Errorf("nothing applied: %s was planned at %s, and the site (%s) is now at %s: plan again",
			file, shortHash(s.Commit), src.Describe(), shortHash(rev.Commit))
	}
	return applyOnce(cmd, f, rev, p, kinds)
}

func observedBy(o plan.Observed) string {
	if o.By == plan.ObservedAgent {
		return fmt.Sprintf("the running agent (pid %d, running %s)", o.AgentPID, shortHash(o.Applied))
	}
	return "this host, with no agent running"
}

func shortHash(c string) string {
	if len(c) > 12 && !strings.ContainsAny(c, " /") {
		return c[:12]
	}
	return c
}
