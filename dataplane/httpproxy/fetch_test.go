package httpproxy

import (
	"bufio"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// TestFetchCond: the fetches of fetch.go as HAProxy 2.6's src_port,
// hdr_cnt, hdr_val, req.ver and -m dir behave, on requests parsed by Go's
// own server code (http.ReadRequest), so that what it moves out of the
// header map (Host, Transfer-Encoding) is seen as HAProxy sees it.
func TestFetchCond(t *testing.T) {
	const get = "GET /a/b/c.php?x=/d/ HTTP/1.1\r\nHost: www.example\r\n"
	cases := []struct {
		name string
		c    Cond
		req  string // without the final CRLF
		port uint16 // the client's
		want bool
	}{
		{"src_port in 0:1023", Cond{Subject: SubjSourcePort, Values: []string{"0:1023"}}, get, 1023, true},
		{"src_port above 0:1023", Cond{Subject: SubjSourcePort, Values: []string{"0:1023"}}, get, 1024, false},
		{"src_port 1024:", Cond{Subject: SubjSourcePort, Values: []string{"1024:"}}, get, 40000, true},
		{"src_port exact", Cond{Subject: SubjSourcePort, Values: []string{"80", "443"}}, get, 443, true},
		{"hdr_cnt(host) gt 1: one host", Cond{Subject: SubjHeaderCount, Header: "Host", Values: []string{"2:"}}, get, 5000, false},
		{"hdr_cnt(host) gt 1: a host list", Cond{Subject: SubjHeaderCount, Header: "host", Values: []string{"2:"}},
			"GET / HTTP/1.1\r\nHost: a, b\r\n", 5000, true},
		{"hdr_cnt counts comma values over lines", Cond{Subject: SubjHeaderCount, Header: "X-A", Values: []string{"3"}},
			get + "X-A: 1, 2\r\nX-A: 3\r\n", 5000, true},
		{"hdr_cnt: a quoted comma does not split", Cond{Subject: SubjHeaderCount, Header: "X-A", Values: []string{"1"}},
			get + "X-A: \"1, 2\"\r\n", 5000, true},
		{"hdr_cnt: an empty value counts", Cond{Subject: SubjHeaderCount, Header: "X-A", Values: []string{"2"}},
			get + "X-A: a,\r\n", 5000, true},
		{"hdr_cnt gt 0 of an absent header", Cond{Subject: SubjHeaderCount, Header: "Proxy-Authorization", Values: []string{"1:"}}, get, 5000, false},
		{"hdr_cnt gt 0 of a present header", Cond{Subject: SubjHeaderCount, Header: "Proxy-Authorization", Values: []string{"1:"}},
			get + "Proxy-Authorization: Basic eA==\r\n", 5000, true},
		{"hdr_cnt le 0 of an absent header", Cond{Subject: SubjHeaderCount, Header: "X-None", Values: []string{":0"}}, get, 5000, true},
		{"hdr_cnt(transfer-encoding), which Go moves out", Cond{Subject: SubjHeaderCount, Header: "Transfer-Encoding", Values: []string{"1"}},
			"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n", 5000, true},
		{"hdr_val lt 0: none", Cond{Subject: SubjHeaderValue, Header: "X-N", Values: []string{":-1"}}, get + "X-N: 5\r\n", 5000, false},
		{"hdr_val lt 0: one of the values", Cond{Subject: SubjHeaderValue, Header: "X-N", Values: []string{":-1"}}, get + "X-N: 5, -3\r\n", 5000, true},
		{"hdr_val reads leading digits", Cond{Subject: SubjHeaderValue, Header: "X-N", Values: []string{"12"}}, get + "X-N: 12abc\r\n", 5000, true},
		{"hdr_val of a word is 0", Cond{Subject: SubjHeaderValue, Header: "X-N", Values: []string{"0"}}, get + "X-N: abc\r\n", 5000, true},
		{"hdr_val of an absent header", Cond{Subject: SubjHeaderValue, Header: "X-N", Values: []string{":0"}}, get, 5000, false},
		{"hdr_val(content-length) gt 0", Cond{Subject: SubjHeaderValue, Header: "Content-Length", Values: []string{"1:"}},
			"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n", 5000, true},
		{"version 1.0", Cond{Subject: SubjVersion, Values: []string{"1.0"}}, "GET / HTTP/1.0\r\n", 5000, true},
		{"version 1.1 is not 1.0", Cond{Subject: SubjVersion, Values: []string{"1.0"}}, get, 5000, false},
		{"hdr_sub(transfer-encoding) -i chunked", Cond{Subject: SubjHeader, Header: "transfer-encoding", Match: MatchContains, IgnoreCase: true, Values: []string{"chunked"}},
			"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n", 5000, true},
		{"path_dir word", Cond{Subject: SubjPath, Match: MatchDir, Values: []string{"b"}}, get, 5000, true},
		{"path_dir last word", Cond{Subject: SubjPath, Match: MatchDir, Values: []string{"c.php"}}, get, 5000, true},
		{"path_dir several words, slashes stripped", Cond{Subject: SubjPath, Match: MatchDir, Values: []string{"/a/b/"}}, get, 5000, true},
		{"path_dir part of a word", Cond{Subject: SubjPath, Match: MatchDir, Values: []string{"php"}}, get, 5000, false},
		{"path_dir does not see the query", Cond{Subject: SubjPath, Match: MatchDir, Values: []string{"d"}}, get, 5000, false},
		{"path_dir -i", Cond{Subject: SubjPath, Match: MatchDir, IgnoreCase: true, Values: []string{"MSOffice"}},
			"GET /x/msoffice/y HTTP/1.1\r\nHost: h\r\n", 5000, true},
		{"path_dir case-sensitive", Cond{Subject: SubjPath, Match: MatchDir, Values: []string{"MSOffice"}},
			"GET /x/msoffice/y HTTP/1.1\r\nHost: h\r\n", 5000, false},
		{"url -m dir: ? delimits", Cond{Subject: SubjURL, Match: MatchDir, Values: []string{"d"}}, get, 5000, true},
		{"path_dir of only slashes never matches", Cond{Subject: SubjPath, Match: MatchDir, Values: []string{"/"}}, get, 5000, false},
		{"hdr: each comma-separated value", Cond{Subject: SubjHeader, Header: "X-A", IgnoreCase: true, Values: []string{"bar"}},
			get + "X-A: foo, BAR\r\n", 5000, true},
		{"hdr: not the whole line", Cond{Subject: SubjHeader, Header: "X-A", Values: []string{"foo, bar"}},
			get + "X-A: foo, bar\r\n", 5000, false},
		{"hdr_reg: a comma ends the value", Cond{Subject: SubjHeader, Header: "User-Agent", Match: MatchRegex, Values: []string{`KHTML, like`}},
			get + "User-Agent: Mozilla/5.0 (KHTML, like Gecko)\r\n", 5000, false},
		{"hdr_beg(host): the second of a list", Cond{Subject: SubjHost, Match: MatchPrefix, IgnoreCase: true, Values: []string{"localhost"}},
			"GET / HTTP/1.1\r\nHost: www.example,localhost\r\n", 5000, true},
		{"hdr(host) of a request without Host", Cond{Subject: SubjHost, Match: MatchRegex, Values: []string{`^$`}}, "GET / HTTP/1.0\r\n", 5000, false},
		{"url * (HTTP_URL_STAR)", Cond{Subject: SubjURL, Values: []string{"*"}}, "OPTIONS * HTTP/1.1\r\nHost: h\r\n", 5000, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cc, err := compileCond(tc.c, nil)
			if err != nil {
				t.Fatal(err)
			}
			r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(tc.req + "\r\n")))
			if err != nil {
				t.Fatal(err)
			}
			r.RemoteAddr = netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), tc.port).String()
			ru := &rule{when: []*cond{cc}}
			if got := ru.match(r, netip.MustParseAddr("192.0.2.1")); got != tc.want {
				t.Errorf("%s on %q from port %d: %v, want %v", ru.Rule.String(), tc.req, tc.port, got, tc.want)
			}
		})
	}
}

// TestStrl2ic: hdr_val's integer reading, HAProxy's quirks included.
func TestStrl2ic(t *testing.T) {
	// "+5": '+' is below '0', its difference added as in C: -5*10+5.
	for in, want := range map[string]int32{"": 0, "0": 0, "42": 42, "-7": -7, "12abc": 12, "abc": 0, "12 ": 104, "-": 0, "+5": -45} {
		if got := strl2ic(in); got != want {
			t.Errorf("strl2ic(%q) = %d, want %d", in, got, want)
		}
	}
}

// TestNumericCondInvalid: ranges that do not parse are refused.
func TestNumericCondInvalid(t *testing.T) {
	for _, c := range []Cond{
		{Subject: SubjSourcePort, Values: []string{"a"}},
		{Subject: SubjSourcePort, Values: []string{":"}},
		{Subject: SubjSourcePort, Values: []string{"10:1"}},
		{Subject: SubjSourcePort},
		{Subject: SubjHeaderCount, Values: []string{"1"}},
		{Subject: SubjHeaderValue, Header: "X", Match: MatchPrefix, Values: []string{"1"}},
	} {
		if _, err := compileCond(c, nil); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}
