package plan

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/gitgw/gitgw/test/goldenfile"
	"github.com/google/go-cmp/cmp"
)

func samplePlan() *Plan {
	p := &Plan{
		Node:   "server-1",
		Commit: "3a9c1e2f00d1c0ffee00000000000000deadbeef",
		Changes: []Change{
			{Driver: "vrrp", Kind: "vrrp_instance", ID: "EX_1", Action: Create, After: map[string]any{"vrid": 11, "priority": 100},
				Details: []string{"master after apply: server-1 (priorities server-1=100, server-2=90)"}},
			{Driver: "proxy", Kind: "proxy_server", ID: "web/web03", Action: Update, Before: map[string]any{"weight": 100}, After: map[string]any{"weight": 50}, Reason: "weight 100 → 50"},
			{Driver: "proxy", Kind: "proxy_server", ID: "web/web06", Action: Delete, Before: "127.0.0.1:8086", Reason: "removed from site"},
			{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_forward", Action: Update, Before: "0", After: "1", Reason: "changed by hand", Drift: true},
			{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_nonlocal_bind", Action: NoOp, After: "1"},
			{Driver: "units", Kind: "unit_instance", ID: "app@8085.service", Action: Pending, After: "active", Reason: "driver unavailable: no systemd"},
		},
		Notes: []string{"vrrp EX_1 (VRID 11): server-1 will be master (priority 100); this node server-1 is master"},
	}
	p.Sort()
	return p
}

// TestRenderGolden pins both renderings: the text people read before they
// merge, and the versioned JSON that CI and other tools parse.
func TestRenderGolden(t *testing.T) {
	for _, tc := range []struct {
		name   string
		render func(*bytes.Buffer, *Plan) error
	}{
		{"text", func(b *bytes.Buffer, p *Plan) error { return WriteText(b, p, TextOptions{}) }},
		{"text-verbose-color", func(b *bytes.Buffer, p *Plan) error { return WriteText(b, p, TextOptions{Verbose: true, Color: true}) }},
		{"json", func(b *bytes.Buffer, p *Plan) error { return WriteJSON(b, p) }},
		{"empty-text", func(b *bytes.Buffer, _ *Plan) error { return WriteText(b, &Plan{Node: "gw1"}, TextOptions{}) }},
		{"empty-json", func(b *bytes.Buffer, _ *Plan) error { return WriteJSON(b, &Plan{Node: "gw1"}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.render(&b, samplePlan()); err != nil {
				t.Fatal(err)
			}
			goldenfile.Check(t, filepath.Join("testdata", tc.name+".golden"), b.Bytes())
		})
	}
}

// TestCountsAndOrder: a plan lists its changes in apply order (tuning,
// units, proxy, VRRP), whatever order the drivers produced them in. The
// order the runner applies them in, reversed when something is removed, is
// reconcile's TestApplyOrder.
func TestCountsAndOrder(t *testing.T) {
	p := samplePlan()
	c := p.Count()
	if c != (Counts{Create: 1, Update: 2, Delete: 1, NoOp: 1, Pending: 1}) {
		t.Errorf("counts = %+v", c)
	}
	var order []string
	for _, ch := range p.Changes {
		order = append(order, ch.Driver)
	}
	want := []string{"tuning", "tuning", "units", "proxy", "proxy", "vrrp"}
	if d := cmp.Diff(want, order); d != "" {
		t.Errorf("listing order (-want +got):\n%s", d)
	}
	if !p.HasChanges() || len(p.Actionable()) != 4 {
		t.Errorf("actionable = %d", len(p.Actionable()))
	}
}
