package l4proxy

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBusyPoll runs two proxy processes on one P, one with busy polling,
// under the same paced keep-alive traffic (a request every millisecond):
// the polling one must poll through the gaps instead of sleeping, and its
// health checks must keep their pace while its loop never parks.
func TestBusyPoll(t *testing.T) {
	rr := rrBackendT(t)
	victim := newBackend(t, "victim")
	// run returns the CPU time and the sleeps (voluntary context switches)
	// of a pool over one second of requests, each 1 ms after the last reply.
	run := func(busy time.Duration) (cpu time.Duration, sleeps int, h *helperProc, bind netip.AddrPort) {
		bind, checked := freePort(t), freePort(t)
		h = startHelper(t, Config{BusyPoll: busy, Services: []Service{
			{Name: "rr", Binds: []netip.AddrPort{bind}, Servers: []Server{{Name: "s", Addr: rr, Weight: 1}}},
			{Name: "checked", Binds: []netip.AddrPort{checked}, Servers: []Server{srvCfg(victim, 1)},
				Check: &Check{Type: CheckTCP, Interval: 50 * time.Millisecond, Timeout: 50 * time.Millisecond, Rise: 1, Fall: 2}},
		}}, "GOMAXPROCS=1", "L4HELPER_SHARDS=1")
		c, err := net.Dial("tcp", bind.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		req, resp := []byte(strings.Repeat("q", reqSize)), make([]byte, respSize)
		pid := h.cmd.Process.Pid
		c0, s0 := cpuTime(pid), voluntarySwitches(t, pid)
		for end := time.Now().Add(time.Second); time.Now().Before(end); {
			if _, err := c.Write(req); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, resp); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
		}
		return cpuTime(pid) - c0, voluntarySwitches(t, pid) - s0, h, bind
	}
	idleCPU, idleSleeps, _, _ := run(0)
	busyCPU, busySleeps, h, bind := run(5 * time.Millisecond)
	t.Logf("over 1 s of paced requests: %d sleeps and %v of CPU without busy polling, %d and %v with a 5ms window",
		idleSleeps, idleCPU, busySleeps, busyCPU)
	// Parked, the loop sleeps twice per request (the request, the reply);
	// polling, it does not sleep at all. CPU time would say the same on an
	// idle box, but a polling loop yields to the other tests' threads.
	if idleSleeps < 500 || busySleeps > idleSleeps/3 {
		t.Errorf("the loop slept %d times with busy polling, %d without: it does not poll between requests", busySleeps, idleSleeps)
	}

	// Keep the polling loop busy while the checked server dies: fall 2 ×
	// 50 ms must still mark it down promptly.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		c, err := net.Dial("tcp", bind.String())
		if err != nil {
			return
		}
		defer c.Close()
		req, resp := []byte(strings.Repeat("q", reqSize)), make([]byte, respSize)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := c.Write(req); err != nil {
				return
			}
			if _, err := io.ReadFull(c, resp); err != nil {
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)
	victim.kill()
	t0 := time.Now()
	eventually(t, 3*time.Second, "the killed server marked down while the loop polls", func() bool {
		s, err := h.snapshot(h.stats)
		if err != nil {
			return false
		}
		for _, svc := range s.Services {
			for _, sv := range svc.Servers {
				if svc.Name == "checked" && sv.Status == "DOWN" {
					return true
				}
			}
		}
		return false
	})
	t.Logf("marked down %v after the kill (fall 2 × 50 ms)", time.Since(t0).Round(time.Millisecond))
}

// voluntarySwitches sums the voluntary context switches of a process's threads: a
// thread that blocks (epoll_wait, futex, nanosleep) counts one.
func voluntarySwitches(t *testing.T, pid int) int {
	dirs, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range dirs {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, d.Name()))
		if err != nil {
			continue // the thread exited
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
				k, _ := strconv.Atoi(strings.TrimSpace(v))
				n += k
			}
		}
	}
	return n
}
