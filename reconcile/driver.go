// Package reconcile is the heart of gitgw: the Runner turns one revision of
// the site into a plan for this node and applies it through the drivers, in
// a safe order, keeping the last good state when a revision is invalid; the
// Agent runs passes on every trigger (a new commit, a file change, a
// periodic resync, SIGHUP, a driver event).
//
// reconcile is the only package that knows every subsystem. It declares the
// small interface it needs from each (Driver) and translates the site's spec
// types into each driver's own config in one adapter file per driver
// (<name>_driver.go), so the data plane and the units driver never see CUE,
// Git or plans.
package reconcile

import (
	"context"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// Driver is what the Runner needs from one resource family.
type Driver interface {
	// Name is the family, a plan.Family (plan.Families lists them in
	// apply order).
	Name() string
	// Plan observes the node and returns one change per resource the
	// desired state names or the node holds, no-ops included.
	Plan(ctx context.Context, desired *spec.Node) ([]plan.Change, error)
	// Apply makes the node match desired. It is idempotent, adds before it
	// deletes, and returns every failure joined (errors.Join).
	Apply(ctx context.Context, desired *spec.Node) error
}

// Closer is implemented by drivers that hold resources (sockets, timers,
// D-Bus connections) to release when the agent stops.
type Closer interface {
	Close(ctx context.Context) error
}

// EventSource is implemented by drivers that notice changes on their own
// (a netlink address change, a unit stopped by hand, a VRRP transition):
// each event asks the agent for a pass.
type EventSource interface {
	Events() <-chan Event
}

// Event is something a driver noticed.
type Event struct {
	Driver string
	// Kind is a short tag: "drift", "transition", "health".
	Kind string
	// Message is one line for logs and status commits, e.g.
	// "VI_1 BACKUP -> MASTER (peer silent 360 ms)".
	Message string
}
