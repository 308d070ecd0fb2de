package reconcile

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile/plan"
)

func TestHeartbeatFresh(t *testing.T) {
	now := time.Unix(1000, 0)
	h := NewHeartbeat(func() time.Time { return now })
	for _, c := range []struct {
		name    string
		advance time.Duration
		beat    bool
		within  time.Duration
		want    bool
	}{
		{"new", 0, false, time.Second, true},
		{"at the bound", time.Second, false, time.Second, true},
		{"past the bound", time.Nanosecond, false, time.Second, false},
		{"beaten again", 0, true, time.Second, true},
		{"long after", 10 * time.Second, false, time.Second, false},
		{"then beaten", time.Second, true, 0, true},
	} {
		now = now.Add(c.advance)
		if c.beat {
			h.Beat()
		}
		if got := h.Fresh(c.within); got != c.want {
			t.Errorf("%s: Fresh(%v) = %v, want %v", c.name, c.within, got, c.want)
		}
	}
	var none *Heartbeat
	none.Beat() // a nil heartbeat ignores beats
}

// stuckDriver's Apply blocks until release is closed: a pass stuck in a
// driver (a hung netlink or D-Bus call).
type stuckDriver struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
	applied bool
}

func (d *stuckDriver) Name() string { return "proxy" }

func (d *stuckDriver) Plan(context.Context, *spec.Node) ([]plan.Change, error) {
	a := plan.Update
	if d.applied {
		a = plan.NoOp
	}
	return []plan.Change{{Kind: "node", ID: "gw1", Action: a}}, nil
}

func (d *stuckDriver) Apply(ctx context.Context, _ *spec.Node) error {
	d.once.Do(func() { close(d.entered) })
	select {
	case <-d.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	d.applied = true
	return nil
}

type fixedSource struct{ rev Revision }

func (s fixedSource) Sync(context.Context) (Revision, error) { return s.rev, nil }
func (s fixedSource) Changes() <-chan struct{}               { return nil }
func (s fixedSource) Describe() string                       { return "test" }

// trail records watchdog pings and the pinger's log lines in order.
type trail struct {
	mu    sync.Mutex
	lines []string
}

func (r *trail) add(s string) { r.mu.Lock(); r.lines = append(r.lines, s); r.mu.Unlock() }
func (r *trail) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines)
}

func (r *trail) Enabled(context.Context, slog.Level) bool { return true }
func (r *trail) Handle(_ context.Context, rec slog.Record) error {
	switch rec.Message {
	case "agent loop made no progress: watchdog pings stopped":
		r.add("stuck")
	case "watchdog ping skipped: no progress":
		r.add("skip")
	}
	return nil
}
func (r *trail) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *trail) WithGroup(string) slog.Handler      { return r }

// TestWatchdogStopsOnStuckPass: WATCHDOG=1 is sent while the loop makes
// progress, stops while a pass is stuck in a driver's Apply, and resumes
// when it returns.
func TestWatchdogStopsOnStuckPass(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "site")
	writeSite(t, dir, labVRRP, labServices, "")
	drv := &stuckDriver{entered: make(chan struct{}), release: make(chan struct{})}
	r, err := NewRunner(RunnerOptions{Node: "gw1", Drivers: []Driver{drv}})
	if err != nil {
		t.Fatal(err)
	}
	tr := &trail{}
	const interval = 20 * time.Millisecond
	a := NewAgent(AgentOptions{
		Source: fixedSource{Revision{Commit: "c1", Dir: dir}}, Runner: r,
		Notify: func(s string) {
			if s == "WATCHDOG=1" {
				tr.add("ping")
			}
		},
		Watchdog: interval, Logger: slog.New(tr),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	waitTrail := func(what string, cond func([]string) bool) []string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			l := tr.get()
			if cond(l) {
				return l
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; trail %v", what, l)
			}
			time.Sleep(interval / 4)
		}
	}
	select {
	case <-drv.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the pass never reached Apply")
	}
	// Stuck: the pinger stops (evaluating the site already counts, as no
	// beat comes from inside a pass) and keeps skipping, with no ping in
	// between.
	n0 := len(tr.get())
	l := waitTrail("three skipped pings in a row", func(l []string) bool {
		tail := l[n0:]
		for i := len(tail) - 1; i >= 0; i-- {
			if tail[i] == "ping" {
				tail = tail[i+1:]
				break
			}
		}
		return slices.Contains(l, "stuck") && len(tail) >= 3
	})
	n := len(l)
	close(drv.release)
	waitTrail("pings to resume", func(l []string) bool { return slices.Contains(l[n:], "ping") })
}
