package reconcile

import (
	"context"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile/control"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// This file adapts the operator's controller (reconcile/control) to the
// Runner and the Reporter. control declares what it consumes and imports
// nothing of this package; the adaptation lives here, with the types it
// adapts.

// WithOverrides puts the controller's override overlay in front of the
// drivers whose family overrides act through (proxy, vrrp), keeping each
// driver's optional interfaces (EventSource, StatusSectioner, Closer), and
// appends the status-only "overrides" section. Give the result to the
// Runner and the Reporter.
func WithOverrides(c *control.Controller, drivers []Driver) []Driver {
	out := make([]Driver, 0, len(drivers)+1)
	for _, d := range drivers {
		o, ok := c.Overlay(d)
		if !ok {
			out = append(out, d)
			continue
		}
		out = append(out, overlaid(&overlay{Overlay: o, inner: d}))
	}
	return append(out, StatusOnly("overrides", c))
}

// overlay is an override overlay as a Driver: it closes its inner driver.
type overlay struct {
	*control.Overlay
	inner Driver
}

func (w *overlay) Close(ctx context.Context) error {
	if cl, ok := w.inner.(Closer); ok {
		return cl.Close(ctx)
	}
	return nil
}

type overlayEvents struct{ *overlay }

func (w overlayEvents) Events() <-chan Event { return w.inner.(EventSource).Events() }

type overlaySections struct{ *overlay }

func (w overlaySections) StatusSection(ctx context.Context) (any, error) {
	return w.inner.(StatusSectioner).StatusSection(ctx)
}

type overlayBoth struct{ *overlay }

func (w overlayBoth) Events() <-chan Event { return w.inner.(EventSource).Events() }
func (w overlayBoth) StatusSection(ctx context.Context) (any, error) {
	return w.inner.(StatusSectioner).StatusSection(ctx)
}

// overlaid returns w with exactly the optional interfaces of its inner
// driver: the agent listens to the events of the drivers it is given, and
// the Reporter writes the sections of those that have one.
func overlaid(w *overlay) Driver {
	_, ev := w.inner.(EventSource)
	_, sec := w.inner.(StatusSectioner)
	switch {
	case ev && sec:
		return overlayBoth{w}
	case ev:
		return overlayEvents{w}
	case sec:
		return overlaySections{w}
	}
	return w
}

// StatusOnly is a driver that plans and applies nothing and puts section's
// value in status.json under name (the operator's "overrides").
func StatusOnly(name string, section StatusSectioner) Driver {
	return statusOnly{name: name, StatusSectioner: section}
}

type statusOnly struct {
	name string
	StatusSectioner
}

func (s statusOnly) Name() string                                          { return s.name }
func (statusOnly) Plan(context.Context, *spec.Node) ([]plan.Change, error) { return nil, nil }
func (statusOnly) Apply(context.Context, *spec.Node) error                 { return nil }

// Control is the pass as the operator's controller records it (status,
// metrics, `gitgw reconcile`).
func (r Result) Control() control.Result {
	c := control.Result{Commit: r.Commit, Subject: r.Subject, Outcome: string(r.Outcome), Summary: r.Summary(),
		OK: r.Outcome == Applied || r.Outcome == Unchanged, AppliedCommit: r.AppliedCommit,
		Started: r.Started, Duration: r.Duration, Plan: r.Plan, Drift: r.Drift, Reported: r.Reported, Remaining: r.Remaining}
	for _, e := range r.Errors {
		c.Errors = append(c.Errors, e.Error())
	}
	if r.Err != nil {
		c.Err = r.Err.Error()
	}
	return c
}

// Running is the commit and the desired state of the last good state, for
// control.Options.LastGood; "" and nil for none.
func (lg *LastGood) Running() (commit string, desired *spec.Node) {
	if lg == nil {
		return "", nil
	}
	return lg.Commit, lg.Desired
}

var (
	_ Driver          = (*overlay)(nil)
	_ Closer          = (*overlay)(nil)
	_ EventSource     = overlayEvents{}
	_ StatusSectioner = overlaySections{}
	_ EventSource     = overlayBoth{}
	_ StatusSectioner = overlayBoth{}
	_ StatusSectioner = statusOnly{}
	_ control.Driver  = Driver(nil)
)
