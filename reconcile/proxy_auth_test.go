package reconcile

import (
	"testing"

	"github.com/gitgw/gitgw/cue/spec"
)

// TestProxyConfigUserlists: a service's HTTP mode carries the site's
// user lists its auth conditions name, hashes and groups, and no other
// list; the auth action keeps its realm.
func TestProxyConfigUserlists(t *testing.T) {
	n := &spec.Node{Site: spec.SiteSettings{Userlists: map[string]spec.Userlist{
		"L":     {Groups: []string{"dev"}, Users: map[string]spec.User{"boss": {PasswordHash: "$1$x$y", Groups: []string{"dev"}}}},
		"other": {Users: map[string]spec.User{"u": {PasswordHash: "$1$a$b"}}},
	}}, Services: map[string]spec.Service{"web": {
		Binds:   []string{"203.0.113.100:80"},
		Servers: map[string]spec.Server{"s1": {Address: "198.51.100.11:8080", Weight: 1}},
		HTTP: &spec.ServiceHTTP{Rules: []spec.HTTPRule{{
			When: []spec.HTTPCond{{Subject: "auth", Userlist: "L", Values: []string{"dev"}, Not: true}},
			Auth: &spec.HTTPAuth{Realm: "uat"},
		}}},
	}}}
	cfg, err := ProxyConfig(n)
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.Services[0].HTTP
	if len(h.Userlists) != 1 || h.Userlists["L"].Users["boss"].Hash != "$1$x$y" || h.Userlists["L"].Users["boss"].Groups[0] != "dev" || h.Userlists["L"].Groups[0] != "dev" {
		t.Errorf("userlists %+v, want L only, with its hash and groups", h.Userlists)
	}
	r := h.Rules[0]
	if r.Auth == nil || r.Auth.Realm != "uat" || r.When[0].Userlist != "L" || r.When[0].Values[0] != "dev" || !r.When[0].Not {
		t.Errorf("rule %+v", r)
	}
}
