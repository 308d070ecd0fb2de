package nic

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Set brings every knob of cfg to its desired value and returns the state
// reached. It is idempotent: it observes first and writes only the knobs
// that differ, so a second call with the same config writes nothing. Every
// failure — a missing interface, a CPU that is not online, a write the
// kernel refuses (named with its file and value), a value that does not
// read back as written — is collected and returned with errors.Join; the
// other knobs are still set.
func (t *Tuner) Set(ctx context.Context, cfg Config) (State, error) {
	return t.SetSelected(ctx, cfg, nil)
}

// SetSelected is Set restricted to the changes keep accepts (nil keeps
// all): a caller that only reports drift on some knobs leaves them as they
// are. Skipped knobs are neither written nor counted as failures.
func (t *Tuner) SetSelected(ctx context.Context, cfg Config, keep func(Change) bool) (State, error) {
	st, err := t.Observe(ctx, cfg)
	if err != nil {
		return State{}, err
	}
	var errs []error
	wrote := map[string]Change{}
	for _, c := range Pending(Diff(cfg, st)) {
		if keep != nil && !keep(c) {
			continue
		}
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("nic: set: %w", err))
			break
		}
		if c.Err != nil {
			errs = append(errs, c.Err)
			continue
		}
		if err := writeValue(c.Path, c.Write); err != nil {
			hint := ""
			if c.Kind == KindIRQAffinity && (errors.Is(err, unix.EIO) || errors.Is(err, unix.EPERM)) {
				hint = " (a kernel-managed IRQ: its affinity cannot be set by hand)"
			}
			errs = append(errs, fmt.Errorf("nic: %s %s: %w%s", c.Kind, c.ID, err, hint))
			continue
		}
		t.log().Info("knob set", "kind", c.Kind, "id", c.ID, "file", c.Path, "from", c.Current, "to", c.Desired)
		wrote[c.Kind+" "+c.ID] = c
	}
	if len(wrote) == 0 {
		return st, errors.Join(errs...)
	}
	after, err := t.Observe(ctx, cfg)
	if err != nil {
		return st, errors.Join(append(errs, err)...)
	}
	for _, c := range Diff(cfg, after) {
		if w, ok := wrote[c.Kind+" "+c.ID]; ok && c.Differs {
			errs = append(errs, fmt.Errorf("nic: %s %s: wrote %q to %s but it reads back %q", c.Kind, c.ID, w.Write, c.Path, c.Current))
		}
	}
	return after, errors.Join(errs...)
}

// writeValue writes one value to a kernel file in a single write(2), the
// way sysfs and /proc/sys expect it. The error names the file and the
// value, and wraps the kernel's errno (EOVERFLOW, EINVAL, ENOENT, …).
func writeValue(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, unwrapPath(err))
	}
	_, werr := f.Write([]byte(value + "\n"))
	if werr == nil {
		werr = truncateIfPlainFile(f, int64(len(value)+1))
	}
	cerr := f.Close()
	if werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, unwrapPath(werr))
	}
	return nil
}

// truncateIfPlainFile cuts a regular file on an ordinary filesystem (a
// fake sysfs tree in tests) to what was just written; sysfs and procfs
// files take the write as a whole and are left alone.
func truncateIfPlainFile(f *os.File, n int64) error {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &sfs); err != nil {
		return nil
	}
	switch int64(sfs.Type) {
	case unix.SYSFS_MAGIC, unix.PROC_SUPER_MAGIC:
		return nil
	}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		return f.Truncate(n)
	}
	return nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
