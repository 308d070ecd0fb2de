package httpproxy

import (
	"cmp"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// fields is a header map as "Name=v1|v2;Name2=v" in name order, for
// comparisons.
func fields(h http.Header) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(h)) {
		out = append(out, k+"="+strings.Join(h[k], "|"))
	}
	return strings.Join(out, ";")
}

// TestRewriteRequest: each operation on a request, as HAProxy's
// http-request actions and 1.x req* filters do it.
func TestRewriteRequest(t *testing.T) {
	src := netip.MustParseAddr("198.51.100.7")
	dst := netip.MustParseAddr("203.0.113.1")
	for _, tt := range []struct {
		name    string
		acts    []HeaderAction
		in      http.Header
		host    string // the Host wanted after
		line    string // the request line wanted after
		want    string // fields(Header) wanted after
		tlsConn bool
	}{
		{name: "set replaces every field", acts: []HeaderAction{{Op: HdrSet, Name: "x-a", Value: "n"}},
			in: http.Header{"X-A": {"1", "2"}, "X-B": {"b"}}, want: "X-A=n;X-B=b"},
		{name: "add appends", acts: []HeaderAction{{Op: HdrAdd, Name: "X-A", Value: "n"}},
			in: http.Header{"X-A": {"1"}}, want: "X-A=1|n"},
		{name: "del removes all", acts: []HeaderAction{{Op: HdrDel, Name: "x-forwarded-for"}},
			in: http.Header{"X-Forwarded-For": {"6.6.6.6", "7.7.7.7"}, "X-B": {"b"}}, want: "X-B=b"},
		{name: "expressions", acts: []HeaderAction{{Op: HdrSet, Name: "X-Real-IP", Value: "%[src]"}, {Op: HdrAdd, Name: "X-D", Value: "%[dst] 100%% %[ssl_fc]"}},
			in: http.Header{}, want: "X-D=203.0.113.1 100% 1;X-Real-Ip=198.51.100.7", tlsConn: true},
		{name: "replace-header replaces the whole value", acts: []HeaderAction{{Op: HdrReplaceHeader, Name: "X-A", Regex: `b(.)`, Value: `<\1\0\9>`}},
			in: http.Header{"X-A": {"abcd", "zz"}}, want: "X-A=<cbc>|zz"},
		{name: "replace-value per comma value, spaces of those replaced dropped", acts: []HeaderAction{{Op: HdrReplaceValue, Name: "X-A", Regex: `^b(.*)`, Value: `B\1`}},
			in: http.Header{"X-A": {`a , bx ,"b,1",  by`}}, want: `X-A=a ,Bx,"b,1",By`},
		{name: "set Host", acts: []HeaderAction{{Op: HdrSet, Name: "host", Value: "new.example"}},
			in: http.Header{}, host: "new.example", want: ""},
		{name: "replace Host", acts: []HeaderAction{{Op: HdrReplaceHeader, Name: "Host", Regex: `^www\.(.*)`, Value: `\1`}},
			in: http.Header{}, host: "example.org", want: ""},
		{name: "conditions see earlier actions", acts: []HeaderAction{
			{Op: HdrSet, Name: "X-A", Value: "1"},
			{Op: HdrAdd, Name: "X-Seen", Value: "yes", When: []Cond{{Subject: SubjHeader, Header: "X-A", Values: []string{"1"}}}},
			{Op: HdrAdd, Name: "X-Not", Value: "no", When: []Cond{{Subject: SubjSource, Values: []string{"203.0.113.0/24"}}}},
		}, in: http.Header{}, want: "X-A=1;X-Seen=yes"},
		{name: "reqidel", acts: []HeaderAction{{Op: HdrDelLine, Regex: `^x-forwarded-for:`, IgnoreCase: true}},
			in: http.Header{"X-Forwarded-For": {"1.1.1.1"}, "X-B": {"b"}}, want: "X-B=b"},
		{name: "reqdel is case-sensitive", acts: []HeaderAction{{Op: HdrDelLine, Regex: `^x-forwarded-for:`}},
			in: http.Header{"X-Forwarded-For": {"1.1.1.1"}}, want: "X-Forwarded-For=1.1.1.1"},
		{name: "reqirep renames (tarpit.cfg)", acts: []HeaderAction{{Op: HdrReplaceLine, Regex: `^(X-Forwarded-For:)(.*)`, Value: `X-Forwarded-For2:\2`, IgnoreCase: true}},
			in: http.Header{"X-Forwarded-For": {"1.1.1.1"}}, want: "X-Forwarded-For2=1.1.1.1"},
		{name: "reqrep on the request line", acts: []HeaderAction{{Op: HdrReplaceLine, Regex: `^([^ :]*) /webcam/(.*)`, Value: `\1 /\2`}},
			in: http.Header{}, line: "GET /?action=stream HTTP/1.1", want: ""},
		{name: "reqrep to several lines", acts: []HeaderAction{{Op: HdrReplaceLine, Regex: `^X-A: (.*)`, Value: "X-A: \\1\nX-B: 2"}},
			in: http.Header{"X-A": {"1"}}, want: "X-A=1;X-B=2"},
		{name: "a line that is no longer a header goes", acts: []HeaderAction{{Op: HdrReplaceLine, Regex: `^X-A: .*`, Value: "nothing"}},
			in: http.Header{"X-A": {"1"}}, want: ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var hs []*header
			for _, a := range tt.acts {
				h, err := compileHeader(a, nil, false)
				if err != nil {
					t.Fatal(err)
				}
				hs = append(hs, h)
			}
			r := httptest.NewRequest("GET", "/webcam/?action=stream", nil)
			r.Host = "www.example.org"
			r.Header = tt.in
			if !rewriteRequest(hs, r, reqInfo{src: src, dst: dst, tls: tt.tlsConn}) {
				t.Fatal("request line broken")
			}
			if got := fields(r.Header); got != tt.want {
				t.Errorf("fields %q, want %q", got, tt.want)
			}
			if want := cmp.Or(tt.host, "www.example.org"); r.Host != want {
				t.Errorf("Host %q, want %q", r.Host, want)
			}
			if want := cmp.Or(tt.line, "GET /webcam/?action=stream HTTP/1.1"); r.Method+" "+r.RequestURI+" "+r.Proto != want {
				t.Errorf("request line %q, want %q", r.Method+" "+r.RequestURI+" "+r.Proto, want)
			}
			if tt.line != "" && (r.URL.Path != "/" || r.URL.RawQuery != "action=stream") {
				t.Errorf("URL %v", r.URL)
			}
		})
	}
}

// TestRewriteResponse: the response operations, and conditions on the
// request they answer (the dataplaneapi sample's Secure cookies over
// TLS).
func TestRewriteResponse(t *testing.T) {
	acts := []HeaderAction{
		{Op: HdrReplaceHeader, Name: "Set-Cookie", Regex: `(.*)`, Value: `\1; Secure`, When: []Cond{{Subject: SubjTLS}}},
		{Op: HdrReplaceHeader, Name: "Set-Cookie", Regex: `(.*); Secure(.*)`, Value: `\1\2`, When: []Cond{{Subject: SubjTLS, Not: true}}},
		{Op: HdrDelLine, Regex: `^Server: `, IgnoreCase: true},
		{Op: HdrAdd, Name: "Server", Value: "Apache (Unix)"},
		{Op: HdrReplaceLine, Regex: `^Allow: .*`, IgnoreCase: true, Value: "Allow: GET, HEAD"},
		{Op: HdrSet, Name: "Strict-Transport-Security", Value: "max-age=31536000"},
	}
	var hs []*header
	for _, a := range acts {
		h, err := compileHeader(a, nil, true)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	for _, tls := range []bool{true, false} {
		resp := &http.Response{Proto: "HTTP/1.1", StatusCode: 200, Status: "200 OK", Header: http.Header{
			"Set-Cookie": {"a=1", "b=2; Secure; Path=/"}, "Server": {"nginx/1.2"}, "Allow": {"PUT"}}}
		r := httptest.NewRequest("GET", "/", nil)
		if !tls {
			r.TLS = nil
		} else {
			r = httptest.NewRequest("GET", "https://x/", nil)
		}
		if !rewriteResponse(hs, resp, r, reqInfo{tls: tls}) {
			t.Fatal("status line broken")
		}
		want := "Allow=GET, HEAD;Server=Apache (Unix);Set-Cookie=a=1|b=2; Path=/;Strict-Transport-Security=max-age=31536000"
		if tls {
			want = "Allow=GET, HEAD;Server=Apache (Unix);Set-Cookie=a=1; Secure|b=2; Secure; Path=/; Secure;Strict-Transport-Security=max-age=31536000"
		}
		if got := fields(resp.Header); got != want {
			t.Errorf("tls %v: %q\nwant %q", tls, got, want)
		}
	}
	// rsprep on the status line.
	h, err := compileHeader(HeaderAction{Op: HdrReplaceLine, Regex: `^HTTP/1\.1 404 .*`, Value: "HTTP/1.1 410 Gone"}, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	resp := &http.Response{Proto: "HTTP/1.1", StatusCode: 404, Status: "404 Not Found", Header: http.Header{}}
	if !rewriteResponse([]*header{h}, resp, httptest.NewRequest("GET", "/", nil), reqInfo{}) || resp.StatusCode != 410 {
		t.Errorf("status %d, want 410", resp.StatusCode)
	}
}

// TestValidateHeaders: what a header action cannot be.
func TestValidateHeaders(t *testing.T) {
	h := HTTP{
		RequestHeaders: []HeaderAction{
			{Op: HdrSet, Name: "Connection", Value: "close"},
			{Op: HdrAdd, Name: "X-A", Value: "%[req.hdr(host)]"},
			{Op: HdrDel, Name: "Host"},
			{Op: HdrReplaceHeader, Name: "X-A", Regex: "(", Value: "x"},
			{Op: "rename", Name: "X-A"},
			{Op: HdrSet, Name: "X A", Value: "x"},
			{Op: HdrSet, Name: "X-Ok", Value: "%[src]"},
		},
		ResponseHeaders: []HeaderAction{{Op: HdrSet, Name: "Host", Value: "x"}, {Op: HdrDelLine, Name: "X-A", Regex: "x"}},
	}
	var all []string
	for _, e := range h.Validate(nil) {
		all = append(all, e.Error())
	}
	got := strings.Join(all, "\n")
	for _, want := range []string{"request_headers #1: set Connection", "request_headers #2: add X-A: value", "request_headers #3: del Host",
		"request_headers #4: replace-header: regex", `request_headers #5: unknown op "rename"`, `request_headers #6: set: header name "X A"`,
		"response_headers #1: a Host header", "response_headers #2: del-line: takes a regex, no name"} {
		if !strings.Contains(got, want) {
			t.Errorf("errors:\n%s\nwant one with %q", got, want)
		}
	}
	if len(all) != 8 {
		t.Errorf("%d errors, want 8:\n%s", len(all), got)
	}
}

// TestForwardForOptions: except and if-none.
func TestForwardForOptions(t *testing.T) {
	rt := &routes{HTTP: HTTP{ForwardFor: true, ForwardForExcept: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}
	if rt.forwardFor(netip.MustParseAddr("127.0.0.1"), http.Header{}) {
		t.Error("added for an excepted client")
	}
	if !rt.forwardFor(netip.MustParseAddr("198.51.100.1"), http.Header{"X-Forwarded-For": {"x"}}) {
		t.Error("not added for another client")
	}
	rt.ForwardForIfNone = true
	if rt.forwardFor(netip.MustParseAddr("198.51.100.1"), http.Header{"X-Forwarded-For": {"x"}}) {
		t.Error("if-none: added to a request that has one")
	}
	if !rt.forwardFor(netip.MustParseAddr("198.51.100.1"), http.Header{}) {
		t.Error("if-none: not added to a request without one")
	}
}
