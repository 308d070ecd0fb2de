package statefile

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteThenLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "state.json")
	if err := Write(path, []byte(`{"a":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", st.Mode().Perm())
	}
	var v struct{ A int }
	found, err := Load(path, func(b []byte) error { return json.Unmarshal(b, &v) })
	if err != nil || !found || v.A != 1 {
		t.Fatalf("Load = %v, %v, %+v", found, err, v)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestLoadMissing(t *testing.T) {
	found, err := Load(filepath.Join(t.TempDir(), "none.json"), func([]byte) error { return nil })
	if found || err != nil {
		t.Fatalf("Load of a missing file = %v, %v", found, err)
	}
}

func TestLoadCorruptIsMovedAside(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string
		want    string
	}{
		{"empty", "", "empty"},
		{"truncated", `{"a":`, "unexpected end"},
		{"wrong type", `[1,2]`, "cannot unmarshal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "state.json")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			var v struct{ A int }
			found, err := Load(path, func(b []byte) error { return json.Unmarshal(b, &v) })
			if !found || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load = %v, %v; want found and ErrCorrupt mentioning %q", found, err, tc.want)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("corrupt file still in place: %v", err)
			}
			aside, _ := filepath.Glob(path + ".corrupt-*")
			if len(aside) != 1 {
				t.Fatalf("moved-aside files = %v, want one", aside)
			}
			if b, _ := os.ReadFile(aside[0]); string(b) != tc.content {
				t.Errorf("moved-aside content = %q, want %q", b, tc.content)
			}
		})
	}
}
