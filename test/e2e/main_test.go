// Package e2e runs the real gitgw binary end to end: built once here, then
// started as the agent against real repositories, network namespaces and
// drivers. Every test file in this package shares this TestMain and the
// helpers below; do not add another TestMain.
package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// gitgwBin is the path of the gitgw binary built for this test run.
var gitgwBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gitgw-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gitgwBin = filepath.Join(dir, "gitgw")
	_, self, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(self), "..", "..")
	build := exec.Command("go", "build", "-o", gitgwBin, "./cmd/gitgw")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build gitgw: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// repoRoot is the module's root directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(self), "..", "..")
}

// runGitgw runs the binary to completion and returns stdout, stderr and the
// exit code.
func runGitgw(t testing.TB, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(gitgwBin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run gitgw %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}
