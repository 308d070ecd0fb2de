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
		Args:  cobra.NoArgs,
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
		Args:  cobra.NoArgs,
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
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return f.run(cmd, (*control.Client).WriteSuspend) },
	}
	f.register(cmd.Flags())
	return cmd
}

func newResumeCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "resume",
		Short: "Apply again and clear every override",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return f.run(cmd, (*control.Client).WriteResume) },
	}
	f.register(cmd.Flags())
	return cmd
}

func newOverrideCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "override",
		Short: "Temporary runtime changes: drain or enable a proxy server, set its weight, give up VRRP mastership",
	}
	f.register(cmd.PersistentFlags())
	set := func(use, short, action string, args cobra.PositionalArgs) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Args: args,
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
		Use: "list", Short: "List the overrides in force", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.run(cmd, (*control.Client).WriteOverrides) },
	}
	clearCmd := &cobra.Command{
		Use: "clear [TARGET]", Short: "Clear the overrides of TARGET, or all",
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
		set("drain SERVICE/SERVER", "Drain a proxy server: no new connections, established ones stay", control.ActionDrain, cobra.ExactArgs(1)),
		set("enable SERVICE/SERVER", "Put a proxy server back in rotation", control.ActionEnable, cobra.ExactArgs(1)),
		set("weight SERVICE/SERVER WEIGHT", "Set a proxy server's weight (0..256)", control.ActionWeight, cobra.ExactArgs(2)),
		set("give-up INSTANCE", "Make this node leave mastership of a VRRP instance and stay backup", control.ActionGiveUp, cobra.ExactArgs(1)),
		list, clearCmd,
	)
	return cmd
}
