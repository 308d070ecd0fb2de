package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// bombCUE is CUE that doubles a string n times and writes it into a unit's
// description: 2^n bytes asked for by a few hundred bytes of site.
func bombCUE(n int) string {
	var b strings.Builder
	b.WriteString("\n_s0: \"x\" + \"x\"\n")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "_s%d: _s%d + _s%d\n", i, i-1, i-1)
	}
	fmt.Fprintf(&b, "units: app: description: _s%d\n", n-1)
	return b.String()
}

// TestValidateRefusesUnitControl: a CR in a unit's description (systemd
// would read the rest as an ExecStartPre= of its own) is refused by
// `validate`, in the site's CI, with file:line:col.
func TestValidateRefusesUnitControl(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "cue/loader/testdata/unit-control")
	out, _, code := runGitgw(t, "validate", "--site", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	want, err := os.ReadFile(filepath.Join(repoRoot(t), "cue/loader/testdata/unit-control.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(string(want), out); d != "" {
		t.Errorf("validate output (-want +got):\n%s", d)
	}
}

// TestValidateBomb: `validate` and `plan` stop a site of string doublings
// at the evaluation's memory budget with a positioned error.
func TestValidateBomb(t *testing.T) {
	dir := t.TempDir()
	for name, content := range labFiles(t, func(s string) string { return s + bombCUE(40) }) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"validate", "--site", dir, "--eval-memory-mb", "256"},
		{"plan", "--site", dir, "--node", "gw1", "--eval-memory-mb", "256"},
	} {
		out, errOut, code := runGitgw(t, args...)
		if code != 1 || !strings.Contains(out+errOut, "site.cue:1:1: evaluation stopped: it needed more than 256 MiB of memory") {
			t.Errorf("%s: exit %d\n%s%s", args[0], code, out, errOut)
		}
	}
}

// vmHWM is a process's peak resident set size (VmHWM), in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// TestAgentSurvivesBomb: the agent runs the lab site; a commit of string
// doublings is pushed. The agent rejects it with a positioned error on its
// status branch, keeps running (what it applied stays), and its own peak
// RSS does not move: the evaluation happened in a child with a budget.
func TestAgentSurvivesBomb(t *testing.T) {
	l := newStatusLab(t)
	good := l.repo.Commit(t, "main", labFiles(t, nil), "lab site")
	a := l.startAgent(t, "--eval-memory-mb", "256")
	l.waitSubject(t, a, regexp.MustCompile(`^(apply|error|status)\(gw1\): `+good[:7]))
	before := vmHWM(t, a.cmd.Process.Pid)

	bomb := l.repo.Commit(t, "main", labFiles(t, func(s string) string { return s + bombCUE(40) }), "string doublings")
	start := time.Now()
	l.waitSubject(t, a, regexp.MustCompile(`^error\(gw1\): `+bomb[:7]+` rejected: site\.cue:1:1: evaluation stopped: it needed more than 256 MiB`))
	t.Logf("bomb rejected after %s", time.Since(start).Round(time.Millisecond))
	select {
	case <-a.done:
		t.Fatal("the agent exited")
	default:
	}
	after := vmHWM(t, a.cmd.Process.Pid)
	t.Logf("agent peak RSS: %d MiB before the bomb, %d MiB after", before>>20, after>>20)
	if after-before > 32<<20 {
		t.Errorf("the agent's peak RSS grew from %d MiB to %d MiB", before>>20, after>>20)
	}
}
