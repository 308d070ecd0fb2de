package l4proxy

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// The side-by-side benchmarks run gitgw's pool (this test binary as a
// separate process, GOMAXPROCS=1, one listener shard, the agent's default
// busy polling) and HAProxy 2.6 (`mode tcp`, nbthread 1, its defaults)
// against the same Go backends with the same Go load generator, each test
// back to back on both in alternating order for several rounds, and print
// medians with the median of the rounds' gitgw/HAProxy ratios. Rates vary
// with the load of a shared 2-core box; the proxy's own CPU per unit of
// work is the robust comparison.

const (
	benchRounds = 5
	reqSize     = 64
	respSize    = 64
)

// rrBackend answers every reqSize-byte request with respSize bytes; a
// request starting with 'C' asks it to close after answering (the
// short-connection test: the server closes first, as with HTTP
// Connection: close).
func rrBackend(b *testing.B) netip.AddrPort { return rrBackendT(b) }

func rrBackendT(b testing.TB) netip.AddrPort {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	resp := []byte(strings.Repeat("r", respSize-1) + "\n")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req := make([]byte, reqSize)
				for {
					if _, err := io.ReadFull(c, req); err != nil {
						return
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
					if req[0] == 'C' {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// bulkBackend writes 64 KiB chunks until the client goes away.
func bulkBackend(b *testing.B) netip.AddrPort {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	chunk := make([]byte, 64<<10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for {
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

type loadStats struct {
	reqs, fails int64
	lat         []time.Duration
	dur         time.Duration
}

func (l loadStats) rate() float64 { return float64(l.reqs) / l.dur.Seconds() }
func (l loadStats) pct(p float64) time.Duration {
	if len(l.lat) == 0 {
		return 0
	}
	return l.lat[min(len(l.lat)-1, int(float64(len(l.lat))*p))]
}

// requests runs conc clients for d: each request is reqSize out, respSize
// back; with keepalive false every request is a new connection.
func requests(addr string, conc int, d time.Duration, keepalive bool) loadStats {
	var reqs, fails atomic.Int64
	lats := make([][]time.Duration, conc)
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	req := make([]byte, reqSize)
	for i := range req {
		req[i] = 'q'
	}
	if !keepalive {
		req[0] = 'C'
	}
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1<<16)
			resp := make([]byte, respSize)
			var c net.Conn
			for time.Now().Before(end) {
				t0 := time.Now()
				if c == nil {
					var err error
					c, err = net.DialTimeout("tcp", addr, 5*time.Second)
					if err != nil {
						fails.Add(1)
						continue
					}
				}
				_ = c.SetDeadline(t0.Add(10 * time.Second))
				if _, err := c.Write(req); err != nil {
					fails.Add(1)
					c.Close()
					c = nil
					continue
				}
				if _, err := io.ReadFull(c, resp); err != nil {
					fails.Add(1)
					c.Close()
					c = nil
					continue
				}
				lat = append(lat, time.Since(t0))
				reqs.Add(1)
				if !keepalive {
					c.Close()
					c = nil
				}
			}
			if c != nil {
				c.Close()
			}
			lats[w] = lat
		}(w)
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	return loadStats{reqs: reqs.Load(), fails: fails.Load(), lat: all, dur: d}
}

// bulk reads from streams connections for d; it returns Gbit/s.
func bulk(addr string, streams int, d time.Duration) (float64, int64) {
	var total, fails atomic.Int64
	var wg sync.WaitGroup
	for s := 0; s < streams; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				fails.Add(1)
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(d))
			buf := make([]byte, 256<<10)
			for {
				n, err := c.Read(buf)
				total.Add(int64(n))
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(total.Load()) * 8 / d.Seconds() / 1e9, fails.Load()
}

// cpuTime is a process's user+system CPU time.
func cpuTime(pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
}

type benchProxy struct {
	name     string
	pid      int
	rr, bulk string
}

// agentBusyPoll is the busy-poll window the agent runs with by default
// (the site schema's tuning.proxy_busy_poll).
const agentBusyPoll = 100 * time.Microsecond

// startPair starts HAProxy and gitgw's pool in front of the same backends,
// and a second gitgw pool with busy polling off, for the latency rows.
func startPair(b *testing.B) (direct string, hap, gw, gwIdle benchProxy) {
	lab.RequireCommand(b, "haproxy")
	rr1, rr2, blk := rrBackend(b), rrBackend(b), bulkBackend(b)
	hRR, hBulk, gRR, gBulk, iRR := freePort(b), freePort(b), freePort(b), freePort(b), freePort(b)
	h := lab.StartHAProxy(b, lab.HAProxyConfig{Threads: 1, Services: []lab.HAProxyService{
		{Name: "rr", Bind: hRR.String(), Servers: []string{rr1.String(), rr2.String()}, Check: true},
		{Name: "bulk", Bind: hBulk.String(), Servers: []string{blk.String()}, Check: true},
	}})
	check := &Check{Type: CheckTCP}
	rr := func(bind netip.AddrPort) Service {
		return Service{Name: "rr", Binds: []netip.AddrPort{bind}, Servers: []Server{{Name: "s1", Addr: rr1, Weight: 1}, {Name: "s2", Addr: rr2, Weight: 1}},
			Check: check, Retries: 2, Redispatch: true, Timeouts: Timeouts{Connect: 2 * time.Second, ClientFin: 5 * time.Second, Tunnel: time.Hour}}
	}
	g := startHelper(b, Config{BusyPoll: agentBusyPoll, Services: []Service{rr(gRR),
		{Name: "bulk", Binds: []netip.AddrPort{gBulk}, Servers: []Server{{Name: "s1", Addr: blk, Weight: 1}}, Check: check},
	}}, "GOMAXPROCS=1", "L4HELPER_SHARDS=1")
	gi := startHelper(b, Config{Services: []Service{rr(iRR)}}, "GOMAXPROCS=1", "L4HELPER_SHARDS=1")
	return rr1.String(),
		benchProxy{"haproxy", h.Pid(), hRR.String(), hBulk.String()},
		benchProxy{"gitgw", g.cmd.Process.Pid, gRR.String(), gBulk.String()},
		benchProxy{"gitgw", gi.cmd.Process.Pid, iRR.String(), ""}
}

// samples collects one metric's values per proxy over the rounds; the
// values of a round are measured back to back, so index i of each proxy's
// list is a pair.
type samples map[string]map[string][]float64 // metric → proxy → values

func (s samples) add(metric, proxy string, v float64) {
	if s[metric] == nil {
		s[metric] = map[string][]float64{}
	}
	s[metric][proxy] = append(s[metric][proxy], v)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	c := slices.Clone(v)
	slices.Sort(c)
	if len(c)%2 == 0 {
		return (c[len(c)/2-1] + c[len(c)/2]) / 2
	}
	return c[len(c)/2]
}

// pairedRatios are the rounds' gitgw/HAProxy ratios, each taken from one
// round's back-to-back pair: the load of the shared box drifts over tens of
// seconds, and a ratio of two measurements made seconds apart cancels most
// of it. The table's ratio is their median.
func pairedRatios(g, h []float64) []float64 {
	var r []float64
	for i := range min(len(g), len(h)) {
		if h[i] != 0 {
			r = append(r, g[i]/h[i])
		}
	}
	return r
}

// report prints the table and reports gitgw's medians and the ratios.
func (s samples) report(b *testing.B, metrics []string) {
	fmt.Printf("\n%-38s %10s %10s %10s %8s   %s\n", b.Name(), "direct", "haproxy", "gitgw", "gw/hap", "ratio min..max per round; gitgw min..max (haproxy min..max)")
	for _, m := range metrics {
		d, h, g := median(s[m]["direct"]), median(s[m]["haproxy"]), median(s[m]["gitgw"])
		rs := pairedRatios(s[m]["gitgw"], s[m]["haproxy"])
		ratio := median(rs)
		ds, rr := "-", "-"
		if len(s[m]["direct"]) > 0 {
			ds = fmt.Sprintf("%.1f", d)
		}
		if len(rs) > 0 {
			rr = fmt.Sprintf("%.2f..%.2f", slices.Min(rs), slices.Max(rs))
		}
		fmt.Printf("%-38s %10s %10.1f %10.1f %8.2f   %s; %.1f..%.1f (%.1f..%.1f)\n", m, ds, h, g, ratio, rr,
			slices.Min(s[m]["gitgw"]), slices.Max(s[m]["gitgw"]), slices.Min(s[m]["haproxy"]), slices.Max(s[m]["haproxy"]))
		unit := strings.NewReplacer(" ", "_", "/", "_per_", "(", "", ")", "", ",", "").Replace(m)
		b.ReportMetric(g, "gitgw_"+unit)
		b.ReportMetric(ratio, "ratio_"+unit)
	}
}

// BenchmarkL4VersusHAProxy: new-connection rate, keep-alive rate, added
// latency, bulk with 1 and 4 streams, CPU per 100,000 connections. Each
// test runs on both proxies back to back, in alternating order, for
// benchRounds rounds; the ratio column is the median of the rounds'
// ratios. gitgw runs with the agent's default busy polling; the latency
// rows marked "busy_poll off" come from a second pool without it, against
// the same round's HAProxy figure.
func BenchmarkL4VersusHAProxy(b *testing.B) {
	direct, hap, gw, gwIdle := startPair(b)
	const conc = 50
	d := 2 * time.Second
	s := samples{}
	for i := 0; i < b.N; i++ {
		for r := 0; r < benchRounds; r++ {
			pair := func(test func(p benchProxy)) {
				if r%2 == 0 {
					test(hap)
					test(gw)
				} else {
					test(gw)
					test(hap)
				}
			}
			pair(func(p benchProxy) {
				c0 := cpuTime(p.pid)
				st := requests(p.rr, conc, d, false)
				cpu := cpuTime(p.pid) - c0
				s.add("conn/s (short, c50)", p.name, st.rate())
				s.add("CPU s per 100k conns", p.name, cpu.Seconds()*1e5/float64(max(st.reqs, 1)))
				s.add("short p99 ms (c50)", p.name, float64(st.pct(0.99).Microseconds())/1000)
				s.add("failed conns (short)", p.name, float64(st.fails))
			})
			pair(func(p benchProxy) {
				c0 := cpuTime(p.pid)
				st := requests(p.rr, conc, d, true)
				cpu := cpuTime(p.pid) - c0
				s.add("req/s (keep-alive, c50)", p.name, st.rate())
				s.add("CPU µs per ka request", p.name, float64(cpu.Microseconds())/float64(max(st.reqs, 1)))
			})
			// Direct (no proxy) each round, for the added latency.
			dl := requests(direct, 1, d, true)
			s.add("lat c1 p50 µs", "direct", float64(dl.pct(0.5).Microseconds()))
			s.add("lat c1 p99 µs", "direct", float64(dl.pct(0.99).Microseconds()))
			latency := func(p benchProxy, suffix string) {
				c0 := cpuTime(p.pid)
				st := requests(p.rr, 1, d, true)
				cpu := cpuTime(p.pid) - c0
				s.add("lat c1 p50 µs"+suffix, p.name, float64(st.pct(0.5).Microseconds()))
				s.add("lat c1 p99 µs"+suffix, p.name, float64(st.pct(0.99).Microseconds()))
				s.add("CPU % at c1"+suffix, p.name, 100*cpu.Seconds()/d.Seconds())
				s.add("req/s at c1"+suffix, p.name, st.rate())
			}
			pair(func(p benchProxy) {
				latency(p, "")
				if p.name == "haproxy" {
					for _, m := range []string{"lat c1 p50 µs", "lat c1 p99 µs", "CPU % at c1", "req/s at c1"} {
						v := s[m]["haproxy"]
						s.add(m+", busy_poll off", "haproxy", v[len(v)-1])
					}
				}
			})
			latency(gwIdle, ", busy_poll off")
			pair(func(p benchProxy) {
				c0 := cpuTime(p.pid)
				g1, _ := bulk(p.bulk, 1, d)
				cpu1 := cpuTime(p.pid) - c0
				s.add("bulk 1 stream Gbit/s", p.name, g1)
				s.add("bulk CPU ms per GB (1 stream)", p.name, float64(cpu1.Milliseconds())/(g1*d.Seconds()/8))
			})
			pair(func(p benchProxy) {
				g4, _ := bulk(p.bulk, 4, d)
				s.add("bulk 4 streams Gbit/s", p.name, g4)
			})
		}
	}
	for _, m := range []string{"lat c1 p50 µs", "lat c1 p99 µs"} {
		dm := s[m]["direct"]
		for _, suffix := range []string{"", ", busy_poll off"} {
			for _, p := range []string{"haproxy", "gitgw"} {
				for i, v := range s[m+suffix][p] {
					s.add("added "+m+suffix, p, v-dm[i%len(dm)])
				}
			}
		}
	}
	s.report(b, []string{"conn/s (short, c50)", "CPU s per 100k conns", "short p99 ms (c50)", "failed conns (short)",
		"req/s (keep-alive, c50)", "CPU µs per ka request",
		"lat c1 p50 µs", "lat c1 p99 µs", "added lat c1 p50 µs", "added lat c1 p99 µs", "req/s at c1", "CPU % at c1",
		"added lat c1 p50 µs, busy_poll off", "added lat c1 p99 µs, busy_poll off", "CPU % at c1, busy_poll off",
		"bulk 1 stream Gbit/s", "bulk CPU ms per GB (1 stream)", "bulk 4 streams Gbit/s"})
}

// BenchmarkL4IdleRSS: RSS of each proxy holding ~10,000 idle connections
// (as many as the fd limit allows: every connection costs 2 fds in the
// proxy and 2 here).
func BenchmarkL4IdleRSS(b *testing.B) {
	lab.RequireCommand(b, "haproxy")
	n := 10000
	// This process holds 2 fds per connection (client and backend side):
	// raise the limit (root may lift the hard one too; the proxies inherit
	// it) so that both proxies really hold 10,000.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && int(lim.Cur) < 2*n+1000 {
		want := uint64(2*n + 1000)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: max(want, lim.Max)}); err == nil {
			b.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) })
		} else {
			n = (int(lim.Cur) - 1000) / 2
			b.Logf("RLIMIT_NOFILE %d (raising it: %v): holding %d connections", lim.Cur, err, n)
		}
	}
	rr := rrBackend(b)
	s := samples{}
	for i := 0; i < b.N; i++ {
		for r := 0; r < benchRounds; r++ {
			for _, name := range []string{"haproxy", "gitgw"} {
				bind := freePort(b)
				var pid int
				var stop func()
				if name == "haproxy" {
					h := lab.StartHAProxy(b, lab.HAProxyConfig{Threads: 1, MaxConn: n + 50, Services: []lab.HAProxyService{
						{Name: "rr", Bind: bind.String(), Servers: []string{rr.String()}}}})
					pid = h.Pid()
					stop = func() { _ = syscall.Kill(pid, syscall.SIGKILL); _ = h.Cmd.Wait() }
				} else {
					g := startHelper(b, Config{BusyPoll: agentBusyPoll, Services: []Service{{Name: "rr", Binds: []netip.AddrPort{bind},
						Servers: []Server{{Name: "s1", Addr: rr, Weight: 1}}}}}, "GOMAXPROCS=1", "L4HELPER_SHARDS=1")
					pid = g.cmd.Process.Pid
					stop = func() { _ = g.cmd.Process.Signal(syscall.SIGKILL); _ = g.cmd.Wait() }
				}
				// Warm up (as the harness does) before the baseline.
				requests(bind.String(), 50, time.Second, true)
				rss0 := rss(pid)
				req := make([]byte, reqSize)
				resp := make([]byte, respSize)
				conns := make([]net.Conn, 0, n)
				for k := 0; k < n; k++ {
					c, err := net.DialTimeout("tcp", bind.String(), 5*time.Second)
					if err != nil {
						b.Logf("%s: connection %d: %v", name, k, err)
						break
					}
					c.Write(req)
					if _, err := io.ReadFull(c, resp); err != nil {
						c.Close()
						b.Logf("%s: request %d: %v", name, k, err)
						break
					}
					conns = append(conns, c)
				}
				time.Sleep(time.Second) // let the proxy settle; a measurement, not a synchronisation
				rss1 := rss(pid)
				s.add("idle conns held", name, float64(len(conns)))
				s.add("RSS MB with idle conns", name, float64(rss1)/1e6)
				s.add("RSS kB per idle conn", name, float64(rss1-rss0)/1e3/float64(max(len(conns), 1)))
				s.add("fds per idle conn", name, float64(fdCount(pid))/float64(max(len(conns), 1)))
				for _, c := range conns {
					c.Close()
				}
				stop()
			}
		}
	}
	s.report(b, []string{"idle conns held", "RSS MB with idle conns", "RSS kB per idle conn", "fds per idle conn"})
}

// BenchmarkL4ReconfigRestart counts failed connections under
// short-connection load while gitgw's pool is reconfigured in place
// (every 250 ms) and while its process is restarted with the listener
// hand-over (every second).
func BenchmarkL4ReconfigRestart(b *testing.B) {
	rr1, rr2 := rrBackend(b), rrBackend(b)
	bind := freePort(b)
	g := startHelper(b, Config{BusyPoll: agentBusyPoll, Services: []Service{{Name: "rr", Binds: []netip.AddrPort{bind},
		Servers: []Server{{Name: "s1", Addr: rr1, Weight: 1}, {Name: "s2", Addr: rr2, Weight: 1}}}}},
		"GOMAXPROCS=1", "L4HELPER_SHARDS=1")
	pid := g.cmd.Process.Pid
	var successors []int
	b.Cleanup(func() {
		for _, p := range successors {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	})
	for i := 0; i < b.N; i++ {
		for _, mode := range []string{"control", "reconfigure", "restart"} {
			done := make(chan loadStats)
			go func() { done <- requests(bind.String(), 50, 10*time.Second, false) }()
			events := 0
			end := time.Now().Add(9500 * time.Millisecond)
			for time.Now().Before(end) {
				switch mode {
				case "control":
					time.Sleep(250 * time.Millisecond)
				case "reconfigure":
					time.Sleep(250 * time.Millisecond)
					_ = syscall.Kill(pid, syscall.SIGUSR1)
					events++
				case "restart":
					time.Sleep(time.Second)
					_ = syscall.Kill(pid, syscall.SIGHUP)
					for {
						line, err := g.readLine(20 * time.Second)
						if err != nil {
							b.Fatalf("restart: %v", err)
						}
						if strings.HasPrefix(line, "handover ") {
							f := strings.Fields(line)
							pid, _ = strconv.Atoi(f[1])
							successors = append(successors, pid)
							break
						}
					}
					events++
				}
			}
			st := <-done
			// Drain "reconfigured" lines.
			fmt.Printf("%-12s %3d events  %8d connections  %6.0f conn/s  %d failed\n", mode, events, st.reqs, st.rate(), st.fails)
			b.ReportMetric(float64(st.fails), "failed_"+mode)
			b.ReportMetric(float64(events), "events_"+mode)
		}
	}
}
