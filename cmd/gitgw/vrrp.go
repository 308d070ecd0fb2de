package main

import (
	"context"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gitgw/gitgw/dataplane/vrrp"
)

func newVRRPCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vrrp",
		Short: "VRRP engine tools",
	}
	var stateDir string
	var timeout time.Duration
	release := &cobra.Command{
		Use:   "release [--state-dir DIR]",
		Short: "Hand over mastership after the agent died: priority-0 adverts, VIPs removed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			return vrrp.Release(ctx, stateDir, newLogger(cmd, false))
		},
	}
	release.Flags().StringVar(&stateDir, "state-dir", "/var/lib/gitgw", "the agent's state directory")
	release.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "give up after this long")
	var guardDir string
	guard := &cobra.Command{
		Use:    "guard --state-dir DIR",
		Short:  "The agent's guardian (started by the agent itself): releases mastership the instant the agent dies",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The guardian outlives the signals that stop the agent: it
			// acts when its life line (fd 3) closes, after a clean stop
			// with nothing to release.
			signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
			return vrrp.Guard(context.Background(), guardDir, vrrp.LifeLine(), newLogger(cmd, false).With("process", "guardian"))
		},
	}
	guard.Flags().StringVar(&guardDir, "state-dir", "/var/lib/gitgw", "the agent's state directory")
	cmd.AddCommand(release, guard)
	return cmd
}
