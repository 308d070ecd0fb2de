package vrrp

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/dataplane/vip"
	"github.com/gitgw/gitgw/test/lab"
)

// vmacFrames counts, in the switch's bridge, the frames entering from
// each watched port with the virtual MAC as Ethernet source: what the
// bridge learns the VMAC's port from.
type vmacFrames struct {
	sw    *lab.Switch
	table string
}

func watchVMACFrames(t *testing.T, sw *lab.Switch, mac string, ports ...string) *vmacFrames {
	t.Helper()
	lab.RequireCommand(t, "nft")
	w := &vmacFrames{sw: sw, table: "vmacwatch"}
	sw.NS.Run(t, "nft", "add", "table", "bridge", w.table)
	sw.NS.Run(t, "nft", "add chain bridge "+w.table+" pre { type filter hook prerouting priority 0 ; }")
	for _, p := range ports {
		sw.NS.Run(t, "nft", "add rule bridge "+w.table+" pre iifname "+p+" ether saddr "+mac+" counter comment "+p)
		// MLDv2 reports go to ff02::16.
		sw.NS.Run(t, "nft", "add rule bridge "+w.table+" pre iifname "+p+" ether saddr "+mac+" ip6 daddr ff02::16 counter comment "+p+"mld")
	}
	return w
}

var counterRE = regexp.MustCompile(`counter packets (\d+) .*comment "(\w+)"`)

// count returns the frames counted under name (a port, or port+"mld" for
// its MLD reports) since the watch began.
func (w *vmacFrames) count(t *testing.T, name string) int {
	t.Helper()
	out := w.sw.NS.Run(t, "nft", "list", "table", "bridge", w.table)
	for _, m := range counterRE.FindAllStringSubmatch(out, -1) {
		if m[2] == name {
			n, _ := strconv.Atoi(m[1])
			return n
		}
	}
	t.Fatalf("no counter %s in %s", name, out)
	return 0
}

// vmac6Lab is TestLabIPv6's segment, for VMAC instances of VRID 51.
type vmac6Lab struct {
	sw                *lab.Switch
	gw1, gw2, cl      *lab.Netns
	port1, port2      string
	ll1, ll2          netip.Prefix
	vmac, want, vipIP string
}

func newVMAC6Lab(t *testing.T) *vmac6Lab {
	t.Helper()
	skipShort(t)
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "ping")
	l := &vmac6Lab{sw: lab.NewSwitch(t), vmac: vip.VMAC6Name("eth0", 51), want: vip.VMAC6Addr(51).String(), vipIP: "2001:db8::100"}
	l.gw1, l.gw2, l.cl = lab.NewNetns(t, "v61"), lab.NewNetns(t, "v62"), lab.NewNetns(t, "vc6")
	l.port1 = l.sw.Attach(t, l.gw1, "eth0", "2001:db8::11/64")
	l.port2 = l.sw.Attach(t, l.gw2, "eth0", "2001:db8::12/64")
	l.sw.Attach(t, l.cl, "eth0", "2001:db8::50/64")
	for _, ns := range []*lab.Netns{l.gw1, l.gw2, l.cl} {
		waitLinkLocal(t, ns)
	}
	l.ll1, l.ll2 = linkLocal(t, l.gw1), linkLocal(t, l.gw2)
	return l
}

func (l *vmac6Lab) cfg(prio uint8) Config {
	return Config{Instances: []Instance{{
		Name: "VI_6", Interface: "eth0", VRID: 51, Version: 3, Interval: 100 * time.Millisecond, Priority: prio,
		VIPs: []VIP{{Prefix: netip.MustParsePrefix(l.vipIP + "/64")}}, AllowSources: []netip.Prefix{l.ll1, l.ll2}, VMAC: true,
	}}}
}

// onVMAC: the VIP is on ns's IPv6 VMAC.
func (l *vmac6Lab) onVMAC(ns *lab.Netns) bool {
	out, _ := ns.Try("ip", "-6", "-o", "addr", "show", "dev", l.vmac)
	return strings.Contains(out, " "+l.vipIP+"/64 ")
}

// onParent: the VIP is on ns's eth0.
func (l *vmac6Lab) onParent(ns *lab.Netns) bool {
	out, _ := ns.Try("ip", "-6", "-o", "addr", "show", "dev", "eth0")
	return strings.Contains(out, " "+l.vipIP+"/64 ")
}

func (l *vmac6Lab) vmacUp(ns *lab.Netns) bool {
	out, _ := ns.Try("ip", "-o", "link", "show", "dev", l.vmac)
	return strings.Contains(out, ",UP")
}

func (l *vmac6Lab) ping() bool {
	_, err := l.cl.Try("ping", "-6", "-c", "1", "-W", "1", l.vipIP)
	return err == nil
}

// neigh is the client's neighbour entry's MAC for the VIP.
func (l *vmac6Lab) neigh() string {
	out, _ := l.cl.Try("ip", "-6", "neigh", "show", l.vipIP, "dev", "eth0")
	f := strings.Fields(out)
	for i, w := range f {
		if w == "lladdr" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

// steadyBackup waits for twenty more adverts at d's VI_6 (calling each
// on the way) and checks that it stayed backup all along: it hears the
// master, whatever its VMAC does.
func steadyBackup(t *testing.T, d *daemon, each func() bool) {
	t.Helper()
	st := d.instance("VI_6")
	from, tr := st.Counters.AdvertsIn, st.Counters.Transitions
	waitFor(t, settle, "twenty more adverts at "+d.name, func() bool {
		each()
		return d.instance("VI_6").Counters.AdvertsIn >= from+20
	})
	if st := d.instance("VI_6"); st.State != StateBackup || st.Counters.Transitions != tr {
		t.Errorf("%s not a steady backup: %v, %d transitions in the window", d.name, st.State, st.Counters.Transitions-tr)
	}
}

// atVMAC: the client reaches the VIP at the IPv6 virtual MAC.
func (l *vmac6Lab) atVMAC() bool { return l.ping() && l.neigh() == l.want }

// TestLabVMAC6: an IPv6 VRRPv3 instance with a virtual MAC. The client's
// neighbour entry for the VIP is 00:00:5e:00:02:33 (VRID 51) on whichever
// node is master, across a failover and back; while the master is healthy
// no frame with the virtual MAC as source enters the bridge from the
// backup's port (the bridge would learn the VMAC there and send the
// master's traffic to the backup); a clean stop removes the macvlan.
func TestLabVMAC6(t *testing.T) {
	t.Parallel()
	l := newVMAC6Lab(t)
	gw1, gw2, port1, port2 := l.gw1, l.gw2, l.port1, l.port2
	// From before gw2 starts, its port never sources the VMAC while gw1
	// is a healthy master.
	w := watchVMACFrames(t, l.sw, l.want, port1, port2)
	g1 := startDaemon(t, gw1, "gw1", l.cfg(150))
	g1.waitState("VI_6", StateMaster, settle)
	g2 := startDaemon(t, gw2, "gw2", l.cfg(100))
	g2.waitState("VI_6", StateBackup, settle)

	waitFor(t, settle, "VIP on gw1's VMAC only", func() bool {
		return l.onVMAC(gw1) && !l.onVMAC(gw2) && !l.onParent(gw1) && !l.onParent(gw2)
	})
	waitFor(t, settle, "client reaching the VIP at the IPv6 virtual MAC", l.atVMAC)
	waitFor(t, settle, "gw2 hearing gw1", func() bool { return g2.instance("VI_6").Counters.AdvertsIn > 0 })
	if st := g2.instance("VI_6"); len(st.Counters.Drops) != 0 || st.MasterAddr != l.ll1.Addr() {
		t.Errorf("gw2 sees %+v", st)
	}
	if !l.vmacUp(gw1) || l.vmacUp(gw2) {
		t.Errorf("VMAC up on gw1 %v, on gw2 %v: want the master's only", l.vmacUp(gw1), l.vmacUp(gw2))
	}
	// The macvlans hold no link-local: adverts leave from each node's own.
	for _, ns := range []*lab.Netns{gw1, gw2} {
		if out, _ := ns.Try("ip", "-6", "addr", "show", "dev", l.vmac, "scope", "link"); strings.Contains(out, "fe80") {
			t.Errorf("%s: link-local on the VMAC: %s", ns.Name, out)
		}
	}
	// Watched for twenty more of gw1's adverts (and pings).
	steadyBackup(t, g2, l.ping)
	if n := w.count(t, port2); n != 0 {
		t.Errorf("%d frames with the VMAC source from the backup's port, %d of them MLD reports", n, w.count(t, port2+"mld"))
	}
	if w.count(t, port1) == 0 {
		t.Errorf("no frame with the VMAC source from the master's port: the watch sees nothing")
	}
	if out := l.sw.NS.Run(t, "bridge", "fdb", "show", "br", "br0"); !strings.Contains(out, l.want+" dev "+port1) {
		t.Errorf("the bridge has not learnt the VMAC at %s:\n%s", port1, out)
	}

	// The new master's unsolicited NA, and nothing else (a stale entry
	// is not probed without traffic), points the client at the VMAC.
	l.cl.Run(t, "ip", "-6", "neigh", "replace", l.vipIP, "lladdr", "02:00:00:00:00:99", "dev", "eth0", "nud", "stale")
	l.sw.SetPort(t, port1, false)
	g2.waitState("VI_6", StateMaster, settle)
	waitFor(t, settle, "gw2's unsolicited NA for the VIP with the VMAC", func() bool { return l.neigh() == l.want })
	waitFor(t, settle, "client reaching the VIP on gw2, same MAC", func() bool { return l.atVMAC() && l.onVMAC(gw2) })
	l.sw.SetPort(t, port1, true)
	g1.waitState("VI_6", StateMaster, settle)
	g2.waitState("VI_6", StateBackup, settle)
	waitFor(t, settle, "client on gw1 again", func() bool { return l.atVMAC() && l.onVMAC(gw1) && !l.onVMAC(gw2) })
	if l.vmacUp(gw2) {
		t.Errorf("gw2's VMAC is up while backup")
	}
	// The ex-master sends nothing with the VMAC once it has stepped
	// down: not even an MLD leave for the VIP's solicited-node group.
	before, beforeMLD := w.count(t, port2), w.count(t, port2+"mld")
	steadyBackup(t, g2, l.ping)
	if n := w.count(t, port2) - before; n != 0 {
		t.Errorf("after failback, %d frames with the VMAC source from the backup's port, %d of them MLD reports", n, w.count(t, port2+"mld")-beforeMLD)
	}

	// A clean stop removes the macvlan.
	g1.term()
	if out, err := gw1.Try("ip", "link", "show", l.vmac); err == nil {
		t.Errorf("VMAC left behind: %s", out)
	}
	g2.waitState("VI_6", StateMaster, settle)
	waitFor(t, settle, "client on gw2", l.atVMAC)
}

// TestInteropVMAC6: keepalived with use_vmac on an IPv6 instance and
// gitgw with VMAC in one virtual router, both directions of failover; the
// client's neighbour entry for the VIP stays the IPv6 virtual MAC.
func TestInteropVMAC6(t *testing.T) {
	t.Parallel()
	lab.RequireCommand(t, "keepalived")
	l := newVMAC6Lab(t)
	ki := lab.KeepalivedInstance{Name: "VI_6", Interface: "eth0", VRID: 51, Priority: 150, AdvertInt: "0.1",
		Version: 3, VIPs: []string{l.vipIP + "/64"}, Extra: []string{"use_vmac"}}
	ka := lab.StartKeepalived(t, l.gw1, lab.RenderKeepalived("gw1", ki))
	ka.WaitLog(t, "Entering MASTER STATE", settle)
	g2 := startDaemon(t, l.gw2, "gw2", l.cfg(100))
	g2.waitState("VI_6", StateBackup, settle)
	// gitgw hears keepalived with its VMAC down, and stays backup.
	steadyBackup(t, g2, func() bool { return false })
	if st := g2.instance("VI_6"); len(st.Counters.Drops) != 0 {
		t.Errorf("gitgw, backup to keepalived: %+v", st)
	}
	waitFor(t, settle, "client at the IPv6 virtual MAC on keepalived", l.atVMAC)
	if l.vmacUp(l.gw2) {
		t.Errorf("gitgw's VMAC is up while backup")
	}
	ka.Stop(t)
	g2.waitState("VI_6", StateMaster, settle)
	waitFor(t, settle, "client on gitgw, same MAC", func() bool { return l.atVMAC() && l.onVMAC(l.gw2) })
	ka2 := lab.StartKeepalived(t, l.gw1, lab.RenderKeepalived("gw1", ki))
	ka2.WaitLog(t, "Entering MASTER STATE", settle)
	g2.waitState("VI_6", StateBackup, settle)
	waitFor(t, settle, "client on keepalived again", func() bool { return l.atVMAC() && !l.onVMAC(l.gw2) && !l.vmacUp(l.gw2) })
	noComplaints(t, ka2)
}

// TestLabVMAC6CrashHandover: the agent on the master is SIGKILLed with
// its IPv6 VMAC up and holding the VIP; the release (ExecStopPost=) sets
// the VMAC down and removes the VIP, so that from then on the node's port
// sends nothing with the virtual MAC while gw2 is master.
func TestLabVMAC6CrashHandover(t *testing.T) {
	t.Parallel()
	l := newVMAC6Lab(t)
	w := watchVMACFrames(t, l.sw, l.want, l.port1, l.port2)
	g1 := startDaemon(t, l.gw1, "gw1", l.cfg(150))
	g1.waitState("VI_6", StateMaster, settle)
	g2 := startDaemon(t, l.gw2, "gw2", l.cfg(100))
	g2.waitState("VI_6", StateBackup, settle)
	waitFor(t, settle, "client at the VMAC on gw1", func() bool { return l.atVMAC() && l.onVMAC(l.gw1) })

	g1.kill()
	if !l.onVMAC(l.gw1) || !l.vmacUp(l.gw1) {
		t.Fatal("VIP or VMAC already gone after SIGKILL?")
	}
	rel := releaseCmd(l.gw1, "GITGW_VRRP_HELPER=release", "GITGW_VRRP_STATE="+g1.stateDir)
	if out, err := rel.CombinedOutput(); err != nil {
		t.Fatalf("release: %v: %s", err, out)
	}
	if l.onVMAC(l.gw1) || l.vmacUp(l.gw1) {
		t.Errorf("after release, VIP on gw1's VMAC %v, VMAC up %v", l.onVMAC(l.gw1), l.vmacUp(l.gw1))
	}
	g2.waitState("VI_6", StateMaster, settle)
	waitFor(t, settle, "client on gw2, same MAC", func() bool { return l.atVMAC() && l.onVMAC(l.gw2) })
	before := w.count(t, l.port1)
	from := g2.instance("VI_6").Counters.AdvertsOut
	waitFor(t, settle, "twenty adverts from gw2", func() bool {
		l.ping()
		return g2.instance("VI_6").Counters.AdvertsOut >= from+20
	})
	if n := w.count(t, l.port1) - before; n != 0 {
		t.Errorf("after release, %d frames with the VMAC source from gw1's port, %d of them MLD reports", n, w.count(t, l.port1+"mld"))
	}
}
