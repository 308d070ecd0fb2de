package importer

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/cue/spec"
)

// importText imports one keepalived.conf (node gw1) and one haproxy.cfg
// given as text.
func importText(t *testing.T, ka, hap string) *Result {
	t.Helper()
	var opts Options
	if ka != "" {
		opts.Keepalived = []Input{{Node: "gw1", Path: "ka", Data: []byte(ka)}}
	}
	if hap != "" {
		opts.HAProxy = []Input{{Path: "hap", Data: []byte(hap)}}
		opts.Nodes = []string{"gw1"}
	}
	res, err := Import(opts)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	return res
}

// loadText imports and loads gw1's view.
func loadText(t *testing.T, ka, hap string) (*Result, *spec.Node) {
	t.Helper()
	res := importText(t, ka, hap)
	dir := t.TempDir()
	if err := WriteDir(dir, res.Files, false); err != nil {
		t.Fatal(err)
	}
	_, view, err := loader.Load(context.Background(), dir, "gw1")
	if err != nil {
		t.Fatalf("load: %v\n%s", err, goldenText(res))
	}
	return res, view
}

// TestRefusals: a service whose check (or forwarding) the site cannot say
// is left out, with the feature and the directive's line, never imported
// with a weakened check.
// TestFrontendWithoutBind: a frontend with no bind line listens nowhere
// in HAProxy, so rules gitgw cannot carry route nothing there: it is
// named as not imported, not refused. The same frontend with a bind is
// refused for those rules.
func TestFrontendWithoutBind(t *testing.T) {
	const rest = "  tcp-request content reject if { src 198.51.100.0/24 }\n  use_backend b if { req_ssl_sni -i a.example.net }\nbackend b\n  server a 198.51.100.1:443 check\n"
	for _, tt := range []struct {
		name, bind string
		refused    bool
	}{
		{name: "no bind", refused: false},
		{name: "a bind", bind: "  bind 203.0.113.1:443\n", refused: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := importText(t, "", "frontend f\n"+tt.bind+rest)
			if got := len(res.Refused) > 0; got != tt.refused {
				t.Errorf("refused %v, want %v:\n%s", res.Refused, tt.refused, goldenText(res))
			}
			named := false
			for _, w := range res.Warnings {
				named = named || (w.Pos.Line == 1 && strings.Contains(w.Msg, "frontend f has no bind"))
			}
			if named == tt.refused {
				t.Errorf("no-bind warning %v, want %v:\n%s", named, !tt.refused, goldenText(res))
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	const listen = "listen db\n  bind 203.0.113.1:5432\n"
	for _, tt := range []struct {
		name, ka, hap string
		feature       Feature
		line          int
	}{
		{name: "crl-file on a TLS check", hap: listen + "  option httpchk GET /healthz\n  http-check expect status 200\n  server a 198.51.100.1:6443 check check-ssl ca-file /etc/ca.pem crl-file /etc/crl.pem\n",
			feature: FeatTLSCheck, line: 5},
		{name: "verify required without check-sni", hap: listen + "  option httpchk GET /healthz\n  http-check expect status 200\n  server a 198.51.100.1:6443 check check-ssl ca-file /etc/ca.pem\n",
			feature: FeatTLSCheck, line: 5},
		{name: "check-ssl on some servers only", hap: listen + "  option httpchk GET /healthz\n  http-check expect status 200\n  server a 198.51.100.1:6443 check check-ssl verify none\n  server b 198.51.100.2:6443 check\n",
			feature: FeatTLSCheck, line: 6},
		{name: "negated tcp-check expect", hap: listen + "  option tcp-check\n  tcp-check send PING\\r\\n\n  tcp-check expect ! string -ERR\n  server a 198.51.100.1:6379 check\n",
			feature: FeatCheckSequence, line: 5},
		{name: "rstatus Go cannot compile", hap: listen + "  option httpchk GET /\n  http-check expect rstatus ^(?!5)\n  server a 198.51.100.1:80 check\n",
			feature: FeatStatusRange, line: 4},
		{name: "http expect of bytes that are no text", hap: listen + "  option httpchk GET /\n  http-check expect string \\xfe\n  server a 198.51.100.1:80 check\n",
			feature: FeatCheckSequence, line: 4},
		{name: "httpchk method the site cannot send", hap: listen + "  option httpchk PUT /x\n  server a 198.51.100.1:80 check\n",
			feature: FeatCheckHeaders, line: 3},
		{name: "tcp-check that ends with a send", hap: listen + "  option tcp-check\n  tcp-check send QUIT\\r\\n\n  server a 198.51.100.1:25 check\n",
			feature: FeatCheckSequence, line: 1},
		{name: "server-template", hap: listen + "  server-template db 3 db.example.net:5432 check\n",
			feature: FeatServerName, line: 3},
		{name: "tcp-check connect to another address", hap: listen + "  option tcp-check\n  tcp-check connect addr 198.51.100.9 port 8008\n  server a 198.51.100.1:5432 check\n",
			feature: FeatCheckPort, line: 4},
		{name: "usesrc from a header", hap: listen + "  source 0.0.0.0 usesrc hdr_ip(x-forwarded-for,-1)\n  server a 198.51.100.1:5432 check\n",
			feature: FeatTransparent, line: 3},
		{name: "usesrc of a fixed address and port", hap: listen + "  source 0.0.0.0 usesrc 198.51.100.7:4000\n  server a 198.51.100.1:5432 check\n",
			feature: FeatTransparent, line: 3},
		{name: "source port range", hap: listen + "  server a 198.51.100.1:5432 check source 198.51.100.250:1025-65000\n",
			feature: FeatTransparent, line: 3},
		{name: "source bound to an interface", hap: listen + "  source 198.51.100.250 interface eth1\n  server a 198.51.100.1:5432 check\n",
			feature: FeatTransparent, line: 3},
		{name: "source that is no address", hap: listen + "  source ${SRC}\n  server a 198.51.100.1:5432 check\n",
			feature: FeatTransparent, line: 3},
		{name: "servers seen from a fixed foreign address and the gateway's", hap: listen + "  server a 198.51.100.1:5432 check source 198.51.100.250 usesrc 203.0.113.99\n  server b 198.51.100.2:5432 check\n",
			feature: FeatTransparent, line: 4},
		{name: "usesrc in HTTP mode", hap: "listen web\n  mode http\n  bind 203.0.113.1:80\n  source 198.51.100.250 usesrc clientip\n  monitor-uri /health\n  server a 198.51.100.1:80 check\n",
			feature: FeatTransparent, line: 4},
		{name: "usesrc on some servers only", hap: listen + "  server a 198.51.100.1:5432 check source 0.0.0.0 usesrc clientip\n  server b 198.51.100.2:5432 check\n",
			feature: FeatTransparent, line: 4},
		{name: "IPv6 server through a SOCKS4 proxy", hap: listen + "  server a [2001:db8::1]:5432 check socks4 198.51.100.9:1080\n",
			feature: FeatServerVia, line: 3},
		{name: "SOCKS4 proxy by name", hap: listen + "  server a 198.51.100.1:5432 check socks4 socks.example.net:1080\n",
			feature: FeatServerVia, line: 3},
		{name: "SOCKS4 proxy and usesrc", hap: listen + "  server a 198.51.100.1:5432 check socks4 198.51.100.9:1080 source 0.0.0.0 usesrc clientip\n",
			feature: FeatServerVia, line: 3},
		{name: "server answered by a redirect", hap: "listen web\n  mode http\n  bind 203.0.113.1:80\n  server a 198.51.100.1:80 check redir http://www.example.net\n",
			feature: FeatContentSwitching, line: 4},
		{name: "request rewrite that writes the Cookie header", hap: "listen web\n  mode http\n  bind 203.0.113.1:80\n  reqirep ^[^:\\ ]*\\ /img[/\\ ].* \\0\\nCookie:\\ backend=2\n  server a 198.51.100.1:80 check\n",
			feature: FeatContentSwitching, line: 4},
		{name: "http-request that deletes the Cookie header", hap: "listen web\n  mode http\n  bind 203.0.113.1:80\n  http-request del-header Cookie\n  server a 198.51.100.1:80 check\n",
			feature: FeatContentSwitching, line: 4},
		{name: "source rule", hap: listen + "  tcp-request content reject if { src 198.51.100.0/24 }\n  server a 198.51.100.1:5432 check\n",
			feature: FeatSourceRules, line: 3},
		{name: "digest with a regex", ka: "virtual_server 203.0.113.1 80 {\n lb_kind DR\n real_server 198.51.100.1 80 {\n  HTTP_GET {\n   url {\n    path /\n    regex ^ok\n    digest 640205b7b0fc66c1ea91c463fac6334d\n   }\n  }\n }\n}\n",
			feature: FeatCheckDigest, line: 8},
		{name: "misc_dynamic", ka: "virtual_server 203.0.113.1 80 {\n real_server 198.51.100.1 80 {\n  MISC_CHECK {\n   misc_path /bin/check\n   misc_dynamic\n  }\n }\n}\n",
			feature: FeatScriptCheck, line: 5},
		{name: "servers with another check CA", hap: listen + "  option httpchk GET /healthz\n  http-check expect status 200\n  server a 198.51.100.1:6443 check check-ssl ca-file /etc/a.pem\n  server b 198.51.100.2:6443 check check-ssl ca-file /etc/b.pem\n",
			feature: FeatPerServerCheck, line: 6},
		{name: "real servers checked differently", ka: "virtual_server 203.0.113.1 80 {\n real_server 198.51.100.1 80 {\n  HTTP_GET {\n   url {\n    path /a\n   }\n  }\n }\n real_server 198.51.100.2 80 {\n  TCP_CHECK {\n  }\n }\n}\n",
			feature: FeatPerServerCheck, line: 10},
		{name: "a host block in another checker than SMTP_CHECK", ka: "virtual_server 203.0.113.1 80 {\n real_server 198.51.100.1 80 {\n  TCP_CHECK {\n   host {\n    connect_ip 198.51.100.9\n   }\n  }\n }\n}\n",
			feature: FeatCheckPort, line: 4},
		{name: "an IPv6 virtual_server with IPv4 real servers (NAT64)", ka: "virtual_server 2001:db8::1 80 {\n lb_kind NAT\n real_server 198.51.100.1 80 {\n }\n}\n",
			feature: FeatKernelLB, line: 2},
		{name: "lb_kind TUN", ka: "virtual_server 203.0.113.1 80 {\n lb_kind TUN\n real_server 198.51.100.1 80 {\n }\n}\n",
			feature: FeatKernelLB, line: 2},
		{name: "a virtual_server_group range too wide", ka: "virtual_server_group G {\n 2001:db8::1-ffff 80\n}\nvirtual_server group G {\n real_server 198.51.100.1 80 {\n }\n}\n",
			feature: FeatVSGroup, line: 2},
		{name: "http-response deny", hap: listen + "  http-response deny if { res.hdr(content-type) audio/mp3 }\n  server a 198.51.100.1:80 check\n",
			feature: FeatSourceRules, line: 3},
		{name: "a frontend whose only bind terminates TLS", hap: "frontend f\n  bind 203.0.113.1:443 ssl crt /etc/x.pem\n  default_backend b\nbackend b\n  server a 198.51.100.1:80 check\n",
			feature: FeatTLSTermination, line: 2},
		{name: "a listen whose only bind terminates TLS", hap: "listen db\n  bind 203.0.113.1:443 ssl crt /etc/x.pem\n  server a 198.51.100.1:80 check\n",
			feature: FeatTLSTermination, line: 2},
		{name: "SCTP", ka: "virtual_server 203.0.113.1 80 {\n protocol SCTP\n real_server 198.51.100.1 80 {\n }\n}\n",
			feature: FeatProtocol, line: 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ka := tt.ka
			if ka != "" {
				ka = "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  203.0.113.1/24\n }\n}\n"
				// The virtual_server's lines, counted from its own start.
				tt.line += 7
				ka += tt.ka
			}
			res := importText(t, ka, tt.hap)
			var got []string
			found := false
			for _, r := range res.Refused {
				got = append(got, r.String())
				if r.Feature == tt.feature && r.Pos.Line == tt.line {
					found = true
				}
			}
			if !found {
				t.Errorf("refused:\n%s\nwant %s at line %d", strings.Join(got, "\n"), tt.feature, tt.line)
			}
			for _, f := range res.Files {
				if f.Name == "services.cue" {
					t.Errorf("a refused service was written:\n%s", f.Data)
				}
			}
		})
	}
}

// TestSourceWeights: a server without a weight has HAProxy's and
// keepalived's 1 beside one that has a weight, not the schema's 100.
func TestSourceWeights(t *testing.T) {
	_, view := loadText(t, "", "listen l\n  bind 203.0.113.1:80\n  server a 198.51.100.1:80 check weight 5\n  server b 198.51.100.2:80 check\n")
	if a, b := view.Services["l"].Servers["a"].Weight, view.Services["l"].Servers["b"].Weight; a != 5 || b != 1 {
		t.Errorf("weights a=%d b=%d, want 5 and 1", a, b)
	}
	var w warnings
	dirs := parseKeepalived("ka", "virtual_server 203.0.113.1 80 {\n real_server 198.51.100.1 80 {\n  weight 5\n }\n real_server 198.51.100.2 80 {\n }\n}\n", &w)
	s, _ := virtualServer(dirs[0], nil, &w)
	if s.servers[0].weight != some(5) || s.servers[1].weight != some(1) {
		t.Errorf("real_server weights %v %v, want 5 and 1", s.servers[0].weight, s.servers[1].weight)
	}
	// keepalived's scheduler without lb_algo is wlc; the kernel has no
	// least-connection scheduler: roundrobin by weight, warned.
	if s.balance != some("roundrobin") {
		t.Errorf("balance %v, want roundrobin (keepalived's wlc in the kernel)", s.balance)
	}
}

// TestUnicastWithPrefix: keepalived cuts "/prefix" and "-range" off
// unicast_src_ip and unicast_peer; so does the import, which keeps the
// node's address and links the peers.
func TestUnicastWithPrefix(t *testing.T) {
	conf := func(src, peer string, prio int) string {
		return "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n priority " + string(rune('0'+prio)) + "0\n unicast_src_ip " + src +
			"\n unicast_peer {\n  " + peer + "\n }\n virtual_ipaddress {\n  203.0.113.100\n }\n}\n"
	}
	res, err := Import(Options{Keepalived: []Input{
		{Node: "gw1", Path: "gw1", Data: []byte(conf("203.0.113.11/24", "203.0.113.12/24", 9))},
		{Node: "gw2", Path: "gw2", Data: []byte(conf("203.0.113.12-13", "203.0.113.11", 5))},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range res.Warnings {
		if strings.Contains(w.Msg, "unicast") || strings.Contains(w.Msg, "not an IP address") {
			t.Errorf("warning: %s", w)
		}
	}
	dir := t.TempDir()
	if err := WriteDir(dir, res.Files, false); err != nil {
		t.Fatal(err)
	}
	for node, want := range map[string]string{"gw1": "203.0.113.11", "gw2": "203.0.113.12"} {
		_, view, err := loader.Load(context.Background(), dir, node)
		if err != nil {
			t.Fatal(err)
		}
		got := view.Node.Interfaces["eth0"].Addresses
		if len(got) != 1 || got[0].Addr() != netip.MustParseAddr(want) || (node == "gw1" && got[0].Bits() != 24) {
			t.Errorf("%s eth0 %v, want %s\n%s", node, got, want, goldenText(res))
		}
		if !view.VRRP["V"].Unicast {
			t.Errorf("%s: not unicast", node)
		}
	}
}

// TestDuplicateVIP: a VIP listed twice, in one instance or in two, is
// kept once, with a warning at the second.
func TestDuplicateVIP(t *testing.T) {
	ka := "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  203.0.113.100/24\n  203.0.113.100/24\n }\n}\n" +
		"vrrp_instance B {\n interface eth0\n virtual_router_id 2\n virtual_ipaddress {\n  203.0.113.101/24\n  203.0.113.100/24 dev eth0\n }\n}\n"
	res, view := loadText(t, ka, "")
	if d := cmp.Diff([]string{"203.0.113.100/24"}, vipStrings(view.VRRP["A"].VIPs)); d != "" {
		t.Errorf("A's VIPs (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"203.0.113.101/24"}, vipStrings(view.VRRP["B"].VIPs)); d != "" {
		t.Errorf("B's VIPs (-want +got):\n%s", d)
	}
	var lines []int
	for _, w := range res.Warnings {
		if strings.Contains(w.Msg, "listed already") {
			lines = append(lines, w.Pos.Line)
		}
	}
	if !cmp.Equal(lines, []int{6, 14}) {
		t.Errorf("duplicate warnings on lines %v, want 6 and 14:\n%s", lines, goldenText(res))
	}
}

func vipStrings(vs []spec.VIP) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Address.String())
	}
	return out
}

// TestTruncated: a file cut short is an error naming where, not a warning.
func TestTruncated(t *testing.T) {
	full := "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  203.0.113.1/24\n }\n}\n"
	_, err := Import(Options{Keepalived: []Input{{Path: "ka", Data: []byte(full[:len(full)-3])}}})
	var serr *SyntaxError
	if !errors.As(err, &serr) || !strings.Contains(err.Error(), "ka:1: block opened here is never closed") {
		t.Errorf("err = %v, want a syntax error at ka:1", err)
	}
	_, err = Import(Options{HAProxy: []Input{{Path: "hap", Data: []byte("listen l\n  bind 203.0.113.1:80\n  server a \"198.51.100.1:80 check\n")}}})
	if !errors.As(err, &serr) || !strings.Contains(err.Error(), "hap:3: unterminated quote") {
		t.Errorf("err = %v, want a syntax error at hap:3", err)
	}
}

// TestUncheckedRealServer: keepalived keeps a real_server without a
// checker up whatever happens. Beside servers with an HTTP check, it is
// unchecked: true, and the others keep their HTTP check.
func TestUncheckedRealServer(t *testing.T) {
	ka := "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  203.0.113.1/24\n }\n}\n" +
		"virtual_server 203.0.113.1 80 {\n lb_kind DR\n real_server 198.51.100.1 80 {\n  HTTP_GET {\n   url {\n    path /health\n   }\n  }\n }\n real_server 198.51.100.2 80 {\n }\n}\n"
	res, view := loadText(t, ka, "")
	s, ok := view.Services["vs-203.0.113.1-80"]
	if !ok || s.Check == nil {
		t.Fatalf("service not imported:\n%s", goldenText(res))
	}
	if s.Check.Kind != "http" || s.Check.Path != "/health" || s.Servers["198.51.100.1-80"].Unchecked || !s.Servers["198.51.100.2-80"].Unchecked {
		t.Errorf("check %+v, servers %+v: want the HTTP check, and 198.51.100.2 unchecked", s.Check, s.Servers)
	}
	named := false
	for _, w := range res.Warnings {
		named = named || (w.Pos.Line == 17 && strings.Contains(w.Msg, "no checker"))
	}
	if !named {
		t.Errorf("the unchecked real_server is not named at its line:\n%s", goldenText(res))
	}
}
