package reconcile

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/dataplane/l4proxy"
)

// TestProxyUDPAndTransparent: a site's protocol "udp" and transparent
// reach the pool, and the plan shows them and a change to them.
func TestProxyUDPAndTransparent(t *testing.T) {
	node, _ := proxyTestNode(t)
	base, err := ProxyConfig(node)
	if err != nil {
		t.Fatal(err)
	}
	web := node.Services["web"]
	web.Protocol = "udp"
	node.Services["web"] = web
	udp, err := ProxyConfig(node)
	if err != nil {
		t.Fatal(err)
	}
	if got := udp.Services[0].Protocol; got != l4proxy.ProtoUDP {
		t.Errorf("protocol %q reached the pool as %q", web.Protocol, got)
	}
	if d := serviceDetails(base, udp); !slices.ContainsFunc(d, func(s string) bool {
		return strings.HasPrefix(s, "protocol ") && strings.HasSuffix(s, "→ udp")
	}) {
		t.Errorf("plan details of tcp → udp: %q", d)
	}
	web.Protocol, web.Transparent = "", true
	node.Services["web"] = web
	tp, err := ProxyConfig(node)
	if err != nil {
		t.Fatal(err)
	}
	if s := tp.Services[0]; !s.Transparent || s.Protocol != "" {
		t.Errorf("transparent reached the pool as %+v", s)
	}
	if d := serviceDetails(base, tp); !slices.Contains(d, "transparent false → true") {
		t.Errorf("plan details of transparent: %q", d)
	}
}

// serviceDetails are the plan's details of the first service's change
// from the pool running have to want.
func serviceDetails(have, want l4proxy.Config) []string {
	for _, ch := range l4proxy.Diff(want, l4proxy.Observed{Applied: have}) {
		if ch.Kind == l4proxy.KindService && ch.ID == want.Services[0].Name {
			return ch.Details
		}
	}
	return nil
}

// TestProxySourceAddresses: a site's source_address (service and server)
// and transparent_address reach the pool, and the plan shows them.
func TestProxySourceAddresses(t *testing.T) {
	node, _ := proxyTestNode(t)
	base, err := ProxyConfig(node)
	if err != nil {
		t.Fatal(err)
	}
	web := node.Services["web"]
	web.SourceAddress, web.TransparentAddress = "198.51.100.2", "203.0.113.99"
	servers := maps.Clone(web.Servers)
	first := slices.Sorted(maps.Keys(servers))[0]
	sv := servers[first]
	sv.SourceAddress = "198.51.100.3"
	servers[first] = sv
	web.Servers = servers
	node.Services["web"] = web
	got, err := ProxyConfig(node)
	if err != nil {
		t.Fatal(err)
	}
	s := got.Services[0]
	if s.SourceAddr != netip.MustParseAddr("198.51.100.2") || s.TransparentAddr != netip.MustParseAddr("203.0.113.99") ||
		s.Servers[0].SourceAddr != netip.MustParseAddr("198.51.100.3") {
		t.Errorf("reached the pool as source %v transparent %v, server %s source %v", s.SourceAddr, s.TransparentAddr, s.Servers[0].Name, s.Servers[0].SourceAddr)
	}
	if d := serviceDetails(base, got); !slices.Contains(d, "transparent address none → 203.0.113.99") || !slices.Contains(d, "source address by route → 198.51.100.2") {
		t.Errorf("plan details: %q", d)
	}
}
