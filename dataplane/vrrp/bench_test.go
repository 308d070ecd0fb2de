package vrrp

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	osexec "os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
	"github.com/mdlayher/arp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// The failover benchmark runs gitgw and keepalived 2.2, configured alike,
// in the same lab and the same run. It measures, from the failure t0, the
// new master's first advert and first gratuitous ARP as seen by the client,
// and when the client (probing every 5 ms) reaches the VIP again.

// observer records what the client sees on the wire.
type observer struct {
	mu     sync.Mutex
	advs   []obsEvent // VRRP adverts
	garps  []obsEvent // ARP with sender IP = VIP
	probes []icmpProbe
	stop   chan struct{}
	wg     sync.WaitGroup
	closer []func()
}

type obsEvent struct {
	at   time.Time
	src  netip.Addr
	mac  string
	prio uint8
}

type icmpProbe struct {
	sent, recv time.Time
}

func newObserver(b *testing.B, l *vrrpLab) *observer {
	o := &observer{stop: make(chan struct{})}
	var vc *RawConn
	var ac *arp.Client
	var pc *icmp.PacketConn
	if err := l.client.Do(func() error {
		var err error
		if vc, err = Listen("eth0", false); err != nil {
			return err
		}
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		if ac, err = arp.Dial(ifi); err != nil {
			return err
		}
		pc, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		b.Fatal(err)
	}
	o.closer = append(o.closer, func() { vc.Close() }, func() { ac.Close() }, func() { pc.Close() })
	o.wg.Add(4)
	go func() {
		defer o.wg.Done()
		buf := make([]byte, 2048)
		for {
			r, err := vc.Read(buf)
			if err != nil {
				return
			}
			if len(r.Payload) > 3 {
				o.mu.Lock()
				o.advs = append(o.advs, obsEvent{at: time.Now(), src: r.Src, prio: r.Payload[2]})
				o.mu.Unlock()
			}
		}
	}()
	vip := netip.MustParseAddr(labVIP)
	go func() {
		defer o.wg.Done()
		for {
			p, _, err := ac.Read()
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					continue
				}
				return
			}
			if p.SenderIP == vip {
				o.mu.Lock()
				o.garps = append(o.garps, obsEvent{at: time.Now(), mac: p.SenderHardwareAddr.String()})
				o.mu.Unlock()
			}
		}
	}()
	id := rand.IntN(0xffff)
	go func() { // receiver
		defer o.wg.Done()
		buf := make([]byte, 1500)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			now := time.Now()
			m, err := icmp.ParseMessage(1, buf[:n])
			if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
				continue
			}
			e, ok := m.Body.(*icmp.Echo)
			if !ok || e.ID != id {
				continue
			}
			o.mu.Lock()
			if e.Seq < len(o.probes) && o.probes[e.Seq].recv.IsZero() {
				o.probes[e.Seq].recv = now
			}
			o.mu.Unlock()
		}
	}()
	go func() { // sender: every 5 ms
		defer o.wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		dst := &net.IPAddr{IP: net.ParseIP(labVIP)}
		for seq := 0; ; seq++ {
			select {
			case <-o.stop:
				return
			case <-t.C:
			}
			msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq & 0xffff, Data: []byte("gitgw")}}
			b, _ := msg.Marshal(nil)
			o.mu.Lock()
			if seq < 0xffff {
				o.probes = append(o.probes, icmpProbe{sent: time.Now()})
			}
			o.mu.Unlock()
			if seq < 0xffff {
				_, _ = pc.WriteTo(b, dst)
			}
		}
	}()
	b.Cleanup(o.close)
	return o
}

func (o *observer) close() {
	select {
	case <-o.stop:
		return
	default:
	}
	close(o.stop)
	for _, c := range o.closer {
		c()
	}
	o.wg.Wait()
}

// result of one failover round, in ms from t0 (NaN-free: ok flags).
type round struct {
	// detect is from the old master's last advert (its priority-0 advert
	// on a graceful stop) to the new master's first: phase-independent.
	detect           float64
	adv, garp, reach float64
	reachOK          bool
}

// measure waits (up to limit) for the new master's first advert and GARP
// after t0 and for the client to reach the VIP after losing it.
func (o *observer) measure(t0 time.Time, newMaster netip.Addr, newMAC string, wantReach bool, limit time.Duration) (round, error) {
	deadline := time.Now().Add(limit)
	for {
		r, done := o.compute(t0, newMaster, newMAC, wantReach)
		if done {
			return r, nil
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("round not complete after %v: %+v", limit, r)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (o *observer) compute(t0 time.Time, newMaster netip.Addr, newMAC string, wantReach bool) (round, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ms := func(t time.Time) float64 { return float64(t.Sub(t0).Microseconds()) / 1000 }
	var r round
	haveAdv, haveGARP := false, false
	var last time.Time
	for _, a := range o.advs {
		if a.at.After(t0) && a.src == newMaster && a.prio > 0 {
			r.adv, haveAdv = ms(a.at), true
			if !last.IsZero() {
				r.detect = float64(a.at.Sub(last).Microseconds()) / 1000
			}
			break
		}
		if a.src != newMaster {
			last = a.at
		}
	}
	for _, g := range o.garps {
		if g.at.After(t0) && g.mac == newMAC {
			r.garp, haveGARP = ms(g.at), true
			break
		}
	}
	// First probe sent after t0 that was lost (no reply within 100 ms), then
	// the first reply to any later probe.
	lost := -1
	for i, p := range o.probes {
		if p.sent.After(t0) && p.recv.IsZero() && time.Since(p.sent) > 100*time.Millisecond {
			lost = i
			break
		}
	}
	if lost >= 0 {
		for _, p := range o.probes[lost+1:] {
			if !p.recv.IsZero() {
				r.reach, r.reachOK = ms(p.recv), true
				break
			}
		}
	}
	done := haveAdv && haveGARP && (!wantReach || r.reachOK)
	return r, done
}

// peerProc is a VRRP speaker under test: gitgw's helper or keepalived.
type peerProc interface {
	freeze()
	kill()
	term()
	pid() int
}

type gitgwProc struct{ d *daemon }

func (g gitgwProc) freeze() {
	g.killGuardian() // a dying node takes its guardian with it
	g.d.signal(syscall.SIGSTOP)
}

// killGuardian SIGKILLs the helper's children (its guardian), found in
// /proc/PID/task/*/children.
func (g gitgwProc) killGuardian() {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", g.d.pid()))
	for _, t := range tasks {
		raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", g.d.pid(), t.Name()))
		for _, f := range strings.Fields(string(raw)) {
			if pid, err := strconv.Atoi(f); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}
func (g gitgwProc) kill() { g.d.kill() }
func (g gitgwProc) term() { g.d.term() }
func (g gitgwProc) pid() int {
	return g.d.pid()
}

type kaProc struct {
	k *lab.Keepalived
	t testing.TB
}

func (k kaProc) freeze() {
	_ = syscall.Kill(k.k.VRRPPID(), syscall.SIGSTOP)
	_ = syscall.Kill(k.k.PID(), syscall.SIGSTOP)
}
func (k kaProc) kill()    { k.k.Kill() }
func (k kaProc) term()    { k.k.Stop(k.t) }
func (k kaProc) pid() int { return k.k.VRRPPID() }

type benchCase struct {
	engine  string // gitgw | keepalived
	failure string // crash | kill | term
}

func benchRounds() int {
	if n, err := strconv.Atoi(os.Getenv("GITGW_BENCH_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 10
}

func benchFailover(b *testing.B, version int, failures ...string) {
	lab.RequireRoot(b)
	lab.RequireCommand(b, "keepalived", "ip")
	interval := 100 * time.Millisecond
	advert := "0.1"
	if version == 2 {
		interval, advert = time.Second, "1"
	}
	rounds := benchRounds()
	results := map[benchCase][]round{}
	var cases []benchCase
	for _, eng := range []string{"gitgw", "keepalived"} {
		for _, f := range failures {
			cases = append(cases, benchCase{eng, f})
		}
	}
	for _, eng := range []string{"gitgw", "keepalived"} {
		l := newVRRPLab(b)
		nh, err := netns.GetFromPath(l.sw.NS.Path())
		if err != nil {
			b.Fatal(err)
		}
		swh, err := netlink.NewHandleAt(nh)
		nh.Close()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(swh.Close)
		nodes := []struct {
			ns   *lab.Netns
			port string
			ip   netip.Addr
		}{{l.gw1, l.port1, netip.MustParseAddr("203.0.113.11")}, {l.gw2, l.port2, netip.MustParseAddr("203.0.113.12")}}
		macs := []string{macOf(b, l.gw1), macOf(b, l.gw2)}
		start := func(i int, prio uint8) peerProc {
			if eng == "gitgw" {
				cfg := vi1(prio)
				if version == 2 {
					cfg = vi1(prio, func(in *Instance) { in.Version, in.Interval = 2, time.Second })
				}
				return gitgwProc{startDaemonEnv(b, nodes[i].ns, fmt.Sprintf("gw%d", i+1), cfg, "GITGW_VRRP_GUARDIAN=1")}
			}
			return kaProc{lab.StartKeepalived(b, nodes[i].ns, lab.RenderKeepalived(fmt.Sprintf("gw%d", i+1), kaVI1(int(prio), version, advert, ""))), b}
		}
		waitRole := func(p peerProc, s State) {
			switch p := p.(type) {
			case gitgwProc:
				p.d.waitState("VI_1", s, settle)
			case kaProc:
				want := "Entering BACKUP STATE"
				if s == StateMaster {
					want = "Entering MASTER STATE"
				}
				p.k.WaitLog(b, want, settle)
			}
		}
		procs := make([]peerProc, 2)
		procs[0] = start(0, 150)
		waitRole(procs[0], StateMaster)
		procs[1] = start(1, 100)
		waitRole(procs[1], StateBackup)
		master := 0
		obs := newObserver(b, l)
		waitFor(b, settle, "client reaching the VIP", func() bool { return clientPing(l) })
		for r := 0; r < rounds; r++ {
			for _, f := range failures {
				m, bk := master, 1-master
				// Settle, then fail at a random phase of the advert cycle.
				time.Sleep(3*interval + time.Duration(rand.Int64N(int64(interval))))
				t0 := time.Now()
				wantReach := true
				switch f {
				case "crash": // the node dies: agent frozen, link cut, agent killed
					procs[m].freeze()
					link, err := swh.LinkByName(nodes[m].port)
					if err != nil {
						b.Fatal(err)
					}
					if err := swh.LinkSetDown(link); err != nil {
						b.Fatal(err)
					}
					procs[m].kill()
				case "kill": // the agent is SIGKILLed; gitgw's guardian hands over
					procs[m].kill()
					if _, ok := procs[m].(kaProc); ok {
						wantReach = false // keepalived leaves the VIP on the old node
					}
				case "kill-poststop": // the same, handed over by the unit's ExecStopPost= instead
					if gp, ok := procs[m].(gitgwProc); ok {
						gp.killGuardian()
						t0 = time.Now()
					}
					procs[m].kill()
					if gp, ok := procs[m].(gitgwProc); ok {
						rel := releaseCmd(nodes[m].ns, "GITGW_VRRP_HELPER=release", "GITGW_VRRP_STATE="+gp.d.stateDir)
						if out, err := rel.CombinedOutput(); err != nil {
							b.Fatalf("release: %v %s", err, out)
						}
					} else {
						wantReach = false // keepalived leaves the VIP on the old node
					}
				case "term":
					procs[m].term()
				}
				limit := 3*MasterDownInterval(100, interval) + 5*time.Second
				res, err := obs.measure(t0, nodes[bk].ip, macs[bk], wantReach, limit)
				if err != nil {
					b.Fatalf("%s %s round %d: %v", eng, f, r, err)
				}
				results[benchCase{eng, f}] = append(results[benchCase{eng, f}], res)
				// Repair the old master and bring it back as a backup
				// (equal priority 100: it does not preempt).
				if f == "crash" {
					link, _ := swh.LinkByName(nodes[m].port)
					_ = swh.LinkSetUp(link)
				}
				_, _ = nodes[m].ns.Try("ip", "addr", "del", labVIPp, "dev", "eth0")
				procs[m] = start(m, 100)
				waitRole(procs[m], StateBackup)
				master = bk
			}
		}
		obs.close()
		for _, p := range procs {
			p.kill()
		}
	}
	report(b, version, interval, failures, cases, results)
}

// releaseCmd runs the crash handover as a unit's ExecStopPost= would: a
// fresh process, here entering the namespace itself (setns) rather than
// through `ip netns exec`, which remounts /sys and costs milliseconds.
func releaseCmd(ns *lab.Netns, env ...string) *osexec.Cmd {
	exe, _ := os.Executable()
	c := osexec.Command(exe, "-test.run=^$")
	c.Env = append(os.Environ(), append(env, "GITGW_VRRP_NETNS="+ns.Path())...)
	return c
}

func stats(v []float64) (med, lo, hi float64) {
	if len(v) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med = s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return med, s[0], s[len(s)-1]
}

func report(b *testing.B, version int, interval time.Duration, failures []string, cases []benchCase, results map[benchCase][]round) {
	mdi := float64(MasterDownInterval(100, interval).Microseconds()) / 1000
	skew := float64(SkewTime(100, interval).Microseconds()) / 1000
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nVRRPv%d, advert %v, backup priority 100: MDI %.1f ms, Skew %.1f ms; %d rounds; ms from failure, median (min–max)\n", version, interval, mdi, skew, len(results[cases[0]]))
	fmt.Fprintf(&sb, "%-11s %-13s %-24s %-24s %-24s %-24s\n", "engine", "fail", "detection (last→first)", "first advert", "first GARP", "client reaches VIP")
	med := map[benchCase][3]float64{}
	for _, c := range cases {
		rs := results[c]
		var det, adv, garp, reach []float64
		for _, r := range rs {
			det = append(det, r.detect)
			adv = append(adv, r.adv)
			garp = append(garp, r.garp)
			if r.reachOK {
				reach = append(reach, r.reach)
			}
		}
		cell := func(v []float64) (string, float64) {
			if len(v) == 0 {
				return "n/a (VIP left on old node)", 0
			}
			m, lo, hi := stats(v)
			return fmt.Sprintf("%.1f (%.1f–%.1f)", m, lo, hi), m
		}
		d, _ := cell(det)
		a, am := cell(adv)
		g, gm := cell(garp)
		rc, rm := cell(reach)
		med[c] = [3]float64{am, gm, rm}
		fmt.Fprintf(&sb, "%-11s %-13s %-24s %-24s %-24s %-24s\n", c.engine, c.failure, d, a, g, rc)
		tag := fmt.Sprintf("v%d_%s_%s", version, c.engine, c.failure)
		b.ReportMetric(am, tag+"_advert_ms")
		if rm > 0 {
			b.ReportMetric(rm, tag+"_reach_ms")
		}
	}
	fmt.Fprintf(&sb, "gitgw/keepalived ratio of medians (advert, GARP, reach):\n")
	for _, f := range failures {
		g, k := med[benchCase{"gitgw", f}], med[benchCase{"keepalived", f}]
		ratio := func(a, b float64) string {
			if a == 0 || b == 0 {
				return "n/a"
			}
			return fmt.Sprintf("%.2f", a/b)
		}
		fmt.Fprintf(&sb, "  %-13s %s %s %s\n", f, ratio(g[0], k[0]), ratio(g[1], k[1]), ratio(g[2], k[2]))
		if g[0] > 0 && k[0] > 0 {
			b.ReportMetric(g[0]/k[0], fmt.Sprintf("v%d_%s_advert_ratio", version, f))
		}
	}
	fmt.Fprintf(&sb, "targets: crash ≤ %.1f ms (3×interval + Skew + 20); kill (with handover) and term ≤ %.1f ms (Skew + 20)\n", mdi+20, skew+20)
	fmt.Print(sb.String())
}

// BenchmarkFailoverV3 compares gitgw and keepalived at VRRPv3, 100 ms:
// the node dies (crash), the agent is SIGKILLed (kill: gitgw's guardian
// hands over; kill-poststop: Release run afterwards as the unit's
// ExecStopPost= would; keepalived has neither) and a graceful stop (term).
// About 1.5 minutes.
func BenchmarkFailoverV3(b *testing.B) {
	benchFailover(b, 3, "crash", "kill", "kill-poststop", "term")
}

// The VRRPv2 (1 s) comparisons are split per failure so that each stays
// under five minutes.

func BenchmarkFailoverV2Crash(b *testing.B) { benchFailover(b, 2, "crash") }
func BenchmarkFailoverV2Kill(b *testing.B)  { benchFailover(b, 2, "kill") }
func BenchmarkFailoverV2Term(b *testing.B)  { benchFailover(b, 2, "term") }

// BenchmarkIdle measures the engine's idle CPU and RSS as master of 4 and
// 64 instances at 100 ms, next to keepalived with the same instances.
func BenchmarkIdle(b *testing.B) {
	lab.RequireRoot(b)
	lab.RequireCommand(b, "keepalived")
	const window = 10 * time.Second
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nidle as master, VRRPv3 100 ms, CPU over %v\n%-11s %-9s %-14s %-12s\n", window, "engine", "instances", "CPU % of core", "VmRSS MB")
	for _, n := range []int{4, 64} {
		for _, eng := range []string{"gitgw", "keepalived"} {
			sw := lab.NewSwitch(b)
			gw := lab.NewNetns(b, "idle")
			sw.Attach(b, gw, "eth0", "203.0.113.11/24")
			var cfg Config
			var kis []lab.KeepalivedInstance
			for i := 0; i < n; i++ {
				vipp := fmt.Sprintf("203.0.113.%d/24", 100+i)
				cfg.Instances = append(cfg.Instances, Instance{
					Name: fmt.Sprintf("VI_%d", i+1), Interface: "eth0", VRID: uint8(i + 1), Version: 3, Interval: 100 * time.Millisecond,
					Priority: 150, VIPs: []VIP{{Prefix: netip.MustParsePrefix(vipp)}},
				})
				kis = append(kis, lab.KeepalivedInstance{Name: fmt.Sprintf("VI_%d", i+1), Interface: "eth0", VRID: i + 1, Priority: 150, AdvertInt: "0.1", Version: 3, VIPs: []string{vipp}})
			}
			var pids []int
			if eng == "gitgw" {
				d := startDaemon(b, gw, "idle", cfg)
				waitFor(b, settle, "all master", func() bool {
					for _, s := range d.status() {
						if s.State != StateMaster {
							return false
						}
					}
					return true
				})
				pids = []int{d.pid()}
			} else {
				k := lab.StartKeepalived(b, gw, lab.RenderKeepalived("idle", kis...))
				waitFor(b, settle, "all master", func() bool { return strings.Count(k.Log(), "Entering MASTER STATE") >= n })
				pids = []int{k.PID(), k.VRRPPID()}
			}
			time.Sleep(time.Second)
			cpu0 := cpuNanos(b, pids)
			t0 := time.Now()
			time.Sleep(window)
			cpu := float64(cpuNanos(b, pids)-cpu0) / float64(time.Since(t0).Nanoseconds()) * 100
			rss := 0.0
			for _, p := range pids {
				rss += rssMB(p)
			}
			fmt.Fprintf(&sb, "%-11s %-9d %-14.3f %-12.1f\n", eng, n, cpu, rss)
			b.ReportMetric(cpu, fmt.Sprintf("%s_%d_cpu_pct", eng, n))
			b.ReportMetric(rss, fmt.Sprintf("%s_%d_rss_MB", eng, n))
		}
	}
	fmt.Fprintf(&sb, "target: gitgw with 64 instances ≤ 2 %% of a core\n")
	fmt.Print(sb.String())
}

// cpuNanos sums the CPU time of every thread of the processes
// (/proc/PID/task/*/schedstat, nanoseconds: finer than clock ticks).
func cpuNanos(b *testing.B, pids []int) int64 {
	var total int64
	for _, p := range pids {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", p))
		if err != nil {
			b.Fatal(err)
		}
		for _, t := range tasks {
			raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", p, t.Name()))
			if err != nil {
				continue // thread gone
			}
			f := strings.Fields(string(raw))
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				total += n
			}
		}
	}
	return total
}

func rssMB(pid int) float64 {
	raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return kb / 1024
		}
	}
	return 0
}
