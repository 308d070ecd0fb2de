package reconcile

import (
	"context"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/l4proxy"
	"github.com/gitgw/gitgw/reconcile/plan"
)

func proxyTestNode(t *testing.T) (*spec.Node, string) {
	t.Helper()
	var addrs []string
	for i := 0; i < 3; i++ {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { defer c.Close(); io.Copy(c, c) }()
			}
		}()
		addrs = append(addrs, ln.Addr().String())
	}
	bl, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bind := bl.Addr().String()
	bl.Close()
	n := &spec.Node{Name: "gw1", Services: map[string]spec.Service{
		"web": {
			Binds: []string{bind}, Balance: "roundrobin", Retries: 3, Redispatch: true,
			Timeouts: spec.Timeouts{Connect: spec.Duration(5 * time.Second), Client: spec.Duration(30 * time.Second),
				Server: spec.Duration(30 * time.Second), Queue: spec.Duration(5 * time.Second)},
			Servers: map[string]spec.Server{
				"s1": {Address: addrs[0], Weight: 100},
				"s2": {Address: addrs[1], Weight: 100},
				"s3": {Address: addrs[2], Weight: 100},
			},
			Check: &spec.ServiceCheck{Check: spec.Check{Kind: "tcp", Interval: spec.Duration(time.Second), Timeout: spec.Duration(time.Second), Rise: 2, Fall: 3}},
		},
		"elsewhere": {Nodes: []string{"gw2"}, Binds: []string{"127.0.0.1:1"}, Servers: map[string]spec.Server{}},
	}}
	return n, bind
}

func byID(cs []plan.Change) map[string]plan.Change {
	m := map[string]plan.Change{}
	for _, c := range cs {
		m[c.Kind+" "+c.ID] = c
	}
	return m
}

func TestProxyDriverPlanApply(t *testing.T) {
	node, bind := proxyTestNode(t)
	node.Node.Tuning.ProxyBusyPoll = spec.Duration(100 * time.Microsecond)
	pool := l4proxy.New(nil, l4proxy.Options{})
	d := NewProxyDriver(pool, nil)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d.Close(ctx)
	})
	ctx := context.Background()

	cs, err := d.Plan(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	m := byID(cs)
	if m["proxy_service web"].Action != plan.Create || m["proxy_bind web/"+bind].Action != plan.Create || m["proxy_server web/s3"].Action != plan.Create {
		t.Fatalf("first plan: %+v", cs)
	}
	if c := m["proxy_pool busy_poll"]; c.Action != plan.Update || c.Before != "off" || c.After != "100µs" {
		t.Errorf("first plan: busy poll %s %v → %v", c.Action, c.Before, c.After)
	}
	if _, ok := m["proxy_service elsewhere"]; ok {
		t.Error("service of another node planned here")
	}
	if err := d.Apply(ctx, node); err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", bind, 10*time.Second)
	if err != nil {
		t.Fatalf("service not listening after Apply: %v", err)
	}
	c.Close()
	cs, _ = d.Plan(ctx, node)
	for _, c := range cs {
		if c.Action != plan.NoOp {
			t.Errorf("after Apply: %s %s is %s (%v)", c.Kind, c.ID, c.Action, c.Details)
		}
	}

	// Drain s3, halve s1's weight, switch to leastconn.
	web := node.Services["web"]
	web.Balance = "leastconn"
	s3 := web.Servers["s3"]
	s3.Drain = true
	web.Servers["s3"] = s3
	s1 := web.Servers["s1"]
	s1.Weight = 50
	web.Servers["s1"] = s1
	delete(web.Servers, "s2")
	node.Services["web"] = web
	node.Node.Tuning.ProxyBusyPoll = 0
	cs, _ = d.Plan(ctx, node)
	m = byID(cs)
	if c := m["proxy_pool busy_poll"]; c.Action != plan.Update || c.Before != "100µs" || c.After != "off" {
		t.Errorf("busy poll turned off: %s %v → %v", c.Action, c.Before, c.After)
	}
	for id, want := range map[string]string{
		"proxy_server web/s3": "server s3: drained",
		"proxy_server web/s1": "weight 100 → 50",
		"proxy_service web":   "balance roundrobin → leastconn",
		"proxy_server web/s2": "",
	} {
		c := m[id]
		if want == "" {
			if c.Action != plan.Delete {
				t.Errorf("%s: %s, want delete", id, c.Action)
			}
			continue
		}
		if c.Action != plan.Update || !slices.Contains(c.Details, want) {
			t.Errorf("%s: %s %q, want update with %q", id, c.Action, c.Details, want)
		}
	}
	if err := d.Apply(ctx, node); err != nil {
		t.Fatal(err)
	}
	cs, _ = d.Plan(ctx, node)
	for _, c := range cs {
		if c.Action != plan.NoOp {
			t.Errorf("after second Apply: %s %s is %s (%v)", c.Kind, c.ID, c.Action, c.Details)
		}
	}
	if st := pool.Stats(); len(st.Services) != 1 || st.Services[0].Balance != l4proxy.LeastConn {
		t.Errorf("pool stats after Apply: %+v", st)
	}
}

func TestProxyConfigTranslation(t *testing.T) {
	node, _ := proxyTestNode(t)
	web := node.Services["web"]
	web.ProxyProtocol = "v2"
	web.TCPKeepalive = true
	web.Retries = 0
	web.Check = &spec.ServiceCheck{Check: spec.Check{Kind: "http", Path: "/health", ExpectStatus: 200, ExpectString: "Still alive"}, ShutdownSessions: true}
	s2 := web.Servers["s2"]
	s2.Disabled = true
	web.Servers["s2"] = s2
	node.Services["web"] = web
	cfg, err := ProxyConfig(node)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Services) != 1 {
		t.Fatalf("services: %+v", cfg.Services)
	}
	s := cfg.Services[0]
	if s.ProxyProtocol != 2 || s.KeepAlive == 0 || s.Retries != -1 || !s.ShutdownOnDown ||
		s.Check.Type != l4proxy.CheckHTTP || s.Check.Expect != "Still alive" || s.Check.ExpectStatus != 200 {
		t.Errorf("translated service: %+v check %+v", s, s.Check)
	}
	if s.Servers[1].Name != "s2" || s.Servers[1].State != l4proxy.Maint {
		t.Errorf("disabled server: %+v", s.Servers[1])
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("translated config invalid: %v", err)
	}
	node.Services["bad"] = spec.Service{Binds: []string{"nope"}}
	if _, err := ProxyConfig(node); err == nil || !strings.Contains(err.Error(), `bind "nope"`) {
		t.Errorf("bad bind: %v", err)
	}
}
