package kernlb

// Benchmarks, as root (`make bench` runs them with -benchtime 1x; each
// does its own fixed-length rounds and reports medians):
//
//   - BenchmarkKernLBConnRate: new TCP connections per second through the
//     VIP (connect, one line each way, close) in nat, fnat and dr, against
//     HAProxy 2.6 (`mode tcp`, 1 thread) and gitgw's proxy on the same
//     gateway namespace and the same backends, with a direct run (no gateway function: the client
//     to a server, routed by the gateway in the nat lab, on the segment in
//     the dr lab) as the baseline (none in the fnat lab, whose servers
//     have no route to the client: HAProxy is fnat's peer, a proxy whose
//     servers see the gateway too). Each variant also runs keep-alive: the
//     same workers keep their connection and exchange lines on it
//     (requests per second, CPU per request).
//
//     CPU: with kernel forwarding the work is done in softirq. On a veth
//     without NAPI, Linux runs a packet's receive in the context of the
//     thread that sent it (the transmit raises NET_RX and the softirq runs
//     when that thread re-enables bottom halves), and the tick accounting
//     (no IRQ_TIME_ACCOUNTING here) charges it to that thread: the
//     gateway's forwarding would land in the client's and servers' CPU,
//     mixed with theirs. So the gateway's interfaces, and the switch
//     ports facing them, get GRO and threaded NAPI (napiThread): every
//     packet the gateway receives is processed (netfilter, conntrack,
//     NAT, routing, the DR rewrite and its transmit, or TCP up to a
//     proxy's socket) in the NAPI thread of the interface it arrived on.
//     The gateway's CPU is those threads plus its proxy process (HAProxy,
//     or gitgw's proxy, run as a process of its own: proxyhelper_test.go),
//     read from /proc/<pid>/stat, per connection (or request); the same
//     for every variant, direct included (in the nat lab the direct run is
//     routed by the gateway: its figure is plain forwarding). The total
//     counted beside it adds this process (client and servers), the
//     switch ports' NAPI threads and ksoftirqd; the machine is shared with
//     other work (its load is logged). Rounds alternate the variants;
//     medians are reported, and every round in the log.
//
//     HAProxy runs one thread and gitgw's proxy one shard (GOMAXPROCS=1):
//     the box has 2 cores, shared by the load generator, the servers and
//     the gateway, so the rates are bounded by the client and servers
//     (the direct run's rate is the ceiling) rather than by the gateway.
//
//   - BenchmarkKernLBReconfigure: 100 nat maglev services with 1,000
//     servers applied in one Set (one batch), then all of them changed at
//     once, 12 times (each change replaces one server of ten in every
//     service and flips every weight: about 21 % of each Maglev map's
//     slots change, 43,000 element deletions and additions in one
//     transaction), while connections run through one of them: time per
//     Set and per phase (median and range), the Set goroutine's CPU, the
//     kernel's CPU applying the transaction (the thread's system time in
//     sendmsg) and failed connections.

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
	gw          time.Duration // the gateway's CPU: its NAPI threads and its proxy process
	machine     time.Duration // whole machine's busy time
}

// meter names what connLoad counts besides this process and ksoftirqd:
// the gateway's threads and process (gw, also counted in the total) and
// other threads (the switch ports' NAPI threads).
type meter struct{ gw, other []int }

func ticksOf(pids []int) time.Duration {
	var t int64
	for _, p := range pids {
		t += procTicks(p)
	}
	return time.Duration(t) * tickDur
}

// gwCPUPerConn is the gateway's CPU per connection, in µs.
func (r loadResult) gwCPUPerConn() float64 {
	return float64(r.gw.Microseconds()) / float64(max(r.conns, 1))
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
func connLoad(tb testing.TB, client *lab.Netns, targets []string, conc int, d time.Duration, keepalive bool, m meter) loadResult {
	pids := append(slices.Clone(m.gw), m.other...)
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
					// "tcp": an IPv4 target is dialled over IPv4, an IPv6 one over IPv6.
					if c, err = net.DialTimeout("tcp", targets[i%len(targets)], time.Second); err != nil {
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
	cpu0, gw0, m0 := cpuNow(pids), ticksOf(m.gw), machineBusy()
	start := time.Now()
	c0, e0 := conns.Load(), errs.Load()
	time.Sleep(d) // the measured period
	c1, e1 := conns.Load(), errs.Load()
	cpu1, gw1, m1 := cpuNow(pids), ticksOf(m.gw), machineBusy()
	dur := time.Since(start)
	close(stop)
	wg.Wait()
	return loadResult{conns: c1 - c0, errs: e1 - e0, dur: dur, cpu: cpu1 - cpu0, gw: gw1 - gw0, machine: m1 - m0}
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
	for _, mode := range []Mode{NAT, FNAT, DR} {
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
			// The gateway's interfaces and the switch ports facing them get
			// NAPI threads (napiThread): the gateway's packet work runs
			// there, not in the sender's context, and its CPU is theirs.
			var m meter
			m.gw = append(m.gw, napiThread(b, l.gw[0], "eth0", l.sw.NS, l.gwPort[0]))
			m.other = append(m.other, napiThread(b, l.sw.NS, l.gwPort[0], l.gw[0], "eth0"))
			if mode != DR {
				m.gw = append(m.gw, napiThread(b, l.gw[0], "eth1", l.back.NS, l.backPort[0]))
				m.other = append(m.other, napiThread(b, l.back.NS, l.backPort[0], l.gw[0], "eth1"))
			}
			with := func(pid int) meter { return meter{gw: append(slices.Clone(m.gw), pid), other: m.other} }
			var direct, backends []string
			for _, a := range l.srvAddr {
				port := "80"
				if mode != DR {
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
			if mode == FNAT {
				// A local address of its own: HAProxy and the proxy
				// connect to the servers from the gateway's address.
				l.gw[0].Run(b, "ip", "addr", "add", "198.51.100.4/24", "dev", "eth1")
				svc.LocalAddresses = []netip.Addr{mustAddr("198.51.100.4")}
			}
			variants := []string{"direct", "haproxy", "proxy", string(mode)}
			if mode == FNAT {
				variants = variants[1:] // the servers cannot answer the client directly
			}
			hapCfg := lab.HAProxyConfig{Services: []lab.HAProxyService{{Name: "web", Bind: vip + ":80", Servers: backends}}}
			vipT := []string{vip + ":80"}
			res := map[string][]loadResult{}
			var rounds strings.Builder
			for r := range nRounds {
				// direct
				set(b, lb, Config{})
				if mode != FNAT {
					res["direct"] = append(res["direct"], connLoad(b, l.client, direct, conc, dur, false, m))
					res["ka-direct"] = append(res["ka-direct"], connLoad(b, l.client, direct, conc, dur, true, m))
				}
				// haproxy on the gateway
				h := lab.StartHAProxyIn(b, l.gw[0], hapCfg)
				res["haproxy"] = append(res["haproxy"], connLoad(b, l.client, vipT, conc, dur, false, with(h.Pid())))
				res["ka-haproxy"] = append(res["ka-haproxy"], connLoad(b, l.client, vipT, conc, dur, true, with(h.Pid())))
				_ = unix.Kill(h.Pid(), unix.SIGKILL)
				_ = h.Cmd.Wait()
				// gitgw's proxy on the gateway
				px := startProxyIn(b, l.gw[0], vipT[0], backends)
				res["proxy"] = append(res["proxy"], connLoad(b, l.client, vipT, conc, dur, false, with(px.Process.Pid)))
				res["ka-proxy"] = append(res["ka-proxy"], connLoad(b, l.client, vipT, conc, dur, true, with(px.Process.Pid)))
				_ = px.Process.Kill()
				_ = px.Wait()
				// kernel
				set(b, lb, Config{Services: []Service{svc}})
				res[string(mode)] = append(res[string(mode)], connLoad(b, l.client, vipT, conc, dur, false, m))
				res["ka-"+string(mode)] = append(res["ka-"+string(mode)], connLoad(b, l.client, vipT, conc, dur, true, m))
				for _, v := range variants {
					for _, v := range []string{v, "ka-" + v} {
						x := res[v][r]
						fmt.Fprintf(&rounds, "round %d %-10s %7.0f /s  gateway %6.1f µs CPU each, total %6.1f  errors %d  (machine busy %.0f %% of 2 CPUs, counted %.0f %%, gateway %.0f %%)\n",
							r+1, v, x.rate(), x.gwCPUPerConn(), x.cpuPerConn(), x.errs, 50*x.machine.Seconds()/x.dur.Seconds(), 50*x.cpu.Seconds()/x.dur.Seconds(), 50*x.gw.Seconds()/x.dur.Seconds())
					}
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
			// Per variant: the rate, the gateway's CPU per connection (its
			// NAPI threads and its proxy process: everything the gateway
			// does for the traffic, softirq included) and the total counted
			// (this process: client and servers; ksoftirqd; the NAPI
			// threads; the proxy), all medians over the rounds.
			gwc := func(x loadResult) float64 { return x.gwCPUPerConn() }
			report := func(prefix, unit string) {
				hapRate, hapGw, hapTot := med(prefix+"haproxy", rate), med(prefix+"haproxy", gwc), med(prefix+"haproxy", cpu)
				for _, v := range variants {
					r, gw, tot := med(prefix+v, rate), med(prefix+v, gwc), med(prefix+v, cpu)
					name := strings.ReplaceAll(prefix+v, "-", "_")
					b.ReportMetric(r, name+"_"+unit+"/s")
					b.ReportMetric(gw, name+"_gw_µs/"+unit)
					b.ReportMetric(tot, name+"_total_µs/"+unit)
					if v != "haproxy" && v != "direct" {
						b.ReportMetric(r/hapRate, name+"_rate_vs_haproxy")
						b.ReportMetric(gw/hapGw, name+"_gw_cpu_vs_haproxy")
					}
					b.Logf("%-12s %7.0f %s/s (×%.2f HAProxy's); gateway CPU per %s %.1f µs (×%.2f HAProxy's), total counted %.1f µs (×%.2f)",
						prefix+v, r, unit, r/hapRate, unit, gw, gw/hapGw, tot, tot/hapTot)
				}
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
	const changes = 12
	// Per change of all 100 services: wall time of the Set and of its
	// phases, and the Set goroutine's CPU (its thread, locked: user and
	// system, the system part mostly the kernel applying the batch).
	var times, flush, flushSys, cpuUser, cpuSys, render, batch []float64
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	// Connections through the web service during the changes (after the
	// first Set: before it there is no service to connect to).
	stop := make(chan loadResult)
	elems, first := 0, 0.0
	for gen := range changes + 1 {
		if gen == 1 {
			go func() { stop <- connLoad(b, l.client, []string{vip + ":80"}, 8, 4*time.Second, false, meter{}) }()
		}
		cfg := build(gen)
		runtime.LockOSThread()
		var ru0, ru1 unix.Rusage
		_ = unix.Getrusage(unix.RUSAGE_THREAD, &ru0)
		start := time.Now()
		ch := set(b, lb, cfg)
		el := time.Since(start)
		_ = unix.Getrusage(unix.RUSAGE_THREAD, &ru1)
		runtime.UnlockOSThread()
		user := time.Duration(ru1.Utime.Nano() - ru0.Utime.Nano())
		sys := time.Duration(ru1.Stime.Nano() - ru0.Stime.Nano())
		if gen > 0 && len(ch) != 100 {
			b.Errorf("generation %d changed %d services, want 100", gen, len(ch))
		}
		tm := lb.timing
		if gen == 0 {
			first = ms(el)
		} else {
			times = append(times, ms(el))
			flush = append(flush, ms(tm.flush))
			flushSys = append(flushSys, ms(tm.flushSys))
			cpuUser, cpuSys = append(cpuUser, ms(user)), append(cpuSys, ms(sys))
			render, batch = append(render, ms(tm.render)), append(batch, ms(tm.batch))
			elems = tm.elems
		}
		b.Logf("generation %d: Set of 100 services / 1000 servers (%d changes, %d set elements in %d messages) in %v: observe %v, render %v, diff %v, batch %v, transaction (flush) %v (kernel %v); Set's CPU user %v system %v",
			gen, len(ch), tm.elems, tm.msgs, el, tm.observe, tm.render, tm.diff, tm.batch, tm.flush, tm.flushSys, user, sys)
	}
	load := <-stop
	start := time.Now()
	if ch := set(b, lb, build(changes)); len(ch) != 0 {
		b.Errorf("an unchanged config changed %v", ch)
	}
	noop := time.Since(start)
	// One service of the 100 changed (a server of ten replaced): what a
	// usual commit costs.
	var one []float64
	cfg := build(changes)
	for i := range 5 {
		svc := &cfg.Services[1+i]
		svc.Servers = slices.Clone(svc.Servers)
		svc.Servers[0].Address = netip.AddrFrom4([4]byte{198, 51, 100, byte(230 + i)})
		start := time.Now()
		if ch := set(b, lb, cfg); len(ch) != 1 {
			b.Errorf("a change of one service changed %v", ch)
		}
		one = append(one, ms(time.Since(start)))
	}
	rng := func(v []float64) string {
		return fmt.Sprintf("%.1f ms (%.1f–%.1f)", medianOf(v), slices.Min(v), slices.Max(v))
	}
	b.ReportMetric(first, "first_set_ms")
	b.ReportMetric(medianOf(times), "change_all_set_ms")
	b.ReportMetric(medianOf(flush), "change_all_transaction_ms")
	b.ReportMetric(medianOf(flushSys), "change_all_kernel_cpu_ms")
	b.ReportMetric(medianOf(cpuUser)+medianOf(cpuSys), "change_all_set_cpu_ms")
	b.ReportMetric(float64(elems), "change_all_elements")
	b.ReportMetric(float64(noop.Microseconds())/1000, "noop_set_ms")
	b.ReportMetric(medianOf(one), "change_one_set_ms")
	b.ReportMetric(float64(load.errs), "failed_conns")
	b.ReportMetric(float64(load.conns), "conns_during")
	b.Logf("change of all 100 services, median (range) over %d: Set %s, render %s, batch %s, transaction %s, of which kernel CPU %s; Set's CPU user %s, system %s; %d set elements added or deleted",
		changes, rng(times), rng(render), rng(batch), rng(flush), rng(flushSys), rng(cpuUser), rng(cpuSys), elems)
	b.Logf("first Set %.1f ms, unchanged Set %v, change of one service %s; %d connections during the changes, %d failed",
		first, noop, rng(one), load.conns, load.errs)
}
