package l4proxy

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/dataplane/httpproxy"
)

// TestDiffHTTPHeaders: a change of a header rewrite alone, or of
// forwardfor's options, reads in the plan (else the proxy would keep
// the old rewrites), and an applied configuration shares none of its
// rewrites with the caller's.
func TestDiffHTTPHeaders(t *testing.T) {
	base := func() *httpproxy.HTTP {
		return &httpproxy.HTTP{ForwardFor: true, RequestHeaders: []httpproxy.HeaderAction{
			{Op: httpproxy.HdrSet, Name: "X-A", Value: "1", When: []httpproxy.Cond{{Subject: httpproxy.SubjSource, Values: []string{"192.0.2.0/24"}}}}}}
	}
	for _, tt := range []struct {
		name string
		edit func(h *httpproxy.HTTP)
		want string
	}{
		{"a value", func(h *httpproxy.HTTP) { h.RequestHeaders[0].Value = "2" }, `request set "X-A" "2" if { source 192.0.2.0/24 }`},
		{"a condition", func(h *httpproxy.HTTP) { h.RequestHeaders[0].When[0].Values[0] = "192.0.2.0/25" }, "192.0.2.0/25"},
		{"a response rewrite", func(h *httpproxy.HTTP) {
			h.ResponseHeaders = []httpproxy.HeaderAction{{Op: httpproxy.HdrDelLine, Regex: "^Server:", IgnoreCase: true, Pool: "img"}}
		}, `response del-line "^Server:" -i for pool img`},
		{"after-response", func(h *httpproxy.HTTP) {
			h.AfterResponseHeaders = []httpproxy.HeaderAction{{Op: httpproxy.HdrDel, Name: "Server"}}
		}, `after-response del "Server"`},
		{"except", func(h *httpproxy.HTTP) { h.ForwardForExcept = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} }, "forwardfor except 127.0.0.0/8"},
		{"if-none", func(h *httpproxy.HTTP) { h.ForwardForIfNone = true }, "forwardfor if-none"},
	} {
		w := base()
		tt.edit(w)
		got := diffService(ViewService(Service{Name: "x", HTTP: base()}), ViewService(Service{Name: "x", HTTP: w}))
		if len(got) != 1 || !strings.Contains(got[0], tt.want) {
			t.Errorf("%s: plan %q, want one change naming %q", tt.name, got, tt.want)
		}
	}
	h := base()
	c := cloneHTTP(h)
	c.RequestHeaders[0].When[0].Values[0] = "x"
	c.RequestHeaders[0].Value = "x"
	if h.RequestHeaders[0].When[0].Values[0] != "192.0.2.0/24" || h.RequestHeaders[0].Value != "1" {
		t.Errorf("the clone shares its rewrites: %+v", h.RequestHeaders)
	}
}
