package control

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveWeb runs the web listener as the agent does (Serve, WebHandler with
// the configured listen address) on a loopback port and returns its
// address.
func serveWeb(t *testing.T, listen string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if listen == "" {
		listen = l.Addr().String()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = Serve(ctx, l, fixture(t).WebHandler(listen)) }()
	t.Cleanup(func() { cancel(); <-done })
	return l.Addr().String()
}

// rawGet sends one request with the Host line given (none when host is
// "-") over a fresh connection and returns the status code.
func rawGet(t *testing.T, addr, path, host string, extra ...string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	req := "GET " + path + " HTTP/1.1\r\n"
	if host == "-" {
		req = "GET " + path + " HTTP/1.0\r\n"
	} else {
		req += "Host: " + host + "\r\n"
	}
	for _, h := range extra {
		req += h + "\r\n"
	}
	req += "Connection: close\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s Host %q: %v", path, host, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// TestWebHostHeader sends real requests to the real web listener: only
// loopback names and the listen address are served, so that a page
// reached through DNS rebinding (a name of the attacker's resolving to
// 127.0.0.1, or to the operator's `ssh -L` end) reads nothing.
func TestWebHostHeader(t *testing.T) {
	addr := serveWeb(t, "")
	_, port, _ := net.SplitHostPort(addr)
	for _, c := range []struct {
		host string
		want int
	}{
		{"localhost", 200},
		{"localhost:9142", 200},
		{"LocalHost:8080", 200}, // ssh -L 8080:127.0.0.1:9142
		{"127.0.0.1", 200},
		{addr, 200},
		{"127.0.0.1:1", 200},
		{"[::1]", 200},
		{"[::1]:9142", 200},
		{"evil.example", 421},
		{"evil.example:" + port, 421},
		{"localhost.evil.example", 421},
		{"127.0.0.1.nip.io:" + port, 421},
		{"203.0.113.66:" + port, 421},
		{"[2001:db8::1]:" + port, 421},
		{"-", 421}, // HTTP/1.0 without a Host header
	} {
		for _, path := range []string{"/", "/metrics", "/status.json"} {
			if got := rawGet(t, addr, path, c.host); got != c.want {
				t.Errorf("GET %s Host %q: %d, want %d", path, c.host, got, c.want)
			}
		}
	}
}

// TestAllowedHost covers listen addresses the unit test cannot bind.
func TestAllowedHost(t *testing.T) {
	for _, c := range []struct {
		listen, host string
		want         bool
	}{
		{"198.51.100.5:9142", "198.51.100.5:9142", true},
		{"198.51.100.5:9142", "198.51.100.5", true},
		{"198.51.100.5:9142", "198.51.100.6:9142", false},
		{"198.51.100.5:9142", "localhost", true},
		{"198.51.100.5:9142", "gw1.example:9142", false},
		{"[2001:db8::5]:9142", "[2001:db8::5]:9142", true},
		{"[2001:db8::5]:9142", "[2001:db8::6]:9142", false},
		{"gw1.example:9142", "GW1.example:9142", true},
		{"gw1.example:9142", "gw2.example:9142", false},
		{":9142", "198.51.100.5:9142", true},
		{"0.0.0.0:9142", "[2001:db8::5]:9142", true},
		{"[::]:9142", "198.51.100.5", true},
		{":9142", "evil.example:9142", false},
		{":9142", "", false},
	} {
		if got := allowedHost(c.listen, c.host); got != c.want {
			t.Errorf("listen %s, Host %q: %v, want %v", c.listen, c.host, got, c.want)
		}
	}
}

// TestServeBoundsHeaders: a request's headers are capped (the default
// would be 1 MiB per connection, in the process that runs VRRP).
func TestServeBoundsHeaders(t *testing.T) {
	addr := serveWeb(t, "")
	if got := rawGet(t, addr, "/status.json", "localhost", "X-Small: 1"); got != 200 {
		t.Fatalf("small request: %d", got)
	}
	big := fmt.Sprintf("X-Big: %s", strings.Repeat("a", 64<<10))
	if got := rawGet(t, addr, "/status.json", "localhost", big); got != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB header: %d, want 431", got)
	}
}

// TestSocketBounds: the socket's requests are bounded like the web
// listener's (headers), an override's body is capped at 64 KiB, and the
// client reads at most MaxReply of an answer.
func TestSocketBounds(t *testing.T) {
	h := newHarness(t)
	_, path := serveSocket(t, h)
	do := func(req string) int {
		t.Helper()
		c, err := net.DialTimeout("unix", path, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		// The server may answer and close before it has read everything.
		wrote := make(chan struct{})
		go func() { defer close(wrote); _, _ = io.WriteString(c, req) }()
		defer func() { <-wrote }()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		c.Close()
		return resp.StatusCode
	}
	if got := do("GET /v1/status HTTP/1.1\r\nHost: gitgw\r\nX-Big: " + strings.Repeat("a", 64<<10) + "\r\nConnection: close\r\n\r\n"); got != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB header on the socket: %d, want 431", got)
	}
	body := `{"action":"drain","target":"web/s1","pad":"` + strings.Repeat("p", 1<<20) + `"}`
	if got := do(fmt.Sprintf("POST /v1/overrides HTTP/1.1\r\nHost: gitgw\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)); got != http.StatusBadRequest {
		t.Errorf("1 MiB override body: %d, want 400", got)
	}

	// A socket that answers without end (not our agent).
	fake := filepath.Join(t.TempDir(), "fake.sock")
	l, err := net.Listen("unix", fake)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = Serve(ctx, l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			chunk := []byte(strings.Repeat("x", 1<<20))
			for r.Context().Err() == nil {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}))
	}()
	defer func() { cancel(); <-done }()
	cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer ccancel()
	if _, err := NewClient(fake).StatusJSON(cctx); err == nil || !strings.Contains(err.Error(), "reply larger than") {
		t.Errorf("endless answer: %v", err)
	}
}
