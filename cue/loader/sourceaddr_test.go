package loader

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSourceAddressesLoad: a service's source and transparent addresses
// and a server's own source address reach the node's view; transparent:
// true beside a transparent address is refused at its line.
func TestSourceAddressesLoad(t *testing.T) {
	site := func(extra string) string {
		dir := t.TempDir()
		files := map[string]string{
			"cue.mod/module.cue": "module: \"example.net/t@v0\"\nlanguage: version: \"v0.17.0\"\n",
			"site.cue": `package site

nodes: gw1: interfaces: eth1: addresses: ["198.51.100.2/24"]

services: web: {
	binds: ["198.51.100.2:80"]
	unchecked: true
	servers: s1: address: "198.51.100.11:8080"
	servers: s2: {address: "198.51.100.12:8080", source_address: "198.51.100.2"}
	source_address: "198.51.100.2"
	transparent_address: "203.0.113.99"
` + extra + `}
`,
		}
		for name, text := range files {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	_, view, err := Load(context.Background(), site(""), "gw1")
	if err != nil {
		t.Fatal(err)
	}
	web := view.Services["web"]
	if web.SourceAddress != "198.51.100.2" || web.TransparentAddress != "203.0.113.99" || web.Servers["s2"].SourceAddress != "198.51.100.2" || web.Servers["s1"].SourceAddress != "" {
		t.Errorf("view: source %q transparent %q, servers s1 %q s2 %q", web.SourceAddress, web.TransparentAddress, web.Servers["s1"].SourceAddress, web.Servers["s2"].SourceAddress)
	}
	_, _, err = Load(context.Background(), site("\ttransparent: true\n"), "gw1")
	if err == nil || !strings.Contains(err.Error(), "site.cue:12:") || !strings.Contains(err.Error(), "transparent") {
		t.Errorf("transparent: true with a transparent address: %v", err)
	}
}
