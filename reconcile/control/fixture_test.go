package control

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/gitgw/gitgw/dataplane/l4proxy"
	"github.com/gitgw/gitgw/dataplane/vrrp"
	"github.com/gitgw/gitgw/reconcile/plan"
	"github.com/gitgw/gitgw/test/goldenfile"
)

// fakeEngine and fakePool stand in for the VRRP engine and the proxy pool
// behind the controller's own small interfaces.
type fakeEngine []vrrp.InstanceStatus

func (f fakeEngine) Status() []vrrp.InstanceStatus { return f }

type fakePool l4proxy.Snapshot

func (f fakePool) Stats() l4proxy.Snapshot { return l4proxy.Snapshot(f) }

var fixedNow = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

// fixture is a controller on the lab site's gw1 after a pass: master of
// VI_1, s2 drained by an override, one unit down, one drift corrected.
func fixture(t *testing.T) *Controller {
	t.Helper()
	eng := fakeEngine{{
		Name: "VI_1", Interface: "eth0", VRID: 51, Version: 3, State: vrrp.StateMaster, BasePriority: 150, Priority: 140,
		MasterAddr: netip.MustParseAddr("203.0.113.11"), MasterPriority: 140,
		VIPs:     []netip.Prefix{netip.MustParsePrefix("203.0.113.100/24")},
		Counters: vrrp.Counters{AdvertsIn: 3, AdvertsOut: 1200, Transitions: 2, Drops: map[vrrp.DropReason]uint64{vrrp.DropAuth: 1}},
	}}
	pool := fakePool{Services: []l4proxy.ServiceStats{{
		Name: "web", Binds: []string{"203.0.113.100:80"}, Balance: l4proxy.RoundRobin, Status: "UP", Current: 3, Total: 120,
		BytesIn: 4096, BytesOut: 65536, Queue: 2, QueueTimeouts: 5,
		Denied: l4proxy.DeniedStats{DenyList: 7, RateLimit: 2},
		Servers: []l4proxy.ServerStats{
			{Name: "s1", Addr: "198.51.100.11:8080", Weight: 100, Admin: l4proxy.Ready, Status: "UP", Current: 3, Queue: 2, Total: 80, Check: "L4OK",
				CheckDuration: 3 * time.Millisecond, LastChange: fixedNow.Add(-90 * time.Second), Downtime: 12 * time.Second},
			{Name: "s2", Addr: "198.51.100.12:8080", Weight: 100, Admin: l4proxy.Drain, Status: "DRAIN", Current: 0, Total: 40, Check: "L4OK"},
		},
	}, {
		// keepalived's UDP virtual_server with no checker: unchecked: true.
		Name: "dns", Protocol: l4proxy.ProtoUDP, Binds: []string{"203.0.113.100:53"}, Balance: l4proxy.RoundRobin, Status: "UP", Unchecked: true,
		Servers: []l4proxy.ServerStats{
			{Name: "ns1", Addr: "198.51.100.21:53", Weight: 100, Admin: l4proxy.Ready, Status: l4proxy.StatusNoCheck, Total: 9},
			// Given by name, which no longer resolves: its last address
			// stays in use (every name metric family is in a scrape).
			{Name: "ns2", Host: "ns2.example.com", Addr: "198.51.100.22:53", Resolve: "stale", ResolvedAt: fixedNow.Add(-5 * time.Minute), StaleSince: fixedNow.Add(-4 * time.Minute),
				Weight: 100, Admin: l4proxy.Ready, Status: l4proxy.StatusNoCheck, Total: 4},
		},
	}}}
	h := &harness{kicks: make(chan struct{}, 1), desired: labNode()}
	h.lg = &lastGood{"0123456789abcdef0123456789abcdef01234567", h.desired}
	c := New(Options{Node: "gw1", Version: "v1.0.0", Kick: h.kicks, Engine: eng, Pool: pool,
		LastGood: h.lg.get, Now: func() time.Time { return fixedNow }})
	wrap(c, &recorder{name: "proxy"})
	if _, err := c.Set(t.Context(), Override{Action: ActionDrain, Target: "web/s2"}); err != nil {
		t.Fatal(err)
	}
	drift := plan.Change{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_forward", Action: plan.Update, Before: "0", After: "1", Reason: "changed by hand", Drift: true}
	c.Observe(t.Context(), Result{
		Commit: h.lg.commit, Subject: "web: add s2", AppliedCommit: h.lg.commit, Outcome: "applied", OK: true,
		Summary: "0123456789ab applied, 1 change, 1 drift corrected",
		Started: fixedNow.Add(-time.Second), Duration: 42 * time.Millisecond,
		Plan: &plan.Plan{Changes: []plan.Change{
			drift,
			{Driver: "tuning", Kind: "rps_cpus", ID: "eth0/rx-0", Action: plan.NoOp, After: "3", Details: []string{"NET_RX softirqs: cpu0 51%, cpu1 49%"}},
			{Driver: "units", Kind: "unit_instance", ID: "app@8080.service", Action: plan.NoOp, Before: map[string]any{"active": "active", "sub": "running"}},
			{Driver: "units", Kind: "unit_instance", ID: "app@8081.service", Action: plan.Update, Before: map[string]any{"active": "failed", "sub": "failed"}},
		}},
		Drift: []plan.Change{drift},
	})
	return c
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name), got)
}
