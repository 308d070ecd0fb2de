package units

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestBooted(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want bool
	}{{dir, true}, {filepath.Join(dir, "none"), false}, {file, false}} {
		if got := booted(tc.path); got != tc.want {
			t.Errorf("booted(%s) = %v, want %v", tc.path, got, tc.want)
		}
	}
	// Where systemd does not run, Dial says so in one sentence instead of
	// two nested connection errors.
	if !booted(runtimeDir) {
		if _, err := Dial(context.Background(), ""); !errors.Is(err, ErrNoSystemd) {
			t.Errorf("Dial without systemd: %v, want ErrNoSystemd", err)
		}
	}
}
