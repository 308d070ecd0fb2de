package reconcile

import (
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/l4proxy"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// TestProxyServerByName: "name:port" becomes a server the pool resolves;
// the plan shows the name, and once the pool knows it, the address it
// resolves to, or that it is unresolved or stale.
func TestProxyServerByName(t *testing.T) {
	node := &spec.Node{Name: "gw1", Services: map[string]spec.Service{
		"db": {Binds: []string{"203.0.113.100:5432"}, ResolveInterval: spec.Duration(30 * time.Second),
			Servers: map[string]spec.Server{
				"ip":   {Address: "198.51.100.11:5432", Weight: 100},
				"name": {Address: "db-1.example.com:5432", Weight: 100},
			}},
	}}
	cfg, err := ProxyConfig(node)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Services[0]
	if s.ResolveInterval != 30*time.Second || s.Servers[0].Addr.String() != "198.51.100.11:5432" || s.Servers[0].Host != "" ||
		s.Servers[1].Host != "db-1.example.com" || s.Servers[1].Port != 5432 || s.Servers[1].Addr.IsValid() {
		t.Fatalf("translated: %+v", s)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("translated config invalid: %v", err)
	}
	for _, bad := range []string{"999.1.1.1:80", "db.example.com:0", "db.example.com:70000", "db.example.com"} {
		n := &spec.Node{Services: map[string]spec.Service{"x": {Binds: []string{"203.0.113.1:1"},
			Servers: map[string]spec.Server{"s": {Address: bad, Weight: 1}}}}}
		if _, err := ProxyConfig(n); err == nil || !strings.Contains(err.Error(), "server s: address") {
			t.Errorf("%q: error %v", bad, err)
		}
	}

	// An address replaced by a name, with what the pool knows of it.
	have := l4proxy.Config{Services: []l4proxy.Service{{Name: "db", Servers: []l4proxy.Server{
		{Name: "name", Addr: s.Servers[0].Addr, Weight: 100}}}}}
	want := l4proxy.Config{Services: []l4proxy.Service{{Name: "db", Servers: []l4proxy.Server{s.Servers[1]}}}}
	want.Services[0].Servers[0].Name = "name"
	at := time.Date(2026, 12, 6, 5, 4, 3, 0, time.UTC)
	for _, tc := range []struct {
		live l4proxy.ServerStats
		want string
	}{
		{l4proxy.ServerStats{Host: "db-1.example.com", Addr: "198.51.100.12:5432", Status: "UP", ResolvedAt: at},
			"db-1.example.com → 198.51.100.12:5432 (resolved at 05:04:03)"},
		{l4proxy.ServerStats{Host: "db-1.example.com", Status: "DOWN", Resolve: "unresolved", ResolveError: "lookup db-1.example.com: no such host"},
			"db-1.example.com unresolved: lookup db-1.example.com: no such host"},
		{l4proxy.ServerStats{Host: "db-1.example.com", Addr: "198.51.100.12:5432", Status: "UP", Resolve: "stale", StaleSince: at, ResolveError: "timeout"},
			"db-1.example.com → 198.51.100.12:5432, stale since 05:04:03: timeout"},
	} {
		cs := proxyPlan(l4proxy.Diff(want, l4proxy.Observed{Applied: have, Servers: map[string]l4proxy.ServerStats{"db/name": tc.live}}))
		c := byID(cs)["proxy_server db/name"]
		if c.Action != plan.Update || c.Reason != "address 198.51.100.11:5432 → db-1.example.com:5432" {
			t.Errorf("change %+v", c)
		}
		if !strings.Contains(strings.Join(c.Details, "\n"), tc.want) {
			t.Errorf("details %q, want %q", c.Details, tc.want)
		}
	}
}
