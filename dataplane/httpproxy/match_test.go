package httpproxy

import (
	"crypto/tls"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// TestCondMatch: each subject and match as HAProxy's fetches behave
// (hdr(host) with its port, path without the query, -i, negation).
func TestCondMatch(t *testing.T) {
	cases := []struct {
		name   string
		c      Cond
		target string
		host   string
		tls    bool
		want   bool
	}{
		{"host exact with port", Cond{Subject: SubjHost, Values: []string{"www.example"}}, "/", "www.example:8080", false, false},
		{"host prefix -i", Cond{Subject: SubjHost, Match: MatchPrefix, IgnoreCase: true, Values: []string{"img"}}, "/", "IMG.example", false, true},
		{"host prefix case-sensitive", Cond{Subject: SubjHost, Match: MatchPrefix, Values: []string{"img"}}, "/", "IMG.example", false, false},
		{"host suffix", Cond{Subject: SubjHost, Match: MatchSuffix, Values: []string{".example"}}, "/", "a.example", false, true},
		{"path prefix, one of two", Cond{Subject: SubjPath, Match: MatchPrefix, Values: []string{"/img", "/css"}}, "/css/x?y=1", "h", false, true},
		{"path exact ignores the query", Cond{Subject: SubjPath, Values: []string{"/a"}}, "/a?b", "h", false, true},
		{"url keeps the query", Cond{Subject: SubjURL, Values: []string{"/a"}}, "/a?b", "h", false, false},
		{"path suffix", Cond{Subject: SubjPath, Match: MatchSuffix, Values: []string{".php"}}, "/x/index.php", "h", false, true},
		{"path regex", Cond{Subject: SubjPath, Match: MatchRegex, Values: []string{`^/api/v[0-9]+/`}}, "/api/v2/x", "h", false, true},
		{"method", Cond{Subject: SubjMethod, Values: []string{"POST", "PUT"}}, "/", "h", false, false},
		{"source in CIDR", Cond{Subject: SubjSource, Values: []string{"192.0.2.0/24"}}, "/", "h", false, true},
		{"source not in CIDR", Cond{Subject: SubjSource, Values: []string{"198.51.100.1"}}, "/", "h", false, false},
		{"header present", Cond{Subject: SubjHeader, Header: "X-Test", Match: MatchPresent}, "/", "h", false, true},
		{"header contains -i", Cond{Subject: SubjHeader, Header: "X-Test", Match: MatchContains, IgnoreCase: true, Values: []string{"ALU"}}, "/", "h", false, true},
		{"tls", Cond{Subject: SubjTLS}, "/", "h", true, true},
		{"not tls over tls", Cond{Subject: SubjTLS, Not: true}, "/", "h", true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cc, err := compileCond(tc.c, nil)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", tc.target, nil)
			r.Host = tc.host
			r.Header.Set("X-Test", "value")
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			ru := &rule{when: []*cond{cc}}
			if got := ru.match(r, netip.MustParseAddr("192.0.2.1")); got != tc.want {
				t.Errorf("%s on %s Host %s: %v, want %v", ru.Rule.String(), tc.target, tc.host, got, tc.want)
			}
		})
	}
}

// TestValidate: every bad rule is reported, at its number.
func TestValidate(t *testing.T) {
	h := HTTP{TLS: &TLS{}, MonitorURI: "up", Rules: []Rule{
		{Use: "nowhere"},
		{Use: "static", Deny: 403},
		{Redirect: &Redirect{Scheme: "https", Location: "/x", Code: 200}},
		{Deny: 403, When: []Cond{{Subject: "cookie", Values: []string{"a"}}}},
		{Deny: 403, When: []Cond{{Subject: SubjPath, Match: MatchRegex, Values: []string{"("}}}},
		{Deny: 403, When: []Cond{{Subject: SubjSource, Values: []string{"not-a-cidr"}}}},
	}}
	errs := h.Validate(func(n string) bool { return n == "static" })
	var all []string
	for _, e := range errs {
		all = append(all, e.Error())
	}
	got := strings.Join(all, "\n")
	for _, want := range []string{"tls without cert_files", `monitor_uri "up"`, `rule #1: use "nowhere"`, "rule #2: want exactly one action",
		"rule #3: redirect: want exactly one of", "rule #3: redirect code 200", `rule #4: condition #1: unknown subject "cookie"`,
		"rule #5: condition #1: regex", `rule #6: condition #1: source "not-a-cidr"`} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
}
