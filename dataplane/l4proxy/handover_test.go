package l4proxy

import (
	"io"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHandOverAcrossRestart restarts the proxy process under load the way
// the agent restarts: the old process passes its listening sockets to its
// successor, stops accepting and drains. No connection may be refused or
// cut, and a connection established before the restart keeps working on the
// old process until it ends.
func TestHandOverAcrossRestart(t *testing.T) {
	t.Parallel()
	a, b := newBackend(t, "a"), newBackend(t, "b")
	bind := freePort(t)
	h := startHelper(t, Config{Services: []Service{{
		Name: "web", Binds: []netip.AddrPort{bind}, Servers: []Server{srvCfg(a, 1), srvCfg(b, 1)},
	}}})
	var successors []int
	_, held, err := dialName(bind)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	stop := make(chan struct{})
	res, wg := runLoad(bind, 4, stop)
	pid := h.cmd.Process.Pid
	t.Cleanup(func() {
		// Successors are not our children: stop them by PID.
		for _, p := range successors {
			_ = syscall.Kill(p, syscall.SIGTERM)
		}
		deadline := time.Now().Add(40 * time.Second)
		for _, p := range successors {
			for syscall.Kill(p, 0) == nil && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	})
	for round := 0; round < 3; round++ {
		eventually(t, 20*time.Second, "load running", func() bool { return res.ok.Load() > int64(100*(round+1)) })
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		line, err := h.readLine(30 * time.Second)
		if err != nil || !strings.HasPrefix(line, "handover ") {
			t.Fatalf("round %d: no hand-over: %q %v", round, line, err)
		}
		f := strings.Fields(line)
		pid, _ = strconv.Atoi(f[1])
		successors = append(successors, pid)
	}
	eventually(t, 20*time.Second, "load after the last restart", func() bool { return res.ok.Load() > 500 })
	close(stop)
	wg.Wait()
	if n := res.failed.Load(); n != 0 {
		t.Errorf("%d connections failed across 3 restarts (%d ok): %v", n, res.ok.Load(), res.errs)
	}
	// The connection from before the first restart is still served.
	held.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(held, "still here")
	buf := make([]byte, len("still here"))
	if _, err := io.ReadFull(held, buf); err != nil || string(buf) != "still here" {
		t.Errorf("pre-restart connection: %q %v", buf, err)
	}
	t.Logf("%d connections across 3 restarts, 0 failed", res.ok.Load())
}
