package importer

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// TestDigestCheck: a keepalived url digest becomes a command check that
// passes exactly when keepalived's would: the status accepted and the
// body's MD5 the given one, for every url; run against a real HTTP server
// as the proxy runs it (/bin/sh -c, the server in GITGW_SERVER_ADDR and
// GITGW_SERVER_PORT).
func TestDigestCheck(t *testing.T) {
	lab.RequireCommand(t, "sh", "bash", "sed", "md5sum", "openssl")
	page := "<html>the page</html>\n"
	sum := md5.Sum([]byte(page))
	good, bad := hex.EncodeToString(sum[:]), strings.Repeat("0", 32)
	var hosts, agents, snis []string
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts, agents = append(hosts, r.Host), append(agents, r.UserAgent())
		if r.TLS != nil {
			snis = append(snis, r.TLS.ServerName)
		}
		switch r.URL.Path {
		case "/page":
			w.Write([]byte(page))
		case "/auth":
			if u, p, ok := r.BasicAuth(); !ok || u != "admin" || p != "s'cret" {
				w.WriteHeader(http.StatusUnauthorized)
			}
			w.Write([]byte(page))
		case "/moved":
			w.WriteHeader(http.StatusMovedPermanently)
			w.Write([]byte(page))
		default:
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(page))
		}
	})
	srv := httptest.NewServer(handler)
	defer srv.Close()
	tlsSrv := httptest.NewTLSServer(handler)
	defer tlsSrv.Close()
	url := func(body string) string { return "   url {\n" + body + "   }\n" }
	for _, tt := range []struct {
		name, urls string
		pass       bool
		host       string
		sni        string
	}{
		{name: "digest matches", urls: url("    path /page\n    digest " + good + "\n"), pass: true, host: "="}, // the server's address and port
		{name: "digest in upper case", urls: url("    path /page\n    digest " + strings.ToUpper(good) + "\n"), pass: true},
		{name: "other content", urls: url("    path /page\n    digest " + bad + "\n")},
		{name: "status outside 200-299", urls: url("    path /moved\n    digest " + good + "\n")},
		{name: "status_code given", urls: url("    path /moved\n    status_code 301\n    digest " + good + "\n"), pass: true},
		{name: "every url must pass", urls: url("    path /page\n    digest "+good+"\n") + url("    path /nothing\n")},
		{name: "two urls pass", urls: url("    path /page\n    digest "+good+"\n") + url("    path /page\n    status_code 200\n"), pass: true},
		{name: "virtualhost", urls: url("    path /page\n    virtualhost www.example\n    digest " + good + "\n"), pass: true, host: "www.example"},
		// No keepalived release sends credentials (username and password
		// are a proposed change's): the server asks for them, 401 fails.
		{name: "basic authentication is not sent, as by keepalived", urls: url("    path /auth\n    username admin\n    password s'cret\n    digest " + good + "\n")},
		{name: "SSL_GET, no SNI", urls: url("    path /page\n    digest " + good + "\n"), pass: true, sni: "-"},
		{name: "SSL_GET, other content", urls: url("    path /page\n    digest " + bad + "\n")},
		{name: "SSL_GET with enable_sni", urls: url("    path /page\n    digest "+good+"\n") + "   virtualhost app.example\n   enable_sni\n", pass: true, sni: "app.example", host: "app.example"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			checker, s := "HTTP_GET", srv
			if strings.HasPrefix(tt.name, "SSL_GET") {
				checker, s = "SSL_GET", tlsSrv
			}
			target := netip.MustParseAddrPort(s.Listener.Addr().String())
			conf := "virtual_server 203.0.113.1 80 {\n lb_kind NAT\n real_server " + target.Addr().String() + " " + itoa(int(target.Port())) +
				" {\n  " + checker + " {\n" + tt.urls + "  }\n }\n}\n"
			svc, ns := loadVirtualServer(t, conf)
			if len(ns) > 0 {
				t.Fatalf("refused: %v", ns)
			}
			if svc.Check == nil || svc.Check.Kind != "command" {
				t.Fatalf("check %+v, want a command", svc.Check)
			}
			// Each url within keepalived's connect_timeout (5 s).
			if n := strings.Count(tt.urls, "url {"); svc.Check.Timeout.D() != time.Duration(n)*5*time.Second {
				t.Errorf("timeout %v for %d urls", svc.Check.Timeout, n)
			}
			hosts, agents, snis = nil, nil, nil
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "/bin/sh", "-c", svc.Check.Command)
			cmd.Env = append(os.Environ(), "GITGW_SERVER_ADDR="+target.Addr().String(), "GITGW_SERVER_PORT="+itoa(int(target.Port())))
			out, err := cmd.CombinedOutput()
			if (err == nil) != tt.pass {
				t.Errorf("passed: %v, want %v (%s)\n%s", err == nil, tt.pass, out, svc.Check.Command)
			}
			if len(agents) == 0 || agents[0] != "KeepAliveClient" {
				t.Errorf("user agents %q, want keepalived's", agents)
			}
			if tt.host == "=" {
				tt.host = target.String()
			}
			if tt.host != "" && (len(hosts) == 0 || hosts[0] != tt.host) {
				t.Errorf("Host %q, want %q", hosts, tt.host)
			}
			if tt.sni != "" && (len(snis) == 0 || snis[0] != strings.TrimPrefix(tt.sni, "-")) {
				t.Errorf("SNI %q, want %q", snis, tt.sni)
			}
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestPingCheck: a PING_CHECK's command passes when the server answers an
// ICMP echo and fails when it cannot be reached (in a network namespace
// of its own whose loopback is down).
func TestPingCheck(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "sh", "ping", "unshare")
	svc, ns := loadVirtualServer(t, "virtual_server 203.0.113.1 80 {\n real_server 198.51.100.1 80 {\n  PING_CHECK {\n   connect_timeout 1\n  }\n }\n}\n")
	if len(ns) > 0 || svc.Check == nil || svc.Check.Kind != "command" {
		t.Fatalf("check %+v, refused %v", svc.Check, ns)
	}
	run := func(argv ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "GITGW_SERVER_ADDR=127.0.0.1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Logf("%v: %v: %s", argv, err, out)
		}
		return err
	}
	if err := run("/bin/sh", "-c", svc.Check.Command); err != nil {
		t.Errorf("127.0.0.1 answers, the check failed: %v", err)
	}
	if err := run("unshare", "-n", "/bin/sh", "-c", svc.Check.Command); err == nil {
		t.Errorf("the check passed with no route to 127.0.0.1")
	}
}

// TestUDPCheck: a UDP_CHECK's command sends keepalived's datagram and
// passes, as keepalived, when the server answers or stays silent (unless
// a reply is required), and fails when the port is closed (ICMP port
// unreachable); run against real UDP sockets on 127.0.0.1.
func TestUDPCheck(t *testing.T) {
	lab.RequireCommand(t, "sh", "bash")
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	got := make(chan []byte, 10)
	echo := listen()
	go func() {
		b := make([]byte, 2048)
		for {
			n, from, err := echo.ReadFromUDP(b)
			if err != nil {
				return
			}
			got <- append([]byte(nil), b[:n]...)
			echo.WriteToUDP(b[:n], from)
		}
	}()
	silent := listen()
	closed := listen()
	closedPort := closed.LocalAddr().(*net.UDPAddr).Port
	closed.Close()
	port := func(c *net.UDPConn) int { return c.LocalAddr().(*net.UDPAddr).Port }
	for _, tt := range []struct {
		name, block string
		port        int
		pass        bool
		payload     string
	}{
		{name: "an answer", block: "   connect_timeout 1\n", port: port(echo), pass: true, payload: udpPayload},
		{name: "an answer to the payload", block: "   connect_timeout 1\n   payload 50494e47\n   require_reply\n", port: port(echo), pass: true, payload: "PING"},
		{name: "silence", block: "   connect_timeout 0.5\n", port: port(silent), pass: true},
		{name: "silence, a reply required", block: "   connect_timeout 0.5\n   require_reply\n", port: port(silent)},
		{name: "a closed port", block: "   connect_timeout 1\n", port: closedPort},
	} {
		t.Run(tt.name, func(t *testing.T) {
			svc, ns := loadVirtualServer(t, "virtual_server 203.0.113.1 53 {\n protocol UDP\n real_server 127.0.0.1 53 {\n  UDP_CHECK {\n"+tt.block+"  }\n }\n}\n")
			if len(ns) > 0 || svc.Check == nil || svc.Check.Kind != "command" {
				t.Fatalf("check %+v, refused %v", svc.Check, ns)
			}
			ctx, cancel := context.WithTimeout(context.Background(), svc.Check.Timeout.D())
			defer cancel()
			cmd := exec.CommandContext(ctx, "/bin/sh", "-c", svc.Check.Command)
			cmd.Env = append(os.Environ(), "GITGW_SERVER_ADDR=127.0.0.1", "GITGW_SERVER_PORT="+strconv.Itoa(tt.port))
			out, err := cmd.CombinedOutput()
			if (err == nil) != tt.pass {
				t.Errorf("passed: %v, want %v (%s)\n%s", err == nil, tt.pass, out, svc.Check.Command)
			}
			if tt.payload != "" {
				select {
				case b := <-got:
					if string(b) != tt.payload {
						t.Errorf("sent %q, want %q", b, tt.payload)
					}
				default:
					t.Errorf("nothing sent")
				}
			}
		})
	}
}

// TestCommandDispatch: real servers whose command checks differ share one
// command that runs each server's own, chosen by GITGW_SERVER_NAME; a
// server without a checker stays up, as in keepalived.
func TestCommandDispatch(t *testing.T) {
	lab.RequireCommand(t, "sh")
	svc, ns := loadVirtualServer(t, "virtual_server 203.0.113.1 80 {\n"+
		" real_server 198.51.100.1 80 {\n  MISC_CHECK {\n   misc_path \"/bin/sh -c 'exit 0' 198.51.100.1\"\n  }\n }\n"+
		" real_server 198.51.100.2 80 {\n  MISC_CHECK {\n   misc_path \"/bin/sh -c 'exit 1' ;; x\"\n   misc_timeout 7\n  }\n }\n"+
		" real_server 198.51.100.3 80 {\n }\n}\n")
	if len(ns) > 0 || svc.Check == nil || svc.Check.Kind != "command" {
		t.Fatalf("check %+v, refused %v", svc.Check, ns)
	}
	if svc.Check.Timeout.D() != 7*time.Second {
		t.Errorf("timeout %v, want the longest, 7s", svc.Check.Timeout)
	}
	if !svc.Servers["198.51.100.3-80"].Unchecked || svc.Servers["198.51.100.1-80"].Unchecked {
		t.Errorf("servers %+v: only the one without a checker is unchecked", svc.Servers)
	}
	for name, pass := range map[string]bool{"198.51.100.1-80": true, "198.51.100.2-80": false, "198.51.100.3-80": true} {
		cmd := exec.Command("/bin/sh", "-c", svc.Check.Command)
		cmd.Env = append(os.Environ(), "GITGW_SERVER_NAME="+name, "GITGW_SERVER_ADDR=198.51.100.9", "GITGW_SERVER_PORT=80")
		out, err := cmd.CombinedOutput()
		if (err == nil) != pass {
			t.Errorf("%s passed: %v, want %v (%s)\n%s", name, err == nil, pass, out, svc.Check.Command)
		}
	}
}

// TestHTTPDispatch: real servers whose HTTP_GETs differ share one command
// that makes each server's own request: the page one server is checked on
// passes, the missing one the other is checked on fails.
func TestHTTPDispatch(t *testing.T) {
	lab.RequireCommand(t, "sh", "bash", "sed")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/page" {
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	target := netip.MustParseAddrPort(srv.Listener.Addr().String())
	svc, ns := loadVirtualServer(t, "virtual_server 203.0.113.1 80 {\n"+
		" real_server 198.51.100.1 80 {\n  HTTP_GET {\n   url {\n    path /page\n   }\n  }\n }\n"+
		" real_server 198.51.100.2 80 {\n  HTTP_GET {\n   url {\n    path /missing\n   }\n  }\n }\n}\n")
	if len(ns) > 0 || svc.Check == nil || svc.Check.Kind != "command" {
		t.Fatalf("check %+v, refused %v", svc.Check, ns)
	}
	for name, pass := range map[string]bool{"198.51.100.1-80": true, "198.51.100.2-80": false} {
		cmd := exec.Command("/bin/sh", "-c", svc.Check.Command)
		cmd.Env = append(os.Environ(), "GITGW_SERVER_NAME="+name, "GITGW_SERVER_ADDR="+target.Addr().String(), "GITGW_SERVER_PORT="+strconv.Itoa(int(target.Port())))
		out, err := cmd.CombinedOutput()
		if (err == nil) != pass {
			t.Errorf("%s passed: %v, want %v (%s)", name, err == nil, pass, out)
		}
	}
}

// TestRawHTTPCheck: HAProxy's "option httpchk *" (or a target that is no
// path) becomes a command sending HAProxy's request line and headers as
// written, passing on a 2xx or 3xx status; run against a real TCP server.
func TestRawHTTPCheck(t *testing.T) {
	lab.RequireCommand(t, "sh", "bash")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	status := make(chan string, 1)
	got := make(chan string, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b := make([]byte, 4096)
			var req []byte
			for !strings.Contains(string(req), "\r\n\r\n") {
				n, err := c.Read(b)
				if err != nil {
					break
				}
				req = append(req, b[:n]...)
			}
			got <- string(req)
			c.Write([]byte("HTTP/1.0 " + <-status + " X\r\n\r\n"))
			c.Close()
		}
	}()
	target := netip.MustParseAddrPort(ln.Addr().String())
	_, view := loadText(t, "", "listen l\n  bind 203.0.113.1:80\n  option httpchk OPTIONS * HTTP/1.1\\r\\nHost:\\ www.example\n  server a 198.51.100.1:80 check\n")
	ck := view.Services["l"].Check
	if ck == nil || ck.Kind != "command" {
		t.Fatalf("check %+v", ck)
	}
	for _, tt := range []struct {
		status string
		pass   bool
	}{{"200", true}, {"302", true}, {"500", false}} {
		status <- tt.status
		cmd := exec.Command("/bin/sh", "-c", ck.Command)
		cmd.Env = append(os.Environ(), "GITGW_SERVER_ADDR=127.0.0.1", "GITGW_SERVER_PORT="+strconv.Itoa(int(target.Port())))
		out, err := cmd.CombinedOutput()
		if (err == nil) != tt.pass {
			t.Errorf("status %s: passed %v, want %v (%s)", tt.status, err == nil, tt.pass, out)
		}
		if req := <-got; req != "OPTIONS * HTTP/1.1\r\nHost: www.example\r\n\r\n" {
			t.Errorf("request %q", req)
		}
	}
}
