package control

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// recorder is a driver that remembers what it was asked to apply: the
// seam under test is the overlay, not a driver.
type recorder struct {
	name string
	mu   sync.Mutex
	got  []*spec.Node
}

func (r *recorder) Name() string { return r.name }
func (r *recorder) Plan(_ context.Context, n *spec.Node) ([]plan.Change, error) {
	return []plan.Change{{Driver: r.name, Kind: "proxy_server", ID: "web/s2", Action: plan.NoOp, After: n.Services["web"].Servers["s2"]}}, nil
}
func (r *recorder) Apply(_ context.Context, n *spec.Node) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, n)
	return nil
}
func (r *recorder) last(t *testing.T) *spec.Node {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) == 0 {
		t.Fatalf("%s: nothing applied", r.name)
	}
	return r.got[len(r.got)-1]
}

type giveUps struct{ names []string }

func (g *giveUps) GiveUp(_ context.Context, name string) error {
	g.names = append(g.names, name)
	return nil
}

func labNode() *spec.Node {
	return &spec.Node{
		Name: "gw1",
		VRRP: map[string]spec.VRRPInstance{"VI_1": {VRID: 51, Nodes: map[string]spec.VRRPNode{"gw1": {Priority: 150}, "gw2": {Priority: 100}}}},
		Services: map[string]spec.Service{"web": {Binds: []string{"203.0.113.100:80"}, Servers: map[string]spec.Server{
			"s1": {Address: "198.51.100.11:8080", Weight: 100},
			"s2": {Address: "198.51.100.12:8080", Weight: 100},
		}}},
	}
}

// lastGood is the state running on the node, as the Runner keeps it.
type lastGood struct {
	commit  string
	desired *spec.Node
}

func (lg *lastGood) get() (string, *spec.Node) { return lg.commit, lg.desired }

type harness struct {
	c           *Controller
	proxy, vrrp *recorder
	gu          *giveUps
	lg          *lastGood
	kicks       chan struct{}
	wrapped     []Driver
	desired     *spec.Node
}

// wrap is what the agent's wiring does: the overlay in front of the
// families overrides act through.
func wrap(c *Controller, drivers ...Driver) []Driver {
	var out []Driver
	for _, d := range drivers {
		if o, ok := c.Overlay(d); ok {
			d = o
		}
		out = append(out, d)
	}
	return out
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{proxy: &recorder{name: "proxy"}, vrrp: &recorder{name: "vrrp"}, gu: &giveUps{}, kicks: make(chan struct{}, 1), desired: labNode()}
	h.lg = &lastGood{"c1", h.desired}
	h.c = New(Options{Node: "gw1", Version: "test", Kick: h.kicks, VRRP: h.gu,
		LastGood: func() (string, *spec.Node) { return h.lg.get() },
		Now:      func() time.Time { return time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC) }})
	h.wrapped = wrap(h.c, &recorder{name: "units"}, h.proxy, h.vrrp)
	// The runner's first pass.
	for _, d := range h.wrapped {
		if err := d.Apply(context.Background(), h.desired); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func TestOverrideLifecycle(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	if _, err := h.c.Set(ctx, Override{Action: ActionDrain, Target: "web/s2"}); err != nil {
		t.Fatal(err)
	}
	if got := h.proxy.last(t).Services["web"].Servers["s2"]; !got.Drain {
		t.Fatalf("drain not applied at once: %+v", got)
	}
	if h.desired.Services["web"].Servers["s2"].Drain {
		t.Fatal("the overlay modified the desired state it was given")
	}
	// A pass plans with the overlay: no difference to apply.
	changes, err := h.wrapped[1].Plan(ctx, h.desired)
	if err != nil {
		t.Fatal(err)
	}
	if s2 := changes[0].After.(spec.Server); !s2.Drain || len(changes[0].Details) != 1 {
		t.Fatalf("plan does not see the override: %+v", changes[0])
	}
	if _, err := h.c.Set(ctx, Override{Action: ActionWeight, Target: "web/s1", Weight: 50}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.Set(ctx, Override{Action: ActionGiveUp, Target: "VI_1"}); err != nil {
		t.Fatal(err)
	}
	if p := h.vrrp.last(t).VRRP["VI_1"].Nodes["gw1"].Priority; p != giveUpPriority {
		t.Fatalf("give-up priority %d", p)
	}
	if diff := cmp.Diff([]string{"VI_1"}, h.gu.names); diff != "" {
		t.Fatalf("GiveUp calls (-want +got):\n%s", diff)
	}
	got := h.c.Overrides()
	want := []string{"give-up VI_1", "weight web/s1 50", "drain web/s2"}
	var gotS []string
	for _, o := range got {
		gotS = append(gotS, o.String())
		if o.Commit != "c1" {
			t.Errorf("%s: commit %q", o, o.Commit)
		}
	}
	if diff := cmp.Diff(want, gotS); diff != "" {
		t.Fatalf("overrides (-want +got):\n%s", diff)
	}
	// enable replaces drain on the same server.
	if _, err := h.c.Set(ctx, Override{Action: ActionEnable, Target: "web/s2"}); err != nil {
		t.Fatal(err)
	}
	if n := len(h.c.Overrides()); n != 3 {
		t.Fatalf("%d overrides after enable, want 3", n)
	}
	// A pass on the same commit keeps them; one that applies another
	// commit clears them and applies the site again.
	h.c.Observe(ctx, Result{Commit: "c1", AppliedCommit: "c1", Outcome: "unchanged", OK: true})
	if n := len(h.c.Overrides()); n != 3 {
		t.Fatalf("%d overrides after a pass on the same commit", n)
	}
	// A pass that did not leave the node as desired keeps them.
	h.c.Observe(ctx, Result{Commit: "c2", AppliedCommit: "c2", Outcome: "failed"})
	if n := len(h.c.Overrides()); n != 3 {
		t.Fatalf("%d overrides after a failed pass", n)
	}
	h.lg = &lastGood{"c2", h.desired}
	h.c.Observe(ctx, Result{Commit: "c2", AppliedCommit: "c2", Outcome: "applied", OK: true})
	if n := len(h.c.Overrides()); n != 0 {
		t.Fatalf("%d overrides after a new commit", n)
	}
	if got := h.proxy.last(t).Services["web"].Servers["s1"]; got.Weight != 100 {
		t.Fatalf("weight after clearing: %d", got.Weight)
	}
	if p := h.vrrp.last(t).VRRP["VI_1"].Nodes["gw1"].Priority; p != 150 {
		t.Fatalf("priority after clearing: %d", p)
	}
}

func TestSuspendResume(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.c.Suspend()
	if !h.c.Suspended() {
		t.Fatal("not suspended")
	}
	if _, err := h.c.Set(ctx, Override{Action: ActionDrain, Target: "web/s1"}); err != nil {
		t.Fatal(err)
	}
	if err := h.c.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if h.c.Suspended() || len(h.c.Overrides()) != 0 {
		t.Fatalf("resume: suspended %v, overrides %v", h.c.Suspended(), h.c.Overrides())
	}
	if h.proxy.last(t).Services["web"].Servers["s1"].Drain {
		t.Fatal("resume did not undo the drain")
	}
	select {
	case <-h.kicks:
	default:
		t.Fatal("resume did not ask for a pass")
	}
}

func TestBadOverrides(t *testing.T) {
	h := newHarness(t)
	for _, o := range []Override{
		{Action: ActionDrain, Target: "web"},
		{Action: ActionDrain, Target: "nope/s1"},
		{Action: ActionDrain, Target: "web/s9"},
		{Action: ActionWeight, Target: "web/s1", Weight: 300},
		{Action: ActionGiveUp, Target: "VI_9"},
		{Action: "reboot", Target: "web/s1"},
	} {
		t.Run(o.String(), func(t *testing.T) {
			_, err := h.c.Set(context.Background(), o)
			if !errors.Is(err, ErrBadOverride) {
				t.Fatalf("err = %v, want ErrBadOverride", err)
			}
		})
	}
	if n := len(h.c.Overrides()); n != 0 {
		t.Fatalf("%d overrides recorded from bad requests", n)
	}
}

// TestOverlayFamilies: overrides act through the proxy and VRRP drivers
// only; the section reports the operator's state without times.
func TestOverlayFamilies(t *testing.T) {
	c := New(Options{})
	for name, want := range map[string]bool{"proxy": true, "vrrp": true, "units": false, "tuning": false} {
		if _, ok := c.Overlay(&recorder{name: name}); ok != want {
			t.Errorf("Overlay(%s): %v, want %v", name, ok, want)
		}
	}
	c.Suspend()
	v, _ := c.StatusSection(context.Background())
	if diff := cmp.Diff(SectionView{Suspended: true, Overrides: []Override{}}, v); diff != "" {
		t.Fatal(diff)
	}
}

func TestOverridesKeptAcrossRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	lg := &lastGood{"c1", labNode()}
	newC := func() (*Controller, *recorder) {
		c := New(Options{Node: "gw1", StateDir: dir, LastGood: lg.get})
		p := &recorder{name: "proxy"}
		wrap(c, p)
		return c, p
	}
	c, _ := newC()
	if _, err := c.Set(ctx, Override{Action: ActionDrain, Target: "web/s2"}); err != nil {
		t.Fatal(err)
	}
	c.Suspend()
	if fi, err := os.Stat(filepath.Join(dir, OverridesFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("overrides file: %v", err)
	}
	// A new agent: the override is back, and its first pass applies it;
	// suspension is not kept (the data plane must be rebuilt).
	c2, p2 := newC()
	if got := c2.Overrides(); len(got) != 1 || got[0].String() != "drain web/s2" || got[0].Commit != "c1" {
		t.Fatalf("restored: %v", got)
	}
	if c2.Suspended() {
		t.Fatal("suspension kept across a restart")
	}
	if err := c2.wrapped["proxy"].Apply(ctx, lg.desired); err != nil {
		t.Fatal(err)
	}
	if !p2.last(t).Services["web"].Servers["s2"].Drain {
		t.Fatal("the restored override is not applied by the first pass")
	}
	if err := c2.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, OverridesFile)); !os.IsNotExist(err) {
		t.Fatalf("overrides file after resume: %v", err)
	}
	if c3, _ := newC(); len(c3.Overrides()) != 0 {
		t.Fatal("cleared overrides came back")
	}
}
