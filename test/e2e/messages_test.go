package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestMessages holds the CLI to what sends an operator the right way:
// success on stdout, errors that name the flag that fixes them, a
// suggestion for a misspelt flag, no machine-specific default in --help.
func TestMessages(t *testing.T) {
	lab := filepath.Join(repoRoot(t), "examples/lab")
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		stdout     string // substring, or "" for empty
		stderr     string // substring
		notStderr  string
		notStdout  string
		emptyOther bool // the other stream must be empty
	}{
		{name: "validate success on stdout", args: []string{"validate", "--site", lab},
			stdout: "site valid: 2 nodes", emptyOther: true},
		{name: "a site file instead of its directory", args: []string{"validate", "--site", filepath.Join(lab, "site.cue")},
			code: 1, stderr: "is a file: give the site's directory, the one that holds cue.mod/"},
		{name: "a misspelt flag", args: []string{"plan", "--site", lab, "--nod", "gw1"},
			code: 1, stderr: "Did you mean --node?"},
		{name: "a misspelt command", args: []string{"valdate"},
			code: 1, stderr: "validate"},
		{name: "a bad log format", args: []string{"validate", "--site", lab, "--log-format", "yaml"},
			code: 1, stderr: `--log-format "yaml": want text, json or auto`},
		{name: "--node's default in words only", args: []string{"agent", "--help"},
			stdout: "(default: the short hostname)\n", notStdout: "(default: the short hostname) (default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runGitgw(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			if tc.stdout != "" && !strings.Contains(out, tc.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tc.stdout, out)
			}
			if tc.stderr != "" && !strings.Contains(errOut, tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, errOut)
			}
			if tc.notStdout != "" && strings.Contains(out, tc.notStdout) {
				t.Errorf("stdout has %q:\n%s", tc.notStdout, out)
			}
			if tc.emptyOther && errOut != "" {
				t.Errorf("stderr not empty: %s", errOut)
			}
		})
	}
}

// TestLogFormat: --log-format json gives one JSON object a line with each
// key once (the plan command logs its component and the drivers').
func TestLogFormat(t *testing.T) {
	_, errOut, code := runGitgw(t, "plan", "--site", filepath.Join(repoRoot(t), "examples/lab"), "--node", "gw1",
		"--debug", "--log-format", "json", "--unit-dir", t.TempDir())
	if code != 0 {
		t.Fatalf("plan: exit %d\n%s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if len(lines) == 0 || lines[0] == "" {
		t.Fatal("plan --debug logged nothing")
	}
	for _, l := range lines {
		dec := json.NewDecoder(strings.NewReader(l))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("not a JSON object: %s", l)
		}
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				t.Fatalf("%v: %s", err, l)
			}
			if seen[k.(string)] {
				t.Errorf("key %q twice: %s", k, l)
			}
			seen[k.(string)] = true
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("%v: %s", err, l)
			}
		}
	}
}
