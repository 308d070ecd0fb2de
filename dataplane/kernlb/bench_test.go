package kernlb

// Benchmarks, as root (`make bench` runs them with -benchtime 1x; each
// does its own fixed-length rounds and reports medians):
//
//   - BenchmarkKernLBConnRate: new TCP connections per second through the
//     VIP (connect, one line each way, close) in nat and dr, against
//     HAProxy 2.6 (`mode tcp`, 1 thread) on the same gateway namespace and
//     the same backends, with a direct run (no gateway function: the client
//     to a server, routed by the gateway in the nat lab, on the segment in
//     the dr lab) as the baseline. Each variant also runs keep-alive: the
//     same workers keep their connection and exchange lines on it
//     (requests per second, CPU per request).
//
//     CPU: with kernel forwarding the work is done in softirq, which Linux
//     runs on the CPU that received the packet, mostly in the context of
//     the thread that sent it (a veth transmit raises NET_RX and the
//     softirq runs when that thread re-enables bottom halves), and the
//     kernel's tick accounting charges such ticks to that thread's system
//     time (CONFIG_TICK_CPU_ACCOUNTING, no IRQ_TIME_ACCOUNTING here). So the
//     gateway's forwarding cost lands in the sender's CPU time: here the
//     client and server goroutines of this test process, and haproxy's
//     own process for what it sends. The counted CPU is therefore this
//     process (getrusage) + haproxy's process + the ksoftirqd threads
//     (softirq deferred under load), from /proc/<pid>/stat; not the whole
//     machine, which is shared with other work (its load is logged). The
//     client and servers are the same in every variant, so "gateway CPU
//     per connection" is a variant's CPU per connection minus the direct
//     run's (the client talking to a server without the gateway's
//     function: routed by the gateway in the nat lab, on the segment in
//     the dr lab). Rounds alternate the variants; medians are reported.
//
//   - BenchmarkKernLBReconfigure: 100 nat maglev services with 1,000
//     servers applied in one Set (one batch), then all of them changed at
//     once, while connections run through one of them: time per Set and
//     failed connections.

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
	"golang.org/x/sys/unix"
)

// procTicks is a process's (or thread's) utime + stime, in ticks.
func procTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command may contain spaces: fields start after the last ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

// ksoftirqds are the pids of the ksoftirqd threads.
func ksoftirqds() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.HasPrefix(string(c), "ksoftirqd/") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cpuNow is the CPU counted for a variant: this process, the given pids
// and the ksoftirqd threads.
func cpuNow(pids []int) time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	self := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	var ticks int64
	for _, p := range append(ksoftirqds(), pids...) {
		ticks += procTicks(p)
	}
	return self + time.Duration(ticks)*tickDur
}

// machineBusy is the whole machine's busy time from /proc/stat, logged to
// show how loaded the shared box was.
func machineBusy() time.Duration {
	b, _ := os.ReadFile("/proc/stat")
	f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0]) // cpu user nice system idle iowait irq softirq
	var t int64
	for _, i := range []int{1, 2, 3, 6, 7} {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		t += n
	}
	return time.Duration(t) * tickDur
}

// tickDur is one /proc tick (USER_HZ is 100 on Linux).
const tickDur = 10 * time.Millisecond

type loadResult struct {
	conns, errs int64
	dur         time.Duration
	cpu         time.Duration // counted CPU (see the file comment)
	machine     time.Duration // whole machine's busy time
}

func (r loadResult) rate() float64 { return float64(r.conns) / r.dur.Seconds() }

// cpuPerConn is the counted CPU per connection, in µs.
func (r loadResult) cpuPerConn() float64 {
	return float64(r.cpu.Microseconds()) / float64(max(r.conns, 1))
}

// connLoad runs conc workers, each on a thread locked in the client's
// namespace, that connect to the targets in turn, exchange one line and
// close, for d.
//
// With keepalive each worker keeps its connection and exchanges lines on
// it: conns then counts requests.
func connLoad(tb testing.TB, client *lab.Netns, targets []string, conc int, d time.Duration, keepalive bool, pids ...int) loadResult {
	var conns, errs atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	ready := make(chan error, conc)
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The thread stays in the client namespace and dies with the
			// goroutine (never unlocked).
			runtime.LockOSThread()
			f, err := os.Open(client.Path())
			if err == nil {
				err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
				f.Close()
			}
			ready <- err
			if err != nil {
				return
			}
			buf := make([]byte, 64)
			var c net.Conn
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if c == nil {
					var err error
					if c, err = net.DialTimeout("tcp4", targets[i%len(targets)], time.Second); err != nil {
						errs.Add(1)
						continue
					}
				}
				_ = c.SetDeadline(time.Now().Add(time.Second))
				_, err := io.WriteString(c, "hello\n")
				if err == nil {
					_, err = c.Read(buf)
				}
				if !keepalive || err != nil {
					c.Close()
					c = nil
				}
				if err != nil {
					errs.Add(1)
					continue
				}
				conns.Add(1)
			}
		}()
	}
	for range conc {
		if err := <-ready; err != nil {
			tb.Fatalf("load worker: %v", err)
		}
	}
	cpu0, m0 := cpuNow(pids), machineBusy()
	start := time.Now()
	c0, e0 := conns.Load(), errs.Load()
	time.Sleep(d) // the measured period
	c1, e1 := conns.Load(), errs.Load()
	cpu1, m1 := cpuNow(pids), machineBusy()
	dur := time.Since(start)
	close(stop)
	wg.Wait()
	return loadResult{conns: c1 - c0, errs: e1 - e0, dur: dur, cpu: cpu1 - cpu0, machine: m1 - m0}
}

func medianOf(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// BenchmarkKernLBConnRate: see the file comment.
func BenchmarkKernLBConnRate(b *testing.B) {
	const (
		nRounds = 3
		conc    = 32
		dur     = 3 * time.Second
	)
	for _, mode := range []Mode{NAT, DR} {
		b.Run(string(mode), func(b *testing.B) {
			l := newKernLab(b, mode)
			l.holdVIP(0)
			l.serve()
			lb := l.lb(0)
			// Tens of thousands of short connections from one address to
			// one VIP: without TIME_WAIT reuse the client (and HAProxy, a
			// client of the servers) runs out of ports and connect() burns
			// CPU looking for one. The usual tuning of a load generator and
			// of a proxy gateway, in their own namespaces.
			for _, ns := range []*lab.Netns{l.client, l.gw[0]} {
				ns.Run(b, "sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=1024 65535")
			}
			var direct, backends []string
			for _, a := range l.srvAddr {
				port := "80"
				if mode == NAT {
					port = "8080"
				}
				direct = append(direct, a+":"+port)
				backends = append(backends, a+":"+port)
			}
			if mode == NAT {
				// Direct = routed by the gateway, without NAT.
				l.client.Run(b, "ip", "route", "add", "198.51.100.0/24", "via", "203.0.113.11")
			}
			svc := l.service(TCP, RoundRobin)
			if mode == DR {
				svc.Scheduler = Maglev
			}
			hapCfg := lab.HAProxyConfig{Services: []lab.HAProxyService{{Name: "web", Bind: vip + ":80", Servers: backends}}}
			vipT := []string{vip + ":80"}
			res := map[string][]loadResult{}
			var rounds strings.Builder
			for r := range nRounds {
				// direct
				set(b, lb, Config{})
				res["direct"] = append(res["direct"], connLoad(b, l.client, direct, conc, dur, false))
				res["ka-direct"] = append(res["ka-direct"], connLoad(b, l.client, direct, conc, dur, true))
				// haproxy on the gateway
				h := lab.StartHAProxyIn(b, l.gw[0], hapCfg)
				res["haproxy"] = append(res["haproxy"], connLoad(b, l.client, vipT, conc, dur, false, h.Pid()))
				res["ka-haproxy"] = append(res["ka-haproxy"], connLoad(b, l.client, vipT, conc, dur, true, h.Pid()))
				_ = unix.Kill(h.Pid(), unix.SIGKILL)
				_ = h.Cmd.Wait()
				// gitgw's proxy on the gateway
				px := startProxyIn(b, l.gw[0], vipT[0], backends)
				res["proxy"] = append(res["proxy"], connLoad(b, l.client, vipT, conc, dur, false, px.Process.Pid))
				res["ka-proxy"] = append(res["ka-proxy"], connLoad(b, l.client, vipT, conc, dur, true, px.Process.Pid))
				_ = px.Process.Kill()
				_ = px.Wait()
				// kernel
				set(b, lb, Config{Services: []Service{svc}})
				res[string(mode)] = append(res[string(mode)], connLoad(b, l.client, vipT, conc, dur, false))
				res["ka-"+string(mode)] = append(res["ka-"+string(mode)], connLoad(b, l.client, vipT, conc, dur, true))
				for _, v := range []string{"direct", "haproxy", "proxy", string(mode), "ka-direct", "ka-haproxy", "ka-proxy", "ka-" + string(mode)} {
					x := res[v][r]
					fmt.Fprintf(&rounds, "round %d %-10s %7.0f /s  %6.1f µs CPU each  errors %d  (machine busy %.0f %% of 2 CPUs, ours %.0f %%)\n",
						r+1, v, x.rate(), x.cpuPerConn(), x.errs, 50*x.machine.Seconds()/x.dur.Seconds(), 50*x.cpu.Seconds()/x.dur.Seconds())
				}
			}
			// The summary first: go test truncates long benchmark logs.
			defer func() { b.Logf("rounds:\n%s", rounds.String()) }()
			med := func(v string, f func(loadResult) float64) float64 {
				var xs []float64
				for _, x := range res[v] {
					xs = append(xs, f(x))
				}
				return medianOf(xs)
			}
			rate := func(x loadResult) float64 { return x.rate() }
			cpu := func(x loadResult) float64 { return x.cpuPerConn() }
			// Per variant: the rate, the counted CPU per connection (total:
			// client, servers, the gateway's process and the softirq charged
			// to all of them) and the gateway's share, that total minus the
			// direct run's.
			report := func(prefix, unit string) {
				base := med(prefix+"direct", cpu)
				hapRate, hapTot := med(prefix+"haproxy", rate), med(prefix+"haproxy", cpu)
				hapGw := hapTot - base
				for _, v := range []string{"haproxy", "proxy", string(mode)} {
					r, tot := med(prefix+v, rate), med(prefix+v, cpu)
					gw := tot - base
					name := strings.ReplaceAll(prefix+v, "-", "_")
					b.ReportMetric(r, name+"_"+unit+"/s")
					b.ReportMetric(tot, name+"_total_µs/"+unit)
					b.ReportMetric(gw, name+"_gw_µs/"+unit)
					if v != "haproxy" {
						b.ReportMetric(r/hapRate, name+"_rate_vs_haproxy")
						b.ReportMetric(gw/hapGw, name+"_gw_cpu_vs_haproxy")
					}
					b.Logf("%-12s %7.0f %s/s (×%.2f HAProxy's); CPU per %s: total %.1f µs (×%.2f HAProxy's), gateway %.1f µs (×%.2f HAProxy's)",
						prefix+v, r, unit, r/hapRate, unit, tot, tot/hapTot, gw, gw/hapGw)
				}
				b.Logf("%-12s %7.0f %s/s; CPU per %s: total %.1f µs (the baseline)", prefix+"direct", med(prefix+"direct", rate), unit, unit, base)
			}
			report("", "conn")
			report("ka-", "req")
		})
	}
}

// BenchmarkKernLBReconfigure: see the file comment.
func BenchmarkKernLBReconfigure(b *testing.B) {
	l := newKernLab(b, NAT)
	l.holdVIP(0)
	l.serve()
	lb := l.lb(0)
	build := func(gen int) Config {
		var c Config
		for i := range 100 {
			s := Service{Name: fmt.Sprintf("svc%03d", i), VIP: netip.MustParseAddr(vip), Port: uint16(1000 + i),
				Protocol: TCP, Mode: NAT, Scheduler: Maglev}
			for j := range 10 {
				// Every generation moves each service to another set of
				// ten servers: all 100 services change.
				s.Servers = append(s.Servers, Server{Address: netip.AddrFrom4([4]byte{198, 51, 100, byte(20 + (j+gen)%200)}), Port: 8080, Weight: 1 + gen%2})
			}
			c.Services = append(c.Services, s)
		}
		web := l.service(TCP, Maglev)
		web.Servers[0].Weight = 1 + gen%2
		c.Services[0] = web
		return c
	}
	var times, flush []float64
	// Connections through the web service during the changes (after the
	// first Set: before it there is no service to connect to).
	stop := make(chan loadResult)
	for gen := range 8 {
		if gen == 1 {
			go func() { stop <- connLoad(b, l.client, []string{vip + ":80"}, 8, 4*time.Second, false) }()
		}
		cfg := build(gen)
		start := time.Now()
		ch := set(b, lb, cfg)
		el := time.Since(start)
		if gen > 0 && len(ch) != 100 {
			b.Errorf("generation %d changed %d services, want 100", gen, len(ch))
		}
		times = append(times, float64(el.Microseconds())/1000)
		tm := lb.timing
		flush = append(flush, float64(tm.flush.Microseconds())/1000)
		b.Logf("generation %d: Set of 100 services / 1000 servers (%d changes) in %v: observe %v, render %v, diff %v, batch %v, transaction (flush) %v",
			gen, len(ch), el, tm.observe, tm.render, tm.diff, tm.batch, tm.flush)
	}
	load := <-stop
	start := time.Now()
	if ch := set(b, lb, build(7)); len(ch) != 0 {
		b.Errorf("an unchanged config changed %v", ch)
	}
	noop := time.Since(start)
	b.ReportMetric(times[0], "first_set_ms")
	b.ReportMetric(medianOf(flush[1:]), "change_all_transaction_ms")
	b.ReportMetric(medianOf(times[1:]), "change_all_set_ms")
	b.ReportMetric(float64(noop.Microseconds())/1000, "noop_set_ms")
	b.ReportMetric(float64(load.errs), "failed_conns")
	b.ReportMetric(float64(load.conns), "conns_during")
	b.Logf("first Set %.1f ms, change of all 100 services (median) %.1f ms, unchanged Set %v; %d connections during the changes, %d failed",
		times[0], medianOf(times[1:]), noop, load.conns, load.errs)
}
