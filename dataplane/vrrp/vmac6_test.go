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
// port with the Ethernet source mac: what a bridge learns from.
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

// count returns the frames seen from port since the watch began.
func (w *vmacFrames) count(t *testing.T, port string) int {
	t.Helper()
	out := w.sw.NS.Run(t, "nft", "list", "table", "bridge", w.table)
	for _, m := range counterRE.FindAllStringSubmatch(out, -1) {
		if m[2] == port {
			n, _ := strconv.Atoi(m[1])
			return n
		}
	}
	t.Fatalf("no counter for %s in %s", port, out)
	return 0
}

// TestLabVMAC6: an IPv6 VRRPv3 instance with a virtual MAC. The client's
// neighbour entry for the VIP is 00:00:5e:00:02:33 (VRID 51) on whichever
// node is master, across a failover and back; while the master is healthy
// no frame with the virtual MAC as source enters the bridge from the
// backup's port (a bridge would learn the VMAC there and send the
// master's traffic to the backup); a clean stop removes the macvlan.
func TestLabVMAC6(t *testing.T) {
	t.Parallel()
	skipShort(t)
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "ping")
	sw := lab.NewSwitch(t)
	gw1, gw2, cl := lab.NewNetns(t, "v61"), lab.NewNetns(t, "v62"), lab.NewNetns(t, "vc6")
	port1 := sw.Attach(t, gw1, "eth0", "2001:db8::11/64")
	port2 := sw.Attach(t, gw2, "eth0", "2001:db8::12/64")
	sw.Attach(t, cl, "eth0", "2001:db8::50/64")
	for _, ns := range []*lab.Netns{gw1, gw2, cl} {
		waitLinkLocal(t, ns)
	}
	ll1, ll2 := linkLocal(t, gw1), linkLocal(t, gw2)
	const vipAddr = "2001:db8::100"
	cfg := func(prio uint8) Config {
		return Config{Instances: []Instance{{
			Name: "VI_6", Interface: "eth0", VRID: 51, Version: 3, Interval: 100 * time.Millisecond, Priority: prio,
			VIPs: []VIP{{Prefix: netip.MustParsePrefix(vipAddr + "/64")}}, AllowSources: []netip.Prefix{ll1, ll2}, VMAC: true,
		}}}
	}
	vmac := vip.VMAC6Name("eth0", 51)
	want := vip.VMAC6Addr(51).String()
	// From before gw2 starts, its port never sources the VMAC while gw1
	// is a healthy master.
	w := watchVMACFrames(t, sw, want, port1, port2)
	g1 := startDaemon(t, gw1, "gw1", cfg(150))
	g1.waitState("VI_6", StateMaster, settle)
	g2 := startDaemon(t, gw2, "gw2", cfg(100))
	g2.waitState("VI_6", StateBackup, settle)
	onVMAC := func(ns *lab.Netns) bool {
		out, _ := ns.Try("ip", "-6", "-o", "addr", "show", "dev", vmac)
		return strings.Contains(out, " "+vipAddr+"/64 ")
	}
	vmacUp := func(ns *lab.Netns) bool {
		out, _ := ns.Try("ip", "-o", "link", "show", "dev", vmac)
		return strings.Contains(out, ",UP")
	}
	onParent := func(ns *lab.Netns) bool { return hasAddr(t, ns, vipAddr+"/64") }
	ping := func() bool { _, err := cl.Try("ping", "-6", "-c", "1", "-W", "1", vipAddr); return err == nil }
	neigh := func() string {
		out, _ := cl.Try("ip", "-6", "neigh", "show", vipAddr, "dev", "eth0")
		f := strings.Fields(out)
		for i, w := range f {
			if w == "lladdr" && i+1 < len(f) {
				return f[i+1]
			}
		}
		return ""
	}
	waitFor(t, settle, "VIP on gw1's VMAC only", func() bool { return onVMAC(gw1) && !onVMAC(gw2) && !onParent(gw1) && !onParent(gw2) })
	waitFor(t, settle, "client reaching the VIP at the IPv6 virtual MAC", func() bool { return ping() && neigh() == want })
	st := g2.instance("VI_6")
	if len(st.Counters.Drops) != 0 || st.Counters.AdvertsIn == 0 || st.MasterAddr != ll1.Addr() {
		t.Errorf("gw2 sees %+v", st)
	}
	if !vmacUp(gw1) || vmacUp(gw2) {
		t.Errorf("VMAC up on gw1 %v, on gw2 %v: want the master's only", vmacUp(gw1), vmacUp(gw2))
	}
	// The macvlans hold no link-local: adverts leave from each node's own.
	for _, ns := range []*lab.Netns{gw1, gw2} {
		if out, _ := ns.Try("ip", "-6", "addr", "show", "dev", vmac, "scope", "link"); strings.Contains(out, "fe80") {
			t.Errorf("%s: link-local on the VMAC: %s", ns.Name, out)
		}
	}

	// Watched for twenty more of gw1's adverts (and pings).
	from := g2.instance("VI_6").Counters.AdvertsIn
	waitFor(t, settle, "twenty more adverts at gw2", func() bool {
		ping()
		return g2.instance("VI_6").Counters.AdvertsIn >= from+20
	})
	if n := w.count(t, port2); n != 0 {
		t.Errorf("%d frames with the VMAC source from the backup's port, %d of them MLD reports", n, w.count(t, port2+"mld"))
	}
	if w.count(t, port1) == 0 {
		t.Errorf("no frame with the VMAC source from the master's port: the watch sees nothing")
	}
	if out := sw.NS.Run(t, "bridge", "fdb", "show", "br", "br0"); !strings.Contains(out, want+" dev "+port1) {
		t.Errorf("bridge fdb has not learnt the VMAC at %s:\n%s", port1, out)
	}

	sw.SetPort(t, port1, false)
	g2.waitState("VI_6", StateMaster, settle)
	waitFor(t, settle, "client reaching the VIP on gw2, same MAC", func() bool { return ping() && neigh() == want && onVMAC(gw2) })
	sw.SetPort(t, port1, true)
	g1.waitState("VI_6", StateMaster, settle)
	g2.waitState("VI_6", StateBackup, settle)
	waitFor(t, settle, "client on gw1 again", func() bool { return ping() && onVMAC(gw1) && !onVMAC(gw2) })
	before, beforeMLD := w.count(t, port2), w.count(t, port2+"mld")
	if vmacUp(gw2) {
		t.Errorf("gw2's VMAC is up while backup")
	}
	from = g2.instance("VI_6").Counters.AdvertsIn
	waitFor(t, settle, "twenty more adverts at gw2", func() bool {
		ping()
		return g2.instance("VI_6").Counters.AdvertsIn >= from+20
	})
	// The ex-master sends nothing with the VMAC once it has stepped
	// down: not even an MLD leave for the VIP's solicited-node group.
	if n := w.count(t, port2) - before; n != 0 {
		t.Errorf("after failback, %d frames with the VMAC source from the backup's port, %d of them MLD reports", n, w.count(t, port2+"mld")-beforeMLD)
	}

	// A clean stop removes the macvlan.
	g1.term()
	if out, err := gw1.Try("ip", "link", "show", vmac); err == nil {
		t.Errorf("VMAC left behind: %s", out)
	}
	g2.waitState("VI_6", StateMaster, settle)
	waitFor(t, settle, "client on gw2", func() bool { return ping() && neigh() == want })
}
