package reconcile

import (
	"sync"
	"time"
)

// Heartbeat records when the agent loop last made progress, so that the
// systemd watchdog is pinged only while it does: a ticker of its own would
// keep pinging through a pass stuck forever (a hung netlink or D-Bus call,
// a deadlock), and systemd would never restart the agent. The loop beats on
// every iteration, while it waits idle, and around each pass; long waits
// inside a pass that are progress (a rolling restart polling its
// instances) beat too.
type Heartbeat struct {
	now  func() time.Time
	mu   sync.Mutex
	last time.Time
}

// NewHeartbeat returns a heartbeat that has just beaten; now is the clock
// (time.Now when nil; tests inject their own).
func NewHeartbeat(now func() time.Time) *Heartbeat {
	if now == nil {
		now = time.Now
	}
	return &Heartbeat{now: now, last: now()}
}

// Beat records progress now. A nil Heartbeat ignores it.
func (h *Heartbeat) Beat() {
	if h == nil {
		return
	}
	t := h.now()
	h.mu.Lock()
	h.last = t
	h.mu.Unlock()
}

// Fresh reports whether the last beat is no older than within: whether a
// WATCHDOG=1 may be sent.
func (h *Heartbeat) Fresh(within time.Duration) bool {
	h.mu.Lock()
	last := h.last
	h.mu.Unlock()
	return h.now().Sub(last) <= within
}
