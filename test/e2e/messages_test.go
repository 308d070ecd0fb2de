package e2e

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/test/lab"
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
		{name: "a one-shot apply cannot keep VRRP", args: []string{"apply", "--site", lab, "--node", "gw1", "--kinds", "tuning,vrrp"},
			code: 1, stderr: "--kinds tuning,vrrp: VRRP and the proxy run inside the agent: a one-shot apply would lose vrrp when it exits"},
		{name: "a saved plan is made against the node", args: []string{"plan", "--site", lab, "--node", "gw1", "--observed", "status", "-out", "gw1.plan"},
			code: 1, stderr: "--out saves a plan for gitgw apply, which applies on the node: plan against the node (without --observed)"},
		{name: "apply FILE of a file that is not a saved plan", args: []string{"apply", filepath.Join(repoRoot(t), "reconcile/plan/testdata/json.golden")},
			code: 1, stderr: "not a gitgw saved plan (kind \"\", want \"gitgw-saved-plan\"): make one with gitgw plan -out FILE"},
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

// TestWithoutSystemd: on a host where systemd is not the service manager
// (a container, a laptop with another init), the units driver is off with
// one clear line, and the site's units are listed as pending for that
// reason. The host's /run is hidden behind an empty tmpfs in a mount
// namespace of the command's own, so the test holds on any box.
func TestWithoutSystemd(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "unshare", "mount")
	site := filepath.Join(repoRoot(t), "examples/lab")
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs none /run && exec "$@"`, "sh",
		gitgwBin, "plan", "--site", site, "--node", "gw1", "--no-color", "--log-format", "text")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("plan: %v\n%s%s", err, out.String(), errb.String())
	}
	const why = "systemd is not running on this host (no /run/systemd/system), so the units driver is off"
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(errb.String()), "\n") {
		if strings.Contains(l, "systemd") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], why) {
		t.Errorf("want one log line saying %q, got:\n%s", why, errb.String())
	}
	if strings.Contains(errb.String()+out.String(), "system bus failed") {
		t.Errorf("the doubled connect error is back:\n%s", errb.String())
	}
	for _, want := range []string{"? unit_file app@.service  (driver unavailable: " + why + ")",
		"? unit_instance app@8080.service: active  (driver unavailable: " + why + ")"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("plan lacks %q:\n%s", want, out.String())
		}
	}
}
