package main

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gitgw/gitgw/reconcile/control"
)

// clientFlags locate the agent's socket.
type clientFlags struct {
	socket  string
	timeout time.Duration
}

func (f *clientFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.socket, "socket", control.DefaultSocket, "the agent's control socket")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "how long to wait for the agent")
}

// run asks the agent on the socket, within the timeout.
func (f *clientFlags) run(cmd *cobra.Command, do func(*control.Client, context.Context, io.Writer) error) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	return do(control.NewClient(f.socket), ctx, cmd.OutOrStdout())
}

func newStatusCmd() *cobra.Command {
	var f clientFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [--json]",
		Short: "Show what the running agent runs: commits, last pass, VRRP, services, units, tuning, drift, overrides",
		Long: `status asks the agent on this node, over its control socket, for what it runs
now: the desired and applied commits, the last pass, VRRP instances with their
state, priority arithmetic and VIPs, proxy services with their servers' health,
units, tuning, drift and the operator's overrides. The same is on the status
page (http://127.0.0.1:9142/) and, as of the last pass, on the status branch.`,
		Example: `  gitgw status
  gitgw status --json | jq '.vrrp[] | {name, state, priority}'
  gitgw status --socket /run/gitgw-lab/gitgw.sock`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(cl *control.Client, ctx context.Context, w io.Writer) error {
				return cl.WriteStatus(ctx, w, asJSON)
			})
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON (versioned: .version)")
	return cmd
}

func newReconcileCmd() *cobra.Command {
	var f clientFlags
	var noWait bool
	cmd := &cobra.Command{
		Use:   "reconcile",
		Short: "Ask the agent for a pass now and print its result",
		Example: `  gitgw reconcile
  gitgw reconcile --no-wait   # only ask; the pass runs in the background`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := f.run(cmd, func(cl *control.Client, ctx context.Context, w io.Writer) error {
				return cl.WriteReconcile(ctx, w, !noWait)
			})
			if errors.Is(err, control.ErrPassFailed) {
				return exitError{1}
			}
			return err
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the pass is requested")
	return cmd
}

func newSuspendCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "suspend",
		Short: "Stop applying: the agent keeps planning and reporting, and changes nothing, until resume",
		Long: `suspend stops the agent from applying anything, new commits and drift
corrections alike. It keeps running passes, which plan and report (outcome
"suspended", the held changes as pending). The VRRP engine and the proxy keep
running as they are. Overrides still apply. resume ends it.`,
		Example: `  gitgw suspend && vi /etc/...   # hands-on maintenance; gitgw will not undo it
  gitgw resume`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.run(cmd, (*control.Client).WriteSuspend) },
	}
	f.register(cmd.Flags())
	return cmd
}

func newResumeCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:     "resume",
		Short:   "Apply again and clear every override",
		Example: `  gitgw resume`,
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return f.run(cmd, (*control.Client).WriteResume) },
	}
	f.register(cmd.Flags())
	return cmd
}

func newOverrideCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "override",
		Short: "Temporary runtime changes: drain or enable a proxy server, set its weight, give up VRRP mastership",
		Long: `override changes what the node runs without a commit, for maintenance. Each
override is temporary: it shows in gitgw status, on the status page and on the
status branch, and it ends with gitgw resume, gitgw override clear, or the
first pass that applies another commit.`,
		Example: `  gitgw override drain web/s2          # no new connections to s2; established ones stay
  gitgw override weight web/s1 50
  gitgw override enable web/s2         # back in rotation, even if the site drains it
  gitgw override give-up VI_1          # priority 0 advert, then backup at priority 1
  gitgw override list
  gitgw override clear web/s2          # or: gitgw override clear (all)`,
	}
	f.register(cmd.PersistentFlags())
	set := func(use, short, example, action string, args cobra.PositionalArgs) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Example: example, Args: args,
			RunE: func(cmd *cobra.Command, args []string) error {
				req, err := control.ParseOverride(action, args)
				if err != nil {
					return err
				}
				return f.run(cmd, func(cl *control.Client, ctx context.Context, w io.Writer) error { return cl.WriteOverride(ctx, w, req) })
			},
		}
	}
	list := &cobra.Command{
		Use: "list", Short: "List the overrides in force", Example: "  gitgw override list", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.run(cmd, (*control.Client).WriteOverrides) },
	}
	clearCmd := &cobra.Command{
		Use: "clear [TARGET]", Short: "Clear the overrides of TARGET, or all", Example: "  gitgw override clear web/s2\n  gitgw override clear",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := ""
			if len(args) == 1 {
				target = args[0]
			}
			return f.run(cmd, func(cl *control.Client, ctx context.Context, w io.Writer) error { return cl.WriteClear(ctx, w, target) })
		},
	}
	cmd.AddCommand(
		set("drain SERVICE/SERVER", "Drain a proxy server: no new connections, established ones stay", "  gitgw override drain web/s2", control.ActionDrain, cobra.ExactArgs(1)),
		set("enable SERVICE/SERVER", "Put a proxy server back in rotation", "  gitgw override enable web/s2", control.ActionEnable, cobra.ExactArgs(1)),
		set("weight SERVICE/SERVER WEIGHT", "Set a proxy server's weight (0..256)", "  gitgw override weight web/s1 50", control.ActionWeight, cobra.ExactArgs(2)),
		set("give-up INSTANCE", "Make this node leave mastership of a VRRP instance and stay backup", "  gitgw override give-up VI_1", control.ActionGiveUp, cobra.ExactArgs(1)),
		list, clearCmd,
	)
	return cmd
}

// addCompletionExamples gives cobra's completion command and its
// subcommands an example each.
func addCompletionExamples(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		c.Example = `  gitgw completion bash > /etc/bash_completion.d/gitgw
  source <(gitgw completion bash)
  gitgw completion zsh > "${fpath[1]}/_gitgw"`
		for _, sh := range c.Commands() {
			switch sh.Name() {
			case "fish":
				sh.Example = "  gitgw completion fish > ~/.config/fish/completions/gitgw.fish"
			case "powershell":
				sh.Example = "  gitgw completion powershell | Out-String | Invoke-Expression"
			default:
				sh.Example = "  source <(gitgw completion " + sh.Name() + ")"
			}
		}
	}
}
