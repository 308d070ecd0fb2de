package importer

import (
	"reflect"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/cue/spec"
)

// TestHeaderRewrites: header rewrites are imported in HAProxy's order
// (the frontend's http-request, its req* filters, then the backend's, a
// backend's for its own requests; for responses the backend's first),
// and the site loads.
func TestHeaderRewrites(t *testing.T) {
	src := []spec.HTTPCond{{Subject: "source", Values: []string{"192.0.2.0/24"}}}
	const app = "backend app\n  mode http\n  server a 198.51.100.1:80 check\n"
	for _, tt := range []struct {
		name, hap     string
		req, rsp, aft []spec.HTTPHeaderAction
		except        []string
		ifNone        bool
	}{
		{"edge.cfg: XFF deleted before forwardfor, HSTS after every response",
			"frontend www\n  mode http\n  bind 203.0.113.1:80\n  option forwardfor except 127.0.0.0/8 if-none\n" +
				"  http-request del-header x-forwarded-for\n  http-after-response set-header Strict-Transport-Security \"max-age=31536000\"\n" +
				"  http-response add-header alt-svc 'h3=\":443\"; ma=90000'\n  default_backend app\n" + app,
			[]spec.HTTPHeaderAction{{Op: "del", Name: "x-forwarded-for"}},
			[]spec.HTTPHeaderAction{{Op: "add", Name: "alt-svc", Value: `h3=":443"; ma=90000`}},
			[]spec.HTTPHeaderAction{{Op: "set", Name: "Strict-Transport-Security", Value: "max-age=31536000"}},
			[]string{"127.0.0.0/8"}, true},
		{"http-request before req*, frontend before backend; responses backend first",
			"frontend www\n  mode http\n  bind 203.0.113.1:80\n  reqadd X-Old:\\ 100%\n  http-request set-header X-Real-IP %[src]\n" +
				"  http-response del-header Server\n  rspidel ^X-Powered-By:\n  default_backend app\n" +
				"backend app\n  mode http\n  server a 198.51.100.1:80 check\n  http-request replace-value X-A ^a(.*) b\\1 unless { src 192.0.2.0/24 }\n" +
				"  reqirep ^(X-Forwarded-For:)(.*) X-Forwarded-For2:\\2\n  http-response set-header X-Backend app if { src 192.0.2.0/24 }\n",
			[]spec.HTTPHeaderAction{
				{Op: "set", Name: "X-Real-IP", Value: "%[src]"},
				{Op: "add", Name: "X-Old", Value: "100%%"},
				{Op: "replace-value", Name: "X-A", Regex: "^a(.*)", Value: `b\1`, When: []spec.HTTPCond{{Subject: "source", Values: []string{"192.0.2.0/24"}, Not: true}}},
				{Op: "replace-line", Regex: "^(X-Forwarded-For:)(.*)", Value: `X-Forwarded-For2:\2`, IgnoreCase: true},
			},
			[]spec.HTTPHeaderAction{
				{Op: "set", Name: "X-Backend", Value: "app", When: src},
				{Op: "del", Name: "Server"},
				{Op: "del-line", Regex: "^X-Powered-By:", IgnoreCase: true},
			}, nil, nil, false},
		{"a backend reached by use_backend: its rewrites for its requests only",
			"frontend www\n  mode http\n  bind 203.0.113.1:80\n  use_backend img if { path_beg /img }\n  default_backend app\n" + app +
				"backend img\n  mode http\n  server i 198.51.100.9:80 check\n  reqrep ^([^\\ :]*)\\ /img/(.*) \\1\\ /\\2\n  rspadd X-Img:\\ 1\n",
			[]spec.HTTPHeaderAction{{Op: "replace-line", Regex: `^([^ :]*) /img/(.*)`, Value: `\1 /\2`, Pool: "img"}},
			[]spec.HTTPHeaderAction{{Op: "add", Name: "X-Img", Value: "1", Pool: "img"}}, nil, nil, false},
		{"a deny above the rewrite sees the header as sent, in HAProxy too",
			"listen www 203.0.113.1:80\n  mode http\n  server a 198.51.100.1:80 check\n" +
				"  http-request deny if { hdr(x-a) evil }\n  http-request set-header X-A good\n",
			[]spec.HTTPHeaderAction{{Op: "set", Name: "X-A", Value: "good"}}, nil, nil, nil, false},
		{"a set on alternatives is one action per alternative",
			"listen www 203.0.113.1:80\n  mode http\n  server a 198.51.100.1:80 check\n" +
				"  http-request set-header X-Internal 1 if { src 192.0.2.0/24 } || { path_beg /int }\n",
			[]spec.HTTPHeaderAction{
				{Op: "set", Name: "X-Internal", Value: "1", When: src},
				{Op: "set", Name: "X-Internal", Value: "1", When: []spec.HTTPCond{{Subject: "path", Match: "prefix", Values: []string{"/int"}}}},
			}, nil, nil, nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, view := loadText(t, "", tt.hap)
			www, ok := view.Services["www"]
			if !ok || www.HTTP == nil {
				t.Fatalf("no http service www:\n%s", goldenText(res))
			}
			h := www.HTTP
			for _, c := range []struct {
				what      string
				got, want []spec.HTTPHeaderAction
			}{{"request", h.RequestHeaders, tt.req}, {"response", h.ResponseHeaders, tt.rsp}, {"after", h.AfterResponseHeaders, tt.aft}} {
				if !reflect.DeepEqual(c.got, c.want) {
					t.Errorf("%s headers:\n%+v\nwant\n%+v\n%s", c.what, c.got, c.want, goldenText(res))
				}
			}
			if !reflect.DeepEqual(h.ForwardForExcept, tt.except) || h.ForwardForIfNone != tt.ifNone {
				t.Errorf("forward_for except %v if-none %v, want %v %v", h.ForwardForExcept, h.ForwardForIfNone, tt.except, tt.ifNone)
			}
			if len(res.Refused) > 0 {
				t.Errorf("refused: %v", res.Refused)
			}
		})
	}
}

// TestHeaderRewritesRefused: what the proxy cannot rewrite as HAProxy
// does is refused at its line.
func TestHeaderRewritesRefused(t *testing.T) {
	const listen = "listen www 203.0.113.1:80\n  mode http\n  server a 198.51.100.1:80 check\n"
	for _, tt := range []struct {
		name, hap string
		line      int
		why       string
	}{
		{"a log-format expression", listen + "  http-request set-header X-Host %[req.hdr(host)]\n", 4, "log-format expression %[req.hdr(host)]"},
		{"a log variable", listen + "  http-request add-header X-Client %ci\n", 4, "%ci"},
		{"a lone % at the end", listen + "  http-request add-header X-A 100%\n", 4, "starts no expression"},
		{"an expression in a replacement", listen + "  http-request replace-header X-A (.*) %[src]\n", 4, "replacement"},
		{"a response condition on the response", listen + "  http-response set-header X-A 1 if { path_beg /a }\n", 4, "a condition on path in a response rewrite"},
		{"add on alternatives", listen + "  http-request add-header X-A 1 if { src 192.0.2.1 } || { path /a }\n", 4, "alternatives"},
		{"a rule reads the rewritten header", listen + "  http-request set-header X-Tenant a\n  http-request deny if { hdr(x-tenant) b }\n", 4, "rewrites what the rule at line 5 reads (hdr(x-tenant))"},
		{"a backend's rule reads what its rewrite changed",
			"frontend www\n  mode http\n  bind 203.0.113.1:80\n  default_backend a\nbackend a\n  mode http\n  server a 198.51.100.1:80\n" +
				"  http-request set-header X-A 1\n  http-request deny if { hdr(x-a) 1 }\n", 8, "rule at line 9"},
		{"a use_backend reads the rewritten Host",
			"frontend www\n  mode http\n  bind 203.0.113.1:80\n  http-request set-header Host b.example\n  use_backend b if { hdr(host) b.example }\n  default_backend a\n" +
				"backend a\n  mode http\n  server a 198.51.100.1:80\nbackend b\n  mode http\n  server b 198.51.100.2:80\n", 4, "the host"},
		// HAProxy 1.x runs block and http-request rules before the req*
		// filters (its manual: "just after block rules and before reqdel
		// or reqrep or reqadd rules"); use_backend comes after them.
		{"a line rewrite and a later path rule", "frontend www\n  mode http\n  bind 203.0.113.1:80\n  reqrep ^([^\\ ]*)\\ /old/(.*) \\1\\ /new/\\2\n  use_backend b if { path_beg /new }\n  default_backend a\n" +
			"backend a\n  mode http\n  server a 198.51.100.1:80\nbackend b\n  mode http\n  server b 198.51.100.2:80\n", 4, "(path)"},
		{"a regex Go cannot compile", listen + "  rspidel ^(a\n", 4, "regex"},
		{"a Host deleted", listen + "  http-request del-header Host\n", 4, "Host"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := importText(t, "", tt.hap)
			var got []string
			found := false
			for _, r := range res.Refused {
				got = append(got, r.String())
				found = found || (r.Feature == FeatHeaderRewrite && r.Pos.Line == tt.line && strings.Contains(r.String(), tt.why))
			}
			if !found {
				t.Errorf("refused:\n%s\nwant header-rewrite at line %d naming %q", strings.Join(got, "\n"), tt.line, tt.why)
			}
			for _, f := range res.Files {
				if f.Name == "services.cue" {
					t.Errorf("a refused proxy was written:\n%s", f.Data)
				}
			}
		})
	}
}

// TestHeaderRewritesNamed: a rewrite of a field the proxy writes itself
// is named as not mapped; in mode tcp one is ignored, as HAProxy does.
func TestHeaderRewritesNamed(t *testing.T) {
	for _, tt := range []struct{ hap, want string }{
		{"listen www 203.0.113.1:80\n  mode http\n  server a 198.51.100.1:80 check\n  reqadd Connection:\\ close\n", `"reqadd Connection: close": not mapped (gitgw's proxy writes Connection`},
		{"listen www 203.0.113.1:80\n  mode tcp\n  server a 198.51.100.1:80 check\n  http-response set-header X-A 1\n", "ignored in mode tcp, as HAProxy ignores it"},
		{"defaults\n  mode http\n  http-request set-header X-A 1\nlisten www 203.0.113.1:80\n  server a 198.51.100.1:80 check\n", `hap:3: "http-request set-header X-A 1": not mapped`},
		{"defaults\n  mode http\n  rspadd X-B:\\ 2\nlisten www 203.0.113.1:80\n  server a 198.51.100.1:80 check\n", `hap:3: "rspadd X-B: 2": not mapped`},
	} {
		res := importText(t, "", tt.hap)
		if !strings.Contains(goldenText(res), tt.want) {
			t.Errorf("%q: no warning %q:\n%s", tt.hap, tt.want, goldenText(res))
		}
	}
}

// TestHeaderRewriteOrder1x: rules HAProxy 1.x runs before its req*
// rewrites (block, http-request) and rules on what a request-line rewrite
// cannot touch (the Host header) do not refuse a rewrite.
func TestHeaderRewriteOrder1x(t *testing.T) {
	const tail = "  default_backend a\nbackend a\n  mode http\n  server a 198.51.100.1:80\nbackend b\n  mode http\n  server b 198.51.100.2:80\n"
	for _, tc := range []struct{ name, lines string }{
		{"http-request before reqrep", "  reqrep ^([^\\ ]*)\\ /old/(.*) \\1\\ /new/\\2\n  http-request deny if { path_beg /new }\n"},
		{"block before reqirep", "  reqirep ^GET\\ /old(.*) GET\\ /new\\1\n  block if { path_beg /new }\n"},
		{"a request-line rewrite and a host rule", "  reqirep ^OPTIONS\\ /.*HTTP/1\\.[01]$ OPTIONS\\ \\*\\ HTTP/1.0\n  use_backend b if { hdr_beg(host) -i demo. }\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := importText(t, "", "frontend www\n  mode http\n  bind 203.0.113.1:80\n"+tc.lines+tail)
			if len(res.Refused) > 0 {
				t.Errorf("refused: %v", res.Refused)
			}
		})
	}
}
