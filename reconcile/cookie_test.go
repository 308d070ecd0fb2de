package reconcile

import (
	"testing"

	"github.com/gitgw/gitgw/dataplane/httpproxy"
)

// TestProxyCookieTranslated: a service's cookie (its schema default mode
// included) and its servers' values go from the site to the pool, which
// validates them.
func TestProxyCookieTranslated(t *testing.T) {
	node := kernNode(t, `
services: web: {
	binds: ["203.0.113.100:80"]
	servers: {
		w1: {address: "198.51.100.21:80", cookie: "a"}
		w2: {address: "198.51.100.22:80", cookie: "b"}
		w3: address: "198.51.100.23:80"
	}
	check: kind: "tcp"
	http: {}
	cookie: {name: "SRV", indirect: true, httponly: true}
}
`)
	cfg, err := ProxyConfig(node)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, s := range cfg.Services {
		if s.Name != "web" {
			continue
		}
		if want := (httpproxy.Cookie{Name: "SRV", Mode: httpproxy.CookieInsert, Indirect: true, HTTPOnly: true}); s.Cookie == nil || *s.Cookie != want {
			t.Errorf("cookie %+v, want %+v", s.Cookie, want)
		}
		got := map[string]string{}
		for _, sv := range s.Servers {
			got[sv.Name] = sv.Cookie
		}
		if got["w1"] != "a" || got["w2"] != "b" || got["w3"] != "" {
			t.Errorf("server values %v, want w1 a, w2 b, w3 none", got)
		}
		return
	}
	t.Fatal("no service web")
}
