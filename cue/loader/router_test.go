package loader

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServiceWithoutServers: a proxy service may have no servers of its
// own when http rules send its requests on (HAProxy's frontend without
// default_backend); without rules, no servers is an error at the field.
func TestServiceWithoutServers(t *testing.T) {
	for _, tc := range []struct {
		name, service, err string
	}{
		{name: "http rules", service: "front: {\n\tbinds: [\"198.51.100.2:80\"]\n\thttp: rules: [{when: [{subject: \"host\", values: [\"a.example\"]}], use: \"web\"}]\n}\n"},
		{name: "no rules", service: "front: {\n\tbinds: [\"198.51.100.2:80\"]\n\tunchecked: true\n}\n", err: "services.front.servers: a service needs at least one server"},
		{name: "kernel mode", service: "front: {\n\tmode: \"nat\"\n\tbinds: [\"198.51.100.2:80\"]\n\tunchecked: true\n}\n", err: "services.front.servers: a service needs at least one server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{
				"cue.mod/module.cue": "module: \"example.net/t@v0\"\nlanguage: version: \"v0.17.0\"\n",
				"site.cue": "package site\n\nnodes: gw1: interfaces: eth1: addresses: [\"198.51.100.2/24\"]\n\n" +
					"services: web: {\n\tbinds: []\n\tunchecked: true\n\tservers: s1: address: \"198.51.100.11:8080\"\n}\n" +
					"services: " + tc.service,
			}
			for name, text := range files {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, view, err := Load(context.Background(), dir, "gw1")
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !view.Services["front"].Router() {
					t.Errorf("front is no service of rules: %+v", view.Services["front"])
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "site.cue:") {
				t.Errorf("error %v, want %q at a line of site.cue", err, tc.err)
			}
		})
	}
}
