package l4proxy

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// BenchmarkL4RestartUnderLoad restarts the proxy 10 times, once a second,
// while 16 long-lived connections stream data both ways and 20 clients
// open short connections, and counts what failed:
//
//   - gitgw hand-over: the agent's restart (Pool.HandOver): listeners and
//     connections go to the new process, the old one exits at once;
//   - gitgw plain: listeners are passed on, connections are not (the old
//     process closes them): what every restart cost before the hand-over;
//   - haproxy -sf: HAProxy's reload: a new process binds beside the old
//     one, which stops listening and serves its connections until they end
//     (so after n reloads, n old processes hold the long-lived ones).
//
// A long-lived connection counts as cut when it fails or any byte differs.
func BenchmarkL4RestartUnderLoad(b *testing.B) {
	lab.RequireCommand(b, "haproxy")
	const restarts, streams, shortConc = 10, 16, 20
	rr1, rr2 := rrBackend(b), rrBackend(b)
	e1, e2 := newBackend(b, "e1"), newBackend(b, "e2")
	type result struct {
		cut, shortFailed, shortOK int64
		left                      int
		pause                     time.Duration
	}
	run := func(mode string) result {
		rrBind, echoBind := freePort(b), freePort(b)
		var restart func() time.Duration
		var pids []int
		switch mode {
		case "haproxy -sf":
			cfg := lab.HAProxyConfig{Splice: true, Services: []lab.HAProxyService{
				{Name: "rr", Bind: rrBind.String(), Servers: []string{rr1.String(), rr2.String()}},
				{Name: "echo", Bind: echoBind.String(), Servers: []string{e1.addr.String(), e2.addr.String()}},
			}}
			h := lab.StartHAProxy(b, cfg)
			bin, _ := lab.LookPath("haproxy")
			pids = append(pids, h.Pid())
			restart = func() time.Duration {
				t0 := time.Now()
				cmd := exec.Command(bin, "-db", "-f", h.Config, "-sf", strconv.Itoa(pids[len(pids)-1]))
				cmd.Stderr = os.Stderr
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				go func() { _ = cmd.Wait() }()
				pids = append(pids, cmd.Process.Pid)
				return time.Since(t0)
			}
		case "haproxy -W USR2":
			cfg := lab.HAProxyConfig{Splice: true, Services: []lab.HAProxyService{
				{Name: "rr", Bind: rrBind.String(), Servers: []string{rr1.String(), rr2.String()}},
				{Name: "echo", Bind: echoBind.String(), Servers: []string{e1.addr.String(), e2.addr.String()}},
			}}
			master := startHAProxyMaster(b, cfg, rrBind, echoBind)
			pids = append(pids, master)
			restart = func() time.Duration {
				_ = syscall.Kill(master, syscall.SIGUSR2)
				return 0
			}
		default:
			env := []string{"L4HELPER_HANDOVER=conns"}
			if mode == "gitgw plain" {
				env = []string{"L4HELPER_DRAIN=0s"}
			}
			g := startHelper(b, Config{BusyPoll: agentBusyPoll, Services: []Service{
				{Name: "rr", Binds: []netip.AddrPort{rrBind}, Servers: []Server{{Name: "s1", Addr: rr1, Weight: 1}, {Name: "s2", Addr: rr2, Weight: 1}}},
				{Name: "echo", Binds: []netip.AddrPort{echoBind}, Servers: []Server{srvCfg(e1, 1), srvCfg(e2, 1)}},
			}}, env...)
			pids = append(pids, g.cmd.Process.Pid)
			restart = func() time.Duration {
				t0 := time.Now()
				_ = syscall.Kill(pids[len(pids)-1], syscall.SIGHUP)
				for {
					line, err := g.readLine(30 * time.Second)
					if err != nil {
						b.Fatalf("%s: restart: %v", mode, err)
					}
					if strings.HasPrefix(line, "handover ") {
						pid, _ := strconv.Atoi(strings.Fields(line)[1])
						pids = append(pids, pid)
						return time.Since(t0)
					}
				}
			}
		}
		b.Cleanup(func() {
			for _, p := range pids {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
		})
		var ss []*echoStream
		for i := range streams {
			s, err := dialStream(echoBind, i, false)
			if err != nil {
				b.Fatalf("%s: %v", mode, err)
			}
			ss = append(ss, s)
		}
		done := make(chan loadStats)
		go func() { done <- requests(rrBind.String(), shortConc, restarts*time.Second+500*time.Millisecond, false) }()
		var res result
		for r := range restarts {
			// 1 MiB more per stream and second: data flows at every restart.
			for _, s := range ss {
				s.allow(int64(r+1) << 20)
			}
			time.Sleep(time.Second)
			res.pause = max(res.pause, restart())
		}
		st := <-done
		for _, p := range pids {
			if processAlive(p) {
				res.left++
			}
			res.left += len(liveChildren(p)) // HAProxy's workers
		}
		for _, s := range ss {
			s.allow(int64(restarts+1) << 20)
		}
		for _, s := range ss {
			// A cut stream ends on its error; a live one echoes in full.
			s.finish()
			if s.err() != nil || s.recv.Load() != s.sent.Load() {
				res.cut++
			}
		}
		res.shortOK, res.shortFailed = st.reqs, st.fails
		return res
	}
	for i := 0; i < b.N; i++ {
		got := map[string]result{}
		fmt.Printf("%-16s %8s %12s %12s %14s %10s\n", "restart", "restarts", "streams cut", "short ok", "short failed", "processes")
		fmt.Println("(processes: proxy processes still running after the last restart, old ones finishing their connections)")
		for _, mode := range []string{"gitgw hand-over", "gitgw plain", "haproxy -sf", "haproxy -W USR2"} {
			r := run(mode)
			got[mode] = r
			fmt.Printf("%-16s %8d %9d/%-2d %12d %14d %10d\n", mode, restarts, r.cut, streams, r.shortOK, r.shortFailed, r.left)
		}
		g, p, h, w := got["gitgw hand-over"], got["gitgw plain"], got["haproxy -sf"], got["haproxy -W USR2"]
		fmt.Printf("failed connections (streams cut + short failed): gitgw %d, haproxy -sf %d, haproxy master-worker %d, plain restart %d; gitgw/haproxy -sf %s, gitgw/haproxy -W %s\n",
			g.cut+g.shortFailed, h.cut+h.shortFailed, w.cut+w.shortFailed, p.cut+p.shortFailed,
			ratio(g.cut+g.shortFailed, h.cut+h.shortFailed), ratio(g.cut+g.shortFailed, w.cut+w.shortFailed))
		fmt.Printf("proxy processes running after %d restarts: gitgw %d, haproxy -sf %d, haproxy -W %d (master included)\n", restarts, g.left, h.left, w.left)
		b.ReportMetric(float64(g.cut), "cut_gitgw")
		b.ReportMetric(float64(h.cut), "cut_haproxy")
		b.ReportMetric(float64(p.cut), "cut_plain")
		b.ReportMetric(float64(g.shortFailed), "shortfail_gitgw")
		b.ReportMetric(float64(h.shortFailed), "shortfail_haproxy")
		b.ReportMetric(float64(w.cut), "cut_haproxy_mw")
		b.ReportMetric(float64(w.shortFailed), "shortfail_haproxy_mw")
	}
}

// ratio prints a/b, or "equal (both 0)".
func ratio(a, b int64) string {
	if b == 0 {
		if a == 0 {
			return "equal (both 0)"
		}
		return "inf"
	}
	return fmt.Sprintf("%.2f×", float64(a)/float64(b))
}

// startHAProxyMaster runs HAProxy in master-worker mode (-W), as its
// systemd unit does (`systemctl reload haproxy` sends the master SIGUSR2),
// and waits until the binds accept; the master is killed by PID at the end
// (its workers exit with it).
func startHAProxyMaster(b *testing.B, cfg lab.HAProxyConfig, binds ...netip.AddrPort) int {
	bin, _ := lab.LookPath("haproxy")
	path := b.TempDir() + "/haproxy.cfg"
	if err := os.WriteFile(path, []byte(cfg.Render()), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "-W", "-db", "-f", path)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		for _, c := range liveChildren(cmd.Process.Pid) {
			_ = syscall.Kill(c, syscall.SIGKILL)
		}
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	for _, a := range binds {
		eventually(b, 30*time.Second, "haproxy accepting on "+a.String(), func() bool {
			c, err := net.DialTimeout("tcp", a.String(), time.Second)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
	return cmd.Process.Pid
}

// liveChildren lists pid's child processes that are not zombies.
func liveChildren(pid int) []int {
	raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	var out []int
	for _, f := range strings.Fields(string(raw)) {
		if c, err := strconv.Atoi(f); err == nil && processAlive(c) {
			out = append(out, c)
		}
	}
	return out
}
