package units

import (
	"context"
	"fmt"
	"os"
)

// PendingJob asks systemd which job is running on the unit of this
// process: "restart" during `systemctl restart` (an upgrade's restart
// too), "stop" during `systemctl stop` or a shutdown, "" when none (the
// process was signalled by hand, or systemd is not its manager). The VRRP
// engine asks it on SIGTERM to tell a restart, after which the next agent
// resumes mastership, from a stop, after which the peer must take over at
// once. socketPath is as for Dial.
//
// A restart job keeps the type "restart" for its whole stop phase (systemd
// turns it into a start only once the unit is inactive), so asking while
// handling SIGTERM is not racy. Any error leaves the answer to the caller,
// which must treat it as a stop.
func PendingJob(ctx context.Context, socketPath string) (string, error) {
	c, err := Dial(ctx, socketPath)
	if err != nil {
		return "", err
	}
	defer c.Close()
	unit, err := c.c.GetUnitNameByPID(ctx, uint32(os.Getpid()))
	if err != nil {
		return "", fmt.Errorf("units: own unit: %w", err)
	}
	jobs, err := c.c.ListJobsContext(ctx)
	if err != nil {
		return "", fmt.Errorf("units: jobs of %s: %w", unit, err)
	}
	for _, j := range jobs {
		if j.Unit == unit {
			return j.JobType, nil
		}
	}
	return "", nil
}

// IsRestart says whether a job PendingJob returned starts the unit again
// once it has stopped.
func IsRestart(job string) bool { return job == "restart" || job == "try-restart" }
