package vrrp

import (
	"context"
	"errors"
	"fmt"
)

// ErrNoInstance is returned for an instance the engine does not run.
var ErrNoInstance = errors.New("no such instance")

// GiveUp makes a master leave mastership now, for maintenance (`gitgw
// override vrrp give-up`): it sends a priority-0 advert, so that the backup
// takes over within Skew_Time, and becomes Backup. A non-master is left
// alone. GiveUp does not change the priority: a master whose priority is
// still the highest takes the role back after Master_Down_Interval (or at
// once with preemption), so the caller lowers the priority first (Set with
// priority 1) to keep the node backup for as long as the override lasts.
func (e *Engine) GiveUp(ctx context.Context, name string) error {
	e.regMu.RLock()
	in := e.instances[name]
	e.regMu.RUnlock()
	if in == nil {
		return fmt.Errorf("vrrp: give up %s: %w", name, ErrNoInstance)
	}
	done := make(chan struct{})
	in.do(func() {
		defer close(done)
		if in.m.State() != StateMaster {
			return
		}
		now := in.e.opts.Now()
		in.exec(now, append([]Output{{Kind: OutSend, Priority: 0}},
			in.m.Force(now, StateBackup, "gave up mastership (operator override)")...))
	})
	select {
	case <-done:
	case <-in.done:
	case <-ctx.Done():
		return fmt.Errorf("vrrp: give up %s: %w", name, ctx.Err())
	}
	return nil
}
