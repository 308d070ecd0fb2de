// Package statefile writes and reads the agent's small state files
// (last-applied.json, pinned.json, overrides.json, vrrp-state.json, the trust
// anchor, unit files). Two rules hold for all of them, because the agent runs
// as root after crashes and power losses:
//
//   - a write is atomic and durable: a temporary file in the same directory,
//     fsync, rename, fsync of the directory, so a reader sees the old or the
//     new content and a power loss never leaves an empty file behind;
//   - a read treats the file as hostile: one that is empty, truncated or does
//     not decode is moved aside (NAME.corrupt-TIMESTAMP) and reported as
//     ErrCorrupt, so the caller starts from what it can still trust instead of
//     exiting or trusting garbage.
package statefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// MaxSize bounds what Load reads: state files are small, and a huge one is
// corrupt (or planted), not state.
const MaxSize = 16 << 20

// ErrCorrupt is returned (wrapped) by Load when the file existed but could
// not be decoded; it has been moved aside.
var ErrCorrupt = errors.New("corrupt state file")

// Write replaces path with data atomically and durably. Missing parent
// directories are created with mode 0750.
func Write(path string, data []byte, perm fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
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
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Load reads path and hands its content to decode. It returns found=false
// and a nil error when the file does not exist. When the file is empty,
// larger than MaxSize, or decode fails, the file is renamed aside and the
// error wraps ErrCorrupt and names both paths; the caller logs it loudly and
// carries on from what it can still trust.
func Load(path string, decode func([]byte) error) (found bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	f.Close()
	if err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	var why error
	switch {
	case len(b) == 0:
		why = errors.New("empty")
	case len(b) > MaxSize:
		why = fmt.Errorf("larger than %d bytes", MaxSize)
	default:
		why = decode(b)
	}
	if why == nil {
		return true, nil
	}
	return true, quarantine(path, why)
}

// quarantine moves a corrupt file aside so that the next start does not trip
// over it again, and keeps it for a post-mortem.
func quarantine(path string, why error) error {
	aside := fmt.Sprintf("%s.corrupt-%s", path, time.Now().UTC().Format("20060102T150405.000000000Z"))
	if err := os.Rename(path, aside); err != nil {
		return fmt.Errorf("%w: %s: %v (and not moved aside: %v)", ErrCorrupt, path, why, err)
	}
	_ = syncDir(filepath.Dir(path))
	return fmt.Errorf("%w: %s: %v (moved aside to %s)", ErrCorrupt, path, why, aside)
}
