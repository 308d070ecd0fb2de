package loader

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRealServerRolesEveryWay: a real server's roles, derived from a dr
// service that names only the gateways, are the same whether its view is
// decoded from the whole evaluation, from its own part of the site (the
// node scope of large sites: the site's data without the schema), or
// derived from the whole site for every node (plan --all-nodes).
func TestRealServerRolesEveryWay(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"cue.mod/module.cue": "module: \"example.net/rs@v0\"\nlanguage: version: \"v0.17.0\"\n",
		"site.cue": `package site

nodes: {
	gw1: interfaces: eth0: addresses: ["203.0.113.11/24"]
	r1: interfaces: {
		eth0: addresses: ["203.0.113.21/24"]
		eth1: addresses: ["198.51.100.21/24"]
	}
}
vrrp: VI_1: {
	interface: "eth0", vrid: 51
	nodes: gw1: priority: 150
	vips: ["203.0.113.100/24"]
}
services: web: {
	nodes: ["gw1"]
	mode: "dr", interface: "eth0", balance: "maglev"
	binds: ["203.0.113.100:80", "203.0.113.101:80"]
	servers: {a: address: "203.0.113.21:80", b: address: "203.0.113.22:80"}
	check: kind: "tcp"
}
services: dns: {
	nodes: ["gw1"]
	mode: "nat"
	binds: ["203.0.113.100:53"]
	servers: a: address: "203.0.113.21:53"
	check: kind: "tcp"
}
`,
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	views := map[string]string{}
	for _, scope := range []Scope{ScopeSite, ScopeNode} {
		_, n, err := LoadWith(ctx, dir, "r1", Options{Scope: scope})
		if err != nil {
			t.Fatalf("scope %s: %v", scope, err)
		}
		b, _ := json.Marshal(n.RealServer)
		views[string(scope)] = string(b)
	}
	site, _, err := Load(ctx, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	all, err := site.Views()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(all["r1"].RealServer)
	views["views"] = string(b)
	want := `[{"vip":"203.0.113.100","service":"web","server":"a","address":"203.0.113.21","interface":"eth0"},` +
		`{"vip":"203.0.113.101","service":"web","server":"a","address":"203.0.113.21","interface":"eth0"}]`
	for how, got := range views {
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s: r1's roles (-want +got):\n%s", how, d)
		}
	}
	if len(all["gw1"].RealServer) != 0 {
		t.Errorf("gw1 has roles: %+v", all["gw1"].RealServer)
	}
}
