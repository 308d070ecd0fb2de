package vrrp

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

func waitLinkLocal(t *testing.T, ns *lab.Netns) {
	t.Helper()
	waitFor(t, settle, "a usable link-local address in "+ns.Name, func() bool {
		out, _ := ns.Try("ip", "-6", "addr", "show", "dev", "eth0", "scope", "link")
		return strings.Contains(out, "fe80") && !strings.Contains(out, "tentative")
	})
}

// linkLocal returns the link-local address of ns's eth0.
func linkLocal(t *testing.T, ns *lab.Netns) netip.Prefix {
	t.Helper()
	out := ns.Run(t, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link")
	f := strings.Fields(out)
	for i, w := range f {
		if w == "inet6" && i+1 < len(f) {
			p := netip.MustParsePrefix(f[i+1])
			return netip.PrefixFrom(p.Addr(), 128)
		}
	}
	t.Fatalf("no link-local address in %s: %s", ns.Name, out)
	return netip.Prefix{}
}

func TestLabIPv6(t *testing.T) {
	t.Parallel()
	skipShort(t)
	lab.RequireRoot(t)
	sw := lab.NewSwitch(t)
	gw1, gw2, cl := lab.NewNetns(t, "g61"), lab.NewNetns(t, "g62"), lab.NewNetns(t, "c6")
	sw.Attach(t, gw1, "eth0", "2001:db8::11/64")
	sw.Attach(t, gw2, "eth0", "2001:db8::12/64")
	sw.Attach(t, cl, "eth0", "2001:db8::50/64")
	for _, ns := range []*lab.Netns{gw1, gw2, cl} {
		waitLinkLocal(t, ns)
	}
	// IPv6 adverts leave from link-local addresses: the allow-list holds
	// the gateways' own.
	allow := []netip.Prefix{linkLocal(t, gw1), linkLocal(t, gw2)}
	cfg := func(prio uint8) Config {
		return Config{Instances: []Instance{{
			Name: "VI_6", Interface: "eth0", VRID: 51, Version: 3, Interval: 100 * time.Millisecond, Priority: prio,
			VIPs: []VIP{{Prefix: netip.MustParsePrefix("2001:db8::100/64")}}, AllowSources: allow,
		}}}
	}
	g1 := startDaemon(t, gw1, "gw1", cfg(150))
	g2 := startDaemon(t, gw2, "gw2", cfg(100))
	g1.waitState("VI_6", StateMaster, settle)
	g2.waitState("VI_6", StateBackup, settle)
	st := g2.instance("VI_6")
	if !st.MasterAddr.IsLinkLocalUnicast() || st.MasterPriority != 150 || len(st.Counters.Drops) != 0 {
		t.Errorf("gw2 sees %+v", st)
	}
	has := func(ns *lab.Netns) bool { return hasAddr(t, ns, "2001:db8::100/64") }
	waitFor(t, settle, "VIP on gw1 only", func() bool { return has(gw1) && !has(gw2) })
	ping := func() bool { _, err := cl.Try("ping", "-6", "-c", "1", "-W", "1", "2001:db8::100"); return err == nil }
	waitFor(t, settle, "client reaching the IPv6 VIP", ping)
	g1.term()
	g2.waitState("VI_6", StateMaster, settle)
	waitFor(t, settle, "VIP on gw2 only", func() bool { return has(gw2) && !has(gw1) })
	mac2 := macOf(t, gw2)
	waitFor(t, settle, "client reaching the VIP on gw2", func() bool {
		out, _ := cl.Try("ip", "-6", "neigh", "show", "2001:db8::100", "dev", "eth0")
		return ping() && strings.Contains(out, mac2)
	})
}
