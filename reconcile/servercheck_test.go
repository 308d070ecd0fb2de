package reconcile

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/healthcheck"
	"github.com/gitgw/gitgw/dataplane/kernlb"
	"github.com/gitgw/gitgw/dataplane/l4proxy"
	"github.com/gitgw/gitgw/test/lab"
)

// TestServerChecksTranslated: a server's unchecked, check_address and
// check_targets go from the site (through the schema) to the pool's
// server and to the kernel service's, and the plan notes the unchecked
// server's risk.
func TestServerChecksTranslated(t *testing.T) {
	node := kernNode(t, `
services: mx: {
	binds: ["203.0.113.100:25"]
	servers: {
		a: {address: "198.51.100.21:25", unchecked: true}
		b: {address: "198.51.100.22:25", check_address: "198.51.100.99", check_port: 2525}
		c: {address: "198.51.100.23:25", check_targets: ["198.51.100.23:25", "192.0.2.1:587"]}
	}
	check: kind: "smtp"
}
services: lvs: {
	mode: "nat", route_back: "routed"
	binds: ["203.0.113.100:2525"]
	servers: {
		a: {address: "198.51.100.21:25", unchecked: true}
		c: {address: "198.51.100.23:25", check_targets: ["192.0.2.1:587"]}
	}
	check: kind: "tcp"
}
`)
	cfg, err := ProxyConfig(node)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	got := map[string]l4proxy.Server{}
	for _, s := range cfg.Services {
		if s.Name == "mx" {
			for _, sv := range s.Servers {
				got[sv.Name] = sv
			}
		}
	}
	if !got["a"].Unchecked || got["b"].CheckAddr != netip.MustParseAddr("198.51.100.99") || got["b"].CheckPort != 2525 ||
		len(got["c"].CheckTargets) != 2 || got["c"].CheckTargets[1] != netip.MustParseAddrPort("192.0.2.1:587") {
		t.Errorf("pool servers %+v", got)
	}
	ks, err := KernLBConfig(node)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) != 1 || !ks[0].Own[0].Unchecked || len(ks[0].Own[1].Targets) != 1 {
		t.Errorf("kernel services %+v", ks)
	}
	notes := strings.Join(UncheckedNotes(node), "\n")
	if !strings.Contains(notes, "service lvs: server a unchecked: true") || !strings.Contains(notes, "service mx: server a unchecked: true") {
		t.Errorf("notes:\n%s", notes)
	}
}

// TestKernLBDriverServerChecks: in a kernel service, an unchecked server
// that answers nothing stays in the tables (NOCHECK); a server whose own
// address is dead is up by its check address; a server checked at two
// targets leaves the tables when one stops answering, and comes back.
func TestKernLBDriverServerChecks(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip")
	ns := lab.NewNetns(t, "h2kc")
	f, err := os.Open(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	lb, err := kernlb.Open(int(f.Fd()), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	// The checks run from this process: the targets listen on its loopback.
	listen := func(addr string) net.Listener {
		ln, err := net.Listen("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		return ln
	}
	monitor := listen("127.0.0.1:0")
	defer monitor.Close()
	second := listen("127.0.0.1:0")
	secondAddr := second.Addr().String()
	monAddr := netip.MustParseAddrPort(monitor.Addr().String())
	d := NewKernLBDriver(lb, KernLBOptions{Checks: true, DriftPoll: time.Hour})
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	node := &spec.Node{Name: "gw1", Services: map[string]spec.Service{"mx": {
		Mode: spec.ModeNAT, Protocol: "tcp", Balance: "roundrobin", Binds: []string{"203.0.113.100:25"},
		// Nothing answers at the servers' own addresses.
		Servers: map[string]spec.Server{
			"a": {Address: "198.51.100.21:25", Weight: 1, Unchecked: true},
			"b": {Address: "198.51.100.22:25", Weight: 1, CheckAddress: "127.0.0.1", CheckPort: int(monAddr.Port())},
			"c": {Address: "198.51.100.23:25", Weight: 1, CheckTargets: []string{monAddr.String(), secondAddr}},
		},
		Check: &spec.ServiceCheck{Check: spec.Check{Kind: "tcp", Interval: spec.Duration(50 * time.Millisecond), Timeout: spec.Duration(time.Second), Rise: 1, Fall: 1}},
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Apply(ctx, node); err != nil {
		t.Fatal(err)
	}
	stats := func() map[string]KernServerStats {
		out := map[string]KernServerStats{}
		for _, s := range d.KernStats() {
			for _, sv := range s.Servers {
				out[sv.Name] = sv
			}
		}
		return out
	}
	tableDown := func() map[string]bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		obs, err := d.lb.Observe()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, s := range obs.Services()["mx"].Servers {
			out[s.Address.String()] = s.Down
		}
		return out
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			select {
			case ev := <-d.Events():
				t.Logf("event: %s %s", ev.Kind, ev.Message)
			case <-time.After(100 * time.Millisecond): // a check without a flip raises no event
			case <-ctx.Done():
				t.Fatalf("%s: %v; tables %v, stats %+v", what, ctx.Err(), tableDown(), d.KernStats())
			}
		}
	}
	waitFor("b and c checked", func() bool {
		st := stats()
		return st["b"].Check == "L4 ok" && strings.Contains(st["c"].Check, "at all 2 targets")
	})
	d.mu.Lock()
	loops := len(d.loops)
	d.mu.Unlock()
	if loops != 2 {
		t.Errorf("%d check loops, want 2 (the unchecked server has none)", loops)
	}
	st := stats()
	if st["a"].Status != l4proxy.StatusNoCheck || st["b"].Status != l4proxy.StatusUp || st["c"].Status != l4proxy.StatusUp {
		t.Errorf("stats %+v", st)
	}
	if m := tableDown(); m["198.51.100.21"] || m["198.51.100.22"] || m["198.51.100.23"] {
		t.Errorf("tables %v: every server should be in", m)
	}
	second.Close()
	waitFor("c out of the tables", func() bool { return tableDown()["198.51.100.23"] })
	if c := stats()["c"]; c.Status != l4proxy.StatusDown || !strings.HasPrefix(c.Check, "at "+secondAddr+": ") {
		t.Errorf("c after %s closed: %+v", secondAddr, c)
	}
	if m := tableDown(); m["198.51.100.21"] || m["198.51.100.22"] {
		t.Errorf("tables %v: a and b should stay in", m)
	}
	again := listen(secondAddr)
	defer again.Close()
	waitFor("c back in the tables", func() bool { return !tableDown()["198.51.100.23"] })
	if cs := d.KernelServices(); len(cs) != 1 || cs[0].Unchecked || cs[0].Servers[0].Status != "NOCHECK" {
		t.Errorf("status services %+v", cs)
	}
}

// TestKernServerChangesOwnCheck: the kernel plan names a server's own
// part in the check: unchecked, its own address and port, its targets.
func TestKernServerChangesOwnCheck(t *testing.T) {
	a := netip.MustParseAddr("198.51.100.21")
	lb := kernlb.Service{Name: "mx", Port: 25, Servers: []kernlb.Server{{Address: a, Port: 25, Weight: 1}, {Address: a.Next(), Port: 25, Weight: 1}, {Address: a.Next().Next(), Port: 25, Weight: 1}}}
	ks := KernService{Site: "mx", Servers: []string{"a", "b", "c"}, Disabled: make([]bool, 3), LB: lb, Own: []healthcheck.ServerCheck{
		{Unchecked: true},
		{Addr: netip.MustParseAddr("192.0.2.1"), Port: 2525},
		{Targets: []netip.AddrPort{netip.MustParseAddrPort("198.51.100.23:25"), netip.MustParseAddrPort("192.0.2.1:587")}},
	}}
	got := map[string]string{}
	for _, c := range kernServerChanges(ks, lb, kernlb.Service{}, false, nil, false) {
		got[c.ID] = strings.Join(c.Details, "; ")
	}
	want := map[string]string{"mx/a": "unchecked", "mx/b": "checked on address 192.0.2.1 port 2525", "mx/c": "checked at 198.51.100.23:25 and 192.0.2.1:587"}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("%s: details %q, want %q", id, got[id], w)
		}
	}
}
