package importer

import (
	"fmt"
	"strings"
	"testing"
)

// TestHTTPFetches: the integer fetches with HAProxy's operators and
// ranges, path_dir, and the predefined ACLs as the manual defines them
// (a section's own ACL of that name wins).
func TestHTTPFetches(t *testing.T) {
	p := &hapProxy{kind: "frontend", acls: map[string]*hapACL{}}
	var w warnings
	for _, l := range []string{
		"acl forbidden_src src 0.0.0.0/7 224.0.0.0/3", "acl forbidden_src src_port 0:1023",
		"acl hdrs hdr_cnt(host) gt 1", "acl hdrs hdr_cnt(content-length) gt 1", "acl hdrs hdr_val(content-length) lt 0",
		"acl METH_GET path /own",
	} {
		p.acl(hapLine{Words: strings.Fields(l)}, &w)
	}
	for _, tc := range []struct {
		cond, want, why string
	}{
		{"if forbidden_src", "[[{source   [0.0.0.0/7 224.0.0.0/3] false false}] [{source_port   [0:1023] false false}]]", ""},
		{"if hdrs", "[[{header_count  host [2:] false false}] [{header_count  content-length [2:] false false}] [{header_value  content-length [:-1] false false}]]", ""},
		{"if { req.hdr_cnt(x-a) ge 2 le 5 }", "[[{header_count  x-a [2: :5] false false}]]", ""},
		{"if { src_port eq 80 443 }", "[[{source_port   [80 443] false false}]]", ""},
		{"if { src_port 1024- }", "[[{source_port   [1024:] false false}]]", ""},
		{"if { src_port -1023 }", "[[{source_port   [:1023] false false}]]", ""},
		{"if { src_port lt -1 }", "[[{source_port   [:1] false false}]]", ""}, // '-' makes it a range, whatever the operator
		{"if { src_port -i 80 }", "[[{source_port   [80] false false}]]", ""},
		{"if { src_port 9:1 }", "", "src_port pattern 9:1"},
		{"if { src_port gt }", "", "src_port without a pattern"},
		{"if { src_port(1) 80 }", "", "the fetch src_port(1)"},
		{"if { hdr_cnt 1 }", "", "the fetch hdr_cnt"},
		{"if { path_dir -i chat main.php }", "[[{path dir  [chat main.php] true false}]]", ""},
		{"if { path -m dir img }", "[[{path dir  [img] false false}]]", ""},
		{"if HTTP_URL_STAR !METH_OPTIONS", "[[{url exact  [*] false false} {method exact  [OPTIONS] false true}]]", ""},
		{"if !HTTP_URL_SLASH !HTTP_URL_STAR !HTTP_URL_ABS", "[[{url prefix  [/] false true} {url exact  [*] false true} {url regex  [^[^/:]*://] false true}]]", ""},
		{"if METH_GET", "[[{path exact  [/own] false false}]]", ""},
		{"if LOCALHOST", "[[{source   [127.0.0.1/8 ::1] false false}]]", ""},
		{"if HTTP_CONTENT", "[[{header_value  content-length [1:] false false}]]", ""},
		{"if HTTP_1.0", "[[{version exact  [1.0] false false}]]", ""},
		{"if { req.ver 1.1 }", "[[{version exact  [1.1] false false}]]", ""},
		{"if { req.ver -i 1.1 }", "", "req.ver -i"},
		{"if TRUE", "[[]]", ""},
		{"if HTTP LOCALHOST", "[[{source   [127.0.0.1/8 ::1] false false}]]", ""},
		{"if FALSE", "[]", ""},
		{"if !FALSE", "[[]]", ""},
		{"if HTTP_2.0 || LOCALHOST", "[[{source   [127.0.0.1/8 ::1] false false}]]", ""},
		{"unless TRUE", "[]", ""},
		{"if REQ_CONTENT", "", "the ACL REQ_CONTENT (not defined in this section, or predefined)"},
		{"if ||", "", "an empty alternative"},
	} {
		rules, why := p.httpCondRules(strings.Fields(tc.cond))
		got := [][]httpCond{}
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

// TestHTTPConditionTooLarge: an expansion past maxAlternatives is refused.
func TestHTTPConditionTooLarge(t *testing.T) {
	p := &hapProxy{kind: "frontend", acls: map[string]*hapACL{}}
	var w warnings
	for _, name := range []string{"a", "b", "c"} {
		for _, f := range []string{"path_beg /x", "url_sub y", "hdr_beg(host) z", "method PUT", "src_port 1"} {
			p.acl(hapLine{Words: strings.Fields("acl " + name + " " + f)}, &w)
		}
	}
	if _, why := p.httpCondRules(strings.Fields("if a b")); why != "" {
		t.Fatalf("25 alternatives refused: %s", why)
	}
	if _, why := p.httpCondRules(strings.Fields("if a b c")); !strings.Contains(why, "more than 64 alternatives") {
		t.Errorf("125 alternatives: refused %q", why)
	}
}
