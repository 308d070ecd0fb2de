package reconcile

import (
	"context"
	"net/netip"
	"testing"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/l4proxy"
	"github.com/gitgw/gitgw/dataplane/vrrp"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// TestPendingCoversEveryFamily: every family of plan.Families lists its
// resources when its driver is pending, under its own name, so that a
// family added there without a lister here cannot go unnoticed.
func TestPendingCoversEveryFamily(t *testing.T) {
	n := labNode(t, "gw1")
	// The lab site carries no kernel service: add one, so that the
	// kernel's family has something to list (and the proxy skips it).
	n.Services["dns"] = spec.Service{Mode: spec.ModeNAT, Protocol: "udp", Balance: "roundrobin",
		Binds:   []string{"203.0.113.100:53"},
		Servers: map[string]spec.Server{"r1": {Address: "198.51.100.31:53", Weight: 1}}}
	// Nor does it make gw1 a real server: give it one role.
	n.RealServer = []spec.RealServerRole{{VIP: netip.MustParseAddr("203.0.113.200"), Service: "lvs", Server: "gw1",
		Address: netip.MustParseAddr("203.0.113.11"), Interface: "eth0"}}
	for _, f := range plan.Families {
		if familyResources[f] == nil {
			t.Errorf("family %s: no resource lister", f)
			continue
		}
		cs, err := Pending{Family: f, Why: "test"}.Plan(context.Background(), n)
		if err != nil {
			t.Fatal(err)
		}
		if f != plan.FamilyTuning && len(cs) == 0 { // the lab site tunes nothing
			t.Errorf("family %s: no resources listed for the lab site", f)
		}
		for _, c := range cs {
			if c.Family() != f || c.Action != plan.Pending || c.Reason != "test" {
				t.Errorf("family %s: %+v", f, c)
			}
			if f == plan.FamilyProxy && c.ID == "dns" {
				t.Errorf("the proxy lists the kernel's service dns")
			}
		}
	}
	if len(familyResources) != len(plan.Families) {
		t.Errorf("%d listers for %d families", len(familyResources), len(plan.Families))
	}
	for i, f := range plan.Families {
		if plan.DriverRank(f) != i || plan.DriverRank(f.String()) != i {
			t.Errorf("family %s ranks %d, want %d", f, plan.DriverRank(f), i)
		}
	}
}

// TestPlanActionSpelling: the subsystems' operations translate to the plan
// actions by name; a subsystem that spelled one differently would show a
// change the plan neither counts nor applies.
func TestPlanActionSpelling(t *testing.T) {
	for _, c := range []struct {
		got, want plan.Action
	}{
		{planAction(vrrp.OpCreate), plan.Create}, {planAction(vrrp.OpUpdate), plan.Update},
		{planAction(vrrp.OpDelete), plan.Delete}, {planAction(vrrp.OpNoOp), plan.NoOp},
		{planAction(l4proxy.OpCreate), plan.Create}, {planAction(l4proxy.OpUpdate), plan.Update},
		{planAction(l4proxy.OpDelete), plan.Delete}, {planAction(l4proxy.OpNoOp), plan.NoOp},
	} {
		if c.got != c.want {
			t.Errorf("%q, want %q", c.got, c.want)
		}
	}
}
