package l4proxy

import (
	"context"
	"io"
	"net/http"
	"net/netip"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitgw/gitgw/dataplane/httpproxy"
	"github.com/gitgw/gitgw/test/lab"
)

// TestHTTPRouterWithoutServers: an HTTP service without servers of its
// own (HAProxy's frontend without default_backend) sends each request
// where a rule says, and answers 503 to a request no rule takes, as
// HAProxy does; the pool behind it keeps its own server.
func TestHTTPRouterWithoutServers(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip")
	ns := lab.NewNetns(t, "rt")
	for _, a := range []string{"203.0.113.100/32", "198.51.100.11/32"} {
		ns.Run(t, "ip", "addr", "add", a, "dev", "lo")
	}
	app := startHTTPBackend(t, ns, "app", "198.51.100.11:8080")
	cfg := Config{Services: []Service{
		{Name: "front", Binds: []netip.AddrPort{netip.MustParseAddrPort("203.0.113.100:80")},
			HTTP: &httpproxy.HTTP{Rules: []httpproxy.Rule{
				{Use: "app", When: []httpproxy.Cond{{Subject: httpproxy.SubjHost, Match: httpproxy.MatchExact, IgnoreCase: true, Values: []string{"app.example"}}}},
			}}},
		{Name: "app", Servers: []Server{{Name: "app", Addr: netip.MustParseAddrPort("198.51.100.11:8080"), Weight: 1}},
			Check: &Check{Type: CheckTCP, Interval: 100 * time.Millisecond, Rise: 1, Fall: 1}},
	}}
	h := startHelperWith(t, func(name string, args ...string) *exec.Cmd {
		return ns.Command(context.Background(), name, args...)
	}, cfg)
	var dials atomic.Int64
	client := &http.Client{Transport: nsTransport(ns, nil, &dials), Timeout: 10 * time.Second}
	status := func(host string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://203.0.113.100/x", nil)
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET (Host %s): %v", host, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("X-Backend")
	}
	// The pool's server is checked up first: until then the rule's
	// request would get 503 for a reason of its own.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if code, _ := status("app.example"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the pool's server never answered through the rule")
		}
	}
	before := app.n.Load()
	for _, tc := range []struct {
		host, backend string
		code          int
	}{
		{"app.example", "app", http.StatusOK},
		{"APP.example", "app", http.StatusOK},
		{"other.example", "", http.StatusServiceUnavailable},
		{"", "", http.StatusServiceUnavailable},
	} {
		if code, be := status(tc.host); code != tc.code || be != tc.backend {
			t.Errorf("Host %q: %d from %q, want %d from %q", tc.host, code, be, tc.code, tc.backend)
		}
	}
	if got := app.n.Load() - before; got != 2 {
		t.Errorf("the server got %d requests, want the 2 the rule sends", got)
	}
	// Its status is where its rules send: UP with the pool up (as a
	// service without servers it would be DOWN, and alert, for ever).
	for _, s := range helperStatsIn(t, ns, h.stats).Services {
		if s.Name == "front" && (s.Status != StatusUp || s.Unchecked || len(s.Servers) != 0) {
			t.Errorf("front: status %s, unchecked %v, %d servers; want UP, checked by its pools, none", s.Status, s.Unchecked, len(s.Servers))
		}
	}
}
