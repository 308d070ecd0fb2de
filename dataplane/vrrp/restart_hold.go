package vrrp

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/gitgw/gitgw/dataplane/vip"
)

// A holder keeps advertising, from the moment the next engine is created,
// a mastership the previous agent kept across a restart, until Set claims
// the instance (it then resumes as master) or releases it. It is needed
// because the agent's first pass, which configures the engine, may come
// later than the peer's Master_Down_Timer. It only sends: it follows no
// election, for at most Options.RestartHold; the resumed instance does.
type holder struct {
	e     *Engine
	entry RestartEntry
	until time.Time // the record's
	quit  chan bool // true: release (priority 0, VIPs removed)
	done  chan struct{}
}

// holders are an engine's unclaimed holders.
type holders struct {
	mu sync.Mutex
	m  map[string]*holder
}

// startHolders reads and removes the restart record in the state dir and
// starts a holder for each instance of a fresh one. Those instances stay
// in the state file, so that the guardian releases them if this agent
// dies before it resumes them.
func (e *Engine) startHolders() {
	e.held.m = map[string]*holder{}
	if e.opts.StateDir == "" || !e.opts.Resume {
		return
	}
	rec, err := ReadRestart(e.opts.StateDir)
	if err != nil {
		e.log.Error("restart record unreadable; every instance starts as backup", "file", RestartFileName, "err", err)
		return
	}
	if rec == nil {
		return
	}
	removeRestart(e.opts.StateDir)
	now := e.opts.Now()
	if !rec.Fresh(now) {
		e.log.Warn("restart took longer than the peers wait: they have taken over, every instance starts as backup",
			"restarted_at", rec.At, "until", rec.Until)
		return
	}
	hold := e.opts.RestartHold
	if hold == 0 {
		hold = DefaultRestartHold
	}
	for _, entry := range rec.Held {
		h := &holder{e: e, entry: entry, until: rec.Until, quit: make(chan bool, 1), done: make(chan struct{})}
		e.held.m[entry.Name] = h
		e.state.entries[entry.Name] = entry.StateEntry
		go h.run(now.Add(hold))
		e.log.Info("restart: advertising the mastership kept by the previous agent until the configuration resumes it",
			"instance", entry.Name, "vrid", entry.VRID, "priority", entry.Priority)
	}
}

func (h *holder) ifname() string {
	if h.entry.VIPInterface != "" {
		return h.entry.VIPInterface
	}
	return h.entry.Interface
}

func (h *holder) run(deadline time.Time) {
	defer close(h.done)
	e := h.entry
	c, err := h.e.opts.Listen(h.ifname(), e.Src.Is6())
	if err != nil {
		h.e.log.Error("restart: cannot advertise the kept mastership; the peer takes over by its timer", "instance", e.Name, "err", err)
		h.release(nil)
		return
	}
	defer c.Close()
	send := func(prio uint8) {
		p := &Packet{Version: e.Version, VRID: e.VRID, Priority: prio, Interval: e.Interval, Addrs: e.Advertised}
		if e.Version == 2 {
			p.SetPassword(e.AuthPass)
		}
		form := ChecksumPseudo
		if e.ChecksumMessageOnly {
			form = ChecksumMessage
		}
		for _, dst := range e.Dsts {
			if b, err := p.Marshal(e.Src, dst, form); err == nil {
				_ = c.Write(b, e.Src, dst)
			}
		}
	}
	send(e.Priority)
	t := time.NewTicker(e.Interval)
	defer t.Stop()
	expire := time.NewTimer(time.Until(deadline))
	defer expire.Stop()
	for {
		select {
		case <-t.C:
			send(e.Priority)
		case rel := <-h.quit:
			if rel {
				h.release(send)
			}
			return
		case <-expire.C:
			h.e.log.Warn("restart: the configuration did not resume the kept mastership in time; releasing it", "instance", e.Name)
			h.e.held.mu.Lock()
			delete(h.e.held.m, e.Name)
			h.e.held.mu.Unlock()
			h.release(send)
			return
		}
	}
}

// release hands the instance over: priority 0, VIPs removed, out of the
// state file.
func (h *holder) release(send func(uint8)) {
	if send != nil {
		send(0)
	}
	if vs := h.e.opts.VIPs; vs != nil {
		var addrs []vip.Address
		for _, v := range h.entry.VIPs {
			addrs = append(addrs, vip.Address{Prefix: v.Prefix, Label: v.Label, Scope: v.Scope})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := vs.Remove(ctx, h.ifname(), addrs); err != nil {
			h.e.log.Error("restart: removing the kept VIPs", "instance", h.entry.Name, "err", err)
		}
		cancel()
	}
	h.e.state.remove(h.entry.Name)
	h.e.log.Info("released mastership kept by the restart", "instance", h.entry.Name, "vrid", h.entry.VRID)
}

// stop ends the holder's adverts (no release) and waits for it.
func (h *holder) stop() {
	select {
	case h.quit <- false:
	default:
	}
	<-h.done
}

// takeHolders removes and returns every unclaimed holder.
func (e *Engine) takeHolders() []*holder {
	e.held.mu.Lock()
	defer e.held.mu.Unlock()
	out := slices.Collect(maps.Values(e.held.m))
	clear(e.held.m)
	return out
}

// claimHolder takes the holder of cfg's instance: true when the instance
// may resume as master (same interface, VRID, version and family). A
// holder of another identity is released.
func (e *Engine) claimHolder(cfg Instance) bool {
	e.held.mu.Lock()
	h := e.held.m[cfg.Name]
	delete(e.held.m, cfg.Name)
	e.held.mu.Unlock()
	if h == nil {
		return false
	}
	same := h.entry.Interface == cfg.Interface && h.entry.VRID == cfg.VRID && h.entry.Version == cfg.Version &&
		h.entry.Src.Is6() == cfg.IPv6()
	if !same {
		h.quit <- true
		<-h.done
		return false
	}
	h.stop()
	return true
}

// releaseHolders releases every unclaimed holder whose instance is not in
// keep (nil: all).
func (e *Engine) releaseHolders(keep map[string]Instance) {
	e.held.mu.Lock()
	var gone []*holder
	for name, h := range e.held.m {
		if _, ok := keep[name]; !ok {
			gone = append(gone, h)
			delete(e.held.m, name)
		}
	}
	e.held.mu.Unlock()
	for _, h := range gone {
		h.quit <- true
		<-h.done
	}
}
