package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/cue/loader"
)

// TestMain lets the test binary act as the evaluation child, should a test
// run a command through the root (whose sandbox re-executes /proc/self/exe
// with the hidden subcommand): without this the child would run the tests.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == loader.ChildCommand {
		if err := loader.ServeChild(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestRootSandbox: a command run through the root evaluates in the child,
// within the budget its flags give: a good site passes, a site of string
// doublings (32 MiB, a few hundred MB to evaluate) is stopped with a
// positioned error.
func TestRootSandbox(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("package site\n\n_s0: \"x\" + \"x\"\n")
	for i := 1; i < 25; i++ {
		fmt.Fprintf(&b, "_s%d: _s%d + _s%d\n", i, i-1, i-1)
	}
	b.WriteString("nodes: gw1: interfaces: eth0: addresses: [\"203.0.113.11/24\"]\nsite: name: _s24\n")
	for name, body := range map[string]string{
		"cue.mod/module.cue": "module: \"example.net/bomb@v0\"\nlanguage: version: \"v0.17.0\"\n",
		"site.cue":           b.String(),
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		site string
		want string
	}{
		{"../../examples/lab", ""},
		{dir, "site.cue:1:1: evaluation stopped: it needed more than 192 MiB of memory"},
	} {
		root := newRoot()
		root.SetArgs([]string{"validate", "--site", tc.site, "--eval-memory-mb", "192"})
		var out, errb bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&errb)
		err := root.Execute()
		if tc.want == "" && err != nil {
			t.Errorf("validate %s: %v\n%s%s", tc.site, err, out.String(), errb.String())
		}
		if tc.want != "" && (err == nil || !strings.Contains(out.String(), tc.want)) {
			t.Errorf("validate %s: %v\n%s%s", tc.site, err, out.String(), errb.String())
		}
	}
}
