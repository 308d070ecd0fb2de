package reconcile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
)

// LastGood is the last revision applied successfully, persisted in the state
// dir so that a restarted agent facing an invalid head still knows what to
// keep running.
type LastGood struct {
	Commit    string     `json:"commit"`
	AppliedAt time.Time  `json:"applied_at"`
	Desired   *spec.Node `json:"desired"`
}

const lastGoodFile = "last-applied.json"

// LoadLastGood reads the last good state from dir; (nil, nil) when there
// is none yet.
func LoadLastGood(dir string) (*LastGood, error) {
	b, err := os.ReadFile(filepath.Join(dir, lastGoodFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reconcile: read last good state: %w", err)
	}
	var lg LastGood
	if err := json.Unmarshal(b, &lg); err != nil {
		return nil, fmt.Errorf("reconcile: parse %s: %w", filepath.Join(dir, lastGoodFile), err)
	}
	return &lg, nil
}

// Save writes the state atomically (temp file, fsync, rename).
func (lg *LastGood) Save(dir string) error {
	b, err := json.MarshalIndent(lg, "", "  ")
	if err != nil {
		return fmt.Errorf("reconcile: encode last good state: %w", err)
	}
	return WriteFileAtomic(filepath.Join(dir, lastGoodFile), b, 0o600)
}

// WriteFileAtomic writes data to path through a temporary file in the same
// directory, so that a crash leaves either the old or the new content.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
