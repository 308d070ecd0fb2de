package reconcile

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/kernlb"
	"github.com/gitgw/gitgw/reconcile/plan"
	"github.com/gitgw/gitgw/test/goldenfile"
	"github.com/gitgw/gitgw/test/lab"
)

// realServerSite is the lab site with node r1 (eth0 203.0.113.21/24) and
// the given services.
func realServerSite(t *testing.T, services string) string {
	return checkSite(t, `
nodes: r1: interfaces: eth0: addresses: ["203.0.113.21/24"]
services: web: nodes: ["gw1", "gw2"]
`+services)
}

// realServerNode is r1's view of the site.
func realServerNode(t *testing.T, services string) *spec.Node {
	t.Helper()
	_, n, err := loader.Load(context.Background(), realServerSite(t, services), "r1")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// rsDriverNetns is a namespace with r1's eth0 and a real-server driver
// whose seam was opened in it. Every call of the driver must run inside
// ns.Do: /proc/sys/net is the namespace of the calling thread.
func rsDriverNetns(t *testing.T) (*lab.Netns, *RealServerDriver, string) {
	t.Helper()
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip")
	ns := lab.NewNetns(t, "rd")
	ns.Run(t, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth9")
	ns.Run(t, "ip", "addr", "add", "203.0.113.21/24", "dev", "eth0")
	state := filepath.Join(t.TempDir(), "realserver.json")
	var d *RealServerDriver
	if err := ns.Do(func() error {
		h, err := kernlb.OpenRealServerHost(state)
		d = NewRealServerDriver(h, nil, 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	return ns, d, state
}

func hostARPIgnore(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/ipv4/conf/all/arp_ignore")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestRealServerDriverPlan: a node of the site whose address is a server
// of a dr service run by the gateways becomes a real server: the plan says
// so in words (testdata/realserver-plan.golden), Apply does it, a change
// by hand is drift, and when the site no longer names the node, the VIP
// goes and the knobs get their previous values back. The host's knobs are
// not touched.
func TestRealServerDriverPlan(t *testing.T) {
	ns, d, state := rsDriverNetns(t)
	hostBefore := hostARPIgnore(t)
	dr := `
services: lvs: {
	nodes: ["gw1", "gw2"]
	mode: "dr", interface: "eth0", balance: "maglev"
	binds: ["203.0.113.100:443", "203.0.113.101:443"]
	servers: {
		r1: address: "203.0.113.21:443"
		r2: address: "203.0.113.22:443"
	}
	check: {kind: "tcp"}
}
`
	v1 := realServerNode(t, dr)
	v2 := realServerNode(t, strings.Replace(dr, `r1: address: "203.0.113.21:443"`, `r3: address: "203.0.113.23:443"`, 1))
	if len(v2.RealServer) != 0 {
		t.Fatalf("r1 is no server of v2, yet: %+v", v2.RealServer)
	}
	ctx := context.Background()
	var golden strings.Builder
	step := func(title string, node *spec.Node) *plan.Plan {
		t.Helper()
		var ch []plan.Change
		if err := ns.Do(func() (err error) { ch, err = d.Plan(ctx, node); return err }); err != nil {
			t.Fatal(err)
		}
		p := &plan.Plan{Node: "r1", Changes: ch}
		p.Sort()
		var b bytes.Buffer
		if err := plan.WriteText(&b, p, plan.TextOptions{Verbose: true}); err != nil {
			t.Fatal(err)
		}
		golden.WriteString("## " + title + "\n" + b.String() + "\n")
		return p
	}
	apply := func(node *spec.Node) {
		t.Helper()
		if err := ns.Do(func() error { return d.Apply(ctx, node) }); err != nil {
			t.Fatal(err)
		}
	}
	step("r1 becomes a real server", v1)
	apply(v1)
	if p := step("applied: nothing to do", v1); p.HasChanges() {
		t.Errorf("after Apply, the plan still changes: %+v", p.Changes)
	}
	if out := ns.Run(t, "ip", "-4", "-o", "addr", "show", "dev", "lo"); !strings.Contains(out, "203.0.113.100/32") || !strings.Contains(out, "203.0.113.101/32") {
		t.Errorf("the VIPs are not on lo:\n%s", out)
	}
	ns.Run(t, "ip", "addr", "del", "203.0.113.101/32", "dev", "lo")
	ns.Run(t, "sysctl", "-qw", "net.ipv4.conf.eth0.arp_ignore=0")
	p := step("a VIP and a knob changed by hand", v1)
	drift := 0
	for _, c := range p.Actionable() {
		if c.Drift {
			drift++
		}
	}
	if drift != 2 {
		t.Errorf("%d changes are drift, want 2: %+v", drift, p.Actionable())
	}
	apply(v1)
	if p := step("restored", v1); p.HasChanges() {
		t.Errorf("after the restore, the plan still changes: %+v", p.Changes)
	}
	step("the site no longer names r1", v2)
	apply(v2)
	if p := step("undone", v2); len(p.Changes) != 0 {
		t.Errorf("after the undo, the plan lists %+v", p.Changes)
	}
	if out := ns.Run(t, "ip", "-4", "-o", "addr", "show", "dev", "lo"); strings.Contains(out, "203.0.113.10") {
		t.Errorf("a VIP is still on lo:\n%s", out)
	}
	if out := ns.Run(t, "sysctl", "-n", "net.ipv4.conf.all.arp_ignore", "net.ipv4.conf.eth0.arp_announce"); strings.Fields(out)[0] != "0" || strings.Fields(out)[1] != "0" {
		t.Errorf("the knobs are not restored: %q", out)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("the saved state is still there (%v)", err)
	}
	if h := hostARPIgnore(t); h != hostBefore {
		t.Errorf("the host's arp_ignore changed from %s to %s", hostBefore, h)
	}
	goldenfile.Check(t, filepath.Join("testdata", "realserver-plan.golden"), []byte(golden.String()))
}

// TestRealServerRolesInTheView: r1's view carries its roles, derived from
// a dr service it does not run; real_server "off" leaves none; a gateway
// has none.
func TestRealServerRolesInTheView(t *testing.T) {
	dr := `
services: lvs: {
	nodes: ["gw1", "gw2"]
	mode: "dr", interface: "eth0", balance: "maglev"
	binds: ["203.0.113.100:443"]
	servers: r1: address: "203.0.113.21:443"
	check: {kind: "tcp"}
}
`
	n := realServerNode(t, dr)
	if _, runs := n.Services["lvs"]; runs {
		t.Error("r1 runs lvs, which names the gateways only")
	}
	if got := RealServerConfig(n); len(got.VIPs) != 1 || got.VIPs[0].String() != "203.0.113.100" || len(got.Interfaces) != 1 || got.Interfaces[0] != "eth0" {
		t.Errorf("r1's real server config: %+v (roles %+v)", got, n.RealServer)
	}
	if n := realServerNode(t, dr+`nodes: r1: real_server: "off"`+"\n"); len(n.RealServer) != 0 {
		t.Errorf("real_server off, yet roles %+v", n.RealServer)
	}
	_, gw, err := loader.Load(context.Background(), realServerSite(t, dr), "gw1")
	if err != nil {
		t.Fatal(err)
	}
	if len(gw.RealServer) != 0 {
		t.Errorf("gw1 has roles %+v", gw.RealServer)
	}
	// The whole-site views (plan --all-nodes) say the same.
	site, _, err := loader.Load(context.Background(), realServerSite(t, dr), "")
	if err != nil {
		t.Fatal(err)
	}
	views, err := site.Views()
	if err != nil {
		t.Fatal(err)
	}
	if got := RealServerConfig(views["r1"]); len(got.VIPs) != 1 {
		t.Errorf("r1 in the whole-site views: %+v", views["r1"].RealServer)
	}
}

// TestRealServerDriverCorruptState: a saved state cut short by a crash is
// moved aside and logged; the driver plans and applies from an empty
// state instead of failing every pass.
func TestRealServerDriverCorruptState(t *testing.T) {
	ns, _, state := rsDriverNetns(t)
	var logs bytes.Buffer
	var d *RealServerDriver
	if err := ns.Do(func() error {
		h, err := kernlb.OpenRealServerHost(state)
		d = NewRealServerDriver(h, slog.New(slog.NewTextHandler(&logs, nil)), 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	if err := os.WriteFile(state, []byte(`{"knobs": {"net.ipv4.conf.all.arp_ig`), 0o600); err != nil {
		t.Fatal(err)
	}
	n := realServerNode(t, `
services: lvs: {
	nodes: ["gw1", "gw2"]
	mode: "dr", interface: "eth0", balance: "maglev"
	binds: ["203.0.113.100:443"]
	servers: r1: address: "203.0.113.21:443"
	check: {kind: "tcp"}
}
`)
	ctx := context.Background()
	var ch []plan.Change
	if err := ns.Do(func() (err error) { ch, err = d.Plan(ctx, n); return err }); err != nil {
		t.Fatalf("plan on a corrupt state file: %v", err)
	}
	if len(ch) == 0 {
		t.Error("no plan")
	}
	if err := ns.Do(func() error { return d.Apply(ctx, n) }); err != nil {
		t.Fatalf("apply after a corrupt state file: %v", err)
	}
	if aside, _ := filepath.Glob(state + ".corrupt-*"); len(aside) != 1 {
		t.Errorf("moved aside: %v", aside)
	}
	if !strings.Contains(logs.String(), "state file corrupt") {
		t.Errorf("not logged:\n%s", logs.String())
	}
	if _, err := os.Stat(state); err != nil {
		t.Errorf("no new state after the apply: %v", err)
	}
}
