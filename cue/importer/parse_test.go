package importer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gitgw/gitgw/cue/loader"
)

func TestParseKeepalived(t *testing.T) {
	tests := []struct {
		name, src string
		want      []kaDirective
		errs      []string // syntax errors
	}{
		{name: "flat", src: "router_id gw1\n\nnopreempt", want: []kaDirective{
			{Name: "router_id", Args: []string{"gw1"}, Pos: Pos{"f", 1}},
			{Name: "nopreempt", Pos: Pos{"f", 3}},
		}},
		{name: "block on one line, brace attached", src: "track_interface { eth0 weight -10 }\ntrack_script {chk}", want: []kaDirective{
			{Name: "track_interface", Pos: Pos{"f", 1}, HasBlock: true, Block: []kaDirective{
				{Name: "eth0", Args: []string{"weight", "-10"}, Pos: Pos{"f", 1}}}},
			{Name: "track_script", Pos: Pos{"f", 2}, HasBlock: true, Block: []kaDirective{{Name: "chk", Pos: Pos{"f", 2}}}},
		}},
		{name: "nested, comments, quotes", src: "vrrp_instance VI_1 {  # c1\n  ! c2\n  authentication {\n    auth_pass \"a b#c\" # x\n  }\n  notify_master \"/bin/n master\"\n}", want: []kaDirective{
			{Name: "vrrp_instance", Args: []string{"VI_1"}, Pos: Pos{"f", 1}, HasBlock: true, Block: []kaDirective{
				{Name: "authentication", Pos: Pos{"f", 3}, HasBlock: true, Block: []kaDirective{
					{Name: "auth_pass", Args: []string{"a b#c"}, Pos: Pos{"f", 4}}}},
				{Name: "notify_master", Args: []string{"/bin/n master"}, Pos: Pos{"f", 6}},
			}},
		}},
		{name: "brace on the next line", src: "global_defs\n{\n router_id x\n}", want: []kaDirective{
			{Name: "global_defs", Pos: Pos{"f", 1}, HasBlock: true, Block: []kaDirective{{Name: "router_id", Args: []string{"x"}, Pos: Pos{"f", 3}}}},
		}},
		{name: "unclosed", src: "vrrp_instance A {\n interface eth0\n", want: []kaDirective{
			{Name: "vrrp_instance", Args: []string{"A"}, Pos: Pos{"f", 1}, HasBlock: true, Block: []kaDirective{{Name: "interface", Args: []string{"eth0"}, Pos: Pos{"f", 2}}}},
		}, errs: []string{"f:1: block opened here is never closed ('}' missing: is the file truncated?)"}},
		{name: "stray close", src: "}\nx", want: []kaDirective{{Name: "x", Pos: Pos{"f", 2}}},
			errs: []string{"f:1: '}' without an open block"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w warnings
			got := parseKeepalived("f", tt.src, &w)
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("directives (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.errs, warnStrings(w.errs)); d != "" {
				t.Errorf("syntax errors (-want +got):\n%s", d)
			}
			if len(w.list) > 0 {
				t.Errorf("warnings: %v", w.list)
			}
		})
	}
}

func warnStrings(ws []Warning) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.String())
	}
	return out
}

func TestSplitHAProxyLine(t *testing.T) {
	tests := []struct {
		line string
		want []string
	}{
		{"  server web1 10.0.0.1:80 check   # comment", []string{"server", "web1", "10.0.0.1:80", "check"}},
		{`option httpchk GET /health HTTP/1.1\r\nHost:\ www`, []string{"option", "httpchk", "GET", "/health", "HTTP/1.1\r\nHost: www"}},
		{`tcp-check send "PING\r\n"`, []string{"tcp-check", "send", "PING\r\n"}},
		{`tcp-check send 'PING\r\n'`, []string{"tcp-check", "send", `PING\r\n`}},
		{`acl a path "/a b" '#x' \#y`, []string{"acl", "a", "path", "/a b", "#x", "#y"}},
		{`x "" y`, []string{"x", "", "y"}},
		{`send-binary \x50\x49`, []string{"send-binary", "PI"}},
		// HAProxy keeps a backslash it does not know as an escape.
		{`tcp-check expect rstring ^\+PONG\.\d \\ \"q\"`, []string{"tcp-check", "expect", "rstring", `^\+PONG\.\d`, `\`, `"q"`}},
		{"# only a comment", nil},
	}
	for _, tt := range tests {
		if got := splitHAProxyLine(tt.line); !cmp.Equal(got, tt.want) {
			t.Errorf("splitHAProxyLine(%q) = %q, want %q", tt.line, got, tt.want)
		}
	}
}

func TestParseHAProxy(t *testing.T) {
	var w warnings
	secs := parseHAProxy("h.cfg", "maxconn 10\nglobal\n  maxconn 20\n\nlisten l 1.2.3.4:80\n  server s 5.6.7.8:80\n", &w)
	want := []*hapSection{
		{Kind: "global", Pos: Pos{"h.cfg", 2}, Lines: []hapLine{{Words: []string{"maxconn", "20"}, Pos: Pos{"h.cfg", 3}}}},
		{Kind: "listen", Args: []string{"l", "1.2.3.4:80"}, Pos: Pos{"h.cfg", 5}, Lines: []hapLine{{Words: []string{"server", "s", "5.6.7.8:80"}, Pos: Pos{"h.cfg", 6}}}},
	}
	if d := cmp.Diff(want, secs, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("sections (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{`h.cfg:1: "maxconn" outside of any section`}, warnStrings(w.errs)); d != "" {
		t.Errorf("syntax errors (-want +got):\n%s", d)
	}
}

func TestValues(t *testing.T) {
	for in, want := range map[string]time.Duration{"5000": 5 * time.Second, "5s": 5 * time.Second, "1m": time.Minute, "2d": 48 * time.Hour, "100us": 100 * time.Microsecond} {
		if got, err := hapTime(in); err != nil || got != want {
			t.Errorf("hapTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "5x", "s"} {
		if _, err := hapTime(bad); err == nil {
			t.Errorf("hapTime(%q): no error", bad)
		}
	}
	for in, want := range map[string]time.Duration{"1": time.Second, "0.1": 100 * time.Millisecond, "4.12": 4120 * time.Millisecond} {
		if got, err := seconds(in); err != nil || got != want {
			t.Errorf("seconds(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, want := range map[string][]string{
		":80": {"0.0.0.0:80"}, "*:80": {"0.0.0.0:80"}, "ipv6@:::443": {"[::]:443"},
		"203.0.113.1:8000-8002": {"203.0.113.1:8000", "203.0.113.1:8001", "203.0.113.1:8002"},
	} {
		if got, err := bindAddrs(in); err != nil || !cmp.Equal(got, want) {
			t.Errorf("bindAddrs(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, want := range map[string]string{"10.0.0.1:80": "10.0.0.1:80", "2001:db8::1:80": "[2001:db8::1]:80", "[2001:db8::1]:80": "[2001:db8::1]:80", "ipv4@10.0.0.1:80": "10.0.0.1:80",
		"web:80": "web:80", "db1.example.net.:5432": "db1.example.net.:5432"} {
		if got, err := serverAddr(in); err != nil || got != want {
			t.Errorf("serverAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"10.0.0.1", "web", "10.0.0.1:+1", "10.0.0:80", "we_b:80", "2001:db8::1"} {
		if _, err := serverAddr(bad); err == nil {
			t.Errorf("serverAddr(%q): no error", bad)
		}
	}
	for in, want := range map[string]string{"VI_1": "VI_1", "vi 1": "vi-1", "_x": "x", "a/b": "a-b"} {
		if got := siteName(in); got != want {
			t.Errorf("siteName(%q) = %q, want %q", in, got, want)
		}
	}
	if got := quoteCUE("a\"b\\c\r\n\x01é"); got != `"a\"b\\c\r\n\u0001é"` {
		t.Errorf("quoteCUE = %s", got)
	}
}

// An unknown directive, anywhere, is a warning at its file and line, and
// the rest is still imported.
func TestUnknownDirectiveWarns(t *testing.T) {
	ka := "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 7\n  frobnicate 3\n  virtual_ipaddress {\n    203.0.113.7/24\n  }\n}\nmystery_block {\n  x 1\n}\n"
	hap := "global\n  maxconn 10\n  tune.bufsize 32768\nlisten l\n  bind 203.0.113.7:80\n  frobnicate yes\n  server s 198.51.100.7:80\n"
	res, err := Import(Options{
		Keepalived: []Input{{Node: "gw1", Path: "ka.conf", Data: []byte(ka)}},
		HAProxy:    []Input{{Path: "hap.cfg", Data: []byte(hap)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(warnStrings(res.Warnings), "\n")
	for _, want := range []string{
		"ka.conf:4: frobnicate: not mapped",
		"ka.conf:9: mystery_block: not mapped",
		`hap.cfg:3: "tune.bufsize 32768": not mapped`,
		`hap.cfg:6: "frobnicate yes": not mapped`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no warning %q in:\n%s", want, got)
		}
	}
	var vrrp, services string
	for _, f := range res.Files {
		switch f.Name {
		case "vrrp.cue":
			vrrp = string(f.Data)
		case "services.cue":
			services = string(f.Data)
		}
	}
	if !strings.Contains(vrrp, "vrid:      7") || !strings.Contains(services, `s: address: "198.51.100.7:80"`) {
		t.Errorf("the rest was not imported:\n%s\n%s", vrrp, services)
	}
}

func TestImportNothing(t *testing.T) {
	if _, err := Import(Options{}); err == nil {
		t.Error("Import of nothing: no error")
	}
}

// TestRenderLikeCueFmt: the writer lays out what `cue fmt` (v0.17.1) gave
// for the same fields: scalar rows aligned in runs of equal label-chain
// length, lists and structs breaking the runs, comments breaking them too.
func TestRenderLikeCueFmt(t *testing.T) {
	chainOf := func(v cval, labels ...string) cval {
		for i := len(labels) - 1; i >= 0; i-- {
			v = &cstruct{fields: []cfield{fld(labels[i], v)}}
		}
		return v
	}
	x := &cstruct{fields: []cfield{
		fld("aaaa", cint(1)),
		fld("b", chainOf(cint(2), "c")),
		fld("dd", chainOf(cint(3), "e")),
		fld("f", cint(4)),
		fld("gggggg", cint(5)),
		fld("h", chainOf(cint(6), "i", "j")),
		fld("k", chainOf(cint(7), "l")),
		fld("m", &clist{elems: []cval{cint(1)}}),
		fld("n", cint(8)),
		{label: "o", val: cint(9), doc: []string{"a comment"}},
		fld("pp", cint(10)),
		fld("q", &cstruct{fields: []cfield{fld("r", cstr("s")), fld("tt", cstr("u"))}}),
		fld("v", inline(fld("w", cint(1)), fld("x", cint(2)))),
	}}
	want := `x: {
	aaaa: 1
	b: c:  2
	dd: e: 3
	f:      4
	gggggg: 5
	h: i: j: 6
	k: l: 7
	m: [1]
	n: 8
	// a comment
	o:  9
	pp: 10
	q: {
		r:  "s"
		tt: "u"
	}
	v: {w: 1, x: 2}
}
`
	if got := render([]cfield{fld("x", x)}); got != want {
		t.Errorf("render:\n%s\nwant (cue fmt):\n%s", got, want)
	}
}

func TestAdvertInterval(t *testing.T) {
	ms := time.Millisecond
	for _, tt := range []struct {
		version  int
		in, want time.Duration
		warn     bool
	}{
		{2, time.Second, time.Second, false},
		{2, 500 * ms, time.Second, true},
		{2, 1500 * ms, 2 * time.Second, true},
		{2, 300 * time.Second, 255 * time.Second, true},
		{3, 100 * ms, 100 * ms, false},
		{3, 15 * ms, 20 * ms, true},
		{3, 1 * ms, 10 * ms, true},
		{3, 50 * time.Second, 40950 * ms, true},
	} {
		var w warnings
		in := &instance{version: some(tt.version), advert: some(tt.in)}
		if got := advertInterval(in, &w); got != tt.want || (len(w.list) > 0) != tt.warn {
			t.Errorf("v%d %s: got %s with warnings %v, want %s (warn %v)", tt.version, tt.in, got, w.list, tt.want, tt.warn)
		}
	}
}

func TestProtocolChecks(t *testing.T) {
	for _, tt := range []struct {
		option, kind, send, expect string
		refused                    Feature // the service is refused for it
	}{
		{"option tcp-check", "tcp", "", "", ""},
		{"option redis-check", "redis", "", "", ""},
		{"option mysql-check user haproxy", "mysql", "", "", ""},
		{"option pgsql-check", "", "", "", FeatProtocolCheck},
		{"option ssl-hello-chk", "tcp-check", "", "", ""},
		{"option spop-check", "", "", "", FeatProtocolCheck},
		{"option external-check", "", "", "", FeatScriptCheck},
	} {
		var w warnings
		cfg := "listen l\n  bind 203.0.113.1:1\n  " + tt.option + "\n  server s 198.51.100.1:1 check\n"
		svcs := mapHAProxy(parseHAProxy("h", cfg, &w), "", &w).services(&w)
		if tt.refused != "" {
			if len(svcs) != 0 || len(w.refused.list) != 1 || w.refused.list[0].Feature != tt.refused || w.refused.list[0].Pos.Line != 3 {
				t.Errorf("%s: services %v, refused %v; want it refused for %s at h:3", tt.option, svcs, w.refused.list, tt.refused)
			}
			continue
		}
		if len(svcs) != 1 || svcs[0].check == nil {
			t.Fatalf("%s: services %v, refused %v", tt.option, svcs, w.refused.list)
		}
		c := svcs[0].check
		if c.kind != tt.kind || c.send.v != tt.send || c.expect.v != tt.expect {
			t.Errorf("%s: check %+v", tt.option, c)
		}
	}
}

// Names that collide after cleaning up (or are repeated) never make two
// values for one field of the site.
func TestNameCollisions(t *testing.T) {
	ka := "vrrp_instance VI.1 {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  203.0.113.1/24\n }\n}\n" +
		"vrrp_instance VI.1 {\n interface eth0\n virtual_router_id 2\n virtual_ipaddress {\n  203.0.113.2/24\n }\n}\n" +
		"vrrp_instance other {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  203.0.113.3/24\n }\n}\n"
	hap := "listen l\n bind 203.0.113.1:81\n server web 198.51.100.1:80\n server web 198.51.100.2:80\n server web!1 198.51.100.3:80\n server web-1 198.51.100.4:80\n"
	res, err := Import(Options{
		Keepalived: []Input{{Node: "gw1", Path: "ka", Data: []byte(ka)}},
		HAProxy:    []Input{{Path: "hap", Data: []byte(hap)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := WriteDir(dir, res.Files, false); err != nil {
		t.Fatal(err)
	}
	_, view, err := loader.Load(context.Background(), dir, "gw1")
	if err != nil {
		t.Fatalf("%v\n%s", err, goldenText(res))
	}
	if len(view.VRRP) != 3 || len(view.Services["l"].Servers) != 4 {
		t.Errorf("instances %d, servers %d:\n%s", len(view.VRRP), len(view.Services["l"].Servers), goldenText(res))
	}
}

func TestEqualPriorities(t *testing.T) {
	ka := "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  203.0.113.1/24\n }\n}\n"
	res, err := Import(Options{Keepalived: []Input{{Node: "a", Path: "a", Data: []byte(ka)}, {Node: "b", Path: "b", Data: []byte(ka)}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(warnStrings(res.Warnings), "\n"); !strings.Contains(got, "a:1: vrrp_instance V: a and b have priority 100") {
		t.Errorf("no warning about the tie in:\n%s", got)
	}
}
