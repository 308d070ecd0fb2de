// Package goldenfile compares what a test renders (plan text, CUE errors,
// unit files, status commits, pages) with a file under testdata, and
// rewrites the file instead when the tests run with -update:
//
//	go test ./reconcile/plan -run TestRenderGolden -update
//
// It owns the -update flag for every package that imports it.
package goldenfile

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// Update reports whether the tests run with -update, for tests that
// refresh fixtures of their own (captures, screenshots).
func Update() bool { return *update }

// Check compares got with the file at path. With -update it writes got
// there first (creating the directory).
func Check(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, d)
	}
}
