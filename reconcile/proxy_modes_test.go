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
	if d := diffService(viewService(base.Services[0]), viewService(udp.Services[0])); !slices.ContainsFunc(d, func(s string) bool {
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
	if d := diffService(viewService(base.Services[0]), viewService(tp.Services[0])); !slices.Contains(d, "transparent false → true") {
		t.Errorf("plan details of transparent: %q", d)
	}
}
