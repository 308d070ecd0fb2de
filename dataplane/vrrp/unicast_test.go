package vrrp

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

func unicastTo(src, peer string) func(*Instance) {
	return func(in *Instance) {
		in.UnicastSrc, in.UnicastPeers = netip.MustParseAddr(src), []netip.Addr{netip.MustParseAddr(peer)}
	}
}

// TestLabUnicast runs VI_1 with unicast peers on the real kernel, against
// gitgw and against keepalived (whose unicast checksum uses the real
// destination in the pseudo-header, as ours must).
func TestLabUnicast(t *testing.T) {
	skipShort(t)
	lab.RequireRoot(t)
	t.Run("gitgw-gitgw", func(t *testing.T) {
		t.Parallel()
		l := newVRRPLab(t)
		g1 := startDaemon(t, l.gw1, "gw1", vi1(150, unicastTo("203.0.113.11", "203.0.113.12")))
		g2 := startDaemon(t, l.gw2, "gw2", vi1(100, unicastTo("203.0.113.12", "203.0.113.11")))
		g1.waitState("VI_1", StateMaster, settle)
		g2.waitState("VI_1", StateBackup, settle)
		waitFor(t, settle, "adverts received by unicast", func() bool { return g2.instance("VI_1").Counters.AdvertsIn >= 3 })
		if d := g2.instance("VI_1").Counters.Drops; len(d) != 0 {
			t.Errorf("drops %v", d)
		}
		g1.term()
		g2.waitState("VI_1", StateMaster, settle)
		waitFor(t, settle, "client on gw2", func() bool { return clientPing(l) && clientNeigh(t, l) == macOf(t, l.gw2) })
	})
	t.Run("keepalived-master", func(t *testing.T) {
		t.Parallel()
		lab.RequireCommand(t, "keepalived")
		l := newVRRPLab(t)
		ki := kaVI1(150, 3, "0.1", "")
		ki.UnicastSrc, ki.UnicastPeers = "203.0.113.11", []string{"203.0.113.12"}
		ka := lab.StartKeepalived(t, l.gw1, lab.RenderKeepalived("gw1", ki))
		ka.WaitLog(t, "Entering MASTER STATE", settle)
		g2 := startDaemon(t, l.gw2, "gw2", vi1(100, unicastTo("203.0.113.12", "203.0.113.11")))
		g2.waitState("VI_1", StateBackup, settle)
		waitFor(t, settle, "keepalived's unicast adverts", func() bool { return g2.instance("VI_1").Counters.AdvertsIn >= 3 })
		if d := g2.instance("VI_1").Counters.Drops; len(d) != 0 {
			t.Errorf("drops %v", d)
		}
		ka.Stop(t)
		g2.waitState("VI_1", StateMaster, settle)
	})
	t.Run("gitgw-master", func(t *testing.T) {
		t.Parallel()
		lab.RequireCommand(t, "keepalived")
		l := newVRRPLab(t)
		slow := func(in *Instance) { in.Interval = 500 * time.Millisecond }
		g1 := startDaemon(t, l.gw1, "gw1", vi1(150, slow, unicastTo("203.0.113.11", "203.0.113.12")))
		g1.waitState("VI_1", StateMaster, settle)
		ki := kaVI1(100, 3, "0.5", "")
		ki.UnicastSrc, ki.UnicastPeers = "203.0.113.12", []string{"203.0.113.11"}
		ka := lab.StartKeepalived(t, l.gw2, lab.RenderKeepalived("gw2", ki))
		ka.WaitLog(t, "Entering BACKUP STATE", settle)
		deadline := time.Now().Add(5 * MasterDownInterval(100, 500*time.Millisecond))
		for time.Now().Before(deadline) {
			if strings.Contains(ka.Log(), "Entering MASTER STATE") {
				t.Fatalf("keepalived took over from a healthy unicast gitgw master:\n%s", ka.Log())
			}
			time.Sleep(50 * time.Millisecond)
		}
		noComplaints(t, ka)
		g1.term()
		ka.WaitLog(t, "Entering MASTER STATE", settle)
	})
}

// TestInteropIPv6 runs gitgw and keepalived in one IPv6 virtual router.
func TestInteropIPv6(t *testing.T) {
	t.Parallel()
	skipShort(t)
	lab.RequireRoot(t)
	lab.RequireCommand(t, "keepalived")
	sw := lab.NewSwitch(t)
	gw1, gw2 := lab.NewNetns(t, "k61"), lab.NewNetns(t, "k62")
	sw.Attach(t, gw1, "eth0", "2001:db8::11/64")
	sw.Attach(t, gw2, "eth0", "2001:db8::12/64")
	waitLinkLocal(t, gw1)
	waitLinkLocal(t, gw2)
	ka := lab.StartKeepalived(t, gw1, lab.RenderKeepalived("gw1", lab.KeepalivedInstance{
		Name: "VI_6", Interface: "eth0", VRID: 51, Priority: 150, AdvertInt: "0.1", Version: 3, VIPs: []string{"2001:db8::100/64"},
	}))
	ka.WaitLog(t, "Entering MASTER STATE", settle)
	g2 := startDaemon(t, gw2, "gw2", Config{Instances: []Instance{{
		Name: "VI_6", Interface: "eth0", VRID: 51, Version: 3, Interval: 100 * time.Millisecond, Priority: 100,
		VIPs: []VIP{{Prefix: netip.MustParsePrefix("2001:db8::100/64")}},
	}}})
	g2.waitState("VI_6", StateBackup, settle)
	waitFor(t, settle, "keepalived's IPv6 adverts", func() bool { return g2.instance("VI_6").Counters.AdvertsIn >= 3 })
	st := g2.instance("VI_6")
	if len(st.Counters.Drops) != 0 || !st.MasterAddr.IsLinkLocalUnicast() || st.MasterPriority != 150 {
		t.Errorf("gitgw sees %+v", st)
	}
	ka.Stop(t)
	g2.waitState("VI_6", StateMaster, settle)
	waitFor(t, settle, "IPv6 VIP on gw2", func() bool { return hasAddr(t, gw2, "2001:db8::100/64") })
}
