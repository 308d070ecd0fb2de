package importer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/cue/spec"
)

// importAt imports an haproxy.cfg written at dir/haproxy.cfg (so that
// `src -f` files resolve next to it) and loads gw1's view.
func importAt(t *testing.T, dir, cfg string) (*Result, *spec.Node) {
	t.Helper()
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Import(Options{HAProxy: []Input{{Path: path, Data: []byte(cfg)}}, Nodes: []string{"gw1"}})
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if len(res.Refused) > 0 {
		return res, nil
	}
	site := t.TempDir()
	if err := WriteDir(site, res.Files, false); err != nil {
		t.Fatal(err)
	}
	_, view, err := loader.Load(context.Background(), site, "gw1")
	if err != nil {
		t.Fatalf("load: %v\n%s", err, goldenText(res))
	}
	return res, view
}

// TestHAProxySourceMappings: HAProxy's tcp-request connection rules on
// the source become the service's source block, with HAProxy's counting
// (a tracked counter includes the connection being decided), and the site
// loads through the real loader and schema.
func TestHAProxySourceMappings(t *testing.T) {
	const fe = "frontend f\n  bind 203.0.113.1:443\n  default_backend b\n"
	const be = "backend b\n  server a 198.51.100.1:443 check\n"
	const listen = "listen l\n  bind 203.0.113.1:443\n  server a 198.51.100.1:443 check\n"
	const table = "  stick-table type ip size 100k expire 30s store conn_cur,conn_rate(10s)\n"
	for _, tt := range []struct {
		name, cfg string
		files     map[string]string
		svc       string
		want      spec.SourceRules
	}{
		{name: "reject unless src: allow", cfg: listen + "  tcp-request connection reject if !{ src 198.51.100.0/24 2001:db8::/32 }\n",
			want: spec.SourceRules{Allow: []string{"198.51.100.0/24", "2001:db8::/32"}}},
		{name: "unless is a negation", cfg: listen + "  tcp-request connection reject unless { src 198.51.100.7 }\n",
			want: spec.SourceRules{Allow: []string{"198.51.100.7/32"}}},
		{name: "named ACL of several lines: allow", cfg: listen + "  acl trusted src 198.51.100.0/24\n  acl trusted src 203.0.113.0/255.255.255.0\n  tcp-request connection reject if !trusted\n",
			want: spec.SourceRules{Allow: []string{"198.51.100.0/24", "203.0.113.0/24"}}},
		{name: "reject if src: deny", cfg: listen + "  acl bad src 198.51.100.66\n  tcp-request connection reject if bad\n  tcp-request connection reject if { src 203.0.113.0/25 }\n",
			want: spec.SourceRules{Deny: []string{"198.51.100.66/32", "203.0.113.0/25"}}},
		{name: "src -f relative to haproxy.cfg", cfg: listen + "  tcp-request connection reject if { src -f blocked.lst }\n",
			files: map[string]string{"blocked.lst": "# blocked\n198.51.100.9\n\n  2001:db8:1::/48\n"},
			want:  spec.SourceRules{Deny: []string{"198.51.100.9/32", "2001:db8:1::/48"}}},
		{name: "accept if src then reject: allow", cfg: listen + "  tcp-request connection accept if { src 198.51.100.0/24 }\n  tcp-request connection accept if { src 203.0.113.5 }\n  tcp-request connection reject\n",
			want: spec.SourceRules{Allow: []string{"198.51.100.0/24", "203.0.113.5/32"}}},
		{name: "deny before accept wins", cfg: listen + "  tcp-request connection reject if { src 198.51.100.66 }\n  tcp-request connection accept if { src 198.51.100.0/24 }\n  tcp-request connection reject\n",
			want: spec.SourceRules{Allow: []string{"198.51.100.0/24"}, Deny: []string{"198.51.100.66/32"}}},
		{name: "sc0_conn_cur gt N", cfg: listen + table + "  tcp-request connection track-sc0 src\n  tcp-request connection reject if { sc0_conn_cur gt 10 }\n",
			want: spec.SourceRules{MaxConnPerSource: 10}},
		{name: "sc_conn_cur(0) ge N", cfg: listen + table + "  tcp-request connection track-sc0 src\n  tcp-request connection reject if { sc_conn_cur(0) ge 10 }\n",
			want: spec.SourceRules{MaxConnPerSource: 9}},
		{name: "src_conn_cur after track-sc counts the connection", cfg: listen + table + "  tcp-request connection track-sc1 src\n  acl busy src_conn_cur gt 10\n  tcp-request connection reject if busy\n",
			want: spec.SourceRules{MaxConnPerSource: 10}},
		{name: "HAProxy's example: src_conn_rate before track-sc0 counts admitted ones only", cfg: listen + table + "  tcp-request connection reject if { src_conn_rate gt 10 }\n  tcp-request connection track-sc0 src\n",
			want: spec.SourceRules{MaxRatePerSource: "11/10s"}},
		{name: "src_conn_cur before track-sc does not", cfg: listen + table + "  tcp-request connection reject if { src_conn_cur gt 10 }\n  tcp-request connection track-sc0 src\n",
			want: spec.SourceRules{MaxConnPerSource: 11}},
		{name: "sc0_conn_rate gt N per the table's period", cfg: listen + table + "  tcp-request connection track-sc0 src\n  tcp-request connection reject if { sc0_conn_rate gt 100 }\n",
			want: spec.SourceRules{MaxRatePerSource: "100/10s"}},
		{name: "conn_rate(1m) ge N", cfg: listen + "  stick-table type ipv6 size 1m store conn_rate(60000)\n  tcp-request connection track-sc2 src\n  tcp-request connection reject if { sc2_conn_rate ge 600 }\n",
			want: spec.SourceRules{MaxRatePerSource: "599/m"}},
		{name: "of two limits the lower applies", cfg: listen + table + "  tcp-request connection track-sc0 src\n  tcp-request connection reject if { sc0_conn_rate gt 40 }\n  tcp-request connection reject if { sc0_conn_rate gt 100 }\n  tcp-request connection reject if { sc0_conn_cur gt 3 }\n  tcp-request connection reject if { sc0_conn_cur gt 8 }\n",
			want: spec.SourceRules{MaxConnPerSource: 3, MaxRatePerSource: "40/10s"}},
		{name: "frontend rules apply to its backend's service", svc: "f",
			cfg:  fe + "  acl office src 198.51.100.0/24\n" + table + "  tcp-request connection reject if !office\n  tcp-request connection track-sc0 src\n  tcp-request connection reject if { sc0_conn_cur gt 5 }\n  tcp-request connection reject if { sc0_conn_rate gt 50 }\n" + be,
			want: spec.SourceRules{Allow: []string{"198.51.100.0/24"}, MaxConnPerSource: 5, MaxRatePerSource: "50/10s"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			res, view := importAt(t, dir, tt.cfg)
			if view == nil {
				t.Fatalf("refused: %v", res.Refused)
			}
			name := tt.svc
			if name == "" {
				name = "l"
			}
			svc, ok := view.Services[name]
			if !ok || svc.Source == nil {
				t.Fatalf("no service %s with source rules:\n%s", name, goldenText(res))
			}
			if d := cmp.Diff(tt.want, *svc.Source, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("source (-want +got):\n%s\n%s", d, goldenText(res))
			}
		})
	}
}

// TestHAProxySourceRefusals: source rules the site cannot say exactly stay
// refused (source-rules), each with its line and reason.
func TestHAProxySourceRefusals(t *testing.T) {
	const listen = "listen l\n  bind 203.0.113.1:443\n  server a 198.51.100.1:443 check\n"
	const table = "  stick-table type ip size 100k store conn_cur,conn_rate(10s)\n"
	for _, tt := range []struct {
		name, cfg, why string
		line           int
	}{
		{name: "and", cfg: listen + "  tcp-request connection reject if { src 198.51.100.0/24 } { dst_port 443 }\n", line: 4, why: "several terms"},
		{name: "or", cfg: listen + "  acl a src 198.51.100.1\n  tcp-request connection reject if a || { src 198.51.100.2 }\n", line: 5, why: "several terms"},
		{name: "non-src fetch", cfg: listen + "  tcp-request connection reject if { dst_port 443 }\n", line: 4, why: "dst_port"},
		{name: "src ACL with another fetch line", cfg: listen + "  acl a src 198.51.100.1\n  acl a dst 203.0.113.1\n  tcp-request connection reject if a\n", line: 6, why: "not all src"},
		{name: "host name pattern", cfg: listen + "  tcp-request connection reject if { src office.example }\n", line: 4, why: "host names"},
		{name: "unreadable -f file", cfg: listen + "  tcp-request connection reject if { src -f missing.lst }\n", line: 4, why: "missing.lst"},
		{name: "two allow lists", cfg: listen + "  tcp-request connection reject if !{ src 198.51.100.0/24 }\n  tcp-request connection reject if !{ src 198.51.100.0/25 }\n", line: 5, why: "intersection"},
		{name: "reject after accept", cfg: listen + "  tcp-request connection accept if { src 198.51.100.0/24 }\n  tcp-request connection reject if { src 203.0.113.9 }\n", line: 5, why: "after an accept"},
		{name: "sc0 not tracked", cfg: listen + table + "  tcp-request connection reject if { sc0_conn_cur gt 10 }\n  tcp-request connection track-sc0 src\n", line: 5, why: "not tracked"},
		{name: "no tracking at all", cfg: listen + table + "  tcp-request connection reject if { src_conn_cur gt 10 }\n", line: 5, why: "never matches"},
		{name: "counter not stored", cfg: listen + "  stick-table type ip size 1k store conn_cur\n  tcp-request connection track-sc0 src\n  tcp-request connection reject if { sc0_conn_rate gt 10 }\n", line: 6, why: "no conn_rate"},
		{name: "ge 1 admits nothing", cfg: listen + table + "  tcp-request connection track-sc0 src\n  tcp-request connection reject if { sc0_conn_cur ge 1 }\n", line: 6, why: "admits no connection"},
		{name: "lt", cfg: listen + table + "  tcp-request connection track-sc0 src\n  tcp-request connection reject if { sc0_conn_cur lt 3 }\n", line: 6, why: "only gt N and ge N"},
		{name: "other action", cfg: listen + "  tcp-request connection silent-drop if { src 198.51.100.1 }\n", line: 4, why: "silent-drop"},
		{name: "content rule", cfg: listen + "  tcp-request content reject if { src 198.51.100.1 }\n", line: 4, why: "content"},
		{name: "http-request deny", cfg: listen + "  http-request deny if { src 198.51.100.1 }\n", line: 4, why: "http-request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, _ := importAt(t, t.TempDir(), tt.cfg)
			var got []string
			found := false
			for _, r := range res.Refused {
				got = append(got, r.String())
				if r.Feature == FeatSourceRules && r.Pos.Line == tt.line && strings.Contains(r.String(), tt.why) {
					found = true
				}
			}
			if !found {
				t.Errorf("refused:\n%s\nwant source-rules at line %d saying %q", strings.Join(got, "\n"), tt.line, tt.why)
			}
		})
	}
}

// TestStickTableWithoutStickOn: a stick-table that only counts sources
// (its expire ages the counters) gives no persistence; only `stick on src`
// does.
func TestStickTableWithoutStickOn(t *testing.T) {
	const listen = "listen l\n  bind 203.0.113.1:443\n  server a 198.51.100.1:443 check\n  stick-table type ip size 100k expire 30m store conn_cur\n"
	for _, tt := range []struct {
		name, cfg string
		want      time.Duration
	}{
		{name: "counting only", cfg: listen + "  tcp-request connection track-sc0 src\n  tcp-request connection reject if { sc0_conn_cur gt 10 }\n"},
		{name: "stick on src", cfg: listen + "  stick on src\n", want: 30 * time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, view := importAt(t, t.TempDir(), tt.cfg)
			if view == nil {
				t.Fatalf("refused: %v", res.Refused)
			}
			if got := time.Duration(view.Services["l"].Persistence); got != tt.want {
				t.Errorf("persistence %v, want %v\n%s", got, tt.want, goldenText(res))
			}
		})
	}
}

// TestHAProxySourceWarnings: connection rules that map to nothing are
// named with their line, never dropped in silence, and the service is
// still imported.
func TestHAProxySourceWarnings(t *testing.T) {
	const listen = "listen l\n  bind 203.0.113.1:443\n  server a 198.51.100.1:443 check\n"
	for _, tt := range []struct {
		name, cfg, want string
		line            int
	}{
		{name: "accept with no reject after it", cfg: listen + "  tcp-request connection accept if { src 198.51.100.0/24 }\n", line: 4, want: "no reject follows"},
		{name: "tracking no rule uses", cfg: listen + "  stick-table type ip size 1k store conn_cur\n  tcp-request connection track-sc0 src\n", line: 5, want: "no rule gitgw maps uses its counters"},
		{name: "unreachable after an unconditional reject", cfg: listen + "  tcp-request connection accept if { src 198.51.100.0/24 }\n  tcp-request connection reject\n  tcp-request connection reject if { src 198.51.100.9 }\n", line: 6, want: "never reached"},
		{name: "conn_rate tracked before the reject counts refused connections", cfg: listen + "  stick-table type ip size 1k store conn_rate(1s)\n  tcp-request connection track-sc0 src\n  tcp-request connection reject if { sc0_conn_rate gt 10 }\n", line: 4, want: "counts refused connections too"},
		{name: "an ACL no rule uses", cfg: listen + "  acl office src 198.51.100.0/24\n", line: 4, want: "not mapped"},
		{name: "expect-proxy stays a dropped directive", cfg: listen + "  tcp-request connection expect-proxy layer4 if { src 198.51.100.1 }\n", line: 4, want: "not mapped"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, view := importAt(t, t.TempDir(), tt.cfg)
			if view == nil || view.Services["l"].Servers == nil {
				t.Fatalf("not imported: %v", res.Refused)
			}
			var got []string
			for _, x := range res.Warnings {
				got = append(got, x.String())
				if x.Pos.Line == tt.line && strings.Contains(x.Msg, tt.want) {
					return
				}
			}
			t.Errorf("warnings:\n%s\nwant line %d saying %q", strings.Join(got, "\n"), tt.line, tt.want)
		})
	}
}

// TestRateUntrackedRejectNotWarned: with the reject before track-sc (HAProxy's
// own example), refused connections are not counted, as in gitgw: no
// warning about the difference.
func TestRateUntrackedRejectNotWarned(t *testing.T) {
	cfg := "listen l\n  bind 203.0.113.1:443\n  server a 198.51.100.1:443 check\n  stick-table type ip size 1k store conn_rate(1s)\n" +
		"  tcp-request connection reject if { src_conn_rate gt 10 }\n  tcp-request connection track-sc0 src\n"
	res, view := importAt(t, t.TempDir(), cfg)
	if view == nil || view.Services["l"].Source == nil || view.Services["l"].Source.MaxRatePerSource != "11/s" {
		t.Fatalf("not imported with 11/s:\n%s", goldenText(res))
	}
	for _, x := range res.Warnings {
		if strings.Contains(x.Msg, "counts refused connections") {
			t.Errorf("warned: %s", x)
		}
	}
}
