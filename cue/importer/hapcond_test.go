package importer

import (
	"maps"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/test/lab"
)

// TestHAProxyConditions: only the branch HAProxy takes is read; a
// condition on HAProxy's environment is a syntax error.
func TestHAProxyConditions(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		want       []string // the server lines read, in order
		syntax     string   // a syntax error's text
		warn       string   // a warning's text
	}{
		{name: "no condition", body: "server a 1\n", want: []string{"a"}},
		{name: "a feature the build lacks", body: ".if feature(QUIC)\nserver q 1\n.else\nserver t 1\n.endif\nserver a 1\n",
			want: []string{"t", "a"}, warn: "lines 2-4: a branch not taken"},
		{name: "a feature the build has", body: ".if feature(OPENSSL)\nserver o 1\n.else\nserver n 1\n.endif\n", want: []string{"o"}},
		{name: "negation and and", body: ".if !feature(QUIC) && feature(LUA)\nserver a 1\n.endif\n", want: []string{"a"}},
		{name: "or and parentheses", body: ".if (feature(QUIC) || version_atleast(2.4)) && !version_before(2.6)\nserver a 1\n.endif\n", want: []string{"a"}},
		{name: "elif after a branch taken", body: ".if version_atleast(2.5)\nserver a 1\n.elif 1\nserver b 1\n.else\nserver c 1\n.endif\n", want: []string{"a"}},
		{name: "elif taken", body: ".if version_atleast(3.0)\nserver a 1\n.elif streq(x,x)\nserver b 1\n.else\nserver c 1\n.endif\n", want: []string{"b"}},
		{name: "nested in a branch not taken", body: ".if 0\n.if 1\nserver a 1\n.else\nserver b 1\n.endif\n.else\nserver c 1\n.endif\n", want: []string{"c"}},
		{name: "OpenSSL's version", body: ".if openssl_version_atleast(1.1.1) && !openssl_version_before(3.0.0)\nserver a 1\n.endif\n.if openssl_version_atleast(3.1)\nserver b 1\n.endif\n", want: []string{"a"}},
		{name: "numbers and words", body: ".if 0\nserver a 1\n.endif\n.if 2\nserver b 1\n.endif\n", want: []string{"b"}},
		{name: "the environment", body: ".if defined(HAPROXY_LOCALPEER)\nserver a 1\n.endif\n", syntax: "depends on the environment"},
		{name: "a variable compared", body: ".if streq(\"${SITE}\",eu)\nserver a 1\n.endif\n", syntax: "depends on the environment"},
		{name: "nested without end", body: ".if " + strings.Repeat("(", 100000) + "1" + strings.Repeat(")", 100000) + "\nserver a 1\n.endif\n", syntax: "nested more than 64 deep"},
		{name: "an unknown predicate", body: ".if frobnicate(1)\nserver a 1\n.endif\n", syntax: "unknown predicate"},
		{name: "unterminated", body: ".if 1\nserver a 1\n", syntax: ".if without .endif"},
		{name: "endif alone", body: ".endif\n", syntax: ".endif without .if"},
		{name: "an alert taken", body: ".if feature(QUIC)\n.else\n.alert \"needs QUIC\"\n.endif\n", syntax: "refuses to start"},
		{name: "an alert not taken", body: ".if !feature(QUIC)\n.else\n.alert \"needs QUIC\"\n.endif\nserver a 1\n", want: []string{"a"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var w warnings
			secs := parseHAProxy("h", "listen l\n"+tt.body, &w)
			var got []string
			for _, s := range secs {
				for _, l := range s.Lines {
					if l.Words[0] == "server" {
						got = append(got, l.Words[1])
					}
				}
			}
			var errs, warns []string
			for _, e := range w.errs {
				errs = append(errs, e.String())
			}
			for _, e := range w.list {
				warns = append(warns, e.String())
			}
			if tt.syntax != "" {
				if !strings.Contains(strings.Join(errs, "\n"), tt.syntax) {
					t.Errorf("syntax errors %q, want one with %q", errs, tt.syntax)
				}
				return
			}
			if len(errs) > 0 {
				t.Errorf("syntax errors %q", errs)
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("servers read %q, want %q", got, tt.want)
			}
			if tt.warn != "" && !strings.Contains(strings.Join(warns, "\n"), tt.warn) {
				t.Errorf("warnings %q, want one with %q", warns, tt.warn)
			}
		})
	}
}

// TestHAProxyPaths: a relative crt or ca-file becomes the path HAProxy
// opens, or is refused when that depends on where HAProxy was started.
func TestHAProxyPaths(t *testing.T) {
	for _, tt := range []struct {
		name, global, dir, file, kind string
		want                          string // "" = cannot tell
	}{
		{name: "absolute", file: "/etc/ssl/a.pem", kind: "crt", want: "/etc/ssl/a.pem"},
		{name: "relative, nothing said", file: "a.pem", kind: "crt", dir: "/etc/haproxy"},
		{name: "crt-base", global: "crt-base /etc/ssl/private\n", file: "a.pem", kind: "crt", want: "/etc/ssl/private/a.pem"},
		{name: "crt-base is not for ca", global: "crt-base /etc/ssl/private\n", file: "ca.pem", kind: "ca"},
		{name: "ca-base", global: "ca-base /etc/ssl/certs\n", file: "ca.pem", kind: "ca", want: "/etc/ssl/certs/ca.pem"},
		{name: "default-path config", global: "default-path config\n", dir: "/etc/haproxy", file: "certs/a.pem", kind: "crt", want: "/etc/haproxy/certs/a.pem"},
		{name: "default-path config, directory unknown", global: "default-path config\n", file: "a.pem", kind: "crt"},
		{name: "default-path parent", global: "default-path parent\n", dir: "/etc/haproxy/conf.d", file: "a.pem", kind: "crt", want: "/etc/haproxy/a.pem"},
		{name: "default-path origin", global: "default-path origin /srv/lb\n", file: "a.pem", kind: "ca", want: "/srv/lb/a.pem"},
		{name: "a relative crt-base under default-path config", global: "default-path config\ncrt-base certs\n", dir: "/etc/haproxy", file: "a.pem", kind: "crt", want: "/etc/haproxy/certs/a.pem"},
		{name: "default-path current", global: "default-path config\ndefault-path current\n", dir: "/etc/haproxy", file: "a.pem", kind: "crt"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var w warnings
			hp := &hapPaths{dir: tt.dir}
			for _, l := range strings.Split(strings.TrimSpace(tt.global), "\n") {
				if l != "" && !hp.global(hapLine{Words: strings.Fields(l)}, &w) {
					t.Fatalf("%q not read", l)
				}
			}
			got, ok := hp.resolve(tt.kind, tt.file)
			if !ok {
				got = ""
			}
			if got != tt.want {
				t.Errorf("resolve(%s, %s) = %q, %v; want %q", tt.kind, tt.file, got, ok, tt.want)
			}
		})
	}
}

// TestHAProxyRelativeCrtImported: a bind's relative crt under
// default-path config is written as the absolute path the site needs.
func TestHAProxyRelativeCrtImported(t *testing.T) {
	const cfg = "global\n  default-path config\nfrontend f\n  mode http\n  bind 203.0.113.1:443 ssl crt site.pem\n  default_backend b\nbackend b\n  mode http\n  server a 198.51.100.1:80 check\n"
	res, err := Import(Options{HAProxy: []Input{{Path: "hap", Dir: "/etc/haproxy", Data: []byte(cfg)}}, Nodes: []string{"gw1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Refused) > 0 {
		t.Fatalf("refused: %v", res.Refused)
	}
	found := false
	for _, f := range res.Files {
		found = found || (f.Name == "services.cue" && strings.Contains(string(f.Data), `"/etc/haproxy/site.pem"`))
	}
	if !found {
		t.Errorf("no /etc/haproxy/site.pem in the site:\n%s", goldenText(res))
	}
}

// TestHAProxyConditionBuildIsThePeer: the build the conditions are
// answered for is the HAProxy of the labs, read from its own -vv: its
// version and every feature it lists.
func TestHAProxyConditionBuildIsThePeer(t *testing.T) {
	lab.RequireCommand(t, "haproxy")
	out, err := exec.Command("haproxy", "-vv").Output()
	if err != nil {
		t.Fatalf("haproxy -vv: %v", err)
	}
	var version string
	features := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "HAProxy version "); ok {
			version, _, _ = strings.Cut(v, "-")
			version, _, _ = strings.Cut(version, " ")
		}
		if f, ok := strings.CutPrefix(l, "Feature list : "); ok {
			features = featureList(f)
		}
	}
	v, err := versionOf(version)
	// The branch (major.minor) decides; a Debian security update moves the
	// patch level only.
	if err != nil || v[0] != hapCondBuild.version[0] || v[1] != hapCondBuild.version[1] {
		t.Errorf("peer version %q (%v), conditions answered for %v", version, err, hapCondBuild.version)
	}
	if len(features) == 0 || !maps.Equal(features, hapCondBuild.features) {
		t.Errorf("peer features %v, conditions answered for %v", features, hapCondBuild.features)
	}
}

// TestHAProxyMissingLastLF: a file whose last line has no newline is a
// syntax error, as HAProxy 2.6 refuses it (a truncated file); with the
// newline it reads. The peer's own check holds the rule.
func TestHAProxyMissingLastLF(t *testing.T) {
	const cfg = "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 1s\n  timeout server 1s\nlisten l\n  bind 127.0.0.1:18099\n  server a 127.0.0.1:9 check"
	lab.RequireCommand(t, "haproxy")
	for _, tc := range []struct {
		name, text string
		refused    bool
	}{
		{"cut", cfg, true},
		{"whole", cfg + "\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := t.TempDir() + "/haproxy.cfg"
			if err := os.WriteFile(path, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("haproxy", "-c", "-f", path).CombinedOutput()
			if (err != nil) != tc.refused || tc.refused && !strings.Contains(string(out), "Missing LF on last line") {
				t.Fatalf("haproxy -c: %v\n%s", err, out)
			}
			var w warnings
			parseHAProxy("h", tc.text, &w)
			if got := len(w.errs) > 0; got != tc.refused {
				t.Errorf("syntax errors %v, want refused %v", w.errs, tc.refused)
			}
		})
	}
}
