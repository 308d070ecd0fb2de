package units

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/gitgw/gitgw/internal/statefile"
)

// ErrNotOwned is returned for a file gitgw would write or remove but did
// not write itself (no marker line): it is left alone.
var ErrNotOwned = errors.New("not owned by gitgw")

// readFile returns a file's content, nil when it does not exist.
func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("units: read %s: %w", path, err)
	}
	return b, nil
}

// writeAtomic replaces path with content through statefile.Write (a
// temporary file in the same directory, fsync, rename, fsync of the
// directory): readers (systemd) see the old or the new file, never a
// partial one. Unit directories are created world-readable, as systemd's
// own are.
func writeAtomic(path string, content []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("units: write %s: %w", path, err)
	}
	if err := statefile.Write(path, content, 0o644); err != nil {
		return fmt.Errorf("units: %w", err)
	}
	return nil
}

// removeOwned removes path if gitgw owns it; a missing file is fine.
func removeOwned(path string) error {
	b, err := readFile(path)
	if err != nil || b == nil {
		return err
	}
	if !ParseOwnership(b).Owned {
		return fmt.Errorf("units: remove %s: %w", path, ErrNotOwned)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("units: remove %s: %w", path, err)
	}
	// An empty NAME.d directory left by a drop-in goes too.
	if d := filepath.Dir(path); strings.HasSuffix(d, ".d") {
		_ = os.Remove(d)
	}
	return nil
}

// ownedFiles lists the files gitgw owns in dir: templates (NAME@.service)
// and drop-ins (UNIT.d/NAME.conf), as paths relative to dir.
func ownedFiles(dir string) (map[string][]byte, error) {
	out := map[string][]byte{}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("units: list %s: %w", dir, err)
	}
	for _, e := range ents {
		name := e.Name()
		switch {
		case e.Type().IsRegular() && strings.HasSuffix(name, "@.service"):
			b, err := readFile(filepath.Join(dir, name))
			if err != nil {
				return nil, err
			}
			if ParseOwnership(b).Owned {
				out[name] = b
			}
		case e.IsDir() && strings.HasSuffix(name, ".d"):
			sub, err := os.ReadDir(filepath.Join(dir, name))
			if err != nil {
				continue
			}
			for _, s := range sub {
				if !s.Type().IsRegular() || !strings.HasSuffix(s.Name(), ".conf") {
					continue
				}
				rel := name + "/" + s.Name()
				b, err := readFile(filepath.Join(dir, rel))
				if err != nil {
					return nil, err
				}
				if ParseOwnership(b).Owned {
					out[rel] = b
				}
			}
		}
	}
	return out, nil
}
