package vrrp

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/internal/statefile"
)

// TestCorruptStateFile: an empty or truncated vrrp-state.json (a crash
// mid-write on a kernel that lost the data) is moved aside with an ERROR
// line, by the engine at start and by a release; the release does
// nothing (which instances were master is unknown) instead of failing.
func TestCorruptStateFile(t *testing.T) {
	t.Parallel()
	good := []byte(`{"masters": [{"name": "VI_1", "interface": "eth0", "version": 3, "vrid": 51, "interval": 100000000, "src": "203.0.113.11", "dsts": ["224.0.0.18"], "advertised": ["203.0.113.100"], "vips": []}]}`)
	variants := map[string][]byte{"empty": nil, "truncated": good[:len(good)/2]}
	check := func(t *testing.T, dir string, content []byte, log string) {
		t.Helper()
		path := filepath.Join(dir, StateFileName)
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("%s still in place (%v)", path, err)
		}
		aside, _ := filepath.Glob(path + ".corrupt-*")
		if len(aside) != 1 {
			t.Fatalf("moved aside: %v, want one", aside)
		}
		if b, _ := os.ReadFile(aside[0]); !bytes.Equal(b, content) {
			t.Errorf("moved-aside content %q, want %q", b, content)
		}
		if !strings.Contains(log, "level=ERROR") || !strings.Contains(log, "state file corrupt") || !strings.Contains(log, aside[0]) {
			t.Errorf("no ERROR line naming %s; log:\n%s", aside[0], log)
		}
	}
	for name, content := range variants {
		t.Run("engine start/"+name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, StateFileName), content, 0o600); err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			New(slog.New(slog.NewTextHandler(&log, nil)), Options{StateDir: dir})
			check(t, dir, content, log.String())
		})
		t.Run("release/"+name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, StateFileName), content, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := ReadState(dir)
			if !errors.Is(err, statefile.ErrCorrupt) {
				t.Fatalf("ReadState = %v, want ErrCorrupt", err)
			}
			if err := os.Rename(mustOne(t, filepath.Join(dir, StateFileName)+".corrupt-*"), filepath.Join(dir, StateFileName)); err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			listened := false
			err = ReleaseWith(context.Background(), dir, slog.New(slog.NewTextHandler(&log, nil)), ReleaseOptions{
				Listen: func(string, bool) (Conn, error) { listened = true; return nil, errors.New("no socket in this test") },
			})
			if err != nil {
				t.Errorf("ReleaseWith = %v, want nil (nothing to release)", err)
			}
			if listened {
				t.Error("release opened a socket for a corrupt state")
			}
			check(t, dir, content, log.String())
		})
	}
	// A good file still reads back.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, StateFileName), good, 0o600); err != nil {
		t.Fatal(err)
	}
	entries, err := ReadState(dir)
	if err != nil || len(entries) != 1 || entries[0].VRID != 51 || entries[0].Interval != 100*time.Millisecond ||
		entries[0].Src != netip.MustParseAddr("203.0.113.11") {
		t.Fatalf("ReadState = %+v, %v", entries, err)
	}
}

func mustOne(t *testing.T, pattern string) string {
	t.Helper()
	m, _ := filepath.Glob(pattern)
	if len(m) != 1 {
		t.Fatalf("%s: %v, want one match", pattern, m)
	}
	return m[0]
}
