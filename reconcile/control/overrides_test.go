package control

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCorruptOverridesMovedAside: an empty or truncated overrides.json is
// moved aside with an ERROR line naming it and where it went; the agent
// starts with no override, and the next one is kept again.
func TestCorruptOverridesMovedAside(t *testing.T) {
	good := []byte(`[{"action": "drain", "target": "web/s2", "commit": "c1"}]`)
	for name, content := range map[string][]byte{"empty": nil, "truncated": good[:len(good)/2]} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, OverridesFile)
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			lg := &lastGood{"c1", labNode()}
			c := New(Options{Node: "gw1", StateDir: dir, LastGood: lg.get,
				Logger: slog.New(slog.NewTextHandler(&log, nil))})
			if got := c.Overrides(); len(got) != 0 {
				t.Errorf("overrides from a corrupt file: %v", got)
			}
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
			if l := log.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "state file corrupt") || !strings.Contains(l, aside[0]) {
				t.Errorf("no ERROR line naming %s; log:\n%s", aside[0], l)
			}
			wrap(c, &recorder{name: "proxy"})
			if _, err := c.Set(context.Background(), Override{Action: ActionDrain, Target: "web/s1"}); err != nil {
				t.Fatal(err)
			}
			if c2 := New(Options{Node: "gw1", StateDir: dir}); len(c2.Overrides()) != 1 {
				t.Errorf("a new override after the corrupt file is not kept: %v", c2.Overrides())
			}
		})
	}
}
