package l4proxy

// Health is a service's or server's status as Stats reports it (HAProxy's
// words): the status page, the metrics, the rollout's health gate and
// VRRP's track_services read it.
type Health string

// The statuses. A service is UP when a server can take traffic, DOWN
// otherwise; a server is one of them all.
const (
	StatusUp   Health = "UP"
	StatusDown Health = "DOWN"
	// StatusDrain: up, but takes no new connections (drained in the site
	// or weight 0).
	StatusDrain Health = "DRAIN"
	// StatusMaint: disabled in the site.
	StatusMaint Health = "MAINT"
	// StatusRemoved: gone from the site, its connections draining.
	StatusRemoved Health = "REMOVED"
	// StatusNoCheck: a server of a service without a health check
	// (HAProxy's "no check"): it takes new connections, but nothing tells
	// whether it answers. Not UP: UP is a check's verdict.
	StatusNoCheck Health = "NOCHECK"
)

// Healths is every server status, in the order the metrics list them.
var Healths = []Health{StatusUp, StatusDown, StatusDrain, StatusMaint, StatusRemoved, StatusNoCheck}

// Serving reports whether a server in status h takes new connections: UP,
// or NOCHECK (not checked, so never taken out).
func (h Health) Serving() bool { return h == StatusUp || h == StatusNoCheck }
