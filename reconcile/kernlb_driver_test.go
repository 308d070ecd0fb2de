package reconcile

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/kernlb"
	"github.com/gitgw/gitgw/dataplane/l4proxy"
	"github.com/gitgw/gitgw/reconcile/plan"
	"github.com/gitgw/gitgw/test/goldenfile"
	"github.com/gitgw/gitgw/test/lab"
)

// kernNode loads the lab site with extra services for gw1.
func kernNode(t *testing.T, services string) *spec.Node {
	t.Helper()
	_, node, err := loader.Load(context.Background(), checkSite(t, services), "gw1")
	if err != nil {
		t.Fatal(err)
	}
	return node
}

// TestKernLBConfigTranslated: balance, drain, backup, disabled, weights,
// persistence, source rules and per-server check ports go from the site to
// kernlb's services, one per bind; the proxy no longer sees them.
func TestKernLBConfigTranslated(t *testing.T) {
	node := kernNode(t, `
services: lvs: {
	mode: "dr", interface: "eth0", balance: "maglev", persistence: "300s"
	binds: ["203.0.113.100:443", "203.0.113.100:8443"]
	servers: {
		r1: {address: "203.0.113.21:443", weight: 50, check_port: 8008}
		r2: {address: "203.0.113.22:443", drain: true}
		r3: {address: "203.0.113.23:443", backup: true}
		r4: {address: "203.0.113.24:443", disabled: true}
	}
	check: {kind: "http", path: "/health"}
}
services: dns: {
	mode: "nat", protocol: "udp", balance: "source"
	binds: ["203.0.113.100:53"]
	source: {allow: ["198.51.100.0/24", "203.0.113.7/32"], deny: ["198.51.100.66/32"], max_conn_per_source: 5, max_rate_per_source: "600/m"}
	servers: d1: address: "198.51.100.53:5353"
	check: {kind: "tcp"}
}
`)
	svcs, err := KernLBConfig(node)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ks := range svcs {
		s := ks.LB
		var srv []string
		for i, x := range s.Servers {
			srv = append(srv, ks.Servers[i]+"="+s.DescribeServer(x))
		}
		got = append(got, s.Name+": "+s.Describe()+" | "+strings.Join(srv, ", ")+
			" | allow "+fmtPrefixes(s.Allow)+" deny "+fmtPrefixes(s.Deny)+
			fmt.Sprintf(" | limits %+v", s.Limits))
	}
	want := []string{
		"dns: nat udp 203.0.113.100:53, sh | d1=198.51.100.53:5353 weight 100 | allow [198.51.100.0/24 203.0.113.7/32] deny [198.51.100.66/32] | limits {ConnPerSource:5 RatePerSource:10 Rate:0 Burst:10}",
		"lvs-0: dr tcp 203.0.113.100:443 on eth0, maglev, persistence 5m0s | r1=203.0.113.21:443 weight 50, r2=203.0.113.22:443 draining (weight 0), r3=203.0.113.23:443 weight 100 backup, r4=203.0.113.24:443 down | allow [] deny [] | limits {ConnPerSource:0 RatePerSource:0 Rate:0 Burst:0}",
		"lvs-1: dr tcp 203.0.113.100:8443 on eth0, maglev, persistence 5m0s | r1=203.0.113.21:443 weight 50, r2=203.0.113.22:443 draining (weight 0), r3=203.0.113.23:443 weight 100 backup, r4=203.0.113.24:443 down | allow [] deny [] | limits {ConnPerSource:0 RatePerSource:0 Rate:0 Burst:0}",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("translated:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if svcs[1].Own[0].Port != 8008 || svcs[1].Check == nil || svcs[1].Check.Path != "/health" || !svcs[1].Disabled[3] {
		t.Errorf("lvs-0: own checks %v, check %+v, disabled %v", svcs[1].Own, svcs[1].Check, svcs[1].Disabled)
	}
	pc, err := ProxyConfig(node)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range pc.Services {
		if s.Name == "lvs" || s.Name == "dns" {
			t.Errorf("the proxy got kernel service %s", s.Name)
		}
	}
}

func fmtPrefixes[T interface{ String() string }](ps []T) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return "[" + strings.Join(s, " ") + "]"
}

// kernDriverNetns is a namespace with the DR segment's interface and the
// servers' MACs in its neighbour table, and a kernel driver in it.
func kernDriverNetns(t *testing.T) (*lab.Netns, *KernLBDriver) { return kernDriverNetnsTB(t) }

func kernDriverNetnsTB(t testing.TB) (*lab.Netns, *KernLBDriver) {
	t.Helper()
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "nft")
	ns := lab.NewNetns(t, "kd")
	ns.Run(t, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth9")
	ns.Run(t, "ip", "addr", "add", "203.0.113.11/24", "dev", "eth0")
	ns.Run(t, "ip", "link", "set", "eth0", "up")
	ns.Run(t, "ip", "link", "set", "eth9", "up")
	for _, h := range []string{"21", "22", "23"} {
		ns.Run(t, "ip", "neigh", "add", "203.0.113."+h, "lladdr", "02:00:00:00:00:"+h, "dev", "eth0", "nud", "permanent")
	}
	f, err := os.Open(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	lb, err := kernlb.Open(int(f.Fd()), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	d := NewKernLBDriver(lb, KernLBOptions{})
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	return ns, d
}

func kernPlanText(t *testing.T, d *KernLBDriver, node *spec.Node) (string, *plan.Plan) {
	t.Helper()
	ch, err := d.Plan(context.Background(), node)
	if err != nil {
		t.Fatal(err)
	}
	p := &plan.Plan{Node: "gw1", Changes: ch}
	p.Sort()
	var b bytes.Buffer
	if err := plan.WriteText(&b, p, plan.TextOptions{}); err != nil {
		t.Fatal(err)
	}
	return b.String(), p
}

// TestKernLBDriverPlan: the plan of the kernel driver against real tables
// in a namespace says the services, servers and modes in words: a first
// apply, a change of servers and services, and a table deleted by hand.
func TestKernLBDriverPlan(t *testing.T) {
	ns, d := kernDriverNetns(t)
	v1 := kernNode(t, `
services: lvs: {
	mode: "dr", interface: "eth0", balance: "maglev"
	binds: ["203.0.113.100:443"]
	servers: {
		r1: address: "203.0.113.21:443"
		r2: address: "203.0.113.22:443"
	}
	check: {kind: "tcp"}
}
services: dns: {
	mode: "nat", protocol: "udp"
	binds: ["203.0.113.100:53"]
	servers: d1: address: "198.51.100.53:5353"
	check: {kind: "tcp"}
}
`)
	v2 := kernNode(t, `
services: lvs: {
	mode: "dr", interface: "eth0", balance: "maglev", persistence: "60s"
	binds: ["203.0.113.100:443"]
	servers: {
		r1: {address: "203.0.113.21:443", weight: 50, check_port: 8443}
		r2: {address: "203.0.113.22:443", drain: true}
		r3: {address: "203.0.113.23:443", backup: true}
	}
	check: {kind: "tcp"}
}
services: api: {
	mode: "nat", balance: "source"
	binds: ["203.0.113.100:8080"]
	source: {deny: ["198.51.100.66/32"], max_conn_per_source: 10, max_rate_per_source: "20/s"}
	servers: a1: address: "198.51.100.31:8080"
	check: {kind: "tcp"}
}
`)
	var golden strings.Builder
	step := func(title string, node *spec.Node) *plan.Plan {
		text, p := kernPlanText(t, d, node)
		golden.WriteString("## " + title + "\n" + text + "\n")
		return p
	}
	step("first apply", v1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Apply(ctx, v1); err != nil {
		t.Fatal(err)
	}
	if p := step("applied: nothing to do", v1); p.HasChanges() {
		t.Errorf("after Apply, the plan still changes: %+v", p.Changes)
	}
	step("servers and services changed", v2)
	if err := d.Apply(ctx, v2); err != nil {
		t.Fatal(err)
	}
	if p := step("applied: nothing to do", v2); p.HasChanges() {
		t.Errorf("after Apply, the plan still changes: %+v", p.Changes)
	}
	ns.Run(t, "nft", "delete", "table", "netdev", "gitgw")
	ns.Run(t, "nft", "flush", "chain", "inet", "gitgw", "svc-api")
	if p := step("a table deleted and a chain flushed by hand", v2); !p.HasChanges() {
		t.Error("the plan does not see the tables changed by hand")
	}
	if err := d.Apply(ctx, v2); err != nil {
		t.Fatal(err)
	}
	if p := step("restored", v2); p.HasChanges() {
		t.Errorf("after the restore, the plan still changes: %+v", p.Changes)
	}
	goldenfile.Check(t, filepath.Join("testdata", "kernlb-plan.golden"), []byte(golden.String()))
}

// TestKernLBDriverHealth: the driver's own checks drive the tables between
// passes: a server whose check fails is Down in the kernel's tables at
// once (no pass), and back when it answers again; each flip is an event.
func TestKernLBDriverHealth(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip")
	ns := lab.NewNetns(t, "kh")
	f, err := os.Open(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	lb, err := kernlb.Open(int(f.Fd()), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	// The checks run from this process: the servers listen on its loopback.
	up, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	downLn, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downAddr := downLn.Addr().String()
	downLn.Close()
	d := NewKernLBDriver(lb, KernLBOptions{Checks: true, DriftPoll: time.Hour})
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	node := &spec.Node{Name: "gw1", Services: map[string]spec.Service{"web": {
		Mode: spec.ModeNAT, Protocol: "tcp", Balance: "roundrobin", Binds: []string{"203.0.113.100:80"},
		Servers: map[string]spec.Server{"a": {Address: up.Addr().String(), Weight: 1}, "b": {Address: downAddr, Weight: 1}},
		Check:   &spec.ServiceCheck{Check: spec.Check{Kind: "tcp", Interval: spec.Duration(50 * time.Millisecond), Timeout: spec.Duration(time.Second), Rise: 1, Fall: 1}},
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Apply(ctx, node); err != nil {
		t.Fatal(err)
	}
	tableDown := func() map[string]bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		obs, err := d.lb.Observe()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, s := range obs.Services()["web"].Servers {
			out[serverAddr(obs.Services()["web"], s)] = s.Down
		}
		return out
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			select {
			case ev := <-d.Events():
				t.Logf("event: %s %s", ev.Kind, ev.Message)
			case <-ctx.Done():
				t.Fatalf("%s: %v; tables %v, stats %+v", what, ctx.Err(), tableDown(), d.KernStats())
			}
		}
	}
	waitFor("b down in the tables", func() bool { m := tableDown(); return m[downAddr] && !m[up.Addr().String()] })
	again, err := net.Listen("tcp4", downAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	go func() {
		for {
			c, err := again.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	waitFor("b back in the tables", func() bool { m := tableDown(); return !m[downAddr] && !m[up.Addr().String()] })
	st := d.KernStats()
	if len(st) != 1 || st[0].Status != "UP" || len(st[0].Servers) != 2 || st[0].Servers[1].Status != "UP" || st[0].Servers[1].Check == "" {
		t.Errorf("stats %+v", st)
	}
}

// TestKernLBDriverUnchecked: a kernel UDP service with unchecked: true
// runs no check loop; its servers, answering or not, stay in the tables
// and are NOCHECK (not UP) in the stats, the service marked unchecked for
// `gitgw status` and the page.
func TestKernLBDriverUnchecked(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip")
	ns := lab.NewNetns(t, "h2ku")
	f, err := os.Open(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	lb, err := kernlb.Open(int(f.Fd()), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	d := NewKernLBDriver(lb, KernLBOptions{Checks: true, DriftPoll: time.Hour})
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	node := &spec.Node{Name: "gw1", Services: map[string]spec.Service{"dns": {
		Mode: spec.ModeNAT, Protocol: "udp", Balance: "roundrobin", Binds: []string{"203.0.113.100:53"},
		// Nothing answers there: no check would ever pass.
		Servers:   map[string]spec.Server{"a": {Address: "198.51.100.21:53", Weight: 1}, "b": {Address: "198.51.100.22:53", Weight: 1}},
		Unchecked: true,
	}}}
	if err := d.Apply(t.Context(), node); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	loops := len(d.loops)
	obs, err := d.lb.Observe()
	d.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if loops != 0 {
		t.Errorf("%d check loops for an unchecked service", loops)
	}
	for _, s := range obs.Services()["dns"].Servers {
		if s.Down {
			t.Errorf("server %v down in the tables: nothing checks it", s.Address)
		}
	}
	st := d.KernStats()
	if len(st) != 1 || st[0].Status != "UP" || !st[0].Unchecked || len(st[0].Servers) != 2 ||
		st[0].Servers[0].Status != l4proxy.StatusNoCheck || st[0].Servers[1].Status != l4proxy.StatusNoCheck {
		t.Errorf("stats %+v", st)
	}
	if cs := d.KernelServices(); len(cs) != 1 || !cs[0].Unchecked || cs[0].Servers[0].Status != "NOCHECK" {
		t.Errorf("status services %+v", cs)
	}
}
