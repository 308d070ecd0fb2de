package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
	"github.com/gitgw/gitgw/test/systemd"
)

// TestDemo runs `make demo` end to end, as the program does, and checks
// that every step succeeded and that nothing is left behind: no network
// namespace, no harness, no shared directory. Timings are printed, not
// asserted, but for one that is a protocol bound: the demo itself fails if
// gw2 takes over no earlier than its own master-down timer could have
// made it (no handover). KEEP_LOGS=DIR keeps the gateways' logs.
func TestDemo(t *testing.T) {
	systemd.Require(t)
	lab.RequireCommand(t, "ip", "git", "python3", "/usr/bin/dbus-daemon")
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "gitgw")
	build := exec.Command("go", "build", "-o", bin, "./cmd/gitgw")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build gitgw: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err = run(ctx, options{Gitgw: bin, Root: root, KeepLogs: os.Getenv("KEEP_LOGS"), Out: &out})
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	for _, want := range []string{"[10/10]", "Done in", "cleaned up:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}

	if ns, err := exec.Command("ip", "netns", "list").CombinedOutput(); err != nil || strings.Contains(string(ns), "gwdemo-") {
		t.Errorf("network namespaces left behind (%v):\n%s", err, ns)
	}
	for _, pattern := range []string{"/run/gitgw-demo-*", "/run/gitgw-systemd/demo-gw*"} {
		if left, _ := filepath.Glob(pattern); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	}
	// Processes: the backends, the agents and systemd name the demo's
	// paths on their command lines.
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if cmd := strings.ReplaceAll(string(b), "\x00", " "); strings.Contains(cmd, "/run/gitgw-demo") || strings.Contains(cmd, "/run/gitgw-systemd/demo-gw") {
			t.Errorf("process left behind: %s: %s", filepath.Dir(p), cmd)
		}
	}
}
