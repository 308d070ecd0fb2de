package units

import (
	"context"
	"errors"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeConn is an in-memory systemd that records every call that changes
// something, in order.
type fakeConn struct {
	mu    sync.Mutex
	units map[string]*UnitState
	calls []string
	// fail maps a unit to the result its start/restart jobs get, with the
	// service Result it leaves behind ("failed"/"exit-code").
	fail    map[string][2]string
	changes chan UnitChange
	// onJob, when set, runs before each job (to observe the state mid-roll).
	onJob func(op JobOp, unit string)
}

var _ Conn = (*fakeConn)(nil)

func newFake() *fakeConn {
	return &fakeConn{units: map[string]*UnitState{}, fail: map[string][2]string{}, changes: make(chan UnitChange, 16)}
}

func (f *fakeConn) record(s string) {
	f.calls = append(f.calls, s)
}

func (f *fakeConn) unit(name string) *UnitState {
	u, ok := f.units[name]
	if !ok {
		u = &UnitState{Name: name, LoadState: "loaded", ActiveState: "inactive", SubState: "dead", UnitFileState: "disabled"}
		if templateFile(name) == "" {
			u.LoadState = "not-found"
		}
		f.units[name] = u
	}
	return u
}

func (f *fakeConn) Reload(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("reload")
	return nil
}

func (f *fakeConn) Job(_ context.Context, op JobOp, unit string) (string, error) {
	if f.onJob != nil {
		f.onJob(op, unit)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record(string(op) + " " + unit)
	u := f.unit(unit)
	if u.Masked() {
		return "", errors.New("org.freedesktop.systemd1.UnitMasked: Unit " + unit + " is masked.")
	}
	switch op {
	case Stop:
		u.ActiveState, u.SubState = "inactive", "dead"
		return "done", nil
	default:
		if r, ok := f.fail[unit]; ok {
			u.ActiveState, u.SubState, u.Result = "failed", "failed", r[1]
			return r[0], nil
		}
		u.ActiveState, u.SubState, u.Result = "active", "running", "success"
		u.ActiveEnter = time.Now()
		return "done", nil
	}
}

func (f *fakeConn) Enable(_ context.Context, units []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("enable " + strings.Join(units, " "))
	for _, n := range units {
		f.unit(n).UnitFileState = "enabled"
	}
	return nil
}

func (f *fakeConn) Disable(_ context.Context, units []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("disable " + strings.Join(units, " "))
	for _, n := range units {
		f.unit(n).UnitFileState = "disabled"
	}
	return nil
}

func (f *fakeConn) ResetFailed(_ context.Context, unit string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.unit(unit)
	if u.ActiveState == "failed" {
		f.record("reset-failed " + unit)
		u.ActiveState, u.SubState = "inactive", "dead"
	}
	return nil
}

func (f *fakeConn) States(_ context.Context, units []string) ([]UnitState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []UnitState
	for _, n := range units {
		out = append(out, *f.unit(n))
	}
	return out, nil
}

// List returns the units a real systemd keeps loaded: running, enabled
// (wanted by a target), failed or masked.
func (f *fakeConn) List(_ context.Context, patterns []string) ([]UnitState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []UnitState
	for n, u := range f.units {
		for _, p := range patterns {
			if ok, _ := path.Match(p, n); ok && (u.Running() || u.Enabled() || u.ActiveState == "failed" || u.Masked()) {
				out = append(out, UnitState{Name: n, LoadState: u.LoadState, ActiveState: u.ActiveState, SubState: u.SubState})
			}
		}
	}
	slices.SortFunc(out, func(a, b UnitState) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (f *fakeConn) Subscribe(ctx context.Context) (<-chan UnitChange, error) {
	out := make(chan UnitChange)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case c := <-f.changes:
				select {
				case out <- c:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

func (f *fakeConn) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func fakeManager(t *testing.T, f *fakeConn) *Manager {
	t.Helper()
	m, err := New(context.Background(), f, Options{Settle: time.Millisecond, Poll: time.Millisecond, RollTimeout: 5 * time.Second, Quiet: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func fakeTemplate(version string, instances ...string) Template {
	return Template{
		Name:      "app",
		Service:   ServiceSection{Type: "exec", ExecStart: "/usr/bin/app --port %i", Environment: map[string]string{"VERSION": version}},
		Install:   InstallSection{WantedBy: []string{"multi-user.target"}},
		Instances: instances,
	}
}

func TestSetFromNothingThenIdempotent(t *testing.T) {
	f := newFake()
	m := fakeManager(t, f)
	dir := t.TempDir()
	cfg := Config{UnitDir: dir, Templates: []Template{fakeTemplate("v1", "8080", "8081", "8082")}}
	if err := m.Set(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	calls := f.takeCalls()
	want := []string{"enable app@8080.service app@8081.service app@8082.service", "reload"}
	if d := cmp.Diff(want, calls[:2]); d != "" {
		t.Fatalf("first calls (-want +got):\n%s", d)
	}
	starts := slices.Sorted(slices.Values(calls[2:]))
	if d := cmp.Diff([]string{"start app@8080.service", "start app@8081.service", "start app@8082.service"}, starts); d != "" {
		t.Fatalf("starts (-want +got):\n%s", d)
	}
	b, err := os.ReadFile(filepath.Join(dir, "app@.service"))
	if err != nil || !ParseOwnership(b).Owned {
		t.Fatalf("template file: %v %q", err, b)
	}
	// The second pass changes nothing.
	if err := m.Set(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if c := f.takeCalls(); len(c) != 0 {
		t.Fatalf("second Set made calls: %q", c)
	}
	acts, err := m.Plan(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range acts {
		if a.Op != OpNoOp {
			t.Errorf("plan after Set: %+v", a)
		}
	}
}

func TestRollInOrderAndHalt(t *testing.T) {
	f := newFake()
	m := fakeManager(t, f)
	dir := t.TempDir()
	insts := []string{"1", "2", "3", "4"}
	if err := m.Set(context.Background(), Config{UnitDir: dir, Templates: []Template{fakeTemplate("v1", insts...)}}); err != nil {
		t.Fatal(err)
	}
	f.takeCalls()

	// Never more than one down: at every job, the others are active.
	f.onJob = func(op JobOp, unit string) {
		f.mu.Lock()
		defer f.mu.Unlock()
		for n, u := range f.units {
			if n != unit && u.ActiveState != "active" {
				t.Errorf("%s %s while %s is %s", op, unit, n, u.ActiveState)
			}
		}
	}
	v2 := Config{UnitDir: dir, Templates: []Template{fakeTemplate("v2", insts...)}}
	acts, err := m.Plan(context.Background(), v2)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := findAction(acts, "app@.service")
	if a.Op != OpUpdate || !slices.Contains(a.Diff, "-Environment=VERSION=v1") || !slices.Contains(a.Diff, "+Environment=VERSION=v2") {
		t.Fatalf("plan for the changed template: %+v", a)
	}
	if err := m.Set(context.Background(), v2); err != nil {
		t.Fatal(err)
	}
	want := []string{"reload", "restart app@1.service", "restart app@2.service", "restart app@3.service", "restart app@4.service"}
	if d := cmp.Diff(want, f.takeCalls()); d != "" {
		t.Fatalf("roll (-want +got):\n%s", d)
	}

	// v3 breaks instance 2: the roll stops there, 3 and 4 keep running v2.
	f.fail["app@2.service"] = [2]string{"failed", "exit-code"}
	v3 := Config{UnitDir: dir, Templates: []Template{fakeTemplate("v3", insts...)}}
	f.onJob = nil
	err = m.Set(context.Background(), v3)
	if err == nil || !strings.Contains(err.Error(), "halted at app@2.service") || !strings.Contains(err.Error(), "result exit-code") ||
		!strings.Contains(err.Error(), "not restarted: app@3.service app@4.service") {
		t.Fatalf("Set with a failing instance: %v", err)
	}
	want = []string{"reload", "restart app@1.service", "restart app@2.service"}
	if d := cmp.Diff(want, f.takeCalls()); d != "" {
		t.Fatalf("halted roll (-want +got):\n%s", d)
	}
	// The next pass tries to bring 2 back, and does not roll 3 or 4 while 2 is down.
	err = m.Set(context.Background(), v3)
	if err == nil || !strings.Contains(err.Error(), "halted before app@3.service") {
		t.Fatalf("second pass: %v", err)
	}
	want = []string{"reset-failed app@2.service", "start app@2.service"}
	if d := cmp.Diff(want, f.takeCalls()); d != "" {
		t.Fatalf("second pass (-want +got):\n%s", d)
	}
	// Once 2 starts again, the roll resumes where it stopped.
	delete(f.fail, "app@2.service")
	if err := m.Set(context.Background(), v3); err != nil {
		t.Fatal(err)
	}
	want = []string{"reset-failed app@2.service", "start app@2.service", "restart app@3.service", "restart app@4.service"}
	if d := cmp.Diff(want, f.takeCalls()); d != "" {
		t.Fatalf("resumed roll (-want +got):\n%s", d)
	}
}

func TestStartLimitHitIsPlain(t *testing.T) {
	f := newFake()
	m := fakeManager(t, f)
	f.fail["app@1.service"] = [2]string{"failed", "start-limit-hit"}
	err := m.Set(context.Background(), Config{UnitDir: t.TempDir(), Templates: []Template{fakeTemplate("v1", "1")}})
	if err == nil || !strings.Contains(err.Error(), "start-limit-hit") || !strings.Contains(err.Error(), "start app@1.service") {
		t.Fatalf("error: %v", err)
	}
}

func TestDriftCorrectAndReport(t *testing.T) {
	f := newFake()
	m := fakeManager(t, f)
	dir := t.TempDir()
	cfg := Config{UnitDir: dir, Templates: []Template{fakeTemplate("v1", "1", "2")}}
	if err := m.Set(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	f.takeCalls()
	f.units["app@2.service"].ActiveState = "inactive" // stopped by hand

	report := cfg
	report.Drift = DriftReport
	acts, _ := m.Plan(context.Background(), report)
	if a, _ := findAction(acts, "app@2.service"); a.Op != OpNoOp || !a.Drift {
		t.Fatalf("report plan: %+v", a)
	}
	if err := m.Set(context.Background(), report); err != nil {
		t.Fatal(err)
	}
	if c := f.takeCalls(); len(c) != 0 {
		t.Fatalf("report mode made calls: %q", c)
	}
	acts, _ = m.Plan(context.Background(), cfg)
	if a, _ := findAction(acts, "app@2.service"); a.Op != OpUpdate || !a.Drift || a.Reason != "stopped by hand" {
		t.Fatalf("plan: %+v", a)
	}
	if err := m.Set(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"start app@2.service"}, f.takeCalls()); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}

	// Masked by hand: reported, left alone, not an error.
	f.units["app@1.service"].LoadState = "masked"
	acts, _ = m.Plan(context.Background(), cfg)
	if a, _ := findAction(acts, "app@1.service"); a.Op != OpBlocked || !a.Drift {
		t.Fatalf("masked plan: %+v", a)
	}
	if err := m.Set(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if c := f.takeCalls(); len(c) != 0 {
		t.Fatalf("Set touched a masked instance: %q", c)
	}
}

func TestNotOwnedFileLeftAlone(t *testing.T) {
	f := newFake()
	m := fakeManager(t, f)
	dir := t.TempDir()
	p := filepath.Join(dir, "app@.service")
	foreign := []byte("[Service]\nExecStart=/bin/foreign %i\n")
	if err := os.WriteFile(p, foreign, 0o644); err != nil {
		t.Fatal(err)
	}
	err := m.Set(context.Background(), Config{UnitDir: dir, Templates: []Template{fakeTemplate("v1", "1")}})
	if !errors.Is(err, ErrNotOwned) {
		t.Fatalf("err = %v, want ErrNotOwned", err)
	}
	if b, _ := os.ReadFile(p); string(b) != string(foreign) {
		t.Fatal("foreign file rewritten")
	}
	if c := f.takeCalls(); len(c) != 0 {
		t.Fatalf("calls for a foreign template: %q", c)
	}
	// Nothing in the site: the foreign file is not removed either.
	if err := m.Set(context.Background(), Config{UnitDir: dir}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal("foreign file removed")
	}
}

func TestRemoveInstancesAndTemplate(t *testing.T) {
	f := newFake()
	m := fakeManager(t, f)
	dir := t.TempDir()
	if err := m.Set(context.Background(), Config{UnitDir: dir, Templates: []Template{fakeTemplate("v1", "1", "2", "3")}}); err != nil {
		t.Fatal(err)
	}
	f.takeCalls()
	if err := m.Set(context.Background(), Config{UnitDir: dir, Templates: []Template{fakeTemplate("v1", "1")}}); err != nil {
		t.Fatal(err)
	}
	calls := f.takeCalls()
	stops := slices.Sorted(slices.Values(calls[:2]))
	if d := cmp.Diff([]string{"stop app@2.service", "stop app@3.service"}, stops); d != "" {
		t.Fatalf("stops (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"disable app@2.service app@3.service", "reload"}, calls[2:]); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	if err := m.Set(context.Background(), Config{UnitDir: dir}); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"stop app@1.service", "disable app@1.service", "reload"}, f.takeCalls()); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	if _, err := os.Stat(filepath.Join(dir, "app@.service")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("template file left: %v", err)
	}
}

func TestHandEditedFileRestoredWithoutRoll(t *testing.T) {
	f := newFake()
	m := fakeManager(t, f)
	dir := t.TempDir()
	cfg := Config{UnitDir: dir, Templates: []Template{fakeTemplate("v1", "1", "2")}}
	if err := m.Set(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	f.takeCalls()
	p := filepath.Join(dir, "app@.service")
	orig, _ := os.ReadFile(p)
	if err := os.WriteFile(p, append(append([]byte{}, orig...), "Nice=5\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	acts, _ := m.Plan(context.Background(), cfg)
	if a, _ := findAction(acts, "app@.service"); a.Op != OpUpdate || !a.Drift || a.Reason != "edited by hand" || !slices.Contains(a.Diff, "-Nice=5") {
		t.Fatalf("plan: %+v", a)
	}
	if err := m.Set(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"reload"}, f.takeCalls()); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	if b, _ := os.ReadFile(p); string(b) != string(orig) {
		t.Fatal("not restored")
	}
	if err := m.Set(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if c := f.takeCalls(); len(c) != 0 {
		t.Fatalf("restore led to %q", c)
	}
}

func TestEventsOnlyForManagedInstances(t *testing.T) {
	f := newFake()
	m := fakeManager(t, f)
	cfg := Config{UnitDir: t.TempDir(), Templates: []Template{fakeTemplate("v1", "1")}}
	if err := m.Set(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	f.changes <- UnitChange{Name: "other.service", ActiveState: "inactive"}
	f.changes <- UnitChange{Name: "app@1.service", ActiveState: "active"}
	f.changes <- UnitChange{Name: "app@1.service", ActiveState: "failed", SubState: "failed"}
	select {
	case ev := <-m.Events():
		if ev.Unit != "app@1.service" || ev.ActiveState != "failed" {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	f.changes <- UnitChange{} // lost signals: resync
	select {
	case ev := <-m.Events():
		if ev.Unit != "" {
			t.Fatalf("event %+v, want a resync", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no resync event")
	}
	_ = m.Close()
	if _, ok := <-m.Events(); ok {
		t.Fatal("events channel open after Close")
	}
}

func (f *fakeConn) Brief(ctx context.Context, units []string) ([]UnitState, error) {
	return f.States(ctx, units)
}

func (f *fakeConn) Wanted(_ context.Context, _ []string) (map[string]bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]bool{}
	for n, u := range f.units {
		if u.Enabled() {
			out[n] = true
		}
	}
	return out, nil
}

func TestDropIns(t *testing.T) {
	f := newFake()
	m := fakeManager(t, f)
	dir := t.TempDir()
	d := DropIn{Unit: "haproxy.service", Name: "50-gitgw", Directives: []Directive{{Section: "Service", Key: "LimitNOFILE", Value: "100000"}}}
	cfg := Config{UnitDir: dir, DropIns: []DropIn{d}}
	acts, err := m.Plan(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := findAction(acts, "haproxy.service.d/50-gitgw.conf"); a.Op != OpCreate {
		t.Fatalf("plan: %+v", acts)
	}
	if err := m.Set(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"reload"}, f.takeCalls()); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	p := filepath.Join(dir, "haproxy.service.d", "50-gitgw.conf")
	if b, err := os.ReadFile(p); err != nil || !ParseOwnership(b).Owned {
		t.Fatalf("drop-in: %v %q", err, b)
	}
	// A drop-in someone else wrote beside it is left alone.
	other := filepath.Join(dir, "haproxy.service.d", "10-local.conf")
	if err := os.WriteFile(other, []byte("[Service]\nNice=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Set(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if c := f.takeCalls(); len(c) != 0 {
		t.Fatalf("second Set: %q", c)
	}
	if err := m.Set(context.Background(), Config{UnitDir: dir}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("drop-in left: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("foreign drop-in touched: %v", err)
	}
}

// TestProgressWhileJobRuns: Progress (the agent's watchdog heartbeat) is
// called while a slow job runs, not only between polls: a slow stop or
// start is progress.
func TestProgressWhileJobRuns(t *testing.T) {
	f := newFake()
	beats := make(chan struct{}, 1)
	m, err := New(context.Background(), f, Options{Settle: time.Millisecond, Poll: time.Millisecond, RollTimeout: 5 * time.Second, Quiet: time.Nanosecond,
		Progress: func() {
			select {
			case beats <- struct{}{}:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	var jobs, silent atomic.Int32
	f.onJob = func(JobOp, string) {
		jobs.Add(1)
		select { // a beat from before the job does not count
		case <-beats:
		default:
		}
		select {
		case <-beats:
		case <-time.After(5 * time.Second):
			silent.Add(1)
		}
	}
	if err := m.Set(context.Background(), Config{UnitDir: t.TempDir(), Templates: []Template{fakeTemplate("v1", "8080")}}); err != nil {
		t.Fatal(err)
	}
	if jobs.Load() == 0 || silent.Load() != 0 {
		t.Errorf("%d of %d jobs ran without progress", silent.Load(), jobs.Load())
	}
}

// TestFileWatchDropIn: a drop-in of the config edited by hand is an Event
// as it happens, even though its directory did not exist when watching
// began; gitgw's own writes and files outside the config are not.
func TestFileWatchDropIn(t *testing.T) {
	f := newFake()
	m := fakeManager(t, f)
	dir := t.TempDir()
	d := DropIn{Unit: "haproxy.service", Name: "50-gitgw", Directives: []Directive{{Section: "Service", Key: "LimitNOFILE", Value: "100000"}}}
	cfg := Config{UnitDir: dir, DropIns: []DropIn{d}}
	if _, err := m.Plan(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if err := m.Set(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "other.service"), []byte("[Service]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, d.FileName())
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, append(b, "LimitNOFILE=10\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-m.Events():
			if ev.File == "" {
				continue // a resync signal of the fake
			}
			if ev.File != d.FileName() || ev.Change != "edited" {
				t.Fatalf("first file event %+v, want %s edited", ev, d.FileName())
			}
			return
		case <-timeout:
			t.Fatal("no event for the drop-in edited by hand")
		}
	}
}
