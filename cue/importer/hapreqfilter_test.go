package importer

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
)

// TestRequestFilters: HAProxy 1.x's request filters, block and
// http-request tarpit are imported as rules in the order HAProxy 1.3.8 to
// 2.0 apply them (blocks, http-request rules, deny and tarpit filters
// with the allows before them negated, the stats page, redirects,
// reqsetbe, use_backend), and the site loads.
func TestRequestFilters(t *testing.T) {
	line := func(re string, icase, not bool) spec.HTTPCond {
		return spec.HTTPCond{Subject: "line", Match: "regex", Values: []string{re}, IgnoreCase: icase, Not: not}
	}
	stats := func(uri string) spec.HTTPRule {
		return spec.HTTPRule{Deny: 503, When: []spec.HTTPCond{
			{Subject: "url", Match: "prefix", Values: []string{uri}}, {Subject: "method", Match: "exact", Values: []string{"GET", "HEAD", "POST"}}}}
	}
	const pools = "backend app\n  mode http\n  server a 198.51.100.1:80 check\nbackend img\n  mode http\n  server i 198.51.100.9:80 check\n"
	for _, tt := range []struct {
		name, hap string
		want      []spec.HTTPRule
		warn      string // a warning that must be printed
	}{
		{"tarpit.cfg: reqpass is nothing, reqtarpit held for timeout connect, the stats page 503",
			"listen www 203.0.113.1:80\n  mode http\n  contimeout 20000\n  clitimeout 20000\n  srvtimeout 20000\n" +
				"  server a 198.51.100.1:80 check\n  stats uri /stat\n  stats auth stat:stat\n" +
				"  reqpass ^[^:\\ ]*:\n  reqtarpit ^[^:\\ ]*\\ /invalid_req1\n  reqitarpit ^[^:\\ ]*\\ /.*\\.(dll|exe|asp)\n",
			[]spec.HTTPRule{
				{Tarpit: spec.Duration(20 * time.Second), When: []spec.HTTPCond{line(`^[^: ]* /invalid_req1`, false, false)}},
				{Tarpit: spec.Duration(20 * time.Second), When: []spec.HTTPCond{line(`^[^: ]* /.*\.(dll|exe|asp)`, true, false)}},
				stats("/stat"),
			}, "reqpass ^[^: ]*:\": imported as nothing"},
		{"timeout tarpit over connect; reqsetbe after the verdicts, before use_backend; block first",
			"frontend www\n  mode http\n  bind 203.0.113.1:80\n  timeout client 5s\n  timeout connect 5s\n  timeout tarpit 2s\n" +
				"  use_backend app if { path_beg /app }\n  reqisetbe ^Host:\\ img img\n  redirect prefix /new if { path_beg /old }\n" +
				"  http-request deny if { path_beg /private }\n  reqideny ^User-Agent:\\ evil\n  http-request tarpit if { path_beg /wp-admin }\n" +
				"  block if { src 192.0.2.0/24 }\n  default_backend app\n" + pools,
			[]spec.HTTPRule{
				{Deny: 403, When: []spec.HTTPCond{{Subject: "source", Values: []string{"192.0.2.0/24"}}}},
				{Deny: 403, When: []spec.HTTPCond{{Subject: "path", Match: "prefix", Values: []string{"/private"}}}},
				{Tarpit: spec.Duration(2 * time.Second), When: []spec.HTTPCond{{Subject: "path", Match: "prefix", Values: []string{"/wp-admin"}}}},
				{Deny: 403, When: []spec.HTTPCond{line(`^User-Agent: evil`, true, false)}},
				{Redirect: &spec.HTTPRedirect{Prefix: "/new", Code: 302}, When: []spec.HTTPCond{{Subject: "path", Match: "prefix", Values: []string{"/old"}}}},
				{Use: "img", When: []spec.HTTPCond{line(`^Host: img`, true, false)}},
				{Use: "www", When: []spec.HTTPCond{{Subject: "path", Match: "prefix", Values: []string{"/app"}}}}, // app is www's own backend
			}, ""},
		{"a reqallow turns off the deny and tarpit filters after it, not those before",
			"listen www 203.0.113.1:80\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n  server a 198.51.100.1:80 check\n" +
				"  reqdeny ^[^\\ ]*\\ /a\n  reqallow ^X-Trusted:\\ yes\n  reqdeny ^[^\\ ]*\\ /b\n  reqtarpit ^[^\\ ]*\\ /c if { src 192.0.2.0/24 }\n",
			[]spec.HTTPRule{
				{Deny: 403, When: []spec.HTTPCond{line(`^[^ ]* /a`, false, false)}},
				{Deny: 403, When: []spec.HTTPCond{line(`^[^ ]* /b`, false, false), line(`^X-Trusted: yes`, false, true)}},
				{Tarpit: spec.Duration(time.Second), When: []spec.HTTPCond{line(`^[^ ]* /c`, false, false), {Subject: "source", Values: []string{"192.0.2.0/24"}}, line(`^X-Trusted: yes`, false, true)}},
			}, "reqallow ^X-Trusted: yes: gitgw matches header names in their canonical spelling"},
		{"no tarpit nor connect timeout: HAProxy answers 500 at once",
			"listen www 203.0.113.1:80\n  mode http\n  server a 198.51.100.1:80 check\n  reqtarpit ^[^\\ ]*\\ /c\n",
			[]spec.HTTPRule{{Deny: 500, When: []spec.HTTPCond{line(`^[^ ]* /c`, false, false)}}}, "imported as deny 500"},
		{"tcp-splicing: reqisetbe to a backend that is only a stats page answers 503",
			"frontend www\n  mode http\n  bind 203.0.113.1:80\n  timeout client 5s\n  reqisetbe ^[^\\ ]*\\ /admin/stats stats\n  default_backend app\n" + pools +
				"backend stats\n  mode http\n  stats uri /\n",
			[]spec.HTTPRule{{Deny: 503, When: []spec.HTTPCond{line(`^[^ ]* /admin/stats`, true, false)}}}, "stats page (backend stats, /): answered 503"},
		{"a frontend's stats page, stats enable's default URI",
			"frontend www\n  mode http\n  bind 203.0.113.1:80\n  timeout client 5s\n  stats enable\n  default_backend app\n" + pools,
			[]spec.HTTPRule{stats("/haproxy?stats")}, "answered 503 by gitgw"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, view := loadText(t, "", tt.hap)
			www, ok := view.Services["www"]
			if !ok || www.HTTP == nil {
				t.Fatalf("no http service www:\n%s", goldenText(res))
			}
			if !reflect.DeepEqual(www.HTTP.Rules, tt.want) {
				t.Errorf("rules:\n%+v\nwant\n%+v\n%s", www.HTTP.Rules, tt.want, goldenText(res))
			}
			if tt.warn != "" && !strings.Contains(goldenText(res), tt.warn) {
				t.Errorf("no warning %q:\n%s", tt.warn, goldenText(res))
			}
			if len(res.Refused) > 0 {
				t.Errorf("refused: %v", res.Refused)
			}
		})
	}
}

// TestRequestFiltersRefused: what the rules cannot say exactly stays
// refused, at its line.
func TestRequestFiltersRefused(t *testing.T) {
	const listen = "listen www 203.0.113.1:80\n  mode http\n  timeout connect 1s\n  server a 198.51.100.1:80 check\n"
	for _, tt := range []struct {
		name, hap string
		line      int
		feature   Feature
		why       string
	}{
		{"rate-limit", listen + "  rate-limit sessions 10\n", 5, FeatSourceRules, "rate-limit"},
		{"reqallow with a condition before a deny", listen + "  reqallow ^X-A:\\ 1 if { src 192.0.2.1 }\n  reqdeny ^[^\\ ]*\\ /b\n", 5, FeatContentSwitching, "reqallow with a condition"},
		{"http-request tarpit with another status", listen + "  http-request tarpit deny_status 403 if { path /x }\n", 5, FeatContentSwitching, "deny_status 403"},
		{"a regex Go cannot compile", listen + "  reqdeny ^(a\n", 5, FeatContentSwitching, "regex"},
		{"reqdeny in mode tcp", "listen www 203.0.113.1:80\n  mode tcp\n  server a 198.51.100.1:80 check\n  reqdeny ^[^\\ ]*\\ /b\n", 4, FeatSourceRules, "reqdeny"},
		{"reqsetbe to a backend that does not exist", "frontend www\n  mode http\n  bind 203.0.113.1:80\n  reqsetbe ^Host:\\ a nosuch\n  default_backend app\nbackend app\n  mode http\n  server a 198.51.100.1:80 check\n", 4, FeatContentSwitching, "no such backend"},
		{"block on a fetch the rules lack", listen + "  block if { dst_port 0:1023 }\n", 5, FeatContentSwitching, "dst_port"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := importText(t, "", tt.hap)
			var got []string
			found := false
			for _, r := range res.Refused {
				got = append(got, r.String())
				found = found || (r.Feature == tt.feature && r.Pos.Line == tt.line && strings.Contains(r.String(), tt.why))
			}
			if !found {
				t.Errorf("refused:\n%s\nwant %s at line %d naming %q", strings.Join(got, "\n"), tt.feature, tt.line, tt.why)
			}
			for _, f := range res.Files {
				if f.Name == "services.cue" {
					t.Errorf("a refused proxy was written:\n%s", f.Data)
				}
			}
		})
	}
}

// TestRequestFiltersOddLines: filter lines cut short or malformed make no
// import fail; each is mapped, refused or warned at its line.
func TestRequestFiltersOddLines(t *testing.T) {
	const listen = "listen www 203.0.113.1:80\n  mode http\n  server a 198.51.100.1:80 check\n"
	for _, l := range []string{"reqdeny", "reqsetbe ^a", "reqisetbe", "block", "block if", "http-request tarpit",
		"http-request tarpit deny_status", "http-request tarpit deny_status 500 unless", "stats uri", "reqallow ^x if",
		"reqtarpit ^x unless", "timeout tarpit", "timeout tarpit x", "reqpass", "reqiallow (", "reqideny ^x if { src }"} {
		res := importText(t, "", listen+"  "+l+"\n")
		named := false
		for _, w := range res.Warnings {
			named = named || w.Pos.Line == 4
		}
		for _, r := range res.Refused {
			named = named || r.Pos.Line == 4
		}
		if !named && !strings.Contains(goldenText(res), "when:") {
			t.Errorf("%q: neither mapped, warned nor refused:\n%s", l, goldenText(res))
		}
	}
}
