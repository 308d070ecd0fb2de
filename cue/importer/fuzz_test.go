package importer

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzImport: no input makes the import panic, or fail but for a syntax
// error.
func FuzzImport(f *testing.F) {
	for _, p := range [][2]string{
		{"seed003/keepalived-master.conf", "seed003/haproxy.cfg"},
		{"full/gw1.conf", "full/haproxy.cfg"},
		{"seed004/template.conf", "seed001/haproxy.cfg"},
	} {
		ka, err := os.ReadFile(filepath.Join("testdata", p[0]))
		if err != nil {
			f.Fatal(err)
		}
		hap, err := os.ReadFile(filepath.Join("testdata", p[1]))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(ka), string(hap))
	}
	f.Fuzz(func(t *testing.T, ka, hap string) {
		res, err := Import(Options{
			Keepalived: []Input{{Node: "gw1", Path: "ka", Data: []byte(ka)}, {Path: "ka2", Data: []byte(ka)}},
			HAProxy:    []Input{{Path: "hap", Data: []byte(hap)}},
		})
		var serr *SyntaxError
		if errors.As(err, &serr) {
			return // a file that does not parse is refused whole
		}
		if err != nil || len(res.Files) < 2 {
			t.Fatalf("Import: %v", err)
		}
	})
}
