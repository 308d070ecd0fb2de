package systemd

import (
	"context"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/test/lab"
)

// Require stops the test unless the harness can run here: root, unshare,
// nsenter, systemd and systemd-socket-proxyd (skip outside CI, fail in CI).
// With -short (make unit) the test is skipped: it is a lab test.
func Require(t testing.TB) {
	t.Helper()
	lab.SkipShort(t, "needs a namespaced systemd: skipped with -short")
	lab.RequireRoot(t)
	lab.RequireCommand(t, "unshare", "nsenter", "mount", "mknod", "/lib/systemd/systemd", "/lib/systemd/systemd-socket-proxyd")
}

// New starts a harness for one test and stops it (killing the whole
// namespace) when the test ends. Prefer one harness per package (TestMain
// with Start) when many tests need one: boot takes 0.2–1 s.
func New(t testing.TB, o Options) *Systemd {
	t.Helper()
	Require(t)
	s, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("systemd harness %s console:\n%s", s.Name, tail(s.Log(), 8000))
		}
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// Run runs a command inside the harness and fails the test if it fails.
func (s *Systemd) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := s.Try(context.Background(), name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// MustSystemctl runs systemctl inside the harness and fails the test if it fails.
func (s *Systemd) MustSystemctl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := s.Systemctl(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}
