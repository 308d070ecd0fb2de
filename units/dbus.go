package units

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// DBusConn is the real Conn: go-systemd over the system bus or systemd's
// private socket.
type DBusConn struct {
	c *sddbus.Conn
	// parallel bounds concurrent property reads in States.
	parallel int
}

var _ Conn = (*DBusConn)(nil)

// Dial connects to systemd. ctx bounds the connection's lifetime (as in
// go-systemd): cancel it, or call Close, to disconnect.
//
// socketPath empty: the system bus, falling back to /run/systemd/private
// when that fails and we are root. Otherwise socketPath is a systemd
// private socket (or a proxy in front of one, as test/systemd provides):
// EXTERNAL auth, no Hello.
func Dial(ctx context.Context, socketPath string) (*DBusConn, error) {
	var (
		c   *sddbus.Conn
		err error
	)
	if socketPath == "" {
		c, err = sddbus.NewWithContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("units: connect to systemd (system bus, then /run/systemd/private): %w", err)
		}
	} else {
		c, err = sddbus.NewConnection(func() (*godbus.Conn, error) {
			bc, err := godbus.Dial("unix:path="+socketPath, godbus.WithContext(ctx))
			if err != nil {
				return nil, err
			}
			if err := bc.Auth([]godbus.Auth{godbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
				bc.Close()
				return nil, err
			}
			return bc, nil
		})
		if err != nil {
			return nil, fmt.Errorf("units: connect to systemd at %s: %w", socketPath, err)
		}
	}
	return &DBusConn{c: c, parallel: 16}, nil
}

// Close disconnects.
func (d *DBusConn) Close() error {
	d.c.Close()
	return nil
}

// Reload is daemon-reload.
func (d *DBusConn) Reload(ctx context.Context) error {
	if err := d.c.ReloadContext(ctx); err != nil {
		return fmt.Errorf("units: daemon-reload: %w", err)
	}
	return nil
}

// Job queues a job and waits for its result on a buffered channel (go-systemd
// writes it while holding its lock: an unbuffered, undrained channel would
// block every later job).
func (d *DBusConn) Job(ctx context.Context, op JobOp, unit string) (string, error) {
	ch := make(chan string, 1)
	var err error
	switch op {
	case Start:
		_, err = d.c.StartUnitContext(ctx, unit, "replace", ch)
	case Stop:
		_, err = d.c.StopUnitContext(ctx, unit, "replace", ch)
	case Restart:
		_, err = d.c.RestartUnitContext(ctx, unit, "replace", ch)
	default:
		return "", fmt.Errorf("units: unknown job %q", op)
	}
	if err != nil {
		return "", fmt.Errorf("units: %s %s: %w", op, unit, err)
	}
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return "", fmt.Errorf("units: %s %s: waiting for the job: %w", op, unit, ctx.Err())
	}
}

// Enable enables unit files (instances of templates included).
func (d *DBusConn) Enable(ctx context.Context, units []string) error {
	if _, _, err := d.c.EnableUnitFilesContext(ctx, units, false, false); err != nil {
		return fmt.Errorf("units: enable %s: %w", strings.Join(units, " "), err)
	}
	return nil
}

// Disable disables unit files.
func (d *DBusConn) Disable(ctx context.Context, units []string) error {
	if _, err := d.c.DisableUnitFilesContext(ctx, units, false); err != nil {
		return fmt.Errorf("units: disable %s: %w", strings.Join(units, " "), err)
	}
	return nil
}

// ResetFailed clears the failed state and the start rate counter.
func (d *DBusConn) ResetFailed(ctx context.Context, unit string) error {
	if err := d.c.ResetFailedUnitContext(ctx, unit); err != nil {
		return fmt.Errorf("units: reset-failed %s: %w", unit, err)
	}
	return nil
}

// States reads each unit's properties, a bounded number at a time (D-Bus
// calls pipeline on one connection).
func (d *DBusConn) States(ctx context.Context, units []string) ([]UnitState, error) {
	out := make([]UnitState, len(units))
	errs := make([]error, len(units))
	sem := make(chan struct{}, max(d.parallel, 1))
	var wg sync.WaitGroup
	for i, u := range units {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i], errs[i] = d.state(ctx, u)
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func (d *DBusConn) state(ctx context.Context, unit string) (UnitState, error) {
	p, err := d.c.GetUnitPropertiesContext(ctx, unit)
	if err != nil {
		return UnitState{Name: unit}, fmt.Errorf("units: properties of %s: %w", unit, err)
	}
	s := UnitState{
		Name:          unit,
		LoadState:     str(p["LoadState"]),
		ActiveState:   str(p["ActiveState"]),
		SubState:      str(p["SubState"]),
		UnitFileState: str(p["UnitFileState"]),
		FragmentPath:  str(p["FragmentPath"]),
	}
	s.NeedDaemonReload, _ = p["NeedDaemonReload"].(bool)
	if us, ok := p["ActiveEnterTimestamp"].(uint64); ok && us > 0 {
		s.ActiveEnter = time.UnixMicro(int64(us))
	}
	if s.LoadState != "loaded" || !strings.HasSuffix(unit, ".service") {
		return s, nil
	}
	if v, err := d.c.GetServicePropertyContext(ctx, unit, "NRestarts"); err == nil {
		s.NRestarts, _ = v.Value.Value().(uint32)
	}
	if v, err := d.c.GetServicePropertyContext(ctx, unit, "Result"); err == nil {
		s.Result, _ = v.Value.Value().(string)
	}
	return s, nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// List returns loaded units and unit files matching the patterns.
func (d *DBusConn) List(ctx context.Context, patterns []string) ([]string, error) {
	loaded, err := d.c.ListUnitsByPatternsContext(ctx, nil, patterns)
	if err != nil {
		return nil, fmt.Errorf("units: list units %v: %w", patterns, err)
	}
	files, err := d.c.ListUnitFilesByPatternsContext(ctx, nil, patterns)
	if err != nil {
		return nil, fmt.Errorf("units: list unit files %v: %w", patterns, err)
	}
	var out []string
	for _, u := range loaded {
		out = append(out, u.Name)
	}
	for _, f := range files {
		n := f.Path
		if i := strings.LastIndexByte(n, '/'); i >= 0 {
			n = n[i+1:]
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Subscribe calls systemd's Subscribe() (required on the system bus) and
// forwards PropertiesChanged of units until ctx ends.
func (d *DBusConn) Subscribe(ctx context.Context) (<-chan UnitChange, error) {
	if err := d.c.Subscribe(); err != nil {
		return nil, fmt.Errorf("units: subscribe: %w", err)
	}
	updates := make(chan *sddbus.PropertiesUpdate, 4096)
	errCh := make(chan error, 16)
	d.c.SetPropertiesSubscriber(updates, errCh)
	out := make(chan UnitChange, 256)
	go func() {
		defer close(out)
		defer d.c.SetPropertiesSubscriber(nil, nil)
		for {
			var ch UnitChange
			select {
			case <-ctx.Done():
				return
			case u := <-updates:
				ch = UnitChange{Name: u.UnitName}
				for k, v := range u.Changed {
					s, _ := v.Value().(string)
					switch k {
					case "ActiveState":
						ch.ActiveState = s
					case "SubState":
						ch.SubState = s
					case "LoadState":
						ch.LoadState = s
					}
				}
			case <-errCh:
				// The update channel overflowed: tell the consumer to resync.
				ch = UnitChange{}
			}
			select {
			case out <- ch:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
