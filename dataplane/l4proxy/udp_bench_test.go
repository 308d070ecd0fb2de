package l4proxy

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// BenchmarkUDPVersusNginx: UDP request/response through gitgw and through
// nginx's stream module (one worker each: GOMAXPROCS=1 and
// worker_processes 1), to the same two UDP echo servers, 64-byte requests:
//
//   - flows: 32 clients, each one socket (one flow, one session) sending a
//     request and waiting for its reply, again and again;
//   - dns: 32 clients, each request from a new socket (a new flow), the
//     session ending with its reply (UDPReplies 1, nginx's
//     proxy_responses 1): a DNS resolver's pattern.
//
// Both proxies run back to back in alternating order for 3 rounds; the
// ratio is the median of the rounds' gitgw/nginx ratios (for p99, lower is
// better: nginx/gitgw is printed, so > 1 favours gitgw too).
func BenchmarkUDPVersusNginx(b *testing.B) {
	lab.RequireCommand(b, "nginx")
	mod := "/usr/lib/nginx/modules/ngx_stream_module.so"
	if _, err := os.Stat(mod); err != nil {
		b.Fatalf("nginx's stream module (Debian libnginx-mod-stream): %v", err)
	}
	e1, e2 := udpEchoServer(b), udpEchoServer(b)
	gFlows, gDNS, nFlows, nDNS := freePort(b), freePort(b), freePort(b), freePort(b)
	flows := Service{Name: "flows", Protocol: ProtoUDP, Binds: []netip.AddrPort{gFlows},
		Servers: []Server{{Name: "e1", Addr: e1, Weight: 1}, {Name: "e2", Addr: e2, Weight: 1}}}
	dns := flows
	dns.Name, dns.Binds, dns.UDPReplies = "dns", []netip.AddrPort{gDNS}, 1
	g := startHelper(b, Config{BusyPoll: agentBusyPoll, Services: []Service{flows, dns}}, "GOMAXPROCS=1", "L4HELPER_SHARDS=1")
	npid := startNginxUDP(b, mod, e1, e2, nFlows, nDNS)
	type proxy struct {
		name       string
		pid        int
		flows, dns netip.AddrPort
	}
	proxies := []proxy{{"gitgw", g.cmd.Process.Pid, gFlows, gDNS}, {"nginx", npid, nFlows, nDNS}}
	const conc, d, rounds = 32, 2 * time.Second, 3
	res := map[string]map[string][]float64{} // metric → proxy → values
	add := func(m, p string, v float64) {
		if res[m] == nil {
			res[m] = map[string][]float64{}
		}
		res[m][p] = append(res[m][p], v)
	}
	for i := 0; i < b.N; i++ {
		for r := range rounds {
			order := proxies
			if r%2 == 1 {
				order = []proxy{proxies[1], proxies[0]}
			}
			for _, p := range order {
				c0 := cpuTime(p.pid)
				st := udpRequests(p.flows, conc, d, false)
				add("req/s (flows, c32)", p.name, st.rate())
				add("p99 µs (flows, c32)", p.name, float64(st.pct(0.99).Microseconds()))
				add("CPU µs per request (flows)", p.name, float64((cpuTime(p.pid)-c0).Microseconds())/float64(max(st.reqs, 1)))
				add("lost (flows)", p.name, float64(st.fails))
				c0 = cpuTime(p.pid)
				st = udpRequests(p.dns, conc, d, true)
				add("req/s (dns, new flow each)", p.name, st.rate())
				add("p99 µs (dns, new flow each)", p.name, float64(st.pct(0.99).Microseconds()))
				add("CPU µs per request (dns)", p.name, float64((cpuTime(p.pid)-c0).Microseconds())/float64(max(st.reqs, 1)))
				add("lost (dns)", p.name, float64(st.fails))
			}
		}
	}
	fmt.Printf("\n%-30s %10s %10s %8s   %s\n", b.Name(), "nginx", "gitgw", "ratio", "per-round ratios (gitgw/nginx; nginx/gitgw for p99 and CPU)")
	for _, m := range []string{"req/s (flows, c32)", "p99 µs (flows, c32)", "CPU µs per request (flows)", "lost (flows)",
		"req/s (dns, new flow each)", "p99 µs (dns, new flow each)", "CPU µs per request (dns)", "lost (dns)"} {
		gv, nv := res[m]["gitgw"], res[m]["nginx"]
		lowerBetter := m[:3] == "p99" || m[:3] == "CPU" || m[:4] == "lost"
		var rs []float64
		for k := range min(len(gv), len(nv)) {
			switch {
			case lowerBetter && gv[k] > 0:
				rs = append(rs, nv[k]/gv[k])
			case !lowerBetter && nv[k] > 0:
				rs = append(rs, gv[k]/nv[k])
			}
		}
		ratio := "-"
		if len(rs) > 0 {
			ratio = fmt.Sprintf("%.2f", median(rs))
		}
		fmt.Printf("%-30s %10.1f %10.1f %8s   %v\n", m, median(nv), median(gv), ratio, rs)
	}
	b.ReportMetric(median(res["req/s (flows, c32)"]["gitgw"]), "gitgw_flows_req/s")
	b.ReportMetric(median(res["req/s (flows, c32)"]["nginx"]), "nginx_flows_req/s")
	b.ReportMetric(median(res["req/s (dns, new flow each)"]["gitgw"]), "gitgw_dns_req/s")
	b.ReportMetric(median(res["req/s (dns, new flow each)"]["nginx"]), "nginx_dns_req/s")
}

// udpEchoServer echoes datagrams on loopback, with two readers.
func udpEchoServer(b *testing.B) netip.AddrPort {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	for range 2 {
		go func() {
			buf := make([]byte, 65535)
			for {
				n, from, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				_, _ = c.WriteToUDPAddrPort(buf[:n], from)
			}
		}()
	}
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// startNginxUDP runs nginx (stream module, one worker) in the foreground
// with a flows server and a dns one (proxy_responses 1); it is killed by
// PID at the end.
func startNginxUDP(b *testing.B, mod string, e1, e2, flows, dns netip.AddrPort) int {
	dir := b.TempDir()
	conf := fmt.Sprintf(`load_module %s;
worker_processes 1;
daemon off;
pid %s/nginx.pid;
error_log stderr warn;
events { worker_connections 65536; }
stream {
    upstream echo { server %s; server %s; }
    server { listen %s udp; proxy_pass echo; proxy_timeout 30s; }
    server { listen %s udp; proxy_pass echo; proxy_timeout 30s; proxy_responses 1; }
}
`, mod, dir, e1, e2, flows, dns)
	if err := os.WriteFile(dir+"/nginx.conf", []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	bin, _ := lab.LookPath("nginx")
	cmd := exec.Command(bin, "-p", dir, "-c", dir+"/nginx.conf", "-e", "stderr")
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
	// Ready once a request comes back.
	eventually(b, 30*time.Second, "nginx answering", func() bool {
		st := udpRequests(flows, 1, 50*time.Millisecond, false)
		return st.reqs > 0
	})
	// The worker does the work: its CPU time is what counts.
	if w := liveChildren(cmd.Process.Pid); len(w) == 1 {
		return w[0]
	}
	return cmd.Process.Pid
}

// udpRequests runs conc clients for d, each sending a 64-byte request and
// waiting for its reply (a reply not back in 500 ms counts as lost); with
// newFlow, every request comes from a new socket.
func udpRequests(addr netip.AddrPort, conc int, d time.Duration, newFlow bool) loadStats {
	var reqs, fails atomic.Int64
	lats := make([][]time.Duration, conc)
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	ua := net.UDPAddrFromAddrPort(addr)
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := make([]byte, 64)
			buf := make([]byte, 2048)
			var c *net.UDPConn
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for time.Now().Before(end) {
				if c == nil || newFlow {
					if c != nil {
						c.Close()
					}
					var err error
					if c, err = net.DialUDP("udp4", nil, ua); err != nil {
						fails.Add(1)
						c = nil
						continue
					}
				}
				t0 := time.Now()
				req[0] = byte(w)
				if _, err := c.Write(req); err != nil {
					fails.Add(1)
					continue
				}
				_ = c.SetReadDeadline(t0.Add(500 * time.Millisecond))
				if n, err := c.Read(buf); err != nil || n != len(req) {
					fails.Add(1)
					continue
				}
				lats[w] = append(lats[w], time.Since(t0))
				reqs.Add(1)
			}
		}()
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	return loadStats{reqs: reqs.Load(), fails: fails.Load(), lat: all, dur: time.Since(start)}
}
