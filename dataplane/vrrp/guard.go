package vrrp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
)

// A guardian makes the crash handover immediate. Release run as the unit's
// ExecStopPost= costs a process start after systemd has noticed the death;
// a guardian is a small companion process, started with the agent, that
// holds the read end of a pipe whose write end only the agent has: the
// kernel closes it the instant the agent dies, however it dies, and the
// guardian releases at once (priority 0, VIPs removed). After a clean stop
// the state file is already empty, so the guardian's Release does nothing;
// after a restart it lists what a fresh restart record keeps for the next
// agent, which Release leaves alone (restart.go);
// ExecStopPost= stays as the backstop (for `systemctl kill`, which kills
// the guardian too). Release is idempotent, so both may run.

// Guardian is the agent's handle on its guardian process.
type Guardian struct {
	cmd *exec.Cmd
	w   *os.File
}

// StartGuardian starts cmd (typically the agent's own binary running
// `gitgw vrrp guard --state-dir DIR`, which calls Guard) with the read end
// of the life-line pipe as file descriptor 3.
func StartGuardian(cmd *exec.Cmd) (*Guardian, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("vrrp: guardian pipe: %w", err)
	}
	cmd.ExtraFiles = append([]*os.File{r}, cmd.ExtraFiles...)
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("vrrp: start guardian: %w", err)
	}
	r.Close()
	go func() { _ = cmd.Wait() }() // reap it whenever it ends
	return &Guardian{cmd: cmd, w: w}, nil
}

// PID is the guardian's process id.
func (g *Guardian) PID() int { return g.cmd.Process.Pid }

// Close ends the life line after a clean stop (Stop has emptied the state
// file, so the guardian has nothing to release).
func (g *Guardian) Close() error { return g.w.Close() }

// LifeLine is the pipe a guardian started by StartGuardian reads (fd 3).
func LifeLine() *os.File { return os.NewFile(3, "vrrp-lifeline") }

// Guard is the guardian's body: it blocks until lifeline reaches EOF (the
// agent is gone) or ctx ends, then releases what the state file in
// stateDir says the agent was master of.
func Guard(ctx context.Context, stateDir string, lifeline io.Reader, logger *slog.Logger) error {
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, lifeline)
		done <- err
	}()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-done:
		if err != nil && !errors.Is(err, os.ErrClosed) {
			return fmt.Errorf("vrrp: guardian life line: %w", err)
		}
	}
	return Release(context.Background(), stateDir, logger)
}
