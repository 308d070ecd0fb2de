package vrrp

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// vrrpLab is examples/lab's VRRP segment: gw1 (.11) and gw2 (.12) and a
// client (.50) on one switch.
type vrrpLab struct {
	sw                  *lab.Switch
	gw1, gw2, client    *lab.Netns
	port1, port2, portC string
}

const (
	labVIP  = "203.0.113.100"
	labVIPp = "203.0.113.100/24"
)

// startLabPair builds the lab and runs VI_1 on both gateways, waiting for
// gw1 (priority 150) to be master and gw2 (100) backup.
func startLabPair(t testing.TB) (*vrrpLab, *daemon, *daemon) {
	t.Helper()
	l := newVRRPLab(t)
	g1 := startDaemon(t, l.gw1, "gw1", vi1(150))
	g2 := startDaemon(t, l.gw2, "gw2", vi1(100))
	g1.waitState("VI_1", StateMaster, settle)
	g2.waitState("VI_1", StateBackup, settle)
	return l, g1, g2
}

func newVRRPLab(t testing.TB) *vrrpLab {
	t.Helper()
	skipShort(t)
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "ping")
	l := &vrrpLab{sw: lab.NewSwitch(t)}
	l.gw1, l.gw2, l.client = lab.NewNetns(t, "gw1"), lab.NewNetns(t, "gw2"), lab.NewNetns(t, "cl")
	l.port1 = l.sw.Attach(t, l.gw1, "eth0", "203.0.113.11/24")
	l.port2 = l.sw.Attach(t, l.gw2, "eth0", "203.0.113.12/24")
	l.portC = l.sw.Attach(t, l.client, "eth0", "203.0.113.50/24")
	return l
}

// vi1 is VI_1 of examples/lab: VRID 51, v3, 100 ms, VIP 203.0.113.100/24.
func vi1(prio uint8, mut ...func(*Instance)) Config {
	in := Instance{
		Name: "VI_1", Interface: "eth0", VRID: 51, Version: 3, Interval: 100 * time.Millisecond,
		Priority: prio, VIPs: []VIP{{Prefix: netip.MustParsePrefix(labVIPp)}},
	}
	for _, m := range mut {
		m(&in)
	}
	return Config{Instances: []Instance{in}}
}

func hasAddr(t testing.TB, ns *lab.Netns, prefix string) bool {
	t.Helper()
	out, err := ns.Try("ip", "-o", "addr", "show", "dev", "eth0")
	if err != nil {
		t.Fatalf("ip addr in %s: %v", ns.Name, err)
	}
	return strings.Contains(out, " "+prefix+" ")
}

func macOf(t testing.TB, ns *lab.Netns) string {
	t.Helper()
	out := ns.Run(t, "cat", "/sys/class/net/eth0/address")
	return strings.TrimSpace(out)
}

// clientNeigh returns the client's neighbour entry's MAC for the VIP.
func clientNeigh(t testing.TB, l *vrrpLab) string {
	t.Helper()
	out, _ := l.client.Try("ip", "neigh", "show", labVIP, "dev", "eth0")
	f := strings.Fields(out)
	for i, w := range f {
		if w == "lladdr" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

func clientPing(l *vrrpLab) bool {
	_, err := l.client.Try("ping", "-c", "1", "-W", "1", labVIP)
	return err == nil
}

const settle = 20 * time.Second

// skipShort keeps the namespace labs out of `go test -short` (make unit).
func skipShort(t testing.TB) {
	t.Helper()
	lab.SkipShort(t, "real-kernel lab: not in -short")
} // generous: a loaded 2-core CI box

func TestLabElectionFailoverAndStop(t *testing.T) {
	t.Parallel()
	l, g1, g2 := startLabPair(t)
	waitFor(t, settle, "VIP on gw1 only", func() bool { return hasAddr(t, l.gw1, labVIPp) && !hasAddr(t, l.gw2, labVIPp) })
	waitFor(t, settle, "client reaching the VIP on gw1", func() bool { return clientPing(l) && clientNeigh(t, l) == macOf(t, l.gw1) })
	st := g2.instance("VI_1")
	if st.MasterAddr != netip.MustParseAddr("203.0.113.11") || st.MasterPriority != 150 || st.MasterAdverInterval != 100*time.Millisecond {
		t.Errorf("gw2 sees master %v prio %d interval %v", st.MasterAddr, st.MasterPriority, st.MasterAdverInterval)
	}
	if st.Counters.AdvertsIn == 0 || len(st.Counters.Drops) != 0 {
		t.Errorf("gw2 counters: %+v", st.Counters)
	}

	// The master's link is cut: gw2 takes over, gw1 (no carrier) goes to
	// Fault and gives the VIP up.
	l.sw.SetPort(t, l.port1, false)
	g2.waitState("VI_1", StateMaster, settle)
	g1.waitState("VI_1", StateFault, settle)
	waitFor(t, settle, "VIP moved to gw2", func() bool { return hasAddr(t, l.gw2, labVIPp) && !hasAddr(t, l.gw1, labVIPp) })
	waitFor(t, settle, "client reaching the VIP on gw2", func() bool { return clientPing(l) && clientNeigh(t, l) == macOf(t, l.gw2) })

	// Link back: gw1 (higher priority, preempt) takes the VIP back.
	l.sw.SetPort(t, l.port1, true)
	g1.waitState("VI_1", StateMaster, settle)
	g2.waitState("VI_1", StateBackup, settle)
	waitFor(t, settle, "client back on gw1", func() bool { return clientPing(l) && clientNeigh(t, l) == macOf(t, l.gw1) })

	// Graceful stop: priority 0, gw2 takes over, gw1 leaves no VIP behind.
	g1.term()
	g2.waitState("VI_1", StateMaster, settle)
	if hasAddr(t, l.gw1, labVIPp) {
		t.Error("gw1 left its VIP behind after a clean stop")
	}
	entries, err := ReadState(g1.stateDir)
	if err != nil || len(entries) != 0 {
		t.Errorf("state after clean stop: %v %v", entries, err)
	}
	waitFor(t, settle, "client on gw2", func() bool { return clientPing(l) && clientNeigh(t, l) == macOf(t, l.gw2) })
}

func TestLabPreemptModes(t *testing.T) {
	t.Parallel()
	l := newVRRPLab(t)
	// 500 ms adverts: "never takes over" must not hinge on a loaded CI
	// box scheduling a process within 340 ms.
	slow := func(in *Instance) { in.Interval = 500 * time.Millisecond }
	g2 := startDaemon(t, l.gw2, "gw2", vi1(100, slow))
	g2.waitState("VI_1", StateMaster, settle)

	// nopreempt: the higher priority newcomer stays backup.
	g1 := startDaemon(t, l.gw1, "gw1", vi1(150, slow, func(in *Instance) { in.NoPreempt = true }))
	g1.waitState("VI_1", StateBackup, settle)
	// Four master-down intervals later it still has not preempted.
	deadline := time.Now().Add(4 * MasterDownInterval(150, 500*time.Millisecond))
	for time.Now().Before(deadline) {
		if s := g1.instance("VI_1").State; s != StateBackup {
			t.Fatalf("nopreempt gw1 became %v", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Hot change to preempt with a delay: no transition until the delay
	// has passed, counted from the first lower-priority advert heard after
	// the change, then gw1 takes over. Without the delay it would take over
	// Master_Down_Interval after gw2's last accepted advert, so the delay is
	// longer than that: the two cannot be mistaken for each other.
	delay := 2 * MasterDownInterval(150, 500*time.Millisecond)
	changed := time.Now()
	g1.set(vi1(150, slow, func(in *Instance) { in.PreemptDelay = delay }))
	g1.waitState("VI_1", StateMaster, settle)
	g2.waitState("VI_1", StateBackup, settle)
	tr := g1.transitions()
	if len(tr) != 2 || tr[1].To != StateMaster {
		t.Fatalf("gw1 transitions %+v", tr)
	}
	if held := tr[1].At.Sub(changed); held < delay {
		t.Errorf("preempted %v after preempt was turned on, before the %v preempt delay", held, delay)
	}
}

// TestLabDriftModes: with drift mode "ignore" (VI_1) a VIP removed by hand
// while master stays removed and nothing is reported; with "report" (VI_2)
// it stays removed and a "missing" drift event says so. A config change
// afterwards installs only the VIPs new in it, not the ones removed by hand.
func TestLabDriftModes(t *testing.T) {
	t.Parallel()
	l := newVRRPLab(t)
	const vip2, vip1b, vip2b = "203.0.113.101/24", "203.0.113.102/24", "203.0.113.103/24"
	cfg := func(extra bool) Config {
		c := vi1(150, func(in *Instance) { in.Drift = DriftIgnore })
		in2 := c.Instances[0]
		in2.Name, in2.VRID, in2.Drift = "VI_2", 52, DriftReport
		in2.VIPs = []VIP{{Prefix: netip.MustParsePrefix(vip2)}}
		if extra {
			c.Instances[0].VIPs = append(c.Instances[0].VIPs, VIP{Prefix: netip.MustParsePrefix(vip1b)})
			in2.VIPs = append(in2.VIPs, VIP{Prefix: netip.MustParsePrefix(vip2b)})
		}
		c.Instances = append(c.Instances, in2)
		return c
	}
	g := startDaemon(t, l.gw1, "gw1", cfg(false))
	g2 := startDaemon(t, l.gw2, "gw2", vi1(100, func(in *Instance) { in.Drift = DriftReport }))
	g.waitState("VI_1", StateMaster, settle)
	g.waitState("VI_2", StateMaster, settle)
	g2.waitState("VI_1", StateBackup, settle)
	waitFor(t, settle, "both VIPs on gw1", func() bool { return hasAddr(t, l.gw1, labVIPp) && hasAddr(t, l.gw1, vip2) })

	// Report, on the backup: a VIP added by hand is reported as extra and
	// left. The event is sent from the instance's goroutine in the same
	// step that would remove it, and a status read waits for that step.
	l.gw2.Run(t, "ip", "addr", "add", labVIPp, "dev", "eth0")
	waitFor(t, settle, "gw2 reports the VIP as extra", func() bool {
		ev := g2.driftEvents()
		return len(ev) == 1 && ev[0].Action == "extra" && ev[0].VIP == netip.MustParsePrefix(labVIPp)
	})
	if g2.instance("VI_1").Counters.Drift != 1 || !hasAddr(t, l.gw2, labVIPp) {
		t.Errorf("gw2 (drift report): VIP added by hand removed, or not counted")
	}
	l.gw2.Run(t, "ip", "addr", "del", labVIPp, "dev", "eth0")

	l.gw1.Run(t, "ip", "addr", "del", labVIPp, "dev", "eth0")
	l.gw1.Run(t, "ip", "addr", "del", vip2, "dev", "eth0")
	waitFor(t, settle, "VI_2 reports its VIP missing", func() bool {
		for _, ev := range g.driftEvents() {
			if ev.Instance == "VI_2" && ev.Action == "missing" && ev.VIP == netip.MustParsePrefix(vip2) {
				return true
			}
		}
		return false
	})
	// Barrier: the engine handles netlink events in order and each
	// instance its queue in order, so once the VIPs added by this Set are
	// in, both removals have been handled (and, had they been corrected,
	// put back).
	g.set(cfg(true))
	waitFor(t, settle, "new VIPs installed", func() bool { return hasAddr(t, l.gw1, vip1b) && hasAddr(t, l.gw1, vip2b) })
	if hasAddr(t, l.gw1, labVIPp) {
		t.Errorf("VI_1 (drift ignore): VIP %s restored", labVIPp)
	}
	if hasAddr(t, l.gw1, vip2) {
		t.Errorf("VI_2 (drift report): VIP %s restored", vip2)
	}
	for _, ev := range g.driftEvents() {
		if ev.Instance == "VI_1" || ev.Action != "missing" {
			t.Errorf("unexpected drift event %+v", ev)
		}
	}
	if c := g.instance("VI_1").Counters.Drift; c != 0 {
		t.Errorf("VI_1 (drift ignore) counted %d drifts, want 0", c)
	}
	if c := g.instance("VI_2").Counters.Drift; c != 1 {
		t.Errorf("VI_2 (drift report) counted %d drifts, want 1", c)
	}
}

func TestLabDriftAndSplitBrain(t *testing.T) {
	t.Parallel()
	l, g1, g2 := startLabPair(t)
	waitFor(t, settle, "VIP on gw1", func() bool { return hasAddr(t, l.gw1, labVIPp) })

	// Removed by hand while master: put back at once, counted as drift.
	l.gw1.Run(t, "ip", "addr", "del", labVIPp, "dev", "eth0")
	waitFor(t, settle, "VIP restored on gw1", func() bool { return hasAddr(t, l.gw1, labVIPp) })
	waitFor(t, settle, "drift counted on gw1", func() bool { return g1.instance("VI_1").Counters.Drift >= 1 })
	waitFor(t, settle, "drift reported by gw1", func() bool {
		ev := g1.driftEvents()
		return len(ev) > 0 && ev[0].Action == "restored" && ev[0].VIP == netip.MustParsePrefix(labVIPp)
	})
	// Added by hand on the backup: removed.
	l.gw2.Run(t, "ip", "addr", "add", labVIPp, "dev", "eth0")
	waitFor(t, settle, "VIP removed from gw2", func() bool { return !hasAddr(t, l.gw2, labVIPp) })
	waitFor(t, settle, "drift counted on gw2", func() bool { return g2.instance("VI_1").Counters.Drift >= 1 })

	// Split brain: the gateways cannot hear each other but the client
	// hears both (isolated bridge ports keep carrier).
	isolate := func(on bool) {
		v := map[bool]string{true: "on", false: "off"}[on]
		for _, p := range []string{l.port1, l.port2} {
			l.sw.NS.Run(t, "bridge", "link", "set", "dev", p, "isolated", v)
		}
	}
	waitFor(t, settle, "client on gw1", func() bool { return clientPing(l) && clientNeigh(t, l) == macOf(t, l.gw1) })
	isolate(true)
	g2.waitState("VI_1", StateMaster, settle)
	waitFor(t, settle, "client moved to gw2 by its GARP", func() bool { return clientNeigh(t, l) == macOf(t, l.gw2) })
	if g1.instance("VI_1").State != StateMaster {
		t.Fatal("gw1 should still believe it is master during the split")
	}
	isolate(false)
	g2.waitState("VI_1", StateBackup, settle)
	waitFor(t, settle, "client back on gw1 after the split heals", func() bool { return clientNeigh(t, l) == macOf(t, l.gw1) && clientPing(l) })
	waitFor(t, settle, "VIP only on gw1", func() bool { return hasAddr(t, l.gw1, labVIPp) && !hasAddr(t, l.gw2, labVIPp) })
	if tr := g1.transitions(); tr[len(tr)-1].To != StateMaster {
		t.Errorf("gw1 transitions %+v, want it master at the end", tr)
	}
}

// handoverInterval is the advert interval of the crash-handover labs. The
// backup must take over because it was told (priority 0), before its own
// timer could have fired: see tookOverWhenTold. That leaves the process
// that sends priority 0 two intervals (minus a little for a process or
// two to start on a loaded CI box) to do it.
const handoverInterval = time.Second

// tookOverWhenTold fails t unless backup (of priority prio) became master
// earlier than its own Master_Down_Timer could have made it after the
// master died at died: that timer restarts at each advert heard, the dead
// master's last one left at most one interval before died, so the timer
// fires no earlier than died + Master_Down_Interval - interval. Told by a
// priority-0 advert, the backup waits only Skew_Time after hearing it.
func tookOverWhenTold(t *testing.T, backup *daemon, prio uint8, died time.Time) {
	t.Helper()
	var tr []Transition
	waitFor(t, settle, backup.name+"'s transition to master", func() bool {
		tr = backup.transitions()
		return len(tr) > 0 && tr[len(tr)-1].To == StateMaster
	})
	bound := MasterDownInterval(prio, handoverInterval) - handoverInterval
	if took := tr[len(tr)-1].At.Sub(died); took >= bound {
		t.Errorf("%s took over %v after the master died: by its own timer (from %v on), not told by priority 0 (Skew_Time %v after it is sent)",
			backup.name, took, bound, SkewTime(prio, handoverInterval))
	} else {
		t.Logf("%s took over %v after the master died (its own timer: %v or later)", backup.name, took, bound)
	}
}

func TestLabCrashHandover(t *testing.T) {
	t.Parallel()
	l := newVRRPLab(t)
	slow := func(in *Instance) { in.Interval = handoverInterval }
	g1 := startDaemon(t, l.gw1, "gw1", vi1(150, slow))
	g2 := startDaemon(t, l.gw2, "gw2", vi1(100, slow))
	g1.waitState("VI_1", StateMaster, settle)
	g2.waitState("VI_1", StateBackup, settle)
	entries, err := ReadState(g1.stateDir)
	if err != nil || len(entries) != 1 || entries[0].VRID != 51 {
		t.Fatalf("gw1 state file: %+v %v", entries, err)
	}

	// The agent is SIGKILLed: the kernel keeps the VIP. Release (as
	// ExecStopPost=) sends priority 0 and removes it.
	died := time.Now()
	g1.kill()
	if !hasAddr(t, l.gw1, labVIPp) {
		t.Fatal("VIP already gone after SIGKILL?")
	}
	rel := exec.Command("ip", "netns", "exec", l.gw1.Name, testExe(t), "-test.run=^$")
	rel.Env = append(rel.Environ(), "GITGW_VRRP_HELPER=release", "GITGW_VRRP_STATE="+g1.stateDir)
	if out, err := rel.CombinedOutput(); err != nil {
		t.Fatalf("release: %v: %s", err, out)
	}
	if hasAddr(t, l.gw1, labVIPp) {
		t.Error("release left the VIP on gw1")
	}
	g2.waitState("VI_1", StateMaster, settle)
	tookOverWhenTold(t, g2, 100, died)
	waitFor(t, settle, "client on gw2", func() bool { return clientPing(l) && clientNeigh(t, l) == macOf(t, l.gw2) })
	// Release is idempotent: the state file is now empty.
	if entries, _ := ReadState(g1.stateDir); len(entries) != 0 {
		t.Errorf("state after release: %+v", entries)
	}

	// A restarted agent on gw1 reclaims the VIP cleanly (preempt).
	g1b := startDaemon(t, l.gw1, "gw1b", vi1(150, slow))
	g1b.waitState("VI_1", StateMaster, settle)
	g2.waitState("VI_1", StateBackup, settle)
}

func TestLabTrackCheckMovesVIP(t *testing.T) {
	t.Parallel()
	l := newVRRPLab(t)
	var ln net.Listener
	if err := l.gw1.Do(func() (err error) { ln, err = net.Listen("tcp", "127.0.0.1:0"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	addr := ln.Addr().String()
	check := func(in *Instance) {
		in.TrackChecks = []Check{{Name: "backend", Kind: CheckTCP, Target: addr, Interval: 50 * time.Millisecond, Fall: 2, Rise: 2, Weight: -60}}
	}
	g1 := startDaemon(t, l.gw1, "gw1", vi1(150, check))
	g2 := startDaemon(t, l.gw2, "gw2", vi1(100))
	g1.waitState("VI_1", StateMaster, settle)
	g2.waitState("VI_1", StateBackup, settle)

	// The backend dies: 150-60 = 90 < 100, gw2 preempts.
	ln.Close()
	g2.waitState("VI_1", StateMaster, settle)
	g1.waitState("VI_1", StateBackup, settle)
	if p := g1.instance("VI_1").Priority; p != 90 {
		t.Errorf("gw1 effective priority %d, want 90", p)
	}
	// Back: gw1 preempts again.
	if err := l.gw1.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	g1.waitState("VI_1", StateMaster, settle)
	g2.waitState("VI_1", StateBackup, settle)
}

func testExe(t testing.TB) string {
	t.Helper()
	exe, err := osExecutable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// TestLabCrashWithoutHandover: a SIGKILLed agent with no ExecStopPost
// leaves its VIP in the kernel; the backup takes over after the
// master-down interval, and the restarted agent cleans the stale VIP up
// before it preempts again.
func TestLabCrashWithoutHandover(t *testing.T) {
	t.Parallel()
	l, g1, g2 := startLabPair(t)
	g1.kill()
	g2.waitState("VI_1", StateMaster, settle)
	if !hasAddr(t, l.gw1, labVIPp) {
		t.Fatal("expected the dead agent's VIP to linger in gw1's kernel")
	}
	g1b := startDaemon(t, l.gw1, "gw1b", vi1(150))
	waitFor(t, settle, "stale VIP gone or owned again", func() bool {
		tr := g1b.transitions()
		return len(tr) > 0 && tr[0].To == StateBackup
	})
	g1b.waitState("VI_1", StateMaster, settle)
	g2.waitState("VI_1", StateBackup, settle)
	waitFor(t, settle, "VIP only on gw1", func() bool { return hasAddr(t, l.gw1, labVIPp) && !hasAddr(t, l.gw2, labVIPp) })
	waitFor(t, settle, "client on gw1", func() bool { return clientPing(l) && clientNeigh(t, l) == macOf(t, l.gw1) })
}

// TestLabGuardian: with a guardian, a SIGKILLed agent hands over at once,
// without anyone running Release.
func TestLabGuardian(t *testing.T) {
	t.Parallel()
	l := newVRRPLab(t)
	slow := func(in *Instance) { in.Interval = handoverInterval }
	g1 := startDaemonEnv(t, l.gw1, "gw1", vi1(150, slow), "GITGW_VRRP_GUARDIAN=1")
	g2 := startDaemon(t, l.gw2, "gw2", vi1(100, slow))
	g1.waitState("VI_1", StateMaster, settle)
	g2.waitState("VI_1", StateBackup, settle)
	died := time.Now()
	g1.kill()
	g2.waitState("VI_1", StateMaster, settle)
	tookOverWhenTold(t, g2, 100, died)
	waitFor(t, settle, "the guardian removed gw1's VIP", func() bool { return !hasAddr(t, l.gw1, labVIPp) })
	waitFor(t, settle, "state file emptied", func() bool { e, err := ReadState(g1.stateDir); return err == nil && len(e) == 0 })
	waitFor(t, settle, "client on gw2", func() bool { return clientPing(l) && clientNeigh(t, l) == macOf(t, l.gw2) })
}

// TestLabICMPCheck: the in-process ICMP check against the real kernel.
func TestLabICMPCheck(t *testing.T) {
	t.Parallel()
	l := newVRRPLab(t)
	probeIn := func(target string) error {
		var err error
		if derr := l.gw1.Do(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			err = probe(ctx, Check{Kind: CheckICMP, Target: target}, nil)
			return nil
		}); derr != nil {
			t.Fatal(derr)
		}
		return err
	}
	if err := probeIn("203.0.113.50"); err != nil {
		t.Errorf("client should answer: %v", err)
	}
	if err := probeIn("203.0.113.99"); err == nil {
		t.Error("a missing host answered")
	}
}

// TestLabRolloutNoDualMaster: the site adds a VIP and gw1 applies it first;
// gw2, still on the old list, keeps following gw1 instead of becoming a
// second master for the length of the rollout (keepalived would).
func TestLabRolloutNoDualMaster(t *testing.T) {
	t.Parallel()
	l := newVRRPLab(t)
	slow := func(in *Instance) { in.Interval = 500 * time.Millisecond }
	two := func(in *Instance) {
		in.VIPs = append(in.VIPs, VIP{Prefix: netip.MustParsePrefix("203.0.113.101/24")})
	}
	g1 := startDaemon(t, l.gw1, "gw1", vi1(150, slow))
	g2 := startDaemon(t, l.gw2, "gw2", vi1(100, slow))
	g1.waitState("VI_1", StateMaster, settle)
	g2.waitState("VI_1", StateBackup, settle)
	g1.set(vi1(150, slow, two))
	waitFor(t, settle, "new VIP on gw1", func() bool { return hasAddr(t, l.gw1, "203.0.113.101/24") })
	deadline := time.Now().Add(4 * MasterDownInterval(100, 500*time.Millisecond))
	for time.Now().Before(deadline) {
		if s := g2.instance("VI_1").State; s != StateBackup {
			t.Fatalf("gw2 became %v during the rollout", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c := g2.instance("VI_1").Counters; c.AddrListMismatch == 0 || c.Drops[DropAddrList] != 0 {
		t.Errorf("gw2 counters %+v", c)
	}
	g2.set(vi1(100, slow, two))
	g2.waitState("VI_1", StateBackup, settle)
	if tr := g2.transitions(); len(tr) != 1 {
		t.Errorf("gw2 transitions %+v", tr)
	}
}
