package reconcile

import (
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
