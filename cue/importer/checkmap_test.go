package importer

import (
	"bytes"
	"context"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/cue/spec"
)

// checkOf is what a loaded service check says about what is checked, the
// timing left out (other tests cover it).
func checkOf(c *spec.ServiceCheck) spec.ServiceCheck {
	out := *c
	out.Interval, out.Timeout, out.Rise, out.Fall = 0, 0, 0, 0
	out.FastInterval, out.DownInterval, out.ShutdownSessions = 0, 0, false
	return out
}

func strp(s string) *string { return &s }

var checkCmp = cmpopts.EquateEmpty()

// TestHAProxyCheckMappings: each HAProxy check maps to a check of the site
// that does what HAProxy's does, and the site loads through the real
// loader and schema.
func TestHAProxyCheckMappings(t *testing.T) {
	const listen = "listen l\n  bind 203.0.113.1:443\n"
	const server = "  server a 198.51.100.1:443 check\n"
	httpOK := func(c spec.ServiceCheck) spec.ServiceCheck {
		c.Kind = "http"
		if c.ExpectStatus == 0 {
			c.ExpectStatus = 200 // the schema's default, which expect_statuses replaces
		}
		return c
	}
	for _, tt := range []struct {
		name, global, cfg string
		want              spec.ServiceCheck
	}{
		{name: "httpchk defaults: OPTIONS /, any 2xx or 3xx", cfg: "  option httpchk\n" + server,
			want: httpOK(spec.ServiceCheck{Check: spec.Check{Method: "OPTIONS", Path: "/"}, ExpectStatuses: []spec.StatusRange{"200-399"}})},
		{name: "expect status list", cfg: "  option httpchk GET /h\n  http-check expect status 200,204,300-302\n" + server,
			want: httpOK(spec.ServiceCheck{Check: spec.Check{Method: "GET", Path: "/h"}, ExpectStatuses: []spec.StatusRange{"200", "204", "300-302"}})},
		{name: "expect rstatus", cfg: "  option httpchk GET /h\n  http-check expect rstatus ^(200|30[12])$\n" + server,
			want: httpOK(spec.ServiceCheck{Check: spec.Check{Method: "GET", Path: "/h"}, ExpectStatuses: []spec.StatusRange{"200", "301-302"}})},
		{name: "expect rstatus by class", cfg: "  option httpchk GET /h\n  http-check expect rstatus ^2\n" + server,
			want: httpOK(spec.ServiceCheck{Check: spec.Check{Method: "GET", Path: "/h"}, ExpectStatuses: []spec.StatusRange{"200-299"}})},
		{name: "negated expect status", cfg: "  option httpchk GET /h\n  http-check expect ! status 500,502-504\n" + server,
			want: httpOK(spec.ServiceCheck{Check: spec.Check{Method: "GET", Path: "/h"}, ExpectStatuses: []spec.StatusRange{"100-499", "501", "505-599"}})},
		{name: "negated expect rstatus", cfg: "  option httpchk GET /h\n  http-check expect ! rstatus ^[45]\n" + server,
			want: httpOK(spec.ServiceCheck{Check: spec.Check{Method: "GET", Path: "/h"}, ExpectStatuses: []spec.StatusRange{"100-399"}})},
		{name: "expect string: any status", cfg: "  option httpchk GET /h\n  http-check expect string ready\n" + server,
			want: httpOK(spec.ServiceCheck{Check: spec.Check{Method: "GET", Path: "/h", ExpectString: "ready"}, ExpectStatuses: []spec.StatusRange{"100-599"}})},
		{name: "expect rstring", cfg: "  option httpchk GET /h\n  http-check expect comment ok rstring ^up\n" + server,
			want: httpOK(spec.ServiceCheck{Check: spec.Check{Method: "GET", Path: "/h"}, ExpectRegex: "^up", ExpectStatuses: []spec.StatusRange{"100-599"}})},
		{name: "http-check send headers", cfg: "  option httpchk\n  http-check send meth GET uri /h ver HTTP/1.1 hdr Host www.example hdr X-Check yes\n  http-check expect status 204\n" + server,
			want: httpOK(spec.ServiceCheck{Check: spec.Check{Method: "GET", Path: "/h", Host: "www.example", ExpectStatus: 204}, Headers: map[string]string{"X-Check": "yes"}})},
		{name: "httpchk version headers", cfg: `  option httpchk GET /h HTTP/1.1\r\nHost:\ www\r\nX-A:\ b` + "\n  http-check expect status 200\n" + server,
			want: httpOK(spec.ServiceCheck{Check: spec.Check{Method: "GET", Path: "/h", Host: "www"}, Headers: map[string]string{"X-A": "b"}})},
		{name: "http-check connect ssl (kubeadm)", cfg: "  option httpchk GET /healthz\n  http-check connect port 6443 ssl sni api.example\n  http-check expect status 200\n" + server,
			want: httpOK(spec.ServiceCheck{Check: spec.Check{Method: "GET", Path: "/healthz"}, Port: 6443, TLS: &spec.CheckTLS{SNI: "api.example", Verify: "required"}})},
		{name: "check-ssl with the server's TLS settings", cfg: "  option httpchk GET /h\n  http-check expect status 200\n  server a 198.51.100.1:443 check check-ssl verify none ca-file /etc/ca.pem crt /etc/c.pem check-sni app.example\n",
			want: httpOK(spec.ServiceCheck{Check: spec.Check{Method: "GET", Path: "/h"}, TLS: &spec.CheckTLS{SNI: "app.example", Verify: "none", CAFile: "/etc/ca.pem", CertFile: "/etc/c.pem", KeyFile: "/etc/c.pem"}})},
		{name: "ssl-server-verify none", global: "global\n  ssl-server-verify none\n", cfg: "  server a 198.51.100.1:443 check check-ssl\n",
			want: spec.ServiceCheck{Check: spec.Check{Kind: "tcp"}, TLS: &spec.CheckTLS{Verify: "none"}}},
		{name: "the same check port and addr on every server", cfg: "  option httpchk GET /master\n  http-check expect status 200\n  server a 198.51.100.1:5432 check port 8008 addr 198.51.100.9\n  server b 198.51.100.2:5432 check port 8008 addr 198.51.100.9\n",
			want: httpOK(spec.ServiceCheck{Check: spec.Check{Method: "GET", Path: "/master"}, Port: 8008, Address: "198.51.100.9"})},
		{name: "a check port that is the server's own", cfg: "  server a 198.51.100.1:443 check port 443\n  server b 198.51.100.2:443 check\n",
			want: spec.ServiceCheck{Check: spec.Check{Kind: "tcp"}}},
		{name: "tcp-check sequence (redis role:master)", cfg: `  option tcp-check
  tcp-check connect
  tcp-check send PING\r\n
  tcp-check expect string +PONG
  tcp-check send info\ replication\r\n
  tcp-check expect string role:master
  tcp-check send QUIT\r\n
  tcp-check expect string +OK
` + server,
			want: spec.ServiceCheck{Check: spec.Check{Kind: "tcp-check"}, Steps: []spec.CheckStep{{Send: strp("PING\r\n")}, {Expect: strp("+PONG")},
				{Send: strp("info replication\r\n")}, {Expect: strp("role:master")}, {Send: strp("QUIT\r\n")}, {Expect: strp("+OK")}}}},
		{name: "tcp-check connect port ssl, binary, rstring", cfg: `  tcp-check connect port 8443 ssl
  tcp-check send-binary 50494e470d0a
  tcp-check expect binary 2b504f4e47
  tcp-check expect rstring ^\+PONG
  server a 198.51.100.1:443 check ca-file /etc/ca.pem check-sni db.example
`,
			want: spec.ServiceCheck{Check: spec.Check{Kind: "tcp-check"}, TLS: &spec.CheckTLS{Verify: "required", CAFile: "/etc/ca.pem", SNI: "db.example"}, Steps: []spec.CheckStep{
				{Connect: &spec.CheckConnect{Port: 8443, TLS: true}}, {SendHex: "50494e470d0a"}, {ExpectHex: "2b504f4e47"}, {ExpectRegex: `^\+PONG`}}}},
		{name: "tcp-check bytes that are no text", cfg: "  tcp-check send \\x80\\x01\n  tcp-check expect string \\xffok\n" + server,
			want: spec.ServiceCheck{Check: spec.Check{Kind: "tcp-check"}, Steps: []spec.CheckStep{{SendHex: "8001"}, {ExpectHex: "ff6f6b"}}}},
		{name: "smtpchk", cfg: "  option smtpchk EHLO mail.example\n" + server,
			want: spec.ServiceCheck{Check: spec.Check{Kind: "smtp"}, Domain: "mail.example"}},
		{name: "mysql-check", cfg: "  option mysql-check user haproxy post-41\n" + server,
			want: spec.ServiceCheck{Check: spec.Check{Kind: "mysql"}, User: "haproxy"}},
		{name: "pgsql-check", cfg: "  option pgsql-check user postgres\n" + server,
			want: spec.ServiceCheck{Check: spec.Check{Kind: "pgsql"}, User: "postgres"}},
		{name: "redis-check", cfg: "  option redis-check\n" + server,
			want: spec.ServiceCheck{Check: spec.Check{Kind: "redis"}}},
		{name: "ldap-check", cfg: "  option ldap-check\n" + server,
			want: spec.ServiceCheck{Check: spec.Check{Kind: "ldap"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, view := loadText(t, "", tt.global+listen+tt.cfg)
			if len(res.Refused) > 0 {
				t.Fatalf("refused: %v", res.Refused)
			}
			svc, ok := view.Services["l"]
			if !ok || svc.Check == nil {
				t.Fatalf("no service l with a check:\n%s", goldenText(res))
			}
			if d := cmp.Diff(tt.want, checkOf(svc.Check), checkCmp); d != "" {
				t.Errorf("check (-want +got):\n%s\n%s", d, goldenText(res))
			}
		})
	}
}

// loadVirtualServer maps the one virtual_server of a keepalived.conf as a
// service, as it will be imported when the kernel forwarding modes land
// (until then kernel-lb refuses every virtual_server), and loads it.
func loadVirtualServer(t *testing.T, conf string) (spec.Service, []need) {
	t.Helper()
	var w warnings
	var s *service
	var ns []need
	var ssl *kaSSL
	dirs := parseKeepalived("ka", conf, &w)
	for _, d := range dirs {
		if d.Name == "SSL" {
			ssl = sslBlock(d, &w)
		}
	}
	for _, d := range dirs {
		if d.Name == "virtual_server" {
			s, ns = virtualServer(d, ssl, &w)
		}
	}
	if s == nil {
		t.Fatalf("no service: %v", w.list)
	}
	var rest []need
	for _, n := range ns {
		if n.feature != FeatKernelLB {
			rest = append(rest, n)
		}
	}
	dir := t.TempDir()
	files := writeSite(&site{nodes: []*node{{name: "gw1"}}, services: []*service{s}})
	if err := WriteDir(dir, files, false); err != nil {
		t.Fatal(err)
	}
	_, view, err := loader.Load(context.Background(), dir, "gw1")
	if err != nil {
		var b strings.Builder
		for _, f := range files {
			b.WriteString("-- " + f.Name + " --\n" + string(f.Data))
		}
		t.Fatalf("load: %v\n%s", err, b.String())
	}
	return view.Services[s.name], rest
}

// TestKeepalivedCheckMappings: each keepalived checker maps to a check of
// the site that does what keepalived's does, and loads.
func TestKeepalivedCheckMappings(t *testing.T) {
	vs := func(check string) string {
		return "virtual_server 203.0.113.1 80 {\n lb_kind DR\n real_server 198.51.100.1 80 {\n" + check + " }\n real_server 198.51.100.2 80 {\n" + check + " }\n}\n"
	}
	for _, tt := range []struct {
		name, pre, check string
		want             spec.ServiceCheck
	}{
		{name: "HTTP_GET without status_code: 200-299", check: "  HTTP_GET {\n   url {\n    path /health\n   }\n  }\n",
			want: spec.ServiceCheck{Check: spec.Check{Kind: "http", Method: "GET", Path: "/health", ExpectStatus: 200}, ExpectStatuses: []spec.StatusRange{"200-299"}}},
		{name: "every url must pass", check: "  HTTP_GET {\n   url {\n    path /a\n    status_code 200\n   }\n   url {\n    path /b\n   }\n   virtualhost www.example\n  }\n",
			want: spec.ServiceCheck{Check: spec.Check{Kind: "http", ExpectStatus: 200}, Requests: []spec.CheckRequest{
				{Method: "GET", Path: "/a", Host: "www.example", ExpectStatus: 200},
				{Method: "GET", Path: "/b", Host: "www.example", ExpectStatus: 200, ExpectStatuses: []spec.StatusRange{"200-299"}},
			}}},
		{name: "SSL_GET: TLS without verification", check: "  SSL_GET {\n   url {\n    path /\n    status_code 200\n   }\n   virtualhost app.example\n   enable_sni\n  }\n",
			want: spec.ServiceCheck{Check: spec.Check{Kind: "http", Method: "GET", Path: "/", Host: "app.example", ExpectStatus: 200}, TLS: &spec.CheckTLS{SNI: "app.example", Verify: "none"}}},
		{name: "SSL_GET with the SSL block's client certificate", pre: "SSL {\n ca /etc/ka/ca.pem\n certificate /etc/ka/c.pem\n key /etc/ka/k.pem\n}\n",
			check: "  SSL_GET {\n   url {\n    path /\n    status_code 200\n   }\n  }\n",
			want:  spec.ServiceCheck{Check: spec.Check{Kind: "http", Method: "GET", Path: "/", ExpectStatus: 200}, TLS: &spec.CheckTLS{Verify: "none", CertFile: "/etc/ka/c.pem", KeyFile: "/etc/ka/k.pem"}}},
		{name: "connect_port and connect_ip", check: "  TCP_CHECK {\n   connect_port 8080\n   connect_ip 198.51.100.9\n  }\n",
			want: spec.ServiceCheck{Check: spec.Check{Kind: "tcp"}, Port: 8080, Address: "198.51.100.9"}},
		{name: "url regex", check: "  HTTP_GET {\n   url {\n    path /a\n    regex ^ok\n   }\n   url {\n    path /b\n    regex up$\n   }\n  }\n",
			want: spec.ServiceCheck{Check: spec.Check{Kind: "http", ExpectStatus: 200}, Requests: []spec.CheckRequest{
				{Method: "GET", Path: "/a", ExpectStatus: 200, ExpectStatuses: []spec.StatusRange{"200-299"}, ExpectRegex: "^ok"},
				{Method: "GET", Path: "/b", ExpectStatus: 200, ExpectStatuses: []spec.StatusRange{"200-299"}, ExpectRegex: "up$"},
			}}},
		{name: "SMTP_CHECK", check: "  SMTP_CHECK {\n   helo_name mail.example\n  }\n",
			want: spec.ServiceCheck{Check: spec.Check{Kind: "smtp"}, Domain: "mail.example"}},
		// username and password come from a proposed change's sample that no
		// keepalived release has: keepalived checks without credentials.
		{name: "url with basic authentication (unreleased)", check: "  HTTP_GET {\n   url {\n    path /\n    username admin\n    password secret\n    status_code 200\n   }\n  }\n",
			want: spec.ServiceCheck{Check: spec.Check{Kind: "http", Method: "GET", Path: "/", ExpectStatus: 200}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			svc, ns := loadVirtualServer(t, tt.pre+vs(tt.check))
			if len(ns) > 0 {
				t.Fatalf("refused for more than kernel-lb: %v", ns)
			}
			if svc.Check == nil {
				t.Fatal("no check")
			}
			if d := cmp.Diff(tt.want, checkOf(svc.Check), checkCmp); d != "" {
				t.Errorf("check (-want +got):\n%s", d)
			}
		})
	}
}

// TestSSLHelloCheck: option ssl-hello-chk becomes HAProxy's own sequence:
// its SSLv3 CLIENT HELLO (lengths consistent, 39 ciphers), then a reply
// that starts a handshake or an alert, at least 5 bytes long.
func TestSSLHelloCheck(t *testing.T) {
	res, view := loadText(t, "", "listen l\n  bind 203.0.113.1:6443\n  option ssl-hello-chk\n  server a 198.51.100.1:6443 check\n")
	if len(res.Refused) > 0 {
		t.Fatalf("refused: %v", res.Refused)
	}
	c := view.Services["l"].Check
	if c == nil || c.Kind != "tcp-check" || len(c.Steps) != 2 || c.Steps[0].SendHex == "" || c.Steps[1].ExpectRegex == "" {
		t.Fatalf("check %+v", c)
	}
	hello, err := hex.DecodeString(c.Steps[0].SendHex)
	if err != nil {
		t.Fatal(err)
	}
	// Record: handshake, SSLv3, its length; handshake: CLIENT HELLO, its length.
	if len(hello) < 9 || hello[0] != 0x16 || hello[1] != 3 || hello[2] != 0 ||
		int(hello[3])<<8|int(hello[4]) != len(hello)-5 || hello[5] != 1 ||
		int(hello[6])<<16|int(hello[7])<<8|int(hello[8]) != len(hello)-9 {
		t.Fatalf("not an SSLv3 CLIENT HELLO: % x", hello)
	}
	body := hello[9:]
	if !bytes.Equal(body[6:34], []byte("HAPROXYSSLCHK\nHAPROXYSSLCHK\n")) || body[34] != 0 {
		t.Errorf("random or session: % x", body[:35])
	}
	if n := int(body[35])<<8 | int(body[36]); n != 78 || len(body) != 37+78+2 {
		t.Errorf("%d bytes of ciphers, hello of %d bytes", n, len(hello))
	}
	re := regexp.MustCompile(c.Steps[1].ExpectRegex)
	for reply, want := range map[string]bool{
		"\x15\x03\x00\x00\x02\x02\x28": true,  // an alert: HAProxy passes it
		"\x16\x03\x00\x00\x4a\x02":     true,  // a SERVER HELLO
		"\x15\x03\x00":                 false, // fewer than 5 bytes (min-recv 5)
		"HTTP/1.1 400 Bad Request":     false,
	} {
		if got := re.MatchString(reply); got != want {
			t.Errorf("reply %q: match %v, want %v", reply, got, want)
		}
	}
}
