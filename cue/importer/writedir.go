package importer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrExists is returned by WriteDir when a file it would write exists.
var ErrExists = errors.New("file exists")

// WriteDir writes the site's files under dir. Unless overwrite is set, it
// writes nothing when one of them exists already.
func WriteDir(dir string, files []File, overwrite bool) error {
	if !overwrite {
		for _, f := range files {
			p := filepath.Join(dir, filepath.FromSlash(f.Name))
			if _, err := os.Stat(p); err == nil {
				return fmt.Errorf("import: write %s: %w (use --force to overwrite)", p, ErrExists)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("import: %w", err)
			}
		}
	}
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("import: %w", err)
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			return fmt.Errorf("import: %w", err)
		}
	}
	return nil
}
