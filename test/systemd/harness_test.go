package systemd

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

func TestBootRunStop(t *testing.T) {
	Require(t)
	canary, err := os.CreateTemp("/tmp", "gitgw-harness-canary-*")
	if err != nil {
		t.Fatal(err)
	}
	canary.Close()
	defer os.Remove(canary.Name())

	s, err := Start(context.Background(), Options{Name: "hb"})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = s.Stop()
		}
	}()

	// A unit under test runs, with its output on the console.
	unit := "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/echo harness-hello\n"
	if err := os.WriteFile(filepath.Join(s.UnitDir, "hello.service"), []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	s.MustSystemctl(t, "daemon-reload")
	s.MustSystemctl(t, "start", "hello.service")
	if got := s.MustSystemctl(t, "is-active", "hello.service"); got != "active" {
		t.Fatalf("hello.service: %q", got)
	}
	// Only the harness's units are on the path: no journald, no tmpfiles.
	if out, _ := s.Systemctl(context.Background(), "list-unit-files", "systemd-tmpfiles-setup.service"); strings.Contains(out, "systemd-tmpfiles-setup.service") {
		t.Errorf("host units visible inside:\n%s", out)
	}
	// /tmp inside is private.
	if _, err := s.Try(context.Background(), "test", "-e", canary.Name()); err == nil {
		t.Errorf("host /tmp visible inside")
	}
	// / is read-only inside.
	if _, err := s.Try(context.Background(), "touch", "/gitgw-harness-rw-check"); err == nil {
		_ = os.Remove("/gitgw-harness-rw-check")
		t.Errorf("/ writable inside")
	}
	// The host-side socket accepts connections.
	c, err := net.DialTimeout("unix", s.Socket(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	pid := s.PID
	cg := s.cgroup
	stopped = true
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
		t.Errorf("PID 1 (%d) still there after Stop", pid)
	}
	if _, err := os.Stat(cg); err == nil {
		t.Errorf("cgroup %s left behind", cg)
	}
	if _, err := os.Stat(canary.Name()); err != nil {
		t.Errorf("host /tmp canary gone: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestInLabNetns runs the harness inside a lab network namespace: its
// services share the namespace's addresses.
func TestInLabNetns(t *testing.T) {
	Require(t)
	ns := lab.NewNetns(t, "sd")
	ns.Run(t, "ip", "addr", "add", "203.0.113.50/32", "dev", "lo")
	s := New(t, Options{Name: "hn", Netns: ns.Path()})
	ipBin, err := s.Install("/usr/sbin/ip", "ip")
	if err != nil {
		t.Fatal(err)
	}
	unit := "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=" + ipBin + " -o addr show dev lo\n"
	if err := s.WriteUnit(context.Background(), "addr.service", unit); err != nil {
		t.Fatal(err)
	}
	s.MustSystemctl(t, "start", "addr.service")
	if !strings.Contains(s.Log(), "203.0.113.50") {
		// The unit's output goes to the console log; give it a moment.
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(s.Log(), "203.0.113.50") && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !strings.Contains(s.Log(), "203.0.113.50") {
		t.Errorf("unit output not in the console log:\n%s", s.Log())
	}
	out := s.Run(t, "ip", "-o", "addr", "show", "dev", "lo")
	if !strings.Contains(out, "203.0.113.50") {
		t.Fatalf("harness not in the lab netns: %s", out)
	}
	// Do enters the same namespace.
	if err := s.Do(func() error {
		l, err := net.Listen("tcp", "203.0.113.50:0")
		if err != nil {
			return err
		}
		return l.Close()
	}); err != nil {
		t.Fatal(err)
	}
}
