package reconcile

import (
	"context"
	"fmt"
	"time"

	"github.com/gitgw/gitgw/reconcile/plan"
)

// pollDrift is a driver's watch on what it applied, for the drivers whose
// world has no change notification (nftables tables, sysctls and lo's
// addresses): every interval it asks diff what differs, and sends one
// drift event per difference, not again until the world has matched once
// more. The pass decides what to do with it (correct or report, as the
// drift mode says); the poll only wakes it. An error counts as no
// difference: the pass's own Observe reports it.
func pollDrift[T fmt.Stringer](ctx context.Context, every time.Duration, driver string, events chan<- Event, diff func() ([]T, error)) {
	reported := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		items, err := diff()
		if err != nil || len(items) == 0 {
			reported = false
			continue
		}
		if reported {
			continue
		}
		reported = true
		msg := items[0].String()
		if len(items) > 1 {
			msg += fmt.Sprintf(" (and %d more)", len(items)-1)
		}
		select {
		case events <- Event{Driver: driver, Kind: plan.EventDrift, Message: msg}:
		default:
		}
	}
}
