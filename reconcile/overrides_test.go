package reconcile

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile/control"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// overlayDriver is a driver with a given name and optional interfaces; the
// seam under test is the overlay's wrapping, not a driver.
type overlayDriver struct {
	name   string
	closed bool
}

func (d *overlayDriver) Name() string                                            { return d.name }
func (d *overlayDriver) Plan(context.Context, *spec.Node) ([]plan.Change, error) { return nil, nil }
func (d *overlayDriver) Apply(context.Context, *spec.Node) error                 { return nil }
func (d *overlayDriver) Close(context.Context) error                             { d.closed = true; return nil }

type eventDriver struct {
	overlayDriver
	ch chan Event
}

func (e *eventDriver) Events() <-chan Event { return e.ch }

type sectionDriver struct{ overlayDriver }

func (s *sectionDriver) StatusSection(context.Context) (any, error) { return "section", nil }

// TestWithOverridesKeepsInterfaces: the overlay stands in front of proxy
// and VRRP only, with exactly its driver's optional interfaces (the agent
// listens to the events of what it is given, the Reporter writes the
// sections), closes its driver, and the "overrides" section comes last.
func TestWithOverridesKeepsInterfaces(t *testing.T) {
	c := control.New(control.Options{})
	vrrp := &eventDriver{overlayDriver: overlayDriver{name: "vrrp"}, ch: make(chan Event)}
	proxy := &sectionDriver{overlayDriver{name: "proxy"}}
	units := &overlayDriver{name: "units"}
	out := WithOverrides(c, []Driver{units, proxy, vrrp})
	var names []string
	for _, d := range out {
		names = append(names, d.Name())
	}
	if diff := cmp.Diff([]string{"units", "proxy", "vrrp", "overrides"}, names); diff != "" {
		t.Fatalf("drivers (-want +got):\n%s", diff)
	}
	if out[0] != Driver(units) {
		t.Error("units wrapped: overrides do not act through it")
	}
	if _, ok := out[1].(EventSource); ok {
		t.Error("proxy overlay gained EventSource")
	}
	if s, ok := out[1].(StatusSectioner); !ok {
		t.Error("proxy overlay lost StatusSectioner")
	} else if v, _ := s.StatusSection(context.Background()); v != "section" {
		t.Errorf("proxy section %v", v)
	}
	if e, ok := out[2].(EventSource); !ok || e.Events() != (<-chan Event)(vrrp.ch) {
		t.Error("vrrp overlay lost its events")
	}
	if evs := DriverEvents(out); len(evs) != 1 || evs[0] != (<-chan Event)(vrrp.ch) {
		t.Errorf("DriverEvents: %d channels, want the vrrp driver's only", len(evs))
	}
	if _, ok := out[2].(StatusSectioner); ok {
		t.Error("vrrp overlay gained StatusSectioner")
	}
	if err := out[2].(Closer).Close(context.Background()); err != nil || !vrrp.closed {
		t.Errorf("vrrp overlay did not close its driver (%v)", err)
	}
	sec, ok := out[3].(StatusSectioner)
	if !ok {
		t.Fatal("the overrides section is no StatusSectioner")
	}
	c.Suspend()
	v, _ := sec.StatusSection(context.Background())
	if diff := cmp.Diff(control.SectionView{Suspended: true, Overrides: []control.Override{}}, v); diff != "" {
		t.Fatal(diff)
	}
}

// TestResultControl: the controller records what status and the metrics
// show, and counts only applied and unchanged as the node as desired.
func TestResultControl(t *testing.T) {
	drift := plan.Change{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_forward", Action: plan.Update, Drift: true}
	r := Result{Commit: "0123456789abcdef", Subject: "s", Outcome: Applied, AppliedCommit: "0123456789abcdef",
		Plan: &plan.Plan{Changes: []plan.Change{drift}}, Applied: []plan.Change{drift}, Drift: []plan.Change{drift}}
	want := control.Result{Commit: "0123456789abcdef", Subject: "s", Outcome: "applied", OK: true, AppliedCommit: "0123456789abcdef",
		Summary: "0123456789ab applied, 1 change, 1 drift corrected", Plan: r.Plan, Drift: r.Drift}
	if diff := cmp.Diff(want, r.Control()); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	for out, ok := range map[Outcome]bool{Applied: true, Unchanged: true, Rejected: false, Failed: false, Held: false, RolledBack: false, Suspended: false} {
		if got := (Result{Outcome: out}).Control().OK; got != ok {
			t.Errorf("%s: OK %v, want %v", out, got, ok)
		}
	}
	rej := Result{Commit: "c", Outcome: Rejected, Errors: loader.Errors{{Msg: "bad"}}, Err: errors.New("boom")}.Control()
	if diff := cmp.Diff([]string{"bad"}, rej.Errors); diff != "" || rej.Err != "boom" {
		t.Errorf("errors %v %q", rej.Errors, rej.Err)
	}
	if c, d := (*LastGood)(nil).Running(); c != "" || d != nil {
		t.Error("no last good state runs something")
	}
}
