package loader

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
)

// writeSite writes a one-file site with a web service whose servers
// block is servers, and returns its directory.
func writeSite(t *testing.T, servers string) string {
	t.Helper()
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
	resolve_interval: "30s"
` + servers + `
}
`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestServerByName: a server's address may be a host name and port; the
// name and the resolve interval reach the node's view as written.
func TestServerByName(t *testing.T) {
	dir := writeSite(t, `	servers: {
		ip: address:    "198.51.100.11:8080"
		v6: address:    "[2001:db8::11]:8080"
		name: address:  "db-1.example.com:5432"
		short: address: "localhost:6379"
		fqdn: address:  "app.example.com.:80"
	}`)
	_, view, err := Load(context.Background(), dir, "gw1")
	if err != nil {
		t.Fatal(err)
	}
	web := view.Services["web"]
	for name, want := range map[string]string{"ip": "198.51.100.11:8080", "v6": "[2001:db8::11]:8080",
		"name": "db-1.example.com:5432", "short": "localhost:6379", "fqdn": "app.example.com.:80"} {
		if got := web.Servers[name].Address; got != want {
			t.Errorf("server %s: address %q, want %q", name, got, want)
		}
	}
	if web.ResolveInterval != spec.Duration(30*time.Second) {
		t.Errorf("resolve interval %v", web.ResolveInterval)
	}
}

// TestServerBadNames: what is neither an address nor an RFC 1123 name is
// refused at its position.
func TestServerBadNames(t *testing.T) {
	bad := map[string]string{
		"under":  "db_1.example.com:5432",
		"hyphen": "-db.example.com:5432",
		"noport": "db.example.com",
		"dots":   "db..example.com:80",
		"space":  "db example:80",
		"long":   strings.Repeat("a", 64) + ".example:80",
	}
	var b strings.Builder
	b.WriteString("\tservers: {\n")
	for name, addr := range bad {
		b.WriteString("\t\t" + name + ": address: \"" + addr + "\"\n")
	}
	b.WriteString("\t}")
	_, _, err := Load(context.Background(), writeSite(t, b.String()), "gw1")
	errs, ok := AsErrors(err)
	if !ok {
		t.Fatalf("want positioned errors, got %v", err)
	}
	for name := range bad {
		found := false
		for _, e := range errs {
			if strings.Contains(e.Error(), "services.web.servers."+name+".address") && e.Line > 0 {
				found = true
			}
		}
		if !found {
			t.Errorf("server %s (%q): no positioned error in\n%v", name, bad[name], errs)
		}
	}
}
