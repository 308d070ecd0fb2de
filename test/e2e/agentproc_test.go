package e2e

import (
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// netnsAgent is `gitgw agent` run by a test inside a network namespace:
// its output collected, and stopped by PID (SIGTERM, then SIGKILL after
// 20 s) when the test ends. `ip netns exec` execs the agent, so the PID is
// the agent's own.
type netnsAgent struct {
	name   string
	cmd    *exec.Cmd
	logs   *nicLog
	exited chan error
}

// startNetnsAgent starts `gitgw agent ARGS…` in ns; name labels its log.
func startNetnsAgent(t *testing.T, ns *lab.Netns, name string, args ...string) *netnsAgent {
	t.Helper()
	a := &netnsAgent{
		name:   name,
		cmd:    exec.Command("ip", append([]string{"netns", "exec", ns.Name, gitgwBin, "agent"}, args...)...),
		logs:   &nicLog{},
		exited: make(chan error, 1),
	}
	a.cmd.Stdout, a.cmd.Stderr = a.logs, a.logs
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.exited <- a.cmd.Wait() }()
	t.Cleanup(func() {
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.exited:
		case <-time.After(20 * time.Second):
			_ = a.cmd.Process.Kill()
			<-a.exited
		}
		if t.Failed() {
			t.Logf("%s agent log (last lines):\n%s", a.name, nicLastLines(a.logs.String(), 60))
		}
	})
	return a
}

// alive fails the test if the agent has exited.
func (a *netnsAgent) alive(t *testing.T, before string) {
	t.Helper()
	select {
	case err := <-a.exited:
		a.exited <- err
		t.Fatalf("%s agent exited (%v) before %s", a.name, err, before)
	default:
	}
}
