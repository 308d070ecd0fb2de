package importer

import (
	"os"
	"strings"
	"testing"
)

// TestNothingDroppedSilently: in every keepalived.conf of the corpus, each directive
// either changes the import (commented out, the site, the warnings or the
// refusals differ), or is named by a warning or refusal at its line or at
// a block holding it (a refused virtual_server or proxy names all of
// it), or states the source tool's default (kaDefaults; a checker's
// connect_ip or connect_port that are its real server's own): nothing is
// dropped in silence.
func TestNothingDroppedSilently(t *testing.T) {
	for _, f := range corpusFiles(t) {
		if f.kind != "keepalived" {
			// HAProxy's defaults are inherited and overridden: a line
			// of them often changes nothing for good reasons.
			continue
		}
		data, err := os.ReadFile(f.path())
		if err != nil {
			t.Fatal(err)
		}
		path := f.kind + "/" + f.name
		imp := func(text string) (*Result, string) {
			// No node name: router_id names the node.
			in := Input{Path: path, Data: []byte(text)}
			res, err := Import(Options{Keepalived: []Input{in}})
			if err != nil {
				return nil, "error: " + err.Error()
			}
			return res, goldenText(res)
		}
		res, orig := imp(string(data))
		if res == nil {
			continue // a syntax error: nothing is imported
		}
		named := map[int]bool{}   // a warning or refusal names the line
		dropped := map[int]bool{} // … and says it is not imported, with all it holds
		refused := map[string]bool{}
		for _, w := range res.Warnings {
			if w.Pos.File != path {
				continue
			}
			named[w.Pos.Line] = true
			for _, m := range []string{"not mapped", "not imported", "ignored", "not followed"} {
				dropped[w.Pos.Line] = dropped[w.Pos.Line] || strings.Contains(w.Msg, m)
			}
		}
		for _, r := range res.Refused {
			named[r.Pos.Line] = true
			refused[r.What] = true
		}
		var lines []int // to comment out, one at a time
		var w warnings
		{
			// rs: the address and port of the real_server being walked.
			var walk func(ds []kaDirective, covered bool, rs []string)
			walk = func(ds []kaDirective, covered bool, rs []string) {
				for _, d := range ds {
					if d.HasBlock {
						in := rs
						if d.Name == "real_server" {
							in = d.Args
						}
						walk(d.Block, covered || dropped[d.Pos.Line] || (d.Name == "virtual_server" && refused["virtual_server "+strings.Join(d.Args, " ")]), in)
						continue
					}
					own := len(rs) == 2 && len(d.Args) == 1 && (d.Name == "connect_ip" && d.Args[0] == rs[0] || d.Name == "connect_port" && d.Args[0] == rs[1])
					if !covered && !named[d.Pos.Line] && !kaDefaults[d.Name+" "+strings.Join(d.Args, " ")] && !own {
						lines = append(lines, d.Pos.Line)
					}
				}
			}
			walk(parseKeepalived(path, string(data), &w), false, nil)
		}
		src := strings.Split(string(data), "\n")
		for _, n := range lines {
			mut := append([]string(nil), src...)
			mut[n-1] = "!" + mut[n-1]
			if _, got := imp(strings.Join(mut, "\n")); got == orig {
				t.Errorf("%s:%d: %q changes nothing and is named by no warning or refusal", path, n, strings.TrimSpace(src[n-1]))
			}
		}
	}
}

// kaDefaults are keepalived directives that state its default: without
// them the import is the same.
var kaDefaults = map[string]bool{
	"weight 1": true, "priority 100": true, "path /": true, "delay_loop 60": true, "lb_kind NAT": true,
	"protocol TCP": true, "connect_timeout 5": true, "advert_int 1": true, "interval 1": true,
	"state BACKUP": true, "retry 1": true,
}

// TestNothingDroppedSilentlyHAProxy is TestNothingDroppedSilently for the
// corpus's haproxy.cfg files: each line of a frontend, backend, listen or
// global section either changes the import when commented out, or is
// named by a warning or refusal at its line or at its section's (a
// section not imported, or a refused proxy, names all of it). A defaults
// section's lines are left out: proxies inherit and override them, so a
// line of them often changes nothing for good reasons; so are a proxy's
// lines that restate its defaults section's, or HAProxy's own defaults
// and what gitgw does anyway (hapDefaults).
func TestNothingDroppedSilentlyHAProxy(t *testing.T) {
	for _, f := range corpusFiles(t) {
		if f.kind != "haproxy" {
			continue
		}
		data, err := os.ReadFile(f.path())
		if err != nil {
			t.Fatal(err)
		}
		path := f.kind + "/" + f.name
		imp := func(text string) (*Result, string) {
			in := Input{Path: path, Data: []byte(text)}
			res, err := Import(Options{HAProxy: []Input{in}, Nodes: []string{"gw1"}})
			if err != nil {
				return nil, "error: " + err.Error()
			}
			return res, goldenText(res)
		}
		res, orig := imp(string(data))
		if res == nil {
			continue // a syntax error: nothing is imported
		}
		named := map[int]bool{}
		dropped := map[int]bool{} // section lines whose section is not imported
		var refused []string      // the refused proxies and their backends
		for _, w := range res.Warnings {
			if w.Pos.File != path {
				continue
			}
			named[w.Pos.Line] = true
			for _, m := range []string{"not imported", "section: not mapped"} {
				dropped[w.Pos.Line] = dropped[w.Pos.Line] || strings.Contains(w.Msg, m)
			}
		}
		for _, r := range res.Refused {
			named[r.Pos.Line] = true
			refused = append(refused, r.What)
		}
		isRefused := func(s *hapSection) bool {
			for _, what := range refused {
				if what == s.Kind+" "+s.Name() || strings.HasPrefix(what, s.Kind+" "+s.Name()+" (") ||
					(s.Kind == "backend" && strings.HasSuffix(what, "(backend "+s.Name()+")")) {
					return true
				}
			}
			return false
		}
		var w warnings
		var lines []int
		inherited := map[string]bool{}
		for _, s := range parseHAProxy(path, string(data), &w) {
			if s.Kind == "defaults" {
				inherited = map[string]bool{}
				for _, l := range s.Lines {
					inherited[strings.Join(l.Words, " ")] = true
				}
				continue
			}
			if dropped[s.Pos.Line] || isRefused(s) {
				continue
			}
			for _, l := range s.Lines {
				text := strings.Join(l.Words, " ")
				if !named[l.Pos.Line] && !inherited[text] && !hapDefaults[text] {
					lines = append(lines, l.Pos.Line)
				}
			}
		}
		src := strings.Split(string(data), "\n")
		for _, n := range lines {
			mut := append([]string(nil), src...)
			mut[n-1] = "#" + mut[n-1]
			if _, got := imp(strings.Join(mut, "\n")); got == orig {
				t.Errorf("%s:%d: %q changes nothing and is named by no warning or refusal", path, n, strings.TrimSpace(src[n-1]))
			}
		}
	}
}

// hapDefaults are HAProxy lines that state its default or what gitgw does
// anyway (MAPPING.md): without them the import is the same.
var hapDefaults = map[string]bool{
	"mode tcp": true, "option tcplog": true, "option tcpka": true, "option clitcpka": true,
	"option srvtcpka": true, "option dontlognull": true,
	// A connect check, gitgw's default check.
	"option tcp-check": true,
}
