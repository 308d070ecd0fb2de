package l4proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/gitgw/gitgw/dataplane/httpproxy"
	"github.com/gitgw/gitgw/test/lab"
)

// TestHTTPHeaderRewrites runs header rewrites in the proxy process the
// agent would run, in a namespace of its own, with clients in another
// one across a veth and a real HTTP server: the server gets the client's
// X-Forwarded-For deleted and then the real address added (the edge
// sample's security idiom), except for a client of forwardfor's except
// network; set from %[src] and %[dst], add, replace-header, a 1.x line
// delete and a request line rewrite; the client gets the server's
// response with a header set and one deleted, and every response, the
// proxy's deny page too, with the after-response header.
func TestHTTPHeaderRewrites(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip")
	ns := lab.NewNetns(t, "h8")
	cl := lab.NewNetns(t, "h8c")
	lab.Veth(t, ns, "h8gw", "203.0.113.1/24", cl, "h8cl", "203.0.113.50/24")
	cl.Run(t, "ip", "addr", "add", "203.0.113.200/24", "dev", "h8cl")
	ns.Run(t, "ip", "addr", "add", "198.51.100.11/32", "dev", "lo")
	ns.Run(t, "ip", "link", "set", "lo", "up")
	srv := startHTTPBackend(t, ns, "s1", "198.51.100.11:8080")
	bind := netip.MustParseAddrPort("203.0.113.1:80")
	cfg := Config{Services: []Service{{Name: "web", Binds: []netip.AddrPort{bind},
		Servers: []Server{{Name: "s1", Addr: netip.MustParseAddrPort("198.51.100.11:8080"), Weight: 1}},
		HTTP: &httpproxy.HTTP{
			ForwardFor:       true,
			ForwardForExcept: []netip.Prefix{netip.MustParsePrefix("203.0.113.128/25")},
			Rules:            []httpproxy.Rule{{Deny: 403, When: []httpproxy.Cond{{Subject: httpproxy.SubjPath, Values: []string{"/forbidden"}}}}},
			RequestHeaders: []httpproxy.HeaderAction{
				{Op: httpproxy.HdrDel, Name: "x-forwarded-for"},
				{Op: httpproxy.HdrSet, Name: "X-Real-IP", Value: "%[src]"},
				{Op: httpproxy.HdrSet, Name: "X-Dst", Value: "%[dst] tls=%[ssl_fc]"},
				{Op: httpproxy.HdrAdd, Name: "X-Add", Value: "two"},
				{Op: httpproxy.HdrReplaceHeader, Name: "X-Version", Regex: `^v(\d+)$`, Value: `version \1`},
				{Op: httpproxy.HdrDelLine, Regex: `^x-drop:`, IgnoreCase: true},
				{Op: httpproxy.HdrReplaceLine, Regex: `^([^ :]*) /old/(.*)`, Value: `\1 /new/\2`},
			},
			ResponseHeaders: []httpproxy.HeaderAction{
				{Op: httpproxy.HdrDel, Name: "X-Backend"},
				{Op: httpproxy.HdrSet, Name: "X-Frame-Options", Value: "DENY"},
			},
			AfterResponseHeaders: []httpproxy.HeaderAction{
				{Op: httpproxy.HdrSet, Name: "Strict-Transport-Security", Value: "max-age=31536000"},
			},
		}}}}
	startHelperWith(t, func(name string, args ...string) *exec.Cmd {
		return ns.Command(context.Background(), name, args...)
	}, cfg)
	client := func(from string) *http.Client {
		local := &net.TCPAddr{IP: net.ParseIP(from)}
		return &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				var c net.Conn
				err := cl.Do(func() error {
					var err error
					c, err = (&net.Dialer{Timeout: 5 * time.Second, LocalAddr: local}).DialContext(ctx, network, addr)
					return err
				})
				return c, err
			}}}
	}
	get := func(c *http.Client, path string, hdr http.Header) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+bind.String()+path, nil)
		for k, vs := range hdr {
			req.Header[k] = vs
		}
		resp, err := c.Do(req) // the helper listens once ready
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(body)
	}
	spoof := http.Header{"X-Forwarded-For": {"6.6.6.6"}, "X-Real-Ip": {"6.6.6.6"}, "X-Add": {"one"},
		"X-Version": {"v2"}, "X-Drop": {"secret"}, "X-Keep": {"k"}}

	resp, body := get(client("203.0.113.50"), "/old/page", spoof)
	if resp.StatusCode != 200 || body != "s1 203.0.113.1:80 /new/page" {
		t.Fatalf("status %d %q, want 200 from s1 for /new/page", resp.StatusCode, body)
	}
	for k, want := range map[string]string{
		"X-Forwarded-For": "203.0.113.50", // the spoofed one deleted, the real one added
		"X-Real-Ip":       "203.0.113.50",
		"X-Dst":           "203.0.113.1 tls=0",
		"X-Add":           "one,two",
		"X-Version":       "version 2",
		"X-Drop":          "",
		"X-Keep":          "k",
	} {
		if got := srv.header(k); got != want {
			t.Errorf("server got %s %q, want %q", k, got, want)
		}
	}
	for k, want := range map[string]string{"X-Backend": "", "X-Frame-Options": "DENY", "Strict-Transport-Security": "max-age=31536000"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("client got %s %q, want %q", k, got, want)
		}
	}

	// A client of the except network: no X-Forwarded-For at all, the
	// spoofed one deleted.
	get(client("203.0.113.200"), "/", spoof)
	if got := srv.header("X-Forwarded-For"); got != "" {
		t.Errorf("X-Forwarded-For %q for an excepted client, want none", got)
	}
	if got := srv.header("X-Real-Ip"); got != "203.0.113.200" {
		t.Errorf("X-Real-IP %q, want 203.0.113.200", got)
	}

	// The proxy's own deny page gets the after-response header, not the
	// response ones.
	resp, _ = get(client("203.0.113.50"), "/forbidden", nil)
	if resp.StatusCode != 403 || resp.Header.Get("Strict-Transport-Security") != "max-age=31536000" || resp.Header.Get("X-Frame-Options") != "" {
		t.Errorf("deny: status %d, HSTS %q, X-Frame-Options %q; want 403 with HSTS only", resp.StatusCode,
			resp.Header.Get("Strict-Transport-Security"), resp.Header.Get("X-Frame-Options"))
	}
}
