package reconcile

import "testing"

// TestProxyCheckPortTranslated: a server's own check port goes from the
// site to the pool's server and reads in the plan.
func TestProxyCheckPortTranslated(t *testing.T) {
	node := kernNode(t, `
services: pg: {
	binds: ["203.0.113.100:5432"]
	servers: {
		db1: {address: "198.51.100.21:5432", check_port: 8008}
		db2: address: "198.51.100.22:5432"
	}
	check: {kind: "http", path: "/primary"}
}
`)
	cfg, err := ProxyConfig(node)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ports := map[string]uint16{}
	for _, s := range cfg.Services {
		if s.Name == "pg" {
			for _, sv := range s.Servers {
				ports[sv.Name] = sv.CheckPort
			}
		}
	}
	if ports["db1"] != 8008 || ports["db2"] != 0 {
		t.Fatalf("check ports %v, want db1 8008 and db2 none", ports)
	}
}
