package loader

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/google/go-cmp/cmp"
)

// TestSourceRulesLoad: a service's source rules reach the node's view
// (the broken spellings are in testdata/bad-source).
func TestSourceRulesLoad(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "cue.mod"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"cue.mod/module.cue": "module: \"example.net/t@v0\"\nlanguage: version: \"v0.17.0\"\n",
		"site.cue": `package site

nodes: gw1: interfaces: eth0: addresses: ["203.0.113.11/24"]

services: web: {
	binds: ["203.0.113.100:80"]
	servers: s1: address: "198.51.100.11:8080"
	source: {
		allow: ["198.51.100.0/24", "2001:db8::/32"]
		deny: ["198.51.100.66/32"]
		max_conn_per_source: 20
		max_rate_per_source: "50/10s"
	}
}
`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, view, err := Load(context.Background(), dir, "gw1")
	if err != nil {
		t.Fatal(err)
	}
	want := &spec.SourceRules{
		Allow: []string{"198.51.100.0/24", "2001:db8::/32"}, Deny: []string{"198.51.100.66/32"},
		MaxConnPerSource: 20, MaxRatePerSource: "50/10s",
	}
	if d := cmp.Diff(want, view.Services["web"].Source); d != "" {
		t.Errorf("source rules (-want +got):\n%s", d)
	}
}
