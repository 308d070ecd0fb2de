package l4proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gitgw/gitgw/dataplane/httpproxy"
	"github.com/gitgw/gitgw/test/lab"
)

// TestHTTPFetchesAndSourceNetns runs the rules of haproxy-examples
// acl-content-sw.cfg that need the fetches of httpproxy/fetch.go
// (src_port, hdr_cnt, hdr_val, path_dir, hdr_sub(transfer-encoding)) and
// its backends' source addresses in HTTP mode, in the proxy process the
// agent runs, beside HAProxy 2.6 with the same lines, in a gateway
// between a client and a server namespace. The servers accept only the
// source addresses they were told (an nftables filter resets the
// others): port 8080 (www) only 198.51.100.2, the service's source
// address; port 8081 (demo, a pool a path_dir rule uses) only
// 198.51.100.3, its server's own. Each server answers its name and the
// address it saw; every request must get the same status and answer from
// gitgw as from HAProxy, and the expected one.
func TestHTTPFetchesAndSourceNetns(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "nft")
	cl, gw, sv := lab.NewNetns(t, "h7c"), lab.NewNetns(t, "h7g"), lab.NewNetns(t, "h7s")
	lab.Veth(t, cl, "eth0", "203.0.113.10/24", gw, "eth0", "203.0.113.1/24")
	lab.Veth(t, gw, "eth1", "198.51.100.1/24", sv, "eth0", "198.51.100.10/24")
	gw.Run(t, "ip", "addr", "add", "198.51.100.2/24", "dev", "eth1")
	gw.Run(t, "ip", "addr", "add", "198.51.100.3/24", "dev", "eth1")
	cl.Run(t, "ip", "route", "add", "default", "via", "203.0.113.1")
	sv.Run(t, "ip", "route", "add", "default", "via", "198.51.100.1")
	sv.Run(t, "nft", `table inet only {
		chain input {
			type filter hook input priority 0;
			tcp dport 8080 ip saddr != 198.51.100.2 reject with tcp reset
			tcp dport 8081 ip saddr != 198.51.100.3 reject with tcp reset
		}
	}`)
	for _, s := range []struct{ name, addr string }{{"www1", "198.51.100.10:8080"}, {"demo1", "198.51.100.10:8081"}} {
		var ln net.Listener
		if err := sv.Do(func() error {
			var err error
			ln, err = net.Listen("tcp4", s.addr)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		name := s.name
		srv := &http.Server{DisableGeneralOptionsHandler: true, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			ap, _ := netip.ParseAddrPort(r.RemoteAddr)
			fmt.Fprintf(w, "%s saw %s for %s %s", name, ap.Addr(), r.Method, r.RequestURI)
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}
	header := func(name string, ranges ...string) httpproxy.Cond {
		return httpproxy.Cond{Subject: httpproxy.SubjHeaderCount, Header: name, Values: ranges}
	}
	deny := func(c ...httpproxy.Cond) httpproxy.Rule { return httpproxy.Rule{Deny: 403, When: c} }
	// As the importer writes acl-content-sw.cfg's lines (hapfetch.go).
	rules := []httpproxy.Rule{
		deny(httpproxy.Cond{Subject: httpproxy.SubjSourcePort, Values: []string{"0:1023"}}),
		deny(httpproxy.Cond{Subject: httpproxy.SubjHeader, Header: "transfer-encoding", Match: httpproxy.MatchContains, IgnoreCase: true, Values: []string{"chunked"}}),
		deny(header("host", "2:")),
		deny(header("content-length", "2:")),
		deny(httpproxy.Cond{Subject: httpproxy.SubjHeaderValue, Header: "x-n", Values: []string{":-1"}}),
		deny(header("proxy-authorization", "1:")),
		deny(httpproxy.Cond{Subject: httpproxy.SubjPath, Match: httpproxy.MatchDir, IgnoreCase: true, Values: []string{"chat", "MSOffice", "_vti_bin"}}),
		deny(httpproxy.Cond{Subject: httpproxy.SubjURL, Values: []string{"*"}}, httpproxy.Cond{Subject: httpproxy.SubjMethod, Values: []string{"OPTIONS"}, Not: true}),
		deny(httpproxy.Cond{Subject: httpproxy.SubjHeader, Header: "x-a", IgnoreCase: true, Values: []string{"bar"}}),
		{Use: "demo", When: []httpproxy.Cond{{Subject: httpproxy.SubjPath, Match: httpproxy.MatchDir, Values: []string{"demo"}}}},
	}
	front := netip.MustParseAddrPort("203.0.113.1:80")
	cfg := Config{Services: []Service{
		{Name: "www", Binds: []netip.AddrPort{front}, SourceAddr: netip.MustParseAddr("198.51.100.2"),
			Servers: []Server{{Name: "www1", Addr: netip.MustParseAddrPort("198.51.100.10:8080"), Weight: 1}},
			HTTP:    &httpproxy.HTTP{Rules: rules}},
		{Name: "demo", Servers: []Server{{Name: "demo1", Addr: netip.MustParseAddrPort("198.51.100.10:8081"), Weight: 1,
			SourceAddr: netip.MustParseAddr("198.51.100.3")}}},
	}}
	startHelperWith(t, func(name string, args ...string) *exec.Cmd {
		return gw.Command(context.Background(), name, args...)
	}, cfg)
	lab.StartHAProxyIn(t, gw, lab.HAProxyConfig{Services: []lab.HAProxyService{
		{Name: "www", Bind: "203.0.113.1:90", Servers: []string{"198.51.100.10:8080"}, Options: []string{
			"mode http", "timeout http-request 5s", "source 198.51.100.2:0",
			"acl forbidden_src src_port 0:1023",
			"acl forbidden_hdrs hdr_sub(transfer-encoding) -i chunked",
			"acl forbidden_hdrs hdr_cnt(host) gt 1",
			"acl forbidden_hdrs hdr_cnt(content-length) gt 1",
			"acl forbidden_hdrs hdr_val(x-n) lt 0",
			"acl forbidden_hdrs hdr_cnt(proxy-authorization) gt 0",
			"acl forbidden_uris path_dir -i chat MSOffice _vti_bin",
			"acl to_demo path_dir demo",
			"http-request deny if forbidden_src",
			"http-request deny if forbidden_hdrs",
			"http-request deny if forbidden_uris",
			"http-request deny if HTTP_URL_STAR !METH_OPTIONS",
			"http-request deny if { hdr(x-a) -i bar }",
			"use_backend demo if to_demo",
		}},
		{Name: "demo", Bind: "203.0.113.1:91", Servers: []string{"198.51.100.10:8081"}, ServerOptions: "source 198.51.100.3",
			Options: []string{"mode http"}},
	}})
	type answer struct {
		status int
		body   string
	}
	// send writes one raw request from the client (from port lport when
	// not 0) and reads the answer.
	send := func(to netip.AddrPort, lport int, req string) (answer, error) {
		var a answer
		err := cl.Do(func() error {
			d := &net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
				var serr error
				_ = c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1) })
				return serr
			}}
			if lport != 0 {
				d.LocalAddr = &net.TCPAddr{IP: net.ParseIP("203.0.113.10"), Port: lport}
			}
			c, err := d.Dial("tcp4", to.String())
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, req); err != nil {
				return err
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			a = answer{resp.StatusCode, string(body)}
			if resp.StatusCode != http.StatusOK {
				a.body = "" // the proxies' own error pages differ
			}
			return err
		})
		return a, err
	}
	req := func(line string, hdrs ...string) string {
		return line + " HTTP/1.1\r\nHost: www.example\r\n" + strings.Join(hdrs, "") + "Connection: close\r\n\r\n"
	}
	www := answer{200, "www1 saw 198.51.100.2 for GET /"}
	demo := answer{200, "demo1 saw 198.51.100.3 for GET /"}
	at := func(a answer, req string) answer { a.body = strings.TrimSuffix(a.body, "GET /") + req; return a }
	denied := answer{403, ""}
	for i, tc := range []struct {
		name  string
		lport int // gitgw's; HAProxy's is the next
		req   string
		want  answer
	}{
		{"plain, from the service's source address", 0, req("GET /"), www},
		{"src_port 0:1023", 1000, req("GET /"), denied},
		{"src_port above 1023", 1100, req("GET /"), www},
		{"path_dir routes to demo from its server's source", 0, req("GET /x/demo/y"), at(demo, "GET /x/demo/y")},
		{"path_dir is not a prefix", 0, req("GET /x/demox/y"), at(www, "GET /x/demox/y")},
		{"path_dir -i denies", 0, req("GET /a/msoffice/b.htm"), denied},
		{"path_dir sees no query", 0, req("GET /a?b=/chat/"), at(www, "GET /a?b=/chat/")},
		// (With a space after the comma, Go's server answers 400 itself,
		// a malformed Host, where HAProxy's rule answers 403.)
		{"hdr_cnt(host) gt 1", 0, "GET / HTTP/1.1\r\nHost: a,b\r\nConnection: close\r\n\r\n", denied},
		{"hdr_cnt(proxy-authorization) gt 0", 0, req("GET /", "Proxy-Authorization: Basic eDp5\r\n"), denied},
		{"hdr: one of a comma-separated list", 0, req("GET /", "X-A: foo, BAR\r\n"), denied},
		{"hdr: a whole value only", 0, req("GET /", "X-A: foobar\r\n"), www},
		{"hdr_val lt 0", 0, req("GET /", "X-N: 3, -2\r\n"), denied},
		{"hdr_val of a word is 0", 0, req("GET /", "X-N: abc\r\n"), www},
		{"chunked", 0, req("POST /", "Transfer-Encoding: chunked\r\n") + "3\r\nabc\r\n0\r\n\r\n", denied},
		{"a body of known length", 0, req("POST /", "Content-Length: 3\r\n") + "abc", at(www, "POST /")},
		// HTTP_URL_STAR: OPTIONS * reaches the server, as HAProxy sends it.
		{"OPTIONS *", 0, req("OPTIONS *"), at(www, "OPTIONS *")},
		{"url * (HTTP_URL_STAR !METH_OPTIONS)", 0, req("GET *"), denied},
	} {
		lp, hp := tc.lport, tc.lport
		if hp != 0 {
			hp++
		}
		got, err := send(front, lp, tc.req)
		if err != nil {
			t.Fatalf("%s: gitgw: %v", tc.name, err)
		}
		ref, err := send(netip.MustParseAddrPort("203.0.113.1:90"), hp, tc.req)
		if err != nil {
			t.Fatalf("%s: HAProxy: %v", tc.name, err)
		}
		if got != tc.want {
			t.Errorf("#%d %s: gitgw %+v, want %+v", i, tc.name, got, tc.want)
		}
		if ref != got {
			t.Errorf("#%d %s: HAProxy %+v, gitgw %+v", i, tc.name, ref, got)
		}
	}
}

// TestSNISourceAddressNetns: SNI routing, which the HTTP proxy dials
// itself, connects from the source address of the service (or server) it
// sends to: a.example goes to pool sa from sa's 198.51.100.23, any other
// name to the service's own server from its server's 198.51.100.24; each
// TLS server answers the address it saw.
func TestSNISourceAddressNetns(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip")
	ns := lab.NewNetns(t, "h7n")
	for _, a := range []string{"203.0.113.100/32", "198.51.100.21/32", "198.51.100.23/32", "198.51.100.24/32"} {
		ns.Run(t, "ip", "addr", "add", a, "dev", "lo")
	}
	roots, certs := crtFiles(t, "a.example", "default.example")
	tlsBackend := func(name, addr, pem string) {
		startTLSGreeter(t, ns, addr, pem, func(c net.Conn) string {
			ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
			return fmt.Sprintf("%s saw %s", name, ap.Addr())
		})
	}
	tlsBackend("sa", "198.51.100.21:8443", certs[0])
	tlsBackend("own", "198.51.100.21:8444", certs[1])
	bind := netip.MustParseAddrPort("203.0.113.100:443")
	startHelperWith(t, func(name string, args ...string) *exec.Cmd {
		return ns.Command(context.Background(), name, args...)
	}, Config{Services: []Service{
		{Name: "tls", Binds: []netip.AddrPort{bind}, Servers: []Server{{Name: "own", Addr: netip.MustParseAddrPort("198.51.100.21:8444"), Weight: 1,
			SourceAddr: netip.MustParseAddr("198.51.100.24")}},
			SNI: &httpproxy.SNI{InspectDelay: 2 * time.Second, Rules: []httpproxy.SNIRule{{Names: []string{"a.example"}, Use: "sa"}}}},
		{Name: "sa", SourceAddr: netip.MustParseAddr("198.51.100.23"),
			Servers: []Server{{Name: "sa", Addr: netip.MustParseAddrPort("198.51.100.21:8443"), Weight: 1}}},
	}})
	for _, tc := range []struct{ sni, want string }{
		{"a.example", "sa saw 198.51.100.23"},
		{"default.example", "own saw 198.51.100.24"},
	} {
		var line string
		err := ns.Do(func() error {
			d := &net.Dialer{Timeout: 5 * time.Second}
			c, err := tls.DialWithDialer(d, "tcp4", bind.String(), &tls.Config{RootCAs: roots, ServerName: tc.sni})
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			line, err = bufio.NewReader(c).ReadString('\n')
			return err
		})
		if err != nil || strings.TrimSpace(line) != tc.want {
			t.Errorf("SNI %s: %q %v, want %s", tc.sni, line, err, tc.want)
		}
	}
}
