package importer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/test/lab"
)

// TestAlwaysValid imports the test configurations with each line deleted
// in turn (a missing brace, value or section included), and for the full
// case with each number replaced by 0, -1 and 999999 and the word after
// the keyword by a strange one: whatever the input,
// the import writes a site the loader accepts.
func TestAlwaysValid(t *testing.T) {
	lab.SkipShort(t, "loads a few hundred sites")
	for _, c := range goldenCases {
		if c.name != "full" && c.name != "seed003" && c.name != "seed001" {
			continue
		}
		read := func(ins []Input) []Input {
			out := make([]Input, len(ins))
			for i, in := range ins {
				b, err := os.ReadFile(filepath.Join("testdata", in.Path))
				if err != nil {
					t.Fatal(err)
				}
				out[i] = Input{Node: in.Node, Path: in.Path, Data: b}
			}
			return out
		}
		ka, hap := read(c.keepalived), read(c.haproxy)
		all := append(append([]Input(nil), ka...), hap...)
		for fi := range all {
			lines := strings.Split(string(all[fi].Data), "\n")
			for li := range lines {
				if strings.TrimSpace(lines[li]) == "" || strings.HasPrefix(strings.TrimSpace(lines[li]), "#") {
					continue
				}
				variants := map[string]string{"without line": ""}
				if c.name == "full" {
					if f := strings.Fields(lines[li]); len(f) > 1 {
						variants["with a strange word in line"] = strings.Replace(lines[li], f[1], `b\a"d!w{o}rd`, 1)
						for _, word := range f[1:] {
							if strings.Trim(word, "0123456789") == "" {
								for _, n := range []string{"0", "-1", "999999"} {
									variants["with "+n+" in line"] = strings.Replace(lines[li], word, n, 1)
								}
								break
							}
						}
					}
				}
				for what, repl := range variants {
					mutLines := append(append([]string(nil), lines[:li]...), lines[li+1:]...)
					if repl != "" {
						mutLines = append(append(append([]string(nil), lines[:li]...), repl), lines[li+1:]...)
					}
					mut := append(append([]Input(nil), ka...), hap...)
					mut[fi].Data = []byte(strings.Join(mutLines, "\n"))
					res, err := Import(Options{Keepalived: mut[:len(ka)], HAProxy: mut[len(ka):]})
					var serr *SyntaxError
					if errors.As(err, &serr) {
						continue // a file that does not parse is refused whole
					}
					if err != nil {
						t.Fatalf("%s %s %d: %v", all[fi].Path, what, li+1, err)
					}
					dir := t.TempDir()
					if err := WriteDir(dir, res.Files, false); err != nil {
						t.Fatal(err)
					}
					if _, _, err := loader.Load(context.Background(), dir, ""); err != nil {
						t.Errorf("%s %s %d (%q): the site does not load:\n%v\n%s", all[fi].Path, what, li+1, repl, err, goldenText(res))
					}
				}
			}
		}
	}
}
