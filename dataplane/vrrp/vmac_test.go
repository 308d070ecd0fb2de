package vrrp

import (
	"strings"
	"testing"

	"github.com/gitgw/gitgw/dataplane/vip"
	"github.com/gitgw/gitgw/test/lab"
)

// TestLabVMAC: with a virtual MAC the client's neighbour entry for the VIP
// is 00:00:5e:00:01:33 (VRID 51) on whichever node is master, and stays so
// across a failover.
func TestLabVMAC(t *testing.T) {
	t.Parallel()
	l := newVRRPLab(t)
	withVMAC := func(in *Instance) { in.VMAC = true }
	g1 := startDaemon(t, l.gw1, "gw1", vi1(150, withVMAC))
	g2 := startDaemon(t, l.gw2, "gw2", vi1(100, withVMAC))
	g1.waitState("VI_1", StateMaster, settle)
	g2.waitState("VI_1", StateBackup, settle)
	vmac := vip.VMACName("eth0", 51)
	onVMAC := func(ns interface {
		Try(string, ...string) (string, error)
	}) bool {
		out, _ := ns.Try("ip", "-o", "addr", "show", "dev", vmac)
		return strings.Contains(out, " "+labVIPp+" ")
	}
	waitFor(t, settle, "VIP on gw1's VMAC only", func() bool { return onVMAC(l.gw1) && !onVMAC(l.gw2) && !hasAddr(t, l.gw1, labVIPp) })
	want := vip.VMACAddr(51).String()
	waitFor(t, settle, "client reaching the VIP at the virtual MAC", func() bool { return clientPing(l) && clientNeigh(t, l) == want })
	if st := g2.instance("VI_1"); len(st.Counters.Drops) != 0 || st.Counters.AdvertsIn == 0 {
		t.Errorf("gw2 counters %+v", st.Counters)
	}

	l.sw.SetPort(t, l.port1, false)
	g2.waitState("VI_1", StateMaster, settle)
	waitFor(t, settle, "client reaching the VIP on gw2, same MAC", func() bool { return clientPing(l) && clientNeigh(t, l) == want })
	l.sw.SetPort(t, l.port1, true)
	g1.waitState("VI_1", StateMaster, settle)
	g2.waitState("VI_1", StateBackup, settle)
	waitFor(t, settle, "client on gw1 again", func() bool { return clientPing(l) && onVMAC(l.gw1) && !onVMAC(l.gw2) })

	// A clean stop removes the macvlan.
	g1.term()
	if out, err := l.gw1.Try("ip", "link", "show", vmac); err == nil {
		t.Errorf("VMAC left behind: %s", out)
	}
	g2.waitState("VI_1", StateMaster, settle)
	waitFor(t, settle, "client on gw2", func() bool { return clientPing(l) && clientNeigh(t, l) == want })
}

// TestInteropVMAC: keepalived with use_vmac and gitgw with VMAC in one
// virtual router, both directions of failover.
func TestInteropVMAC(t *testing.T) {
	t.Parallel()
	lab.RequireCommand(t, "keepalived")
	l := newVRRPLab(t)
	ki := kaVI1(150, 3, "0.1", "")
	ki.Extra = []string{"use_vmac"}
	ka := lab.StartKeepalived(t, l.gw1, lab.RenderKeepalived("gw1", ki))
	ka.WaitLog(t, "Entering MASTER STATE", settle)
	g2 := startDaemon(t, l.gw2, "gw2", vi1(100, func(in *Instance) { in.VMAC = true }, allowLab()))
	g2.waitState("VI_1", StateBackup, settle)
	waitFor(t, settle, "keepalived's adverts through the VMAC", func() bool { return g2.instance("VI_1").Counters.AdvertsIn >= 3 })
	want := vip.VMACAddr(51).String()
	waitFor(t, settle, "client at the virtual MAC", func() bool { return clientPing(l) && clientNeigh(t, l) == want })
	ka.Stop(t)
	g2.waitState("VI_1", StateMaster, settle)
	waitFor(t, settle, "client on gitgw, same MAC", func() bool { return clientPing(l) && clientNeigh(t, l) == want })
	ka2 := lab.StartKeepalived(t, l.gw1, lab.RenderKeepalived("gw1", ki))
	ka2.WaitLog(t, "Entering MASTER STATE", settle)
	g2.waitState("VI_1", StateBackup, settle)
	noComplaints(t, ka2)
}
