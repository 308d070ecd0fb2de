package reconcile

import (
	"context"
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/l4proxy"
	"github.com/gitgw/gitgw/reconcile/drift"
)

func TestProxyStatusSection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bind := ln.Addr().String()
	ln.Close()
	pool := l4proxy.New(nil, l4proxy.Options{})
	d := NewProxyDriver(pool, nil)
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	n := &spec.Node{Name: "gw1", Services: map[string]spec.Service{
		"web": {
			Binds:   []string{bind},
			Balance: "roundrobin",
			Servers: map[string]spec.Server{
				"s1": {Address: "127.0.0.1:9", Weight: 100},
				"s2": {Address: "127.0.0.1:10", Weight: 100, Drain: true},
				"s3": {Address: "127.0.0.1:11", Weight: 100, Disabled: true},
			},
		},
	}}
	if err := d.Apply(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	got, err := d.StatusSection(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := drift.ProxySection{Services: []drift.ProxyService{{Name: "web", Servers: []drift.ProxyServer{
		{Name: "s1", Address: "127.0.0.1:9", Health: "up"},
		{Name: "s2", Address: "127.0.0.1:10", Health: "drain"},
		{Name: "s3", Address: "127.0.0.1:11", Health: "disabled"},
	}}}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("proxy section (-want +got):\n%s", d)
	}
}

func TestProxyHealthWords(t *testing.T) {
	for in, want := range map[l4proxy.Health]string{"UP": "up", "DOWN": "down", "DRAIN": "drain", "MAINT": "disabled", "REMOVED": "disabled", "": "down"} {
		if got := proxyHealth(in); got != want {
			t.Errorf("proxyHealth(%q) = %q, want %q", in, got, want)
		}
	}
}
