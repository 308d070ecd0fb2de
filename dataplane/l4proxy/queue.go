package l4proxy

import (
	"errors"
	"slices"
	"sync/atomic"
	"time"
)

// Queues, with HAProxy's semantics. A connection that must go to one
// server (its source hash or its persistence entry names it) and finds it
// at its maxconn waits in that server's own FIFO; a connection that may go
// anywhere waits in the service's FIFO. When a server frees a slot it hands
// it over, without releasing it, to the oldest waiter of its own queue and
// of the service queue, so that a newcomer cannot overtake a waiter. A
// server that stops taking traffic (down, drained, in maintenance, removed)
// moves its waiters to the service queue, oldest first, where any other
// server serves them. Every wait is bounded by the queue timeout (sQ).
//
// Queues are touched only when servers are full: both kinds of queue of a
// service share one lock, svc.qmu, and svc.queued (every waiter of the
// service) keeps the release path lock-free while nobody waits.

// waiter is one connection waiting for a server slot.
type waiter struct {
	// ch receives the server whose slot was handed over, or nil to make
	// the connection pick again (no server left at all). Buffered: the
	// hand-over never blocks.
	ch  chan *server
	seq uint64
	srv *server // the server whose queue holds it; nil: the service queue
}

// pickOrWait returns a server with a slot taken, waiting in a queue (up to
// the queue timeout) while the server it must use, or every server, is full.
func (svc *service) pickOrWait(c *conn) (*server, error) {
	var deadline time.Time
	for {
		tbl := svc.tbl.Load()
		srv, err := c.shard.pick(svc, tbl, c.set, c.caddr.Addr(), c.tried[:c.ntried])
		if err == nil {
			if srv.acquire() {
				return srv, nil
			}
			continue // filled up since the pick: pick again
		}
		if !errors.Is(err, errFull) {
			return nil, err
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(c.set.Timeouts.Queue)
		}
		if !now.Before(deadline) {
			svc.queueTimeouts.Add(1)
			return nil, errFull
		}
		got, err := svc.wait(srv, deadline)
		if got != nil || err != nil {
			return got, err
		}
		// Woken without a slot: the servers changed, pick again.
	}
}

// wait queues the caller on pinned's queue (or the service queue when
// pinned is nil) until a slot is handed over, the deadline passes or the
// pool closes.
func (svc *service) wait(pinned *server, deadline time.Time) (*server, error) {
	svc.qmu.Lock()
	w := svc.enqueueLocked(pinned)
	// A slot freed between the pick and the enqueue woke nobody: hand the
	// free slots out now, oldest waiter first (which may be this one).
	if pinned != nil {
		svc.fillLocked(pinned, svc.tbl.Load())
	} else {
		svc.fillAllLocked()
	}
	svc.qmu.Unlock()

	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case s := <-w.ch:
		return s, nil
	case <-t.C:
	case <-svc.pool.ctx.Done():
	}
	svc.qmu.Lock()
	pinnedNow, queued := svc.removeLocked(w)
	svc.qmu.Unlock()
	if !queued {
		// Handed a slot (or woken) while giving up: take what came.
		if s := <-w.ch; s != nil {
			return s, nil
		}
	}
	svc.queueTimeouts.Add(1)
	if pinnedNow != nil {
		pinnedNow.queueTimeouts.Add(1)
	}
	return nil, errFull
}

// enqueueLocked appends a new waiter to pinned's queue (the service queue
// when pinned is nil), numbered in arrival order, and counts it.
func (svc *service) enqueueLocked(pinned *server) *waiter {
	w := &waiter{ch: make(chan *server, 1), srv: pinned}
	svc.qseq++
	w.seq = svc.qseq
	if pinned != nil {
		pinned.queue = append(pinned.queue, w)
		raise(&pinned.maxQueued, pinned.queued.Add(1))
	} else {
		svc.queue = append(svc.queue, w)
		raise(&svc.maxSvcQueued, int64(len(svc.queue)))
	}
	raise(&svc.maxQueued, svc.queued.Add(1))
	return w
}

// raise lifts a high-water mark to n.
func raise(max *atomic.Int64, n int64) {
	for {
		m := max.Load()
		if n <= m || max.CompareAndSwap(m, n) {
			return
		}
	}
}

// removeLocked takes w out of whichever queue holds it. It returns the
// server whose queue held it and whether it was still queued at all.
func (svc *service) removeLocked(w *waiter) (*server, bool) {
	if s := w.srv; s != nil {
		if i := slices.Index(s.queue, w); i >= 0 {
			s.queue = slices.Delete(s.queue, i, i+1)
			s.queued.Add(-1)
			svc.queued.Add(-1)
			return s, true
		}
		return s, false
	}
	if i := slices.Index(svc.queue, w); i >= 0 {
		svc.queue = slices.Delete(svc.queue, i, i+1)
		svc.queued.Add(-1)
		return nil, true
	}
	return nil, false
}

// releaseServer gives back one of s's slots: to the oldest connection
// waiting for it if there is one (the slot changes hands, s.cur does not
// move), else to s.
func (svc *service) releaseServer(s *server) {
	if svc.queued.Load() > 0 {
		svc.qmu.Lock()
		if w := svc.nextForLocked(s, svc.tbl.Load()); w != nil {
			svc.popLocked(w)
			svc.qmu.Unlock()
			w.ch <- s
			return
		}
		svc.qmu.Unlock()
	}
	s.cur.Add(-1)
	// An enqueue that raced with the check above saw s full; it filled
	// from s after enqueuing, or we do it now: either way nobody is stranded.
	if svc.queued.Load() > 0 {
		svc.qmu.Lock()
		svc.fillLocked(s, svc.tbl.Load())
		svc.qmu.Unlock()
	}
}

// active is the set of servers the service queue may be served by: the
// primaries, or the backups when no primary can take traffic.
func (t *lbTable) active() []*server {
	if len(t.primary) > 0 {
		return t.primary
	}
	return t.backup
}

// nextForLocked is the oldest waiter that s may serve: the head of its own
// queue or of the service queue, whichever came first.
func (svc *service) nextForLocked(s *server, tbl *lbTable) *waiter {
	var own, shared *waiter
	if len(s.queue) > 0 && s.eligible() {
		own = s.queue[0]
	}
	if len(svc.queue) > 0 && slices.Contains(tbl.active(), s) {
		shared = svc.queue[0]
	}
	switch {
	case own == nil:
		return shared
	case shared == nil || own.seq < shared.seq:
		return own
	}
	return shared
}

// popLocked removes w, the head of its queue.
func (svc *service) popLocked(w *waiter) {
	if s := w.srv; s != nil {
		s.queue = s.queue[1:]
		s.queued.Add(-1)
	} else {
		svc.queue = svc.queue[1:]
	}
	svc.queued.Add(-1)
}

// fillLocked hands s's free slots to the oldest waiters it may serve.
func (svc *service) fillLocked(s *server, tbl *lbTable) {
	for {
		w := svc.nextForLocked(s, tbl)
		if w == nil || !s.acquire() {
			return
		}
		svc.popLocked(w)
		w.ch <- s
	}
}

func (svc *service) fillAllLocked() {
	tbl := svc.tbl.Load()
	for _, s := range tbl.active() {
		svc.fillLocked(s, tbl)
	}
}

// requeue runs after the balancing table changed (rebuild, with svc.mu
// held): waiters of servers that no longer take traffic move to the
// service queue in age order, then every server hands out its free slots
// (a raised maxconn, a server back up). With no server left at all, the
// service queue is woken to fail at once rather than time out.
func (svc *service) requeue(servers []*server) {
	if svc.queued.Load() == 0 {
		return
	}
	tbl := svc.tbl.Load()
	active := tbl.active()
	svc.qmu.Lock()
	defer svc.qmu.Unlock()
	moved := false
	for _, s := range servers {
		if len(s.queue) == 0 || (s.eligible() && slices.Contains(active, s)) {
			continue
		}
		for _, w := range s.queue {
			w.srv = nil
		}
		svc.queue = append(svc.queue, s.queue...)
		s.queued.Add(-int64(len(s.queue)))
		s.queue = nil
		moved = true
	}
	if moved {
		slices.SortFunc(svc.queue, func(a, b *waiter) int {
			switch {
			case a.seq < b.seq:
				return -1
			case a.seq > b.seq:
				return 1
			}
			return 0
		})
		raise(&svc.maxSvcQueued, int64(len(svc.queue)))
	}
	if len(active) == 0 {
		for _, w := range svc.queue {
			w.ch <- nil
		}
		svc.queued.Add(-int64(len(svc.queue)))
		svc.queue = nil
		return
	}
	for _, s := range servers {
		svc.fillLocked(s, tbl)
	}
}
