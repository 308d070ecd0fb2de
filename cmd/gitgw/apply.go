package main

import (
	"context"
	"errors"
	"fmt"
	"slices"

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
	if pl.agent == nil && !planapply.Only(pl.p, planapply.OneShotKinds(kinds)).HasChanges() || !pl.p.HasChanges() {
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

// applyThroughAgent hands the approved plan to the agent and prints what
// its pass did.
func applyThroughAgent(cmd *cobra.Command, f *planFlags, cl *control.Client, commit string, p *plan.Plan) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	r, err := cl.Apply(ctx, commit, p)
	if err != nil {
		return fmt.Errorf("handing the plan to the agent on %s: %w", f.socket, err)
	}
	return planapply.WriteAgentResult(cmd.OutOrStdout(), r, commit)
}

// applyOnce applies, in this process, the part of p a one-shot process can
// keep: only those drivers are built, so that nothing of VRRP or the proxy
// is brought up, or torn down as it exits.
func applyOnce(cmd *cobra.Command, f *planFlags, rev reconcile.Revision, p *plan.Plan, kinds map[string]bool) error {
	ctx := cmd.Context()
	log := newLogger(cmd, f.debug)
	scope, err := parseScope(f.scope)
	if err != nil {
		return err
	}
	only := planapply.OneShotKinds(kinds)
	// Built as for a plan (no VRRP guardian), and only the kinds this
	// process can keep are handed to the runner.
	drv := reconcile.BuildDrivers(f.drivers.config(f.stateDir, log))
	defer drv.Close(context.Background())
	drivers := slices.DeleteFunc(slices.Clone(drv.List), func(d reconcile.Driver) bool { return !only[d.Name()] })
	runner, err := reconcile.NewRunner(reconcile.RunnerOptions{Node: f.node, StateDir: f.stateDir, Drivers: drivers, Logger: log, Scope: scope,
		Check: reconcile.PolicyCheck(reconcile.PolicyOptions{Logger: log})})
	if err != nil {
		return err
	}
	res := runner.Pass(ctx, rev, reconcile.PassOptions{Expect: planapply.Only(p, only)})
	if err := planapply.WriteOnce(cmd.OutOrStdout(), res, p, only); errors.Is(err, planapply.ErrOnceFailed) {
		return exitError{1}
	} else if err != nil {
		return err
	}
	return nil
}

// applySaved applies a plan saved by `gitgw plan -out FILE`, exactly: the
// agent (or this process) applies it only if it would make the same
// changes now, at the same commit.
func applySaved(cmd *cobra.Command, f *planFlags, file string, kinds map[string]bool) error {
	out := cmd.OutOrStdout()
	node := ""
	if cmd.Flags().Changed("node") {
		node = f.node
	}
	s, err := planapply.LoadSaved(file, node)
	if err != nil {
		return err
	}
	f.node = s.Node
	p := s.Planned()
	if err := planapply.WriteSavedHeader(out, file, s); err != nil {
		return err
	}
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
				return planapply.WriteAgentResult(out, r, s.Commit)
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
	if f.site.Git.URL == "" && f.site.Dir == "" {
		f.site.Git.URL, f.site.Git.Ref, f.site.Git.Path, f.site.Dir = s.Source.Repo, s.Source.Ref, s.Source.Path, s.Source.Site
	}
	src, cleanup, err := f.site.open(cmd.Context(), f.node, f.stateDir)
	if err != nil {
		return err
	}
	defer cleanup()
	rev, err := src.Sync(cmd.Context())
	if err != nil {
		return err
	}
	if err := planapply.CheckHead(file, s, rev.Commit, src.Describe()); err != nil {
		return err
	}
	return applyOnce(cmd, f, rev, p, kinds)
}
