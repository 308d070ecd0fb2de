package reconcile

import (
	"net/netip"
	"testing"

	"github.com/gitgw/gitgw/dataplane/l4proxy"
)

// TestProxySOCKS4Translated: a server's via (socks4 and check) goes from
// the site to the pool's server, and the plan spells it as HAProxy would.
func TestProxySOCKS4Translated(t *testing.T) {
	node := kernNode(t, `
services: smtp: {
	binds: ["203.0.113.100:25"]
	servers: {
		s1: address: "198.51.100.21:25"
		s2: {address: "198.51.100.22:25", via: {socks4: "127.0.0.1:1080", check: true}}
		s3: {address: "198.51.100.23:25", via: socks4: "127.0.0.1:1081"}
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
		if s.Name != "smtp" {
			continue
		}
		for _, sv := range s.Servers {
			got[sv.Name] = sv
		}
	}
	if s := got["s1"]; s.SOCKS4.IsValid() || s.CheckViaSOCKS4 {
		t.Errorf("s1 is direct, got via %v check %v", s.SOCKS4, s.CheckViaSOCKS4)
	}
	if s := got["s2"]; s.SOCKS4 != netip.MustParseAddrPort("127.0.0.1:1080") || !s.CheckViaSOCKS4 {
		t.Errorf("s2: via %v check %v, want 127.0.0.1:1080 with its checks", s.SOCKS4, s.CheckViaSOCKS4)
	}
	if v := l4proxy.ViewServer(got["s3"]).Via; v != "socks4 127.0.0.1:1081" {
		t.Errorf("s3 in a plan: %q", v)
	}
}
