package reconcile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/dataplane/l4proxy"
)

// checkSite is the lab site with services whose checks use the fields a
// real setup needs (Patroni, kubeadm, Redis, mail, LDAP).
func checkSite(t *testing.T, services string) string {
	t.Helper()
	dir := t.TempDir()
	lab := filepath.Join("..", "examples", "lab")
	for _, f := range []string{"site.cue", "cue.mod/module.cue"} {
		b, err := os.ReadFile(filepath.Join(lab, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "checks.cue"), []byte("package site\n\n"+services), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSiteChecksTranslated: each new check field goes from the site to the
// pool's config, passes its validation, and reads in the plan.
func TestSiteChecksTranslated(t *testing.T) {
	dir := checkSite(t, `
services: [!="web"]: {servers: db1: address: "198.51.100.21:5432"}
services: patroni: binds: ["203.0.113.100:5432"]
services: kube: binds: ["203.0.113.100:6443"]
services: redis: binds: ["203.0.113.100:6379"]
services: redis2: binds: ["203.0.113.100:6380"]
services: mail: binds: ["203.0.113.100:25"]
services: my: binds: ["203.0.113.100:3306"]
services: pg: binds: ["203.0.113.100:5433"]
services: dir: binds: ["203.0.113.100:389"]
services: patroni: check: {kind: "http", port: 8008, path: "/primary", expect_statuses: [200, "300-302"], headers: {"X-Who": "gitgw"}}
services: kube: check: {kind: "http", address: "198.51.100.30", tls: {verify: "none", sni: "kubernetes"}, requests: [
	{path: "/livez"}, {path: "/readyz", expect_statuses: ["200-299"], expect_regex: "^ok$"}]}
services: redis: check: {kind: "tcp-check", steps: [
	{send: "PING\r\n"}, {expect: "+PONG"}, {send: "INFO replication\r\n"}, {expect_regex: "role:master"},
	{connect: {port: 26379, tls: false}}, {send_hex: "0d0a"}, {expect_hex: "2b"}]}
services: redis2: check: {kind: "redis", role: "master", tls: {ca_file: "/etc/ssl/redis-ca.pem", cert_file: "/etc/ssl/c.pem", key_file: "/etc/ssl/c.key"}}
services: mail: check: {kind: "smtp", domain: "gw.example"}
services: my: check: {kind: "mysql", user: "haproxy"}
services: pg: check: {kind: "pgsql", user: "app", database: "app"}
services: dir: check: {kind: "ldap", max_read: 4096}
`)
	_, node, err := loader.Load(context.Background(), dir, "gw1")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ProxyConfig(node)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("translated config invalid: %v", err)
	}
	want := map[string]string{
		"patroni": `http on port 8008 GET /primary header "X-Who: gitgw" expect status 200,300-302 inter 2s timeout 1s rise 2 fall 3`,
		"kube":    `http on address 198.51.100.30 tls sni kubernetes verify none GET /livez expect status 200 and GET /readyz expect status 200-299 expect rstring "^ok$" inter 2s timeout 1s rise 2 fall 3`,
		"redis": `tcp-check, send "PING\r\n", expect "+PONG", send "INFO replication\r\n", expect rstring "role:master", ` +
			`connect port 26379 no-tls, send "\r\n", expect "+" inter 2s timeout 1s rise 2 fall 3`,
		"redis2": "redis tls verify required ca-file /etc/ssl/redis-ca.pem crt /etc/ssl/c.pem role master inter 2s timeout 1s rise 2 fall 3",
		"mail":   "smtp EHLO gw.example inter 2s timeout 1s rise 2 fall 3",
		"my":     "mysql user haproxy inter 2s timeout 1s rise 2 fall 3",
		"pg":     "pgsql user app database app inter 2s timeout 1s rise 2 fall 3",
		"dir":    "ldap inter 2s timeout 1s rise 2 fall 3 max-read 4096",
	}
	seen := 0
	for _, s := range cfg.Services {
		w, ok := want[s.Name]
		if !ok {
			continue
		}
		seen++
		if got := l4proxy.ViewService(s).Check; got != w {
			t.Errorf("%s: plan says\n%s\nwant\n%s", s.Name, got, w)
		}
	}
	if seen != len(want) {
		t.Errorf("%d of %d services translated", seen, len(want))
	}
	kube := cfg.Services[slicesIndex(cfg.Services, "kube")].Check
	if kube.Requests[0].Path != "/livez" || kube.Requests[0].Status[0] != (l4proxy.StatusRange{Lo: 200, Hi: 200}) {
		t.Errorf("kube's first request: %+v", kube.Requests[0])
	}
}

func slicesIndex(ss []l4proxy.Service, name string) int {
	for i, s := range ss {
		if s.Name == name {
			return i
		}
	}
	return -1
}

// TestSiteCheckErrorsPositioned: a regex that does not compile, a port out
// of range, a step with two actions, a field of another kind: each is
// reported at its line in the site's file.
func TestSiteCheckErrorsPositioned(t *testing.T) {
	dir := checkSite(t, `
services: [!="web"]: {binds: ["203.0.113.100:5432"], servers: db1: address: "198.51.100.21:5432"}
services: a: check: {kind: "http", expect_regex: "(unclosed"}
services: b: check: {kind: "tcp", port: 70000}
services: c: check: {kind: "tcp-check", steps: [{send: "x", expect: "y"}]}
services: d: check: {kind: "tcp", role: "master"}
services: e: check: {kind: "tcp-check", steps: [{expect_regex: "[z-a]"}]}
services: f: check: {kind: "http", expect_statuses: ["200-999"]}
services: g: check: {kind: "http", path: "/x\r\nX-Injected: 1"}
services: h: check: {kind: "mysql", tls: {verify: "none"}}
vrrp: VI_1: track_checks: [{name: "mx", kind: "smtp", target: "198.51.100.25:25"}]
`)
	_, _, err := loader.Load(context.Background(), dir, "gw1")
	if err == nil {
		t.Fatal("a broken site loaded")
	}
	for _, want := range []string{
		"checks.cue:5:", "services.a.check.expect_regex",
		"checks.cue:6:", "services.b.check.port",
		"checks.cue:7:", "services.c.check.steps.0",
		"checks.cue:8:", "services.d.check.role",
		"checks.cue:9:", "services.e.check.steps.0.expect_regex",
		"checks.cue:10:", "services.f.check.expect_statuses.0",
		"checks.cue:11:", "services.g.check.path",
		"checks.cue:12:", "services.h.check.tls",
		"checks.cue:13:", "vrrp.VI_1.track_checks.0.kind", // the protocol checks are the proxy's
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors lack %q:\n%v", want, err)
		}
	}
}
