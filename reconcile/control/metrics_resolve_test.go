package control

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/gitgw/gitgw/dataplane/l4proxy"
	"github.com/gitgw/gitgw/test/lab"
)

// resolveChildEnv tells the test binary, re-run inside the namespace, to
// run the namespace half of TestProxyResolveMetricsNetns; its value is
// the namespace's /etc/netns directory.
const resolveChildEnv = "GITGW_TEST_RESOLVE_METRICS_ETC"

// TestProxyResolveMetricsNetns: servers given by name in /metrics, from a
// real pool asking the system resolver. The test binary runs again under
// `ip netns exec`, which mounts the namespace's own hosts file and
// resolv.conf (/etc/netns/NAME) over /etc's; the resolv.conf names a
// nameserver that is not there, so a name missing from the hosts file
// fails. A name never in the file is shown unresolved, with no address; a
// name in it is resolved at its address, then stale, keeping that
// address and its last success time, once it is removed from the file.
func TestProxyResolveMetricsNetns(t *testing.T) {
	if etc := os.Getenv(resolveChildEnv); etc != "" {
		resolveMetricsInNetns(t, etc)
		return
	}
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip")
	t.Parallel()
	ns := lab.NewNetns(t, "h1rm")
	etc := filepath.Join("/etc/netns", ns.Name)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(etc) })
	for name, text := range map[string]string{
		"hosts":       "127.0.0.1 localhost\n198.51.100.21 app.lab.test\n",
		"resolv.conf": "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
	} {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := ns.Command(ctx, self, "-test.run=^TestProxyResolveMetricsNetns$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), resolveChildEnv+"="+etc)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestProxyResolveMetricsNetns") {
		t.Fatalf("in the namespace: %v\n%s", err, out)
	}
}

// resolveMetricsInNetns is the half that runs in the namespace; etc is
// the namespace's /etc/netns directory (its hosts file is rewritten there,
// never through /etc/hosts).
func resolveMetricsInNetns(t *testing.T, etc string) {
	pool := l4proxy.New(slog.New(slog.DiscardHandler), l4proxy.Options{})
	t.Cleanup(func() { _ = pool.Close(context.Background()) })
	err := pool.Set(t.Context(), l4proxy.Config{Services: []l4proxy.Service{{
		Name: "web", Binds: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:18080")}, ResolveInterval: 200 * time.Millisecond,
		Servers: []l4proxy.Server{
			{Name: "app", Host: "App.Lab.Test.", Port: 8080, Weight: 1},
			{Name: "never", Host: "never.lab.test", Port: 8080, Weight: 1},
		},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	c := New(Options{Node: "gw1", Pool: pool})
	srv := httptest.NewServer(c.WebHandler(DefaultListen))
	defer srv.Close()
	const (
		app   = `server="app",service="web"`
		never = `server="never",service="web"`
	)
	// await polls /metrics until every line of want is there and none of
	// absent matches; it returns the last body.
	await := func(what string, want []string, absent ...string) string {
		t.Helper()
		var body string
		for deadline := time.Now().Add(60 * time.Second); ; {
			body = get(t, srv.URL+"/metrics")
			missing := ""
			for _, w := range want {
				if !strings.Contains(body, w) {
					missing = w
					break
				}
			}
			for _, a := range absent {
				if regexp.MustCompile(a).MatchString(body) {
					missing = "no " + a
				}
			}
			if missing == "" {
				return body
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s missing from:\n%s", what, missing, grepLines(body, "gitgw_proxy_server_"))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	body := await("resolved and unresolved", []string{
		`gitgw_proxy_server_resolved{host="app.lab.test",` + app + `} 1`,
		`gitgw_proxy_server_resolve_state{host="app.lab.test",` + app + `,state="resolved"} 1`,
		`gitgw_proxy_server_resolve_state{host="app.lab.test",` + app + `,state="stale"} 0`,
		`gitgw_proxy_server_address_info{address="198.51.100.21:8080",host="app.lab.test",` + app + `} 1`,
		`gitgw_proxy_server_resolved{host="never.lab.test",` + never + `} 0`,
		`gitgw_proxy_server_resolve_state{host="never.lab.test",` + never + `,state="unresolved"} 1`,
		`gitgw_proxy_server_resolve_last_success_timestamp_seconds{host="never.lab.test",` + never + `} 0`,
	}, `gitgw_proxy_server_address_info\{[^}]*server="never"`)
	at := regexp.MustCompile(`gitgw_proxy_server_resolve_last_success_timestamp_seconds\{host="app.lab.test",` + app + `\} (\S+)`)
	m := at.FindStringSubmatch(body)
	if m == nil || m[1] == "0" {
		t.Fatalf("no last success time for app:\n%s", grepLines(body, "gitgw_proxy_server_"))
	}
	// The name leaves the hosts file (rewritten in place: the mount
	// follows); Go's resolver reads the file again within 5 s.
	if err := os.WriteFile(filepath.Join(etc, "hosts"), []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	body = await("stale", []string{
		`gitgw_proxy_server_resolved{host="app.lab.test",` + app + `} 0`,
		`gitgw_proxy_server_resolve_state{host="app.lab.test",` + app + `,state="stale"} 1`,
		`gitgw_proxy_server_resolve_state{host="app.lab.test",` + app + `,state="resolved"} 0`,
		`gitgw_proxy_server_address_info{address="198.51.100.21:8080",host="app.lab.test",` + app + `} 1`,
		`gitgw_proxy_server_resolve_state{host="never.lab.test",` + never + `,state="unresolved"} 1`,
	})
	if m2 := at.FindStringSubmatch(body); m2 == nil || m2[1] == "0" {
		t.Errorf("the stale name lost its last success time:\n%s", grepLines(body, "gitgw_proxy_server_"))
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "gitgw_proxy_server_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
