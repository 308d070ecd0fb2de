package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gitgw/gitgw/dataplane/vrrp"
	"github.com/gitgw/gitgw/units"
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
			log := newLogger(cmd, false)
			return vrrp.ReleaseWith(ctx, stateDir, log, vrrp.ReleaseOptions{IgnoreRestart: !restartGoesOn(ctx, log)})
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

// restartGoesOn says whether a restart record may be honoured: always
// when run by hand; as ExecStopPost= (systemd sets $SERVICE_RESULT) only
// when the service ended cleanly and systemd's job on the unit is still a
// restart. The second question closes the race of a `systemctl stop` that
// replaced the restart job after the agent asked: then the node releases
// at once, as on any stop. When systemd does not answer, it releases.
func restartGoesOn(ctx context.Context, log *slog.Logger) bool {
	res := os.Getenv("SERVICE_RESULT")
	if res == "" {
		return true
	}
	if res != "success" {
		return false
	}
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	job, err := units.PendingJob(qctx, "")
	if err != nil {
		log.Warn("cannot ask systemd whether the agent restarts: releasing mastership", "err", err)
		return false
	}
	return units.IsRestart(job)
}
