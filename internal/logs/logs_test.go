package logs

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestJSONLines(t *testing.T) {
	var nilErr error
	var nilPtr *struct{}
	for _, tc := range []struct {
		name string
		log  func(*slog.Logger)
		want map[string]any
		lack []string
	}{
		{"component given twice keeps the innermost",
			func(l *slog.Logger) { l.With("component", "agent").With("component", "units").Info("x") },
			map[string]any{"component": "units"}, nil},
		{"a key repeated in the line itself",
			func(l *slog.Logger) { l.With("node", "gw1").Info("x", "node", "gw2") },
			map[string]any{"node": "gw2"}, nil},
		{"an attribute named msg does not shadow the message",
			func(l *slog.Logger) { l.Info("driver event", "msg", "VI_1 INIT -> BACKUP") },
			map[string]any{"msg": "driver event", "detail": "VI_1 INIT -> BACKUP"}, nil},
		{"durations as strings",
			func(l *slog.Logger) { l.Info("x", "timeout", 5*time.Minute, "duration", 1500*time.Millisecond) },
			map[string]any{"timeout": "5m0s", "duration": "1.5s"}, nil},
		{"nil error and nil pointer left out",
			func(l *slog.Logger) { l.Info("x", "err", nilErr, "p", nilPtr, "n", 0) },
			map[string]any{"n": 0.0}, []string{"err", "p"}},
		{"a real error kept",
			func(l *slog.Logger) { l.With("err", nil).Warn("x", "err", errors.New("boom")) },
			map[string]any{"err": "boom", "level": "WARN"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			tc.log(New(&b, JSON, slog.LevelInfo))
			line := strings.TrimSpace(b.String())
			if strings.Count(line, "\n") != 0 {
				t.Fatalf("want one line, got %q", line)
			}
			// Decoding into a map hides duplicates: count keys in the raw line too.
			dec := json.NewDecoder(strings.NewReader(line))
			keys := map[string]int{}
			if _, err := dec.Token(); err != nil {
				t.Fatal(err)
			}
			for dec.More() {
				k, _ := dec.Token()
				keys[k.(string)]++
				var v any
				if err := dec.Decode(&v); err != nil {
					t.Fatal(err)
				}
			}
			for k, n := range keys {
				if n > 1 {
					t.Errorf("key %q %d times in %s", k, n, line)
				}
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(line), &got); err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %#v, want %#v in %s", k, got[k], v, line)
				}
			}
			for _, k := range tc.lack {
				if _, ok := got[k]; ok {
					t.Errorf("%s present in %s", k, line)
				}
			}
		})
	}
}

func TestFormats(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Format
		err  bool
	}{{"", Auto, false}, {"auto", Auto, false}, {"text", Text, false}, {"json", JSON, false}, {"yaml", "", true}} {
		got, err := ParseFormat(tc.in)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("ParseFormat(%q) = %q, %v", tc.in, got, err)
		}
	}
	var b bytes.Buffer
	New(&b, Text, slog.LevelInfo).With("component", "a").Info("hello", "component", "b", "duration", time.Second)
	if s := b.String(); strings.Count(s, "component=") != 1 || !strings.Contains(s, "component=b") || !strings.Contains(s, "duration=1s") {
		t.Errorf("text line: %q", s)
	}
	b.Reset()
	New(&b, Auto, slog.LevelInfo).Info("hello") // a buffer is no terminal
	if !strings.HasPrefix(b.String(), "{") {
		t.Errorf("auto on a pipe should be JSON: %q", b.String())
	}
}

// TestForCommand: --debug lets Debug through, and a format refused
// earlier falls back to auto (JSON on a buffer).
func TestForCommand(t *testing.T) {
	var b bytes.Buffer
	ForCommand(&b, "text", false).Debug("hidden")
	ForCommand(&b, "text", true).Debug("shown")
	if s := b.String(); strings.Contains(s, "hidden") || !strings.Contains(s, "level=DEBUG msg=shown") {
		t.Errorf("debug: %q", s)
	}
	b.Reset()
	ForCommand(&b, "yaml", false).Info("hello")
	if !strings.HasPrefix(b.String(), "{") {
		t.Errorf("a refused format should be auto (JSON here): %q", b.String())
	}
}
