package vrrp

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"
)

// notifier runs an instance's notify commands one at a time on its own
// goroutine, so that a slow hook never delays the protocol. When its queue
// is full, new hooks are dropped and logged.
type notifier struct {
	log  *slog.Logger
	jobs chan notifyJob
	done chan struct{}
}

type notifyJob struct {
	argv    []string
	env     []string
	timeout time.Duration
}

func newNotifier(log *slog.Logger, name string) *notifier {
	n := &notifier{log: log.With("instance", name), jobs: make(chan notifyJob, 16), done: make(chan struct{})}
	go n.loop()
	return n
}

func (n *notifier) loop() {
	defer close(n.done)
	for j := range n.jobs {
		ctx, cancel := context.WithTimeout(context.Background(), j.timeout)
		cmd := exec.CommandContext(ctx, j.argv[0], j.argv[1:]...)
		cmd.Env = append(os.Environ(), j.env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			n.log.Warn("notify hook failed", "argv", j.argv, "err", err, "output", strings.TrimSpace(string(out)))
		}
		cancel()
	}
}

// run queues the hook of state s, if any.
func (n *notifier) run(c Instance, s State, prio uint8) {
	var argv []string
	switch s {
	case StateMaster:
		argv = c.Notify.Master
	case StateBackup:
		argv = c.Notify.Backup
	case StateFault:
		argv = c.Notify.Fault
	case StateInit:
		argv = c.Notify.Stop
	}
	if len(argv) == 0 {
		return
	}
	var vips []string
	for _, v := range c.VIPs {
		vips = append(vips, v.Prefix.String())
	}
	for _, v := range c.ExcludedVIPs {
		vips = append(vips, v.Prefix.String())
	}
	state := s.String()
	if s == StateInit {
		state = "STOP"
	}
	j := notifyJob{argv: argv, timeout: c.Notify.Timeout, env: []string{
		"GITGW_INSTANCE=" + c.Name,
		"GITGW_STATE=" + state,
		fmt.Sprintf("GITGW_PRIORITY=%d", prio),
		"GITGW_VIPS=" + strings.Join(vips, " "),
	}}
	select {
	case n.jobs <- j:
	default:
		n.log.Warn("notify hook dropped: queue full", "state", state)
	}
}

// close lets queued hooks finish (until ctx ends) and stops the goroutine.
func (n *notifier) close(ctx context.Context) {
	close(n.jobs)
	select {
	case <-n.done:
	case <-ctx.Done():
	}
}
