package control

import (
	"time"
)

// Fetches is how the agent's fetches of the site repository have gone:
// what an operator alerts on when the Git server cannot be reached, the
// credentials expired, or the network between broke. The last good state
// keeps running meanwhile, so nothing else would show it.
type Fetches struct {
	// LastSuccess is when the source last answered (zero: never).
	LastSuccess time.Time `json:"last_success,omitzero"`
	// Failures counts failed fetches since the agent started.
	Failures uint64 `json:"failures"`
	// LastError is the last failure, while the source keeps failing;
	// cleared by the next success.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// ObserveSync records one fetch of the source (AgentOptions.OnSync).
func (c *Controller) ObserveSync(at time.Time, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.fetches.Failures++
		c.fetches.LastError, c.fetches.LastErrorAt = err.Error(), at.UTC()
		return
	}
	c.fetches.LastSuccess = at.UTC()
	c.fetches.LastError, c.fetches.LastErrorAt = "", time.Time{}
}
