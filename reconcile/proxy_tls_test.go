package reconcile

import (
	"testing"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/l4proxy"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// TestProxyServerTLS: a server's tls reaches the pool (session_reuse
// false is no-ssl-reuse), and the plan spells a change to it.
func TestProxyServerTLS(t *testing.T) {
	tlsOn := &spec.ServerTLS{CheckTLS: spec.CheckTLS{Verify: "required", CAFile: "/etc/ca.pem", SNI: "api.example"}, ALPN: []string{"h2"}}
	node := &spec.Node{Name: "gw1", Services: map[string]spec.Service{
		"api": {Binds: []string{"203.0.113.100:443"}, Servers: map[string]spec.Server{
			"a": {Address: "198.51.100.11:8443", Weight: 1, TLS: tlsOn},
			"b": {Address: "198.51.100.12:8443", Weight: 1},
		}},
	}}
	cfg, err := ProxyConfig(node)
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Services[0].Servers[0], cfg.Services[0].Servers[1]
	if a.TLS == nil || a.TLS.Verify != "required" || a.TLS.CAFile != "/etc/ca.pem" || a.TLS.SNI != "api.example" ||
		len(a.TLS.ALPN) != 1 || !a.TLS.NoReuse || b.TLS != nil {
		t.Fatalf("translated: a %+v, b %+v", a.TLS, b.TLS)
	}
	have := cfg
	have.Services = []l4proxy.Service{cfg.Services[0]}
	have.Services[0].Servers = []l4proxy.Server{b, b}
	have.Services[0].Servers[0].Name = "a"
	cs := proxyPlan(l4proxy.Diff(cfg, l4proxy.Observed{Applied: have}))
	c := byID(cs)["proxy_server api/a"]
	want := "tls off → verify required ca-file /etc/ca.pem sni api.example alpn h2 no-ssl-reuse"
	if c.Action != plan.Update || c.Reason != "address 198.51.100.12:8443 → 198.51.100.11:8443" || len(c.Details) < 2 || c.Details[1] != want {
		t.Errorf("change %+v, want the detail %q", c, want)
	}
}
