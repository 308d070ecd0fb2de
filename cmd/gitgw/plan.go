package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/internal/logs"
	"github.com/gitgw/gitgw/reconcile/control"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
	"github.com/gitgw/gitgw/reconcile/planapply"
)

// planFlags are gitgw plan's and gitgw apply's: they fill a
// planapply.Command.
type planFlags struct {
	c           planapply.Command
	site        siteFlags
	detailed    bool
	noColor     bool
	debug       bool
	scope       string
	drivers     driverFlags
	allNodes    bool
	format      string
	markdownMax int
	kinds       string
}

func (f *planFlags) register(cmd *cobra.Command) {
	f.site.register(cmd)
	c, fl := &f.c, cmd.Flags()
	nodeFlag(fl, &c.Node, "node to plan for")
	fl.StringVar(&c.StateDir, "state-dir", "", "state directory (last applied state); none by default for one-shot commands")
	fl.BoolVar(&c.JSON, "json", false, "print the plan as versioned JSON")
	fl.BoolVar(&f.detailed, "detailed-exitcode", false, "exit 0 when there are no changes, 2 when there are, 1 on error")
	fl.BoolVarP(&c.Text.Verbose, "verbose", "v", false, "also list resources that are already as desired")
	fl.BoolVar(&f.noColor, "no-color", false, "never colour the output")
	fl.BoolVar(&f.debug, "debug", false, "debug logging")
	fl.StringVar(&c.Observed.Source, "observed", "", `plan against "status": the node's last reported state, read from its status branch, instead of the live host`)
	fl.StringVar(&c.Observed.Repo, "status-repo", "", "repository holding the status branches (default: --repo, or the --site directory's repository)")
	fl.StringVar(&c.Observed.Prefix, "status-branch-prefix", gitrepo.DefaultStatusPrefix, "prefix of the nodes' status branches")
	fl.StringVar(&f.scope, "scope", "auto", scopeHelp)
	f.drivers.register(fl)
	fl.StringVar(&c.Socket, "socket", control.DefaultSocket, `the agent's control socket: when an agent answers there, it makes the plan with what it runs (VRRP roles and VIPs, proxy binds and servers), and apply hands the plan to it; "" never asks it`)
	fl.DurationVar(&c.Timeout, "timeout", 30*time.Minute, "how long to wait for the agent's plan, or for its pass to apply the plan (the bake window included)")
}

const scopeHelp = "what the schema is applied to: site (everything: an error anywhere rejects the commit), node (this node's part; validate the site in CI), auto (site up to 200 nodes)"

// command is the planapply.Command the flags describe, for cmd.
func (f *planFlags) command(cmd *cobra.Command) *planapply.Command {
	c := f.c
	out := cmd.OutOrStdout()
	c.Source, c.Scope, c.Drivers = f.site.SourceConfig, loader.Scope(f.scope), f.drivers.config("", nil)
	c.Text.Color = !f.noColor && logs.IsTerminal(out)
	c.Logger, c.Stdin, c.Stdout, c.Stderr = newLogger(cmd, f.debug), cmd.InOrStdin(), out, cmd.ErrOrStderr()
	return &c
}

// exit maps planapply's errors to exit codes: 1 for a site with errors, a
// cancelled or failed apply (the reason is printed already), and, with
// --detailed-exitcode, 1 for any error (printed here) and 2 for changes.
func (f *planFlags) exit(cmd *cobra.Command, changes bool, err error) error {
	switch {
	case errors.Is(err, planapply.ErrSiteInvalid), errors.Is(err, planapply.ErrCancelled), errors.Is(err, planapply.ErrOnceFailed):
		return exitError{1}
	case err != nil && f.detailed:
		fmt.Fprintln(cmd.ErrOrStderr(), "gitgw:", err)
		return exitError{1}
	case err == nil && changes && f.detailed:
		return exitError{2}
	}
	return err
}

func newPlanCmd() *cobra.Command {
	var f planFlags
	cmd := &cobra.Command{
		Use:   "plan (--site DIR | --repo URL) [--node NAME | --all-nodes --observed status]",
		Short: "Show what applying the site would change on this node (asking its running agent), or on every node (a dry run)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.allNodes {
				format, err := planapply.ParseFormat(f.format, f.c.JSON)
				if err != nil {
					return f.exit(cmd, false, err)
				}
				changes, err := f.command(cmd).WritePlanAll(cmd.Context(), format, f.markdownMax, cmd.Flags().Changed("node"))
				return f.exit(cmd, changes, err)
			}
			if cmd.Flags().Changed("format") {
				if f.format == "markdown" {
					return fmt.Errorf("--format markdown renders every node's plan: add --all-nodes --observed status")
				}
				if _, err := planapply.ParseFormat(f.format, f.c.JSON); err != nil {
					return err
				}
				f.c.JSON = f.format == "json"
			}
			changes, err := f.command(cmd).WritePlan(cmd.Context())
			return f.exit(cmd, changes, err)
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&f.allNodes, "all-nodes", false, "plan every node of the site in one run, against each node's status branch (needs --observed status), with a summary table")
	cmd.Flags().StringVar(&f.format, "format", "text", "output: text, json, or markdown (a review comment; with --all-nodes)")
	cmd.Flags().StringVar(&f.c.Out, "out", "", "save the plan to this file, for gitgw apply FILE to apply exactly it (Terraform's -out; -out FILE works too)")
	cmd.Flags().IntVar(&f.markdownMax, "markdown-max-bytes", 0, "with --format markdown, leave out the plans that do not fit in this many bytes (the summary table stays whole; GitHub takes 65536 characters per comment); 0 for no limit")
	return cmd
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
