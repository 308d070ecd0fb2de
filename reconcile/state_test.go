package reconcile

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// corruptVariants are the two ways a crash leaves a state file: empty (the
// rename made durable, not the data) and cut short.
func corruptVariants(good []byte) map[string][]byte {
	return map[string][]byte{"empty": nil, "truncated": good[:len(good)/2]}
}

// checkMovedAside fails unless path is gone, one NAME.corrupt-* holds
// content, and the log has the ERROR line naming both.
func checkMovedAside(t *testing.T, path string, content []byte, log string) {
	t.Helper()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s still in place (%v)", path, err)
	}
	aside, _ := filepath.Glob(path + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("moved aside: %v, want one %s.corrupt-*", aside, filepath.Base(path))
	}
	if b, _ := os.ReadFile(aside[0]); !bytes.Equal(b, content) {
		t.Errorf("moved-aside content %q, want %q", b, content)
	}
	if !strings.Contains(log, "level=ERROR") || !strings.Contains(log, "state file corrupt") ||
		!strings.Contains(log, path) || !strings.Contains(log, aside[0]) {
		t.Errorf("no ERROR line naming %s and %s; log:\n%s", path, aside[0], log)
	}
}

// TestRunnerStartsOnCorruptLastGood: an empty or truncated
// last-applied.json is moved aside with an ERROR line, and the Runner
// starts without a last good state instead of failing.
func TestRunnerStartsOnCorruptLastGood(t *testing.T) {
	t.Parallel()
	good, err := json.Marshal(LastGood{Commit: "c1", AppliedAt: time.Unix(1, 0).UTC(), Desired: &spec.Node{Name: "gw1"}})
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range corruptVariants(good) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, lastGoodFile)
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			var log syncBuffer
			r, err := NewRunner(RunnerOptions{Node: "gw1", StateDir: dir, Logger: slog.New(slog.NewTextHandler(&log, nil))})
			if err != nil {
				t.Fatalf("NewRunner: %v", err)
			}
			if lg := r.LastGood(); lg != nil {
				t.Errorf("last good state %+v from a corrupt file", lg)
			}
			checkMovedAside(t, path, content, log.String())
		})
	}
	// The good file still loads.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, lastGoodFile), good, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := NewRunner(RunnerOptions{Node: "gw1", StateDir: dir})
	if err != nil || r.LastGood() == nil || r.LastGood().Commit != "c1" {
		t.Fatalf("NewRunner on a good file: %v, %+v", err, r)
	}
}

// TestHealthGateStartsOnCorruptPin: the same for pinned.json; no commit
// is pinned.
func TestHealthGateStartsOnCorruptPin(t *testing.T) {
	t.Parallel()
	good, err := json.Marshal(Pin{Commit: "c2", Reason: "service web: 0 healthy servers", At: time.Unix(1, 0).UTC()})
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range corruptVariants(good) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, pinFile)
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			var log syncBuffer
			g, err := NewHealthGate(HealthGateOptions{StateDir: dir, Logger: slog.New(slog.NewTextHandler(&log, nil))})
			if err != nil {
				t.Fatalf("NewHealthGate: %v", err)
			}
			if p := g.Pinned(); p != nil {
				t.Errorf("pin %+v from a corrupt file", p)
			}
			checkMovedAside(t, path, content, log.String())
		})
	}
}
