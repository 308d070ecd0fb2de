package l4proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitgw/gitgw/dataplane/httpproxy"
	"github.com/gitgw/gitgw/test/lab"
)

// httpBackend is a real HTTP server in the lab namespace that names
// itself in every answer and counts the requests it served.
type httpBackend struct {
	name string
	ln   net.Listener
	n    atomic.Int64
	mu   sync.Mutex
	last http.Header // headers of the last request
}

func startHTTPBackend(t *testing.T, ns *lab.Netns, name, addr string) *httpBackend {
	t.Helper()
	b := &httpBackend{name: name}
	if err := ns.Do(func() error {
		var err error
		b.ln, err = net.Listen("tcp4", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "echo" {
			// A protocol switch (as a websocket's): 101, then the
			// connection echoes lines prefixed with the server's name.
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			brw.Flush()
			for {
				line, err := brw.ReadString('\n')
				if err != nil {
					return
				}
				fmt.Fprintf(brw, "%s %s", name, line)
				brw.Flush()
			}
		}
		b.n.Add(1)
		b.mu.Lock()
		b.last = r.Header.Clone()
		b.mu.Unlock()
		w.Header().Set("X-Backend", name)
		fmt.Fprintf(w, "%s %s %s", name, r.Host, r.URL.Path)
	})}
	go srv.Serve(b.ln)
	t.Cleanup(func() { srv.Close() })
	return b
}

func (b *httpBackend) header(k string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.last.Values(k), ",")
}

// nsTransport dials from inside the namespace; dials counts the
// connections it opened.
func nsTransport(ns *lab.Netns, tc *tls.Config, dials *atomic.Int64) *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := ns.Do(func() error {
				var err error
				c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
				return err
			})
			if dials != nil && err == nil {
				dials.Add(1)
			}
			return c, err
		},
		TLSClientConfig:   tc,
		DisableKeepAlives: false,
		MaxConnsPerHost:   1,
	}
}

// crtFiles makes a CA and, for each name, a PEM file holding a
// certificate for that name signed by the CA, then its key (HAProxy's crt
// format); it returns the CA's pool and the files.
func crtFiles(t *testing.T, names ...string) (*x509.CertPool, []string) {
	t.Helper()
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	var files []string
	for _, name := range names {
		certFile, keyFile, _ := ca.issue(t, dir, name, name)
		var out []byte
		for _, f := range []string{certFile, keyFile} {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b...)
		}
		f := filepath.Join(dir, name+".pem")
		if err := os.WriteFile(f, out, 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return ca.pool, files
}

// TestHTTPMode runs an HTTP service as HAProxy's content-switching
// sample does (haproxy-examples-content-sw-sample.cfg, plus TLS on a
// second bind), in the proxy process the agent would run, in a
// namespace of its own with real HTTP servers: requests are routed per
// request by host and path to two pools, denied, redirected to https,
// answered by the monitor URI, TLS is terminated with the certificate the
// SNI names, and a server whose check fails gets no request.
func TestHTTPMode(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip")
	ns := lab.NewNetns(t, "h4")
	for _, a := range []string{"203.0.113.100/32", "198.51.100.11/32", "198.51.100.12/32", "198.51.100.13/32", "198.51.100.14/32"} {
		ns.Run(t, "ip", "addr", "add", a, "dev", "lo")
	}
	dyn1 := startHTTPBackend(t, ns, "dyn1", "198.51.100.11:8080")
	dyn2 := startHTTPBackend(t, ns, "dyn2", "198.51.100.12:8080")
	st1 := startHTTPBackend(t, ns, "st1", "198.51.100.13:8080")
	st2 := startHTTPBackend(t, ns, "st2", "198.51.100.14:8080")
	roots, certs := crtFiles(t, "a.example", "b.example")
	plain := netip.MustParseAddrPort("203.0.113.100:80")
	secure := netip.MustParseAddrPort("203.0.113.100:443")
	check := &Check{Type: CheckTCP, Interval: 100 * time.Millisecond, Rise: 1, Fall: 1}
	srv := func(name, addr string) Server {
		return Server{Name: name, Addr: netip.MustParseAddrPort(addr), Weight: 1}
	}
	cfg := Config{Services: []Service{
		{Name: "public", Binds: []netip.AddrPort{plain, secure},
			Servers: []Server{srv("dyn1", "198.51.100.11:8080"), srv("dyn2", "198.51.100.12:8080")}, Check: check,
			HTTP: &httpproxy.HTTP{
				TLS:        &httpproxy.TLS{CertFiles: certs, Binds: []netip.AddrPort{secure}},
				MonitorURI: "/monitoruri",
				ForwardFor: true,
				Rules: []httpproxy.Rule{
					{Deny: 403, When: []httpproxy.Cond{{Subject: httpproxy.SubjPath, Match: httpproxy.MatchPrefix, Values: []string{"/private"}}}},
					{Redirect: &httpproxy.Redirect{Scheme: "https", Code: 301}, When: []httpproxy.Cond{
						{Subject: httpproxy.SubjPath, Match: httpproxy.MatchPrefix, Values: []string{"/secure"}},
						{Subject: httpproxy.SubjTLS, Not: true}}},
					{Use: "static", When: []httpproxy.Cond{{Subject: httpproxy.SubjHost, Match: httpproxy.MatchPrefix, IgnoreCase: true, Values: []string{"img"}}}},
					{Use: "static", When: []httpproxy.Cond{{Subject: httpproxy.SubjPath, Match: httpproxy.MatchPrefix, Values: []string{"/img", "/css"}}}},
				},
			}},
		{Name: "static", Servers: []Server{srv("st1", "198.51.100.13:8080"), srv("st2", "198.51.100.14:8080")}, Check: check},
	}}
	h := startHelperWith(t, func(name string, args ...string) *exec.Cmd {
		return ns.Command(context.Background(), name, args...)
	}, cfg)
	var dials atomic.Int64
	client := &http.Client{Transport: nsTransport(ns, nil, &dials),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(c *http.Client, url, host string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if host != "" {
			req.Host = host
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s (Host %s): %v", url, host, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(body)
	}
	backend := func(resp *http.Response) string { return resp.Header.Get("X-Backend") }
	counts := func() [4]int64 { return [4]int64{dyn1.n.Load(), dyn2.n.Load(), st1.n.Load(), st2.n.Load()} }

	t.Run("route by host and path over one keep-alive connection", func(t *testing.T) {
		dials.Store(0)
		for i, tc := range []struct{ path, host, pool string }{
			{"/", "www.example", "dyn"},
			{"/index.php", "IMG.example", "st"}, // -i: case-insensitive
			{"/css/site.css", "www.example", "st"},
			{"/img/a.png", "www.example", "st"},
			{"/imgs/a", "www.example", "st"}, // path_beg /img is a string prefix, as in HAProxy
			{"/image", "www.example", "dyn"},
			{"/about", "www.example", "dyn"},
		} {
			resp, body := get(client, "http://"+plain.String()+tc.path, tc.host)
			want := tc.pool
			if resp.StatusCode != 200 || !strings.HasPrefix(backend(resp), want) {
				t.Errorf("request %d %s Host %s: %d from %q (%q), want pool %s", i, tc.path, tc.host, resp.StatusCode, backend(resp), body, want)
			}
		}
		if n := dials.Load(); n != 1 {
			t.Errorf("%d client connections for 7 requests, want 1 kept alive", n)
		}
		if got := dyn1.header("X-Forwarded-For") + dyn2.header("X-Forwarded-For"); !strings.Contains(got, "203.0.113.100") {
			t.Errorf("X-Forwarded-For at the server: %q, want the client's 203.0.113.100", got)
		}
	})
	t.Run("deny", func(t *testing.T) {
		before := counts()
		resp, _ := get(client, "http://"+plain.String()+"/private/x", "www.example")
		if resp.StatusCode != 403 {
			t.Errorf("status %d, want 403", resp.StatusCode)
		}
		if counts() != before {
			t.Errorf("a denied request reached a server: %v → %v", before, counts())
		}
	})
	t.Run("monitor-uri", func(t *testing.T) {
		before := counts()
		resp, _ := get(client, "http://"+plain.String()+"/monitoruri", "www.example")
		if resp.StatusCode != 200 || backend(resp) != "" || counts() != before {
			t.Errorf("status %d from %q, counts %v → %v: want 200 from the proxy itself", resp.StatusCode, backend(resp), before, counts())
		}
	})
	t.Run("redirect to https, then TLS with the certificate SNI names", func(t *testing.T) {
		resp, _ := get(client, "http://"+plain.String()+"/secure/page?q=1", "a.example")
		if resp.StatusCode != 301 || resp.Header.Get("Location") != "https://a.example/secure/page?q=1" {
			t.Fatalf("status %d Location %q, want 301 to https://a.example/secure/page?q=1", resp.StatusCode, resp.Header.Get("Location"))
		}
		for _, name := range []string{"a.example", "b.example"} {
			tc := &tls.Config{RootCAs: roots, ServerName: name}
			c := &http.Client{Transport: nsTransport(ns, tc, nil)}
			resp, body := get(c, "https://"+secure.String()+"/secure/page", name)
			if resp.StatusCode != 200 || !strings.HasPrefix(backend(resp), "dyn") {
				t.Errorf("over TLS (SNI %s): %d from %q (%q), want a dyn server", name, resp.StatusCode, backend(resp), body)
			}
			if cn := resp.TLS.PeerCertificates[0].Subject.CommonName; cn != name {
				t.Errorf("SNI %s: certificate of %s", name, cn)
			}
		}
	})
	t.Run("protocol upgrade (websocket-style) is tunnelled", func(t *testing.T) {
		var c net.Conn
		if err := ns.Do(func() error {
			var err error
			c, err = net.DialTimeout("tcp4", plain.String(), 5*time.Second)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET /css/live HTTP/1.1\r\nHost: www.example\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 101 {
			t.Fatalf("upgrade: %v %v, want 101", resp, err)
		}
		for _, msg := range []string{"one\n", "two\n"} {
			fmt.Fprint(c, msg)
			got, err := br.ReadString('\n')
			if err != nil || !strings.HasPrefix(got, "st") || !strings.HasSuffix(got, " "+msg) {
				t.Fatalf("echo of %q through the tunnel: %q %v, want it from a static server", msg, got, err)
			}
		}
	})
	t.Run("a server marked down gets no request", func(t *testing.T) {
		st2.ln.Close()
		eventually(t, 10*time.Second, "st2 marked down", func() bool {
			return serverStatusIn(ns, h.stats, "st2") == StatusDown
		})
		before := st1.n.Load()
		for i := range 10 {
			resp, body := get(client, "http://"+plain.String()+"/img/"+fmt.Sprint(i), "www.example")
			if resp.StatusCode != 200 || backend(resp) != "st1" {
				t.Errorf("request %d: %d from %q (%q), want st1", i, resp.StatusCode, backend(resp), body)
			}
		}
		if got := st1.n.Load() - before; got != 10 {
			t.Errorf("st1 served %d of 10", got)
		}
	})
}

// TestSNIRouting: a TCP service routes TLS connections it does not
// terminate by the server name of their ClientHello (HAProxy's
// req_ssl_sni after tcp-request inspect-delay): a.example to pool sa,
// any other name to the service's own server; each client completes its
// handshake with the server it reached, through the proxy.
func TestSNIRouting(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip")
	ns := lab.NewNetns(t, "h4")
	for _, a := range []string{"203.0.113.100/32", "198.51.100.21/32", "198.51.100.22/32"} {
		ns.Run(t, "ip", "addr", "add", a, "dev", "lo")
	}
	roots, certs := crtFiles(t, "a.example", "default.example")
	tlsBackend := func(name, addr, pem string) {
		startTLSGreeter(t, ns, addr, pem, func(net.Conn) string { return name })
	}
	tlsBackend("sa", "198.51.100.21:8443", certs[0])
	tlsBackend("own", "198.51.100.22:8443", certs[1])
	bind := netip.MustParseAddrPort("203.0.113.100:443")
	startHelperWith(t, func(name string, args ...string) *exec.Cmd {
		return ns.Command(context.Background(), name, args...)
	}, Config{Services: []Service{
		{Name: "tls", Binds: []netip.AddrPort{bind}, Servers: []Server{{Name: "own", Addr: netip.MustParseAddrPort("198.51.100.22:8443"), Weight: 1}},
			SNI: &httpproxy.SNI{InspectDelay: 2 * time.Second, Rules: []httpproxy.SNIRule{{Names: []string{"A.example"}, Use: "sa"}}}},
		{Name: "sa", Servers: []Server{{Name: "sa", Addr: netip.MustParseAddrPort("198.51.100.21:8443"), Weight: 1}}},
	}})
	for _, tc := range []struct{ sni, want, cert string }{
		{"a.example", "sa", "a.example"},
		{"default.example", "own", "default.example"},
	} {
		var line string
		err := ns.Do(func() error {
			d := &net.Dialer{Timeout: 5 * time.Second}
			c, err := tls.DialWithDialer(d, "tcp4", bind.String(), &tls.Config{RootCAs: roots, ServerName: tc.sni})
			if err != nil {
				return err
			}
			defer c.Close()
			if cn := c.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != tc.cert {
				return fmt.Errorf("certificate of %s", cn)
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			line, err = bufio.NewReader(c).ReadString('\n')
			return err
		})
		if err != nil || strings.TrimSpace(line) != tc.want {
			t.Errorf("SNI %s: %q %v, want %s", tc.sni, line, err, tc.want)
		}
	}
}

// startTLSGreeter runs, in ns until the test ends, a TLS server on addr
// with the certificate and key of pem that writes one line, greet's, to
// each connection and closes it.
func startTLSGreeter(t *testing.T, ns *lab.Netns, addr, pem string, greet func(net.Conn) string) {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(pem, pem)
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = tls.Listen("tcp4", addr, &tls.Config{Certificates: []tls.Certificate{cert}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fmt.Fprintf(c, "%s\n", greet(c))
			}()
		}
	}()
}
