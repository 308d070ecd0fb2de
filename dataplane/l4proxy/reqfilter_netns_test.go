package l4proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/dataplane/httpproxy"
	"github.com/gitgw/gitgw/test/lab"
)

// TestHTTPRequestFilters runs HAProxy 1.x's request filters as the
// importer maps them (haproxy-examples tcp-splicing-sample.cfg's
// reqisetbe by Host line and by request line, tarpit.cfg's reqtarpit, a
// reqideny and a stats page answered 503) in the proxy process the agent
// would run, in a namespace of its own with real HTTP servers.
func TestHTTPRequestFilters(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip")
	ns := lab.NewNetns(t, "h1rf")
	for _, a := range []string{"203.0.113.100/32", "198.51.100.11/32", "198.51.100.13/32"} {
		ns.Run(t, "ip", "addr", "add", a, "dev", "lo")
	}
	dyn := startHTTPBackend(t, ns, "dyn1", "198.51.100.11:8080")
	st := startHTTPBackend(t, ns, "st1", "198.51.100.13:8080")
	front := netip.MustParseAddrPort("203.0.113.100:80")
	check := &Check{Type: CheckTCP, Interval: 100 * time.Millisecond, Rise: 1, Fall: 1}
	srv := func(name, addr string) Server {
		return Server{Name: name, Addr: netip.MustParseAddrPort(addr), Weight: 1}
	}
	line := func(re string, icase bool) []httpproxy.Cond {
		return []httpproxy.Cond{{Subject: httpproxy.SubjLine, Match: httpproxy.MatchRegex, IgnoreCase: icase, Values: []string{re}}}
	}
	const hold = 300 * time.Millisecond
	cfg := Config{Services: []Service{
		{Name: "public", Binds: []netip.AddrPort{front},
			Servers: []Server{srv("dyn1", "198.51.100.11:8080")}, Check: check,
			HTTP: &httpproxy.HTTP{Rules: []httpproxy.Rule{
				{Deny: 403, When: line(`^User-Agent: .*evil`, true)},
				{Tarpit: hold, When: line(`^[^: ]* /invalid_req1`, false)},
				{Tarpit: hold, When: line(`^[^: ]* /.*\.(dll|exe|asp)`, true)},
				{Deny: 503, When: []httpproxy.Cond{
					{Subject: httpproxy.SubjURL, Match: httpproxy.MatchPrefix, Values: []string{"/stat"}},
					{Subject: httpproxy.SubjMethod, Values: []string{"GET", "HEAD", "POST"}}}},
				{Use: "static", When: line(`^Host: img`, true)},
				{Use: "static", When: line(`^[^ ]* /(img|css)/`, false)},
			}}},
		{Name: "static", Servers: []Server{srv("st1", "198.51.100.13:8080")}, Check: check},
	}}
	startHelperWith(t, func(name string, args ...string) *exec.Cmd {
		return ns.Command(context.Background(), name, args...)
	}, cfg)
	client := &http.Client{Transport: nsTransport(ns, nil, nil)}
	do := func(method, path, host string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+front.String()+path, nil)
		req.Host = host
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s (Host %s): %v", method, path, host, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(body)
	}
	counts := func() [2]int64 { return [2]int64{dyn.n.Load(), st.n.Load()} }

	t.Run("reqisetbe by the Host line and by the request line", func(t *testing.T) {
		for i, tc := range []struct{ path, host, want string }{
			{"/", "www.example", "dyn1"},
			{"/", "IMG.example", "st1"}, // reqisetbe: case-insensitive
			{"/css/site.css", "www.example", "st1"},
			{"/img/a.png", "www.example", "st1"},
			{"/imgs/a", "www.example", "dyn1"}, // the regex wants /img/
			{"/x?u=/img/", "www.example", "dyn1"},
		} {
			resp, body := do("GET", tc.path, tc.host)
			if resp.StatusCode != 200 || resp.Header.Get("X-Backend") != tc.want {
				t.Errorf("request %d %s Host %s: %d from %q (%q), want %s", i, tc.path, tc.host, resp.StatusCode, resp.Header.Get("X-Backend"), body, tc.want)
			}
		}
	})
	t.Run("reqideny by a header line", func(t *testing.T) {
		before := counts()
		resp, _ := do("GET", "/img/a.png", "www.example", "User-Agent", "an EVIL bot")
		if resp.StatusCode != 403 || counts() != before {
			t.Errorf("status %d, counts %v → %v: want 403 and no server asked", resp.StatusCode, before, counts())
		}
	})
	t.Run("stats page answered 503", func(t *testing.T) {
		before := counts()
		resp, _ := do("GET", "/stats;csv", "www.example")
		if resp.StatusCode != 503 || counts() != before {
			t.Errorf("status %d, counts %v → %v: want 503 and no server asked", resp.StatusCode, before, counts())
		}
		if resp, _ := do("PUT", "/stat", "www.example"); resp.StatusCode != 200 || resp.Header.Get("X-Backend") != "dyn1" {
			t.Errorf("PUT /stat: %d from %q, want it forwarded (HAProxy's stats page takes GET, HEAD and POST)", resp.StatusCode, resp.Header.Get("X-Backend"))
		}
	})
	t.Run("tarpit", func(t *testing.T) {
		for _, path := range []string{"/invalid_req1", "/scripts/root.EXE"} {
			before := counts()
			var c net.Conn
			if err := ns.Do(func() error {
				var err error
				c, err = net.DialTimeout("tcp4", front.String(), 5*time.Second)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			start := time.Now()
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: www.example\r\n\r\n", path)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			held := time.Since(start)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(body), "500 Internal Server Error") || strings.Contains(string(body), "503") {
				t.Errorf("%s: the tarpit's answer %q, want its 500 page alone (the request ends there)", path, body)
			}
			if resp.StatusCode != 500 || held < hold {
				t.Errorf("%s: %d after %v, want 500 no sooner than %v", path, resp.StatusCode, held, hold)
			}
			if n, err := br.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Errorf("%s: after the 500 the connection gave %d bytes, %v; want it closed", path, n, err)
			}
			if counts() != before {
				t.Errorf("%s: a tarpitted request reached a server: %v → %v", path, before, counts())
			}
		}
	})
}
