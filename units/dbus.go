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
	// dial opens another raw connection the same way, for signals.
	dial func() (*godbus.Conn, error)
	// bus: connected through a bus daemon (signals need AddMatch), not
	// straight to systemd.
	bus bool
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
	if socketPath != "" {
		return connect(privateDialer(ctx, socketPath), false, socketPath)
	}
	if !booted(runtimeDir) {
		return nil, ErrNoSystemd
	}
	c, err := DialBus(ctx, "")
	if err == nil || os.Geteuid() != 0 {
		return c, err
	}
	c, perr := connect(privateDialer(ctx, "/run/systemd/private"), false, "/run/systemd/private")
	if perr != nil {
		return nil, fmt.Errorf("units: connect to systemd: system bus: %v; /run/systemd/private: %w", errors.Unwrap(err), errors.Unwrap(perr))
	}
	return c, nil
}

// ErrNoSystemd says systemd is not this host's service manager (a
// container, a laptop with another init): there is nothing to drive, and
// the site's units are listed as pending rather than failing every pass.
var ErrNoSystemd = errors.New("systemd is not running on this host (no /run/systemd/system), so the units driver is off")

// runtimeDir is where systemd marks that it runs.
const runtimeDir = "/run/systemd/system"

// booted is sd_booted(3): systemd creates the directory when it starts as
// the service manager.
func booted(dir string) bool {
	st, err := os.Stat(dir)
	return err == nil && st.IsDir()
}

// DialBus connects to systemd through a bus daemon: socketPath, or the
// system bus when empty. ctx bounds the connection's lifetime.
func DialBus(ctx context.Context, socketPath string) (*DBusConn, error) {
	dial := func() (*godbus.Conn, error) {
		var bc *godbus.Conn
		var err error
		if socketPath == "" {
			bc, err = godbus.SystemBusPrivate(godbus.WithContext(ctx))
		} else {
			bc, err = godbus.Dial("unix:path="+socketPath, godbus.WithContext(ctx))
		}
		if err != nil {
			return nil, err
		}
		if err := bc.Auth([]godbus.Auth{godbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
			bc.Close()
			return nil, err
		}
		if err := bc.Hello(); err != nil {
			bc.Close()
			return nil, err
		}
		return bc, nil
	}
	return connect(dial, true, cmpOr(socketPath, "system bus"))
}

func connect(dial func() (*godbus.Conn, error), bus bool, where string) (*DBusConn, error) {
	c, err := sddbus.NewConnection(dial)
	if err != nil {
		return nil, fmt.Errorf("units: connect to systemd (%s): %w", where, err)
	}
	return &DBusConn{c: c, dial: dial, bus: bus, parallel: 64}, nil
}

// privateDialer talks straight to systemd (or a proxy in front of it):
// EXTERNAL auth with our uid, no Hello (there is no bus daemon).
func privateDialer(ctx context.Context, path string) func() (*godbus.Conn, error) {
	return func() (*godbus.Conn, error) {
		bc, err := godbus.Dial("unix:path="+path, godbus.WithContext(ctx))
		if err != nil {
			return nil, err
		}
		if err := bc.Auth([]godbus.Auth{godbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
			bc.Close()
			return nil, err
		}
		return bc, nil
	}
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

// listByName asks systemd for the load/active/sub states of units in one
// ListUnitsByNames call, indexed by unit name.
func (d *DBusConn) listByName(ctx context.Context, units []string) (map[string]sddbus.UnitStatus, error) {
	list, err := d.c.ListUnitsByNamesContext(ctx, units)
	if err != nil {
		return nil, fmt.Errorf("units: list units by name: %w", err)
	}
	byName := make(map[string]sddbus.UnitStatus, len(list))
	for _, u := range list {
		byName[u.Name] = u
	}
	return byName, nil
}

// States reads the units' states: load/active/sub for all of them in one
// ListUnitsByNames call, then the few other properties one Get at a time,
// a bounded number in flight (a GetAll of the Unit interface costs ~20
// times a Get on systemd's side: 500 units would take seconds).
func (d *DBusConn) States(ctx context.Context, units []string) ([]UnitState, error) {
	out := make([]UnitState, len(units))
	if len(units) == 0 {
		return out, nil
	}
	byName, err := d.listByName(ctx, units)
	if err != nil {
		return nil, err
	}
	errs := make([]error, len(units))
	sem := make(chan struct{}, max(d.parallel, 1))
	var wg sync.WaitGroup
	// NeedDaemonReload follows the fragment (the template file): ask one
	// running instance per template and give its answer to the others.
	reloadRep := map[string]int{}
	for i, u := range units {
		st := byName[u]
		out[i] = UnitState{Name: u, LoadState: st.LoadState, ActiveState: st.ActiveState, SubState: st.SubState}
		if st.LoadState == "not-found" || st.Name == "" {
			continue
		}
		askReload := true
		if tf := templateFile(u); tf != "" && st.ActiveState != "inactive" {
			if _, ok := reloadRep[tf]; ok {
				askReload = false
			} else {
				reloadRep[tf] = i
			}
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = d.details(ctx, &out[i], askReload)
		}()
	}
	wg.Wait()
	for i := range out {
		if rep, ok := reloadRep[templateFile(out[i].Name)]; ok && out[i].ActiveState != "inactive" {
			out[i].NeedDaemonReload = out[rep].NeedDaemonReload
		}
	}
	return out, errors.Join(errs...)
}

// Brief returns load/active/sub of the units in one call (and the Result
// of failed ones): what polls need.
func (d *DBusConn) Brief(ctx context.Context, units []string) ([]UnitState, error) {
	out := make([]UnitState, len(units))
	if len(units) == 0 {
		return out, nil
	}
	byName, err := d.listByName(ctx, units)
	if err != nil {
		return nil, err
	}
	for i, u := range units {
		st := byName[u]
		out[i] = UnitState{Name: u, LoadState: st.LoadState, ActiveState: st.ActiveState, SubState: st.SubState}
		if st.ActiveState == "failed" {
			if v, err := d.c.GetServicePropertyContext(ctx, u, "Result"); err == nil {
				out[i].Result, _ = v.Value.Value().(string)
			}
		}
	}
	return out, nil
}

func (d *DBusConn) details(ctx context.Context, s *UnitState, askReload bool) error {
	get := func(iface, prop string) (any, error) {
		var v *sddbus.Property
		var err error
		if iface == "Service" {
			v, err = d.c.GetServicePropertyContext(ctx, s.Name, prop)
		} else {
			v, err = d.c.GetUnitPropertyContext(ctx, s.Name, prop)
		}
		if err != nil {
			return nil, fmt.Errorf("units: %s of %s: %w", prop, s.Name, err)
		}
		return v.Value.Value(), nil
	}
	// UnitFileState is not asked: for an unloaded instance it costs systemd
	// a scan of every .wants directory, and the unit is loaded again on
	// each ask. Observe learns "enabled" from the targets' Wants.
	if s.ActiveState == "inactive" {
		return nil
	}
	var v any
	var err error
	if askReload {
		if v, err = get("Unit", "NeedDaemonReload"); err != nil {
			return err
		}
		s.NeedDaemonReload, _ = v.(bool)
	}
	if s.LoadState != "loaded" || !strings.HasSuffix(s.Name, ".service") {
		return nil
	}
	{
		if v, err = get("Unit", "ActiveEnterTimestamp"); err != nil {
			return err
		}
		if us, _ := v.(uint64); us > 0 {
			s.ActiveEnter = time.UnixMicro(int64(us))
		}
		if v, err = get("Service", "NRestarts"); err != nil {
			return err
		}
		s.NRestarts, _ = v.(uint32)
	}
	if s.ActiveState == "failed" {
		if v, err = get("Service", "Result"); err != nil {
			return err
		}
		s.Result, _ = v.(string)
	}
	return nil
}

// Wanted returns the units the targets want or require, in systemd's
// loaded view (current after daemon-reload, which enable, disable and
// systemctl do).
func (d *DBusConn) Wanted(ctx context.Context, targets []string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, t := range targets {
		for _, prop := range []string{"Wants", "Requires"} {
			v, err := d.c.GetUnitPropertyContext(ctx, t, prop)
			if err != nil {
				return nil, fmt.Errorf("units: %s of %s: %w", prop, t, err)
			}
			names, _ := v.Value.Value().([]string)
			for _, n := range names {
				out[n] = true
			}
		}
	}
	return out, nil
}

// List returns the loaded units matching the patterns (with their
// load/active/sub states), and the unit files matching them that are not
// loaded (LoadState empty, UnitFileState from the file list: a masked
// instance is a unit file of its own).
func (d *DBusConn) List(ctx context.Context, patterns []string) ([]UnitState, error) {
	loaded, err := d.c.ListUnitsByPatternsContext(ctx, nil, patterns)
	if err != nil {
		return nil, fmt.Errorf("units: list units %v: %w", patterns, err)
	}
	files, err := d.c.ListUnitFilesByPatternsContext(ctx, nil, patterns)
	if err != nil {
		return nil, fmt.Errorf("units: list unit files %v: %w", patterns, err)
	}
	var out []UnitState
	seen := map[string]bool{}
	for _, u := range loaded {
		seen[u.Name] = true
		out = append(out, UnitState{Name: u.Name, LoadState: u.LoadState, ActiveState: u.ActiveState, SubState: u.SubState})
	}
	for _, f := range files {
		n := f.Path
		if i := strings.LastIndexByte(n, '/'); i >= 0 {
			n = n[i+1:]
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, UnitState{Name: n, UnitFileState: f.Type})
		}
	}
	slices.SortFunc(out, func(a, b UnitState) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Subscribe opens a connection of its own for signals, calls systemd's
// Subscribe() on it (required on the system bus; the private socket sends
// signals without it) and forwards the PropertiesChanged of units until
// ctx ends. (go-systemd's subscriber is not used: it reads its callback
// fields without a lock, a data race under -race.)
func (d *DBusConn) Subscribe(ctx context.Context) (<-chan UnitChange, error) {
	bc, err := d.dial()
	if err != nil {
		return nil, fmt.Errorf("units: subscribe: connect: %w", err)
	}
	// Straight to systemd there is no bus daemon to take a match (and every
	// signal arrives anyway).
	for _, match := range []string{
		"type='signal',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',arg0='org.freedesktop.systemd1.Unit'",
		"type='signal',interface='org.freedesktop.systemd1.Manager',member='UnitFilesChanged'",
		"type='signal',interface='org.freedesktop.systemd1.Manager',member='Reloading'",
	} {
		if err := bc.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.AddMatch", 0, match).Err; err != nil && d.bus {
			bc.Close()
			return nil, fmt.Errorf("units: subscribe: add match: %w", err)
		}
	}
	obj := bc.Object("org.freedesktop.systemd1", "/org/freedesktop/systemd1")
	if err := obj.CallWithContext(ctx, "org.freedesktop.systemd1.Manager.Subscribe", 0).Err; err != nil {
		bc.Close()
		return nil, fmt.Errorf("units: subscribe: %w", err)
	}
	sigs := make(chan *godbus.Signal, 4096)
	bc.Signal(sigs)
	out := make(chan UnitChange, 256)
	go func() {
		defer close(out)
		defer bc.Close()
		for {
			var ch UnitChange
			select {
			case <-ctx.Done():
				return
			case sig, ok := <-sigs:
				if !ok {
					ch = UnitChange{} // connection lost: resync
					select {
					case out <- ch:
					case <-ctx.Done():
					}
					return
				}
				c, ok := unitChange(sig)
				if !ok {
					continue
				}
				ch = c
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

// unitChange decodes a PropertiesChanged signal of a unit object. Unit
// files enabled, disabled or masked (UnitFilesChanged), and the end of a
// daemon-reload, change no unit property: they become a resync (empty
// Name). A mask by hand is seen this way.
func unitChange(sig *godbus.Signal) (UnitChange, bool) {
	switch sig.Name {
	case "org.freedesktop.systemd1.Manager.UnitFilesChanged":
		return UnitChange{}, true
	case "org.freedesktop.systemd1.Manager.Reloading":
		if len(sig.Body) == 1 && sig.Body[0] == false {
			return UnitChange{}, true
		}
		return UnitChange{}, false
	}
	if sig.Name != "org.freedesktop.DBus.Properties.PropertiesChanged" || len(sig.Body) < 2 {
		return UnitChange{}, false
	}
	if iface, _ := sig.Body[0].(string); iface != "org.freedesktop.systemd1.Unit" {
		return UnitChange{}, false
	}
	const prefix = "/org/freedesktop/systemd1/unit/"
	p, ok := strings.CutPrefix(string(sig.Path), prefix)
	if !ok {
		return UnitChange{}, false
	}
	ch := UnitChange{Name: unescapePath(p)}
	changed, _ := sig.Body[1].(map[string]godbus.Variant)
	for k, v := range changed {
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
	return ch, true
}

// unescapePath undoes systemd's bus path escaping ("_40" is "@").
func unescapePath(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '_' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
