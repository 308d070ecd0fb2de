package plan

import (
	"encoding/json"
	"strings"
	"testing"
)

type vipValue struct {
	Prefix string `json:"prefix"`
	Dev    string `json:"dev"`
	Weight int    `json:"weight"`
}

// TestSameChanges: two plans carry the same changes when their actionable
// changes match by resource, action and values, whatever their order, their
// no-ops, reasons and notes; a plan read back from its JSON matches the one
// it was made from; anything else names the first difference.
func TestSameChanges(t *testing.T) {
	vip := Change{Driver: "vrrp", Kind: "vip", ID: "VI_1/203.0.113.66/24", Action: Create,
		After: vipValue{Prefix: "203.0.113.66/24", Dev: "eth1", Weight: 100}}
	bind := Change{Driver: "proxy", Kind: "proxy_bind", ID: "web/203.0.113.66:80", Action: Create, After: "203.0.113.66:80"}
	sysctl := Change{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_forward", Action: Update, Before: "0", After: "1"}
	noop := Change{Driver: "units", Kind: "unit_instance", ID: "app@1.service", Action: NoOp}
	pending := Change{Driver: "nic", Kind: "rps_cpus", ID: "eth0/rx-0", Action: Pending}
	with := func(c Change, f func(*Change)) Change { f(&c); return c }

	// roundTrip is p as `gitgw plan -out` writes it and `apply FILE` reads it.
	roundTrip := func(p *Plan) *Plan {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var out Plan
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		return &out
	}
	base := &Plan{Node: "gw1", Commit: "c1", Changes: []Change{sysctl, bind, vip}}

	for _, tc := range []struct {
		name string
		a, b *Plan
		why  string // "" when the plans carry the same changes
	}{
		{name: "identical", a: base, b: base},
		{name: "both nil", a: nil, b: nil},
		{name: "nil and only no-ops", a: nil, b: &Plan{Changes: []Change{noop, pending}}},
		{name: "other order, no-ops, notes, reasons and drift ignored", a: base, b: &Plan{Node: "gw1", Commit: "c1",
			Notes: []string{"rollout: gw1 applies a new commit without waiting"},
			Changes: []Change{vip, noop, with(bind, func(c *Change) { c.Reason = "new in site"; c.Drift = true }), pending,
				with(sysctl, func(c *Change) { c.Details = []string{"0 → 1"} })}}},
		{name: "read back from JSON", a: roundTrip(base), b: base},
		{name: "a change more now", a: &Plan{Changes: []Change{sysctl, vip}}, b: base,
			why: "proxy_bind web/203.0.113.66:80: not planned, now create"},
		{name: "a change gone now", a: base, b: &Plan{Changes: []Change{sysctl, vip, noop}},
			why: "proxy_bind web/203.0.113.66:80: planned create, now nothing to do"},
		{name: "became a no-op", a: base, b: &Plan{Changes: []Change{sysctl, vip, with(bind, func(c *Change) { c.Action = NoOp })}},
			why: "proxy_bind web/203.0.113.66:80: planned create, now nothing to do"},
		{name: "other action", a: base, b: &Plan{Changes: []Change{sysctl, bind, with(vip, func(c *Change) { c.Action = Update })}},
			why: "vip VI_1/203.0.113.66/24: planned create, now update"},
		{name: "other observed value", a: base, b: &Plan{Changes: []Change{vip, bind, with(sysctl, func(c *Change) { c.Before = "2" })}},
			why: `sysctl net.ipv4.ip_forward: planned from "0", now from "2"`},
		{name: "other desired value after a round trip", a: roundTrip(base),
			b:   &Plan{Changes: []Change{sysctl, bind, with(vip, func(c *Change) { c.After = vipValue{Prefix: "203.0.113.66/24", Dev: "eth1", Weight: 50} })}},
			why: `vip VI_1/203.0.113.66/24: planned to {"dev":"eth1","prefix":"203.0.113.66/24","weight":100}, now to {"dev":"eth1","prefix":"203.0.113.66/24","weight":50}`},
		{name: "same id in another driver", a: base, b: &Plan{Changes: []Change{sysctl, vip, with(bind, func(c *Change) { c.Driver = "nginx" })}},
			why: "proxy_bind web/203.0.113.66:80: not planned, now create"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			same, why := SameChanges(tc.a, tc.b)
			if same != (tc.why == "") || why != tc.why {
				t.Errorf("SameChanges = %v, %q; want %v, %q", same, why, tc.why == "", tc.why)
			}
			// The answer does not depend on which plan comes first.
			if back, _ := SameChanges(tc.b, tc.a); back != same {
				t.Errorf("SameChanges(b, a) = %v, want %v", back, same)
			}
			if !same && strings.TrimSpace(why) == "" {
				t.Error("different plans with no reason")
			}
		})
	}
}
