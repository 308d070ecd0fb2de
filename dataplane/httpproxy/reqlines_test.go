package httpproxy

import (
	"context"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestLineMatch: the line subject sees the request line and each header
// line as HAProxy 1.x's req* filters do (the regexes of the
// haproxy-examples tarpit and tcp-splicing samples).
func TestLineMatch(t *testing.T) {
	cases := []struct {
		name, re string
		icase    bool
		target   string
		host     string
		want     bool
	}{
		{"request line, any method", `^[^: ]* /invalid_req1`, false, "/invalid_req1?x", "h", true},
		{"request line, query", `^[^: ]* /cgi-bin/.*\.pl\?`, false, "/cgi-bin/a.pl?x=1", "h", true},
		{"request line, -i", `^[^: ]* /.*\.(dll|exe|asp)`, true, "/a/B.EXE", "h", true},
		{"request line, case-sensitive", `^[^: ]* /.*\.(dll|exe|asp)`, false, "/a/B.EXE", "h", false},
		{"the protocol is on the line", `HTTP/1\.1$`, false, "/", "h", true},
		{"a header line is no request line", `^[^: ]* /`, false, "x", "h", false},
		{"Host line, -i", `^Host: img`, true, "/", "IMG.example", true},
		{"Host line, other host", `^Host: img`, true, "/", "www.example", false},
		{"a header line", `^X-Test: val`, false, "/", "h", true},
		{"header names are canonical", `^x-test:`, false, "/", "h", false},
		{"header names -i", `^x-test:`, true, "/", "h", true},
		{"a header value is no request line", `^[^ ]* /admin/stats`, false, "/", "h", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cc, err := compileCond(Cond{Subject: SubjLine, Match: MatchRegex, IgnoreCase: tc.icase, Values: []string{tc.re}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			target := tc.target
			if !strings.HasPrefix(target, "/") {
				target = "*"
			}
			r := httptest.NewRequest("OPTIONS", target, nil)
			r.Host = tc.host
			r.Header.Set("x-test", "value /admin/stats")
			ru := &rule{when: []*cond{cc}}
			if got := ru.match(r, netip.MustParseAddr("192.0.2.1")); got != tc.want {
				t.Errorf("%s on %s Host %s: %v, want %v", ru.Rule.String(), tc.target, tc.host, got, tc.want)
			}
		})
	}
}

// TestValidateTarpit: a tarpit is an action of its own, with a positive
// hold.
func TestValidateTarpit(t *testing.T) {
	line := []Cond{{Subject: SubjLine, Match: MatchRegex, Values: []string{`^GET /x`}}}
	h := HTTP{Rules: []Rule{
		{When: line, Tarpit: 300 * time.Millisecond},
		{When: line, Tarpit: -time.Second},
		{When: line, Tarpit: time.Second, Deny: 403},
	}}
	errs := h.Validate(nil)
	if len(errs) != 2 || !strings.Contains(errs[0].Error(), "rule #2: tarpit") || !strings.Contains(errs[1].Error(), "rule #3: want exactly one action") {
		t.Errorf("errors %v, want rule #2's hold and rule #3's two actions", errs)
	}
	if got := h.Rules[0].String(); got != "tarpit 300ms if { line -m regex ^GET /x }" {
		t.Errorf("String %q", got)
	}
}

// TestTarpitBounded: a tarpit answers 500 once its hold is over, and
// ends at once, writing nothing, when the client goes away first.
func TestTarpitBounded(t *testing.T) {
	r := httptest.NewRequest("GET", "/invalid_req1", nil)
	w := httptest.NewRecorder()
	tarpit(w, r, time.Millisecond)
	if w.Code != 500 || w.Header().Get("Connection") != "close" {
		t.Errorf("after the hold: %d Connection %q, want 500 and close", w.Code, w.Header().Get("Connection"))
	}

	ctx, cancel := context.WithCancel(context.Background())
	w = httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		tarpit(w, r.WithContext(ctx), time.Hour)
	}()
	cancel() // the client's connection closed
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the tarpit still holds a request whose client went away")
	}
	if w.Code != 200 || w.Body.Len() != 0 || len(w.Header()) != 0 {
		t.Errorf("wrote %d %v %q to a client that went away", w.Code, w.Header(), w.Body.String())
	}
}
