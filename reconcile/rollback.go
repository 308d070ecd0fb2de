package reconcile

// The health gate. A commit can be valid, pass every guardrail and still
// break the node: servers that do not answer, a VRRP instance that flaps, a
// unit that does not start. After a new commit is applied the gate watches
// the node for a bake window; on a regression it applies the last good
// state again (the Runner persisted it) and pins the bad commit, so that the
// agent never applies it again by itself. A newer commit clears the pin.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/internal/statefile"
	"github.com/gitgw/gitgw/reconcile/plan"
	"github.com/gitgw/gitgw/units"
)

// Health is what the gate compares before and after an apply. Each driver
// that implements HealthProber fills its part.
type Health struct {
	// Servers is the number of servers taking traffic per proxy service:
	// UP, or NOCHECK (no check, never taken out).
	Servers map[string]int
	// Transitions counts VRRP state transitions per instance since the
	// engine started (compared over the window).
	Transitions map[string]uint64
	// Inactive lists unit instances that are not running as desired.
	Inactive []string
}

// HealthProber is implemented by drivers that can tell how healthy their
// part of the node is, in the terms of the desired state.
type HealthProber interface {
	ProbeHealth(ctx context.Context, desired *spec.Node) (Health, error)
}

var (
	_ HealthProber = (*ProxyDriver)(nil)
	_ HealthProber = (*VRRPDriver)(nil)
	_ HealthProber = (*UnitsDriver)(nil)
)

// ProbeHealth counts each service's UP servers in the proxy pool.
func (d *ProxyDriver) ProbeHealth(context.Context, *spec.Node) (Health, error) {
	h := Health{Servers: map[string]int{}}
	for _, svc := range d.pool.Stats().Services {
		n := 0
		for _, s := range svc.Servers {
			if s.Status.Serving() {
				n++
			}
		}
		h.Servers[svc.Name] = n
	}
	return h, nil
}

// ProbeHealth reads each instance's transition counter from the engine.
func (d *VRRPDriver) ProbeHealth(context.Context, *spec.Node) (Health, error) {
	h := Health{Transitions: map[string]uint64{}}
	for _, s := range d.e.Status() {
		h.Transitions[s.Name] = s.Counters.Transitions
	}
	return h, nil
}

// ProbeHealth lists the unit instances the site wants that are not active
// (stopped, failed, not yet started), as the units plan observes them.
func (d *UnitsDriver) ProbeHealth(ctx context.Context, desired *spec.Node) (Health, error) {
	var h Health
	if desired == nil {
		return h, nil
	}
	changes, err := d.Plan(ctx, desired)
	if err != nil {
		return h, fmt.Errorf("units: health: %w", err)
	}
	for _, c := range changes {
		if c.Kind != units.KindInstance || c.Action == plan.NoOp || c.Action == plan.Delete {
			continue
		}
		if st, ok := c.Before.(units.InstanceStatus); ok && st.Active == "active" {
			continue // enabled state or configuration differs; it runs
		}
		h.Inactive = append(h.Inactive, c.ID)
	}
	return h, nil
}

// probe merges the health of every driver that can tell.
func probe(ctx context.Context, drivers []Driver, desired *spec.Node) (Health, error) {
	h := Health{Servers: map[string]int{}, Transitions: map[string]uint64{}}
	var errs []error
	for _, d := range drivers {
		p, ok := d.(HealthProber)
		if !ok {
			continue
		}
		dh, err := p.ProbeHealth(ctx, desired)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		maps.Copy(h.Servers, dh.Servers)
		maps.Copy(h.Transitions, dh.Transitions)
		h.Inactive = append(h.Inactive, dh.Inactive...)
	}
	slices.Sort(h.Inactive)
	return h, errors.Join(errs...)
}

// Regressions compares the health before an apply, at the start and at
// the end of the bake window, against the new desired state and the
// site's bake settings. It returns one line per regression.
func Regressions(before, start, end Health, desired *spec.Node) []string {
	var out []string
	b := desired.Site.Bake
	for _, name := range slices.Sorted(maps.Keys(desired.Services)) {
		svc := desired.Services[name]
		if svc.Router() {
			continue // no servers of its own: its pools are counted
		}
		want := b.MinHealthyServers
		if want <= 0 {
			// As many as before, but no more than the commit keeps active:
			// draining or removing a server on purpose is no regression.
			want = min(before.Servers[name], activeServers(svc))
		}
		if got := end.Servers[name]; got < want {
			out = append(out, fmt.Sprintf("service %s: %d healthy servers, want at least %d", name, got, want))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(end.Transitions)) {
		n := end.Transitions[name]
		if s, ok := start.Transitions[name]; ok && s <= n {
			n -= s
		}
		if int(n) > b.MaxTransitions {
			out = append(out, fmt.Sprintf("vrrp %s: %d transitions during the bake window (flapping; at most %d)", name, n, b.MaxTransitions))
		}
	}
	if b.UnitsActive {
		for _, u := range end.Inactive {
			if !slices.Contains(before.Inactive, u) {
				out = append(out, fmt.Sprintf("unit %s is not active", u))
			}
		}
	}
	return out
}

func activeServers(s spec.Service) int {
	n := 0
	for _, srv := range s.Servers {
		if !srv.Backup && !srv.Drain && !srv.Disabled && srv.Weight != 0 {
			n++
		}
	}
	return n
}

// Pin is a commit the health gate rolled back; the agent refuses it until a
// different commit arrives.
type Pin struct {
	Commit string    `json:"commit"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

const pinFile = "pinned.json"

// LoadPin reads the pin from the state dir; (nil, nil) when there is none.
// A corrupt pin (empty, truncated, no commit) is moved aside and reported
// with an error wrapping statefile.ErrCorrupt.
func LoadPin(dir string) (*Pin, error) {
	var p Pin
	found, err := statefile.Load(filepath.Join(dir, pinFile), func(b []byte) error {
		if err := json.Unmarshal(b, &p); err != nil {
			return err
		}
		if p.Commit == "" {
			return errors.New("no commit")
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reconcile: pin: %w", err)
	}
	if !found {
		return nil, nil
	}
	return &p, nil
}

// ErrPinned matches the error of a revision refused because it is pinned.
var ErrPinned = errors.New("commit pinned")

// HealthGateOptions configure a HealthGate.
type HealthGateOptions struct {
	Runner *Runner
	// Drivers are probed for health (those implementing HealthProber);
	// default the Runner's. Give the drivers themselves when the Runner
	// holds wrappers.
	Drivers []Driver
	// StateDir holds the pin (pinned.json); empty keeps it in memory.
	StateDir string
	// Window is the bake window when the site sets none; 0 turns the gate
	// off unless the site sets one.
	Window time.Duration
	Logger *slog.Logger
}

// HealthGate watches the node after each new commit and rolls back a
// regression (Bake); it refuses a pinned commit (Admit) and takes the
// health before an apply (Before). A Runner given RunnerOptions.Health
// owns one and runs the three as steps of its pass.
type HealthGate struct {
	o   HealthGateOptions
	log *slog.Logger

	mu     sync.Mutex
	pin    *Pin
	before *Health
}

// NewHealthGate returns a gate, reading the pin from the state dir.
func NewHealthGate(o HealthGateOptions) (*HealthGate, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	g := &HealthGate{o: o, log: o.Logger.With("component", "healthgate")}
	if o.StateDir != "" {
		p, err := LoadPin(o.StateDir)
		switch {
		case errors.Is(err, statefile.ErrCorrupt):
			// The pinned commit is unknown: the health gate still bakes
			// every new commit, and rolls a bad one back again.
			logCorrupt(g.log, pinFile, "no commit is pinned", err)
		case err != nil:
			return nil, err
		}
		g.pin = p
	}
	return g, nil
}

// Pinned returns the pinned commit, if any.
func (g *HealthGate) Pinned() *Pin {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pin
}

// Admit refuses the pinned commit; any other commit clears the pin.
func (g *HealthGate) Admit(_ context.Context, rev Revision, _ *LastGood) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pin == nil {
		return nil
	}
	if g.pin.Commit == rev.Commit {
		return fmt.Errorf("%w: %s was rolled back by the health gate at %s (%s); push a newer commit",
			ErrPinned, shortCommit(rev.Commit), g.pin.At.Format(time.RFC3339), g.pin.Reason)
	}
	g.log.Info("a newer commit clears the pin", "pinned", shortCommit(g.pin.Commit), "commit", shortCommit(rev.Commit))
	g.pin = nil
	if g.o.StateDir != "" {
		if err := os.Remove(filepath.Join(g.o.StateDir, pinFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("reconcile: clear pin: %w", err)
		}
	}
	return nil
}

// Before records the node's health under the state about to be replaced;
// call it just before a new commit is applied.
func (g *HealthGate) Before(ctx context.Context, prev *LastGood) {
	var desired *spec.Node
	if prev != nil {
		desired = prev.Desired
	}
	h, err := probe(ctx, g.drivers(), desired)
	if err != nil {
		g.log.Warn("health before apply", "err", err)
	}
	g.mu.Lock()
	g.before = &h
	g.mu.Unlock()
}

func (g *HealthGate) drivers() []Driver {
	if g.o.Drivers != nil {
		return g.o.Drivers
	}
	return g.o.Runner.Drivers()
}

// window is the bake window for desired.
func (g *HealthGate) window(desired *spec.Node) time.Duration {
	if desired != nil && desired.Site.Bake.Window != 0 {
		return desired.Site.Bake.Window.D()
	}
	return g.o.Window
}

// Bake watches the node for the bake window after res applied a new
// commit. On a regression it restores prev, pins the commit and returns a
// RolledBack result; otherwise it returns res unchanged.
func (g *HealthGate) Bake(ctx context.Context, prev *LastGood, res Result) Result {
	lg := g.o.Runner.LastGood()
	if prev == nil || lg == nil || lg.Commit != res.AppliedCommit {
		return res
	}
	desired := lg.Desired
	window := g.window(desired)
	if window <= 0 {
		return res
	}
	g.mu.Lock()
	before := g.before
	g.before = nil
	g.mu.Unlock()
	drivers := g.drivers()
	start, _ := probe(ctx, drivers, desired)
	if before == nil {
		before = &start
	}
	g.log.Info("baking", "commit", shortCommit(res.AppliedCommit), "window", window)
	t := time.NewTimer(window)
	select {
	case <-ctx.Done():
		t.Stop()
		return res
	case <-t.C:
	}
	end, err := probe(ctx, drivers, desired)
	if err != nil {
		g.log.Warn("health after apply", "err", err)
	}
	bad := Regressions(*before, start, end, desired)
	if len(bad) == 0 {
		g.log.Info("health gate passed", "commit", shortCommit(res.AppliedCommit), "window", window)
		return res
	}
	reason := strings.Join(bad, "; ")
	g.log.Error("health gate failed; rolling back", "commit", shortCommit(res.AppliedCommit), "to", shortCommit(prev.Commit), "reason", reason)
	rb := g.o.Runner.Restore(ctx, prev)
	if err := g.setPin(Pin{Commit: res.AppliedCommit, Reason: reason, At: time.Now().UTC()}); err != nil {
		g.log.Error("cannot persist the pin", "err", err)
	}
	out := res
	out.Outcome = RolledBack
	out.AppliedCommit = rb.AppliedCommit
	out.Err = fmt.Errorf("health gate: %s; rolled back to %s, %s pinned", reason, shortCommit(prev.Commit), shortCommit(res.AppliedCommit))
	if rb.Err != nil {
		out.Err = errors.Join(out.Err, fmt.Errorf("rollback: %w", rb.Err))
	}
	out.Applied = append(out.Applied, rb.Applied...)
	out.Remaining = rb.Remaining
	out.Plan = rb.Plan
	out.Duration += rb.Duration
	return out
}

func (g *HealthGate) setPin(p Pin) error {
	g.mu.Lock()
	g.pin = &p
	g.mu.Unlock()
	if g.o.StateDir == "" {
		return nil
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	return statefile.Write(filepath.Join(g.o.StateDir, pinFile), b, 0o600)
}

// Restore applies a last good state again (a rollback) and remembers it as
// the last good state.
func (r *Runner) Restore(ctx context.Context, lg *LastGood) Result {
	r.passMu.Lock()
	defer r.passMu.Unlock()
	// Everything that differs from lg is undone, whatever the drift modes
	// say: the rollback is gitgw's own change, not someone else's.
	res := r.converge(ctx, lg.Desired, lg.Commit, false)
	res.Outcome, res.AppliedCommit = Applied, lg.Commit
	if res.Err != nil {
		res.Outcome = Failed
	}
	// The restored state is the last good one again, failed or not: it is
	// what the node must converge to.
	r.remember(lg.Commit, lg.Desired)
	lvl := slog.LevelInfo
	if res.Err != nil {
		lvl = slog.LevelError // the last good state is not fully back
	}
	r.log.Log(ctx, lvl, "rolled back", "commit", lg.Commit, "applied", len(res.Applied), "remaining", len(res.Remaining), "err", res.Err)
	return res
}

// Bake is the pass's bake step, run by the agent after a pass that
// applied a new commit (prev is the last good state before it): the
// health gate watches the node for the bake window and rolls a regression
// back (see HealthGate.Bake). Without a gate it returns res.
func (r *Runner) Bake(ctx context.Context, prev *LastGood, res Result) Result {
	if r.gate == nil {
		return res
	}
	return r.gate.Bake(ctx, prev, res)
}
