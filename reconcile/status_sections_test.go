package reconcile

import (
	"context"
	"net"
	"net/netip"
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
		{Name: "s1", Address: "127.0.0.1:9", Health: "unchecked"}, // no check: never "up"
		{Name: "s2", Address: "127.0.0.1:10", Health: "drain"},
		{Name: "s3", Address: "127.0.0.1:11", Health: "disabled"},
	}}}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("proxy section (-want +got):\n%s", d)
	}
}

func TestProxyHealthWords(t *testing.T) {
	for in, want := range map[l4proxy.Health]string{"UP": "up", "DOWN": "down", "DRAIN": "drain", "MAINT": "disabled", "REMOVED": "disabled", "NOCHECK": "unchecked", "": "down"} {
		if got := proxyHealth(in); got != want {
			t.Errorf("proxyHealth(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestVRRPPlaces: the status section says where each virtual router is,
// as the vrid-unique guardrail counts segments: the subnets of the node's
// addresses on the instance's interface, and the VIPs' family.
func TestVRRPPlaces(t *testing.T) {
	n := &spec.Node{
		Node: spec.NodeSettings{Interfaces: map[string]spec.Interface{
			"eth0": {Addresses: []netip.Prefix{netip.MustParsePrefix("198.51.100.2/24"), netip.MustParsePrefix("2001:db8::2/64"), netip.MustParsePrefix("198.51.100.3/24")}},
			"eth1": {Addresses: []netip.Prefix{netip.MustParsePrefix("203.0.113.2/24")}},
		}},
		VRRP: map[string]spec.VRRPInstance{
			"VI_1": {Interface: "eth0", VRID: 51, VIPs: []spec.VIP{{Address: netip.MustParsePrefix("198.51.100.10/24")}}},
			"VI_6": {Interface: "eth1", VRID: 51, VIPs: []spec.VIP{{Address: netip.MustParsePrefix("2001:db8:1::10/64")}}},
			"VI_0": {Interface: "eth9", VRID: 9},
		},
	}
	got := placesOf(n)
	want := map[string]place{
		"VI_1": {"IPv4", []string{"198.51.100.0/24", "2001:db8::/64"}},
		"VI_6": {"IPv6", []string{"203.0.113.0/24"}},
		"VI_0": {"IPv4", nil},
	}
	if d := cmp.Diff(want, got, cmp.AllowUnexported(place{})); d != "" {
		t.Errorf("placesOf (-want +got):\n%s", d)
	}
}

// TestProxyProbeHealthUnchecked: the health gate counts the servers of a
// service without a check (NOCHECK) as taking traffic, as they do: an
// apply that leaves such a service as it was is no regression.
func TestProxyProbeHealthUnchecked(t *testing.T) {
	ln, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bind := ln.LocalAddr().String()
	ln.Close()
	pool := l4proxy.New(nil, l4proxy.Options{})
	d := NewProxyDriver(pool, nil)
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	n := &spec.Node{Name: "gw1", Services: map[string]spec.Service{"dns": {
		Protocol: "udp", Binds: []string{bind}, Balance: "roundrobin", Unchecked: true,
		Servers: map[string]spec.Server{"a": {Address: "127.0.0.1:9", Weight: 100}, "b": {Address: "127.0.0.1:10", Weight: 100}},
	}}}
	if err := d.Apply(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	h, err := d.ProbeHealth(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	if h.Servers["dns"] != 2 {
		t.Errorf("%d servers taking traffic, want 2 (NOCHECK)", h.Servers["dns"])
	}
	if r := Regressions(h, h, h, n); len(r) != 0 {
		t.Errorf("regressions of an unchanged unchecked service: %v", r)
	}
}
