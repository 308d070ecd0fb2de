package control

import "time"

// Reporting is how the agent's pushes of its status branch have gone. A
// node whose pushes fail keeps running, but the fleet view, the peers that
// gate their rollout on it and the operator reading Git all see a stale
// picture of it: it is shown, counted and alerted on like a failing fetch.
type Reporting struct {
	// LastPush is when the status branch was last pushed (zero: not since
	// the agent started).
	LastPush time.Time `json:"last_push,omitzero"`
	// Failures counts failed pushes since the agent started.
	Failures uint64 `json:"failures"`
	// LastError is the last failure while pushes keep failing (cleared by
	// the next success): the Git server, the credentials, or another node
	// reporting under this node's name.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// ObservePush records one push of the status branch
// (gitrepo.StatusOptions.OnPush).
func (c *Controller) ObservePush(at time.Time, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.reporting.Failures++
		c.reporting.LastError, c.reporting.LastErrorAt = err.Error(), at.UTC()
		return
	}
	c.reporting.LastPush = at.UTC()
	c.reporting.LastError, c.reporting.LastErrorAt = "", time.Time{}
}
