package importer

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
)

// TestHTTPMode: a mode http frontend that switches content, answers
// requests and terminates TLS is imported in HTTP mode: rules in HAProxy's
// order (http-request rules, redirect rules, use_backend; || split into
// one rule per alternative), its other backend a pool without binds, and
// the site loads.
func TestHTTPMode(t *testing.T) {
	hap := `frontend www
  mode http
  bind 203.0.113.1:80
  bind 203.0.113.1:443 ssl crt /etc/ssl/site.pem crt /etc/ssl/other.pem
  option forwardfor
  monitor-uri /up
  acl is_img hdr_beg(host) -i img
  acl static path_beg /img /css
  acl static path_end .png
  use_backend img if is_img || { path_beg /img /css }
  redirect scheme https code 301 if !{ ssl_fc }
  http-request deny if { path_beg /admin } !{ src 198.51.100.0/24 }
  default_backend app
backend app
  mode http
  server a 198.51.100.1:80 check
backend img
  mode http
  server i 198.51.100.9:80 check
`
	res, view := loadText(t, "", hap)
	www, ok := view.Services["www"]
	if !ok || www.HTTP == nil {
		t.Fatalf("no http service www:\n%s", goldenText(res))
	}
	want := &spec.ServiceHTTP{
		TLS:        &spec.HTTPTLS{CertFiles: []string{"/etc/ssl/site.pem", "/etc/ssl/other.pem"}, Binds: []string{"203.0.113.1:443"}},
		MonitorURI: "/up",
		ForwardFor: true,
		Rules: []spec.HTTPRule{
			{Deny: 403, When: []spec.HTTPCond{{Subject: "path", Match: "prefix", Values: []string{"/admin"}}, {Subject: "source", Values: []string{"198.51.100.0/24"}, Not: true}}},
			{Redirect: &spec.HTTPRedirect{Scheme: "https", Code: 301}, When: []spec.HTTPCond{{Subject: "tls", Not: true}}},
			{Use: "img", When: []spec.HTTPCond{{Subject: "host", Match: "prefix", Values: []string{"img"}, IgnoreCase: true}}},
			{Use: "img", When: []spec.HTTPCond{{Subject: "path", Match: "prefix", Values: []string{"/img", "/css"}}}},
		},
	}
	if !reflect.DeepEqual(www.HTTP, want) {
		t.Errorf("http:\n%+v\nwant\n%+v\n%s", *www.HTTP, *want, goldenText(res))
	}
	if img, ok := view.Services["img"]; !ok || len(img.Binds) != 0 || img.Servers["i"].Address != "198.51.100.9:80" {
		t.Errorf("pool img: %+v (present %v), want no binds and server i", img, ok)
	}
	if len(res.Refused) > 0 {
		t.Errorf("refused: %v", res.Refused)
	}
	for _, w := range res.Warnings {
		if strings.Contains(w.Msg, "HTTP processing is lost") || strings.Contains(w.Msg, "forwardfor") || strings.Contains(w.Msg, "is no frontend's default_backend") {
			t.Errorf("warning about what is mapped: %s", w)
		}
	}
}

// TestHTTPConditions: HAProxy's condition syntax as rules: || splits,
// unless negates, an ACL of several lines is one condition when they test
// the same thing and alternatives when they do not (hapfetch.go), and
// what the rules cannot say is refused.
func TestHTTPConditions(t *testing.T) {
	p := &hapProxy{kind: "frontend", acls: map[string]*hapACL{}}
	var w warnings
	for _, l := range []string{
		"acl api path_beg /api", "acl api path_beg /v2",
		"acl mixed path_beg /a", "acl mixed hdr_beg(host) -i a",
		"acl local src 10.0.0.0/8 192.0.2.1",
	} {
		p.acl(hapLine{Words: strings.Fields(l)}, &w)
	}
	for _, tc := range []struct {
		cond, want, why string
	}{
		{"if api", "[[{path prefix  [/api /v2] false false}]]", ""},
		{"unless local", "[[{source   [10.0.0.0/8 192.0.2.1] false true}]]", ""},
		{"if api !local || { method POST }", "[[{path prefix  [/api /v2] false false} {source   [10.0.0.0/8 192.0.2.1] false true}] [{method exact  [POST] false false}]]", ""},
		{"if { hdr(X-Env) -m found }", "[[{header present X-Env [] false false}]]", ""},
		{"if { req.hdr(host) -m reg -i ^www\\. }", "[[{host regex  [^www\\.] true false}]]", ""},
		{"unless api local", "[[{path prefix  [/api /v2] false true}] [{source   [10.0.0.0/8 192.0.2.1] false true}]]", ""},
		{"if mixed", "[[{path prefix  [/a] false false}] [{host prefix  [a] true false}]]", ""},
		{"if mixed !api", "[[{path prefix  [/a] false false} {path prefix  [/api /v2] false true}] [{host prefix  [a] true false} {path prefix  [/api /v2] false true}]]", ""},
		{"if !mixed", "[[{path prefix  [/a] false true} {host prefix  [a] true true}]]", ""},
		{"if { dst_port 80 }", "", "the fetch dst_port"},
		{"if { path_beg -f /etc/paths }", "", "the flag -f"},
		{"if { src -i 10.0.0.1 }", "", "src -i"},
		{"if nowhere", "", "the ACL nowhere (not defined in this section, or predefined)"},
	} {
		rules, why := p.httpCondRules(strings.Fields(tc.cond))
		var got [][]httpCond
		for _, r := range rules {
			got = append(got, r.when)
		}
		g := ""
		if why == "" {
			g = fmt.Sprint(condText(got))
		}
		if why != tc.why || g != tc.want {
			t.Errorf("%s: %s (refused: %q), want %s (refused: %q)", tc.cond, g, why, tc.want, tc.why)
		}
	}
}

// condText prints conditions as {subject match header values ignore_case not}.
func condText(alts [][]httpCond) [][]string {
	var out [][]string
	for _, a := range alts {
		var cs []string
		for _, c := range a {
			cs = append(cs, fmt.Sprintf("{%s %s %s %v %v %v}", c.subject, c.match, c.header, c.values, c.ignoreCase, c.not))
		}
		out = append(out, cs)
	}
	return out
}

// TestSNIImport: a mode tcp frontend routing by the ClientHello's server
// name (req_ssl_sni after tcp-request inspect-delay) is imported as SNI
// routing, || as one rule per alternative, its backends as pools.
func TestSNIImport(t *testing.T) {
	const be = "  mode tcp\n  timeout connect 5s\n  timeout server 30s\n"
	hap := "frontend tls_in\n  mode tcp\n  bind 203.0.113.1:443\n  timeout client 30s\n  tcp-request inspect-delay 5s\n" +
		"  use_backend api if { req_ssl_sni -i api.example }\n" +
		"  use_backend web if { req_ssl_sni -i -m end .example.org } || { req.ssl_sni -i www.example }\n  default_backend fallback\n" +
		"backend api\n" + be + "  server a1 198.51.100.1:443 check\n" +
		"backend web\n" + be + "  server w1 198.51.100.2:443 check\n" +
		"backend fallback\n" + be + "  server f1 198.51.100.3:443 check\n"
	res, view := loadText(t, "", hap)
	want := &spec.ServiceSNI{InspectDelay: spec.Duration(5 * time.Second), Rules: []spec.SNIRule{
		{Names: []string{"api.example"}, Match: "exact", Use: "api"},
		{Names: []string{".example.org"}, Match: "suffix", Use: "web"},
		{Names: []string{"www.example"}, Match: "exact", Use: "web"},
	}}
	if got := view.Services["tls_in"].SNI; !reflect.DeepEqual(got, want) {
		t.Errorf("sni %+v, want %+v\n%s", got, want, goldenText(res))
	}
	if len(view.Services["api"].Binds) != 0 || len(view.Services["web"].Binds) != 0 || len(res.Refused) != 0 {
		t.Errorf("pools api, web: %+v %+v; refused %v", view.Services["api"], view.Services["web"], res.Refused)
	}
	// Without inspect-delay HAProxy routes before the hello arrives: refused.
	res = importText(t, "", strings.Replace(hap, "  tcp-request inspect-delay 5s\n", "", 1))
	if len(res.Refused) == 0 {
		t.Errorf("SNI routing without inspect-delay imported:\n%s", goldenText(res))
	}
}
