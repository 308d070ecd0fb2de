package vrrp

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// link is one packet connection (interface × family) shared by the
// instances on it; its reader hands each packet to the instance of its VRID.
type link struct {
	e       *Engine
	key     linkKey
	conn    Conn
	done    chan struct{}
	closing atomic.Bool

	mu     sync.RWMutex
	byVRID map[uint8]*instance
}

func newLink(e *Engine, k linkKey, c Conn) *link {
	return &link{e: e, key: k, conn: c, done: make(chan struct{}), byVRID: map[uint8]*instance{}}
}

func (l *link) attach(in *instance) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.byVRID[in.cfg.VRID] = in
}

// detach removes in and returns how many instances remain.
func (l *link) detach(in *instance) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byVRID[in.cfg.VRID] == in {
		delete(l.byVRID, in.cfg.VRID)
	}
	return len(l.byVRID)
}

// idle reports whether no instance is attached.
func (l *link) idle() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.byVRID) == 0
}

func (l *link) close() {
	l.closing.Store(true)
	_ = l.conn.Close()
	<-l.done
}

func (l *link) readLoop() {
	defer close(l.done)
	buf := make([]byte, 65536)
	for {
		r, err := l.conn.Read(buf)
		if err != nil {
			if l.closing.Load() || errors.Is(err, os.ErrClosed) || errors.Is(err, net.ErrClosed) {
				return
			}
			l.e.log.Warn("read VRRP packet", "interface", l.key.ifname, "err", err)
			time.Sleep(10 * time.Millisecond) // never spin on a persistent error
			continue
		}
		if len(r.Payload) < 2 {
			continue
		}
		l.mu.RLock()
		in := l.byVRID[r.Payload[1]]
		l.mu.RUnlock()
		if in == nil || r.Src == in.primary {
			continue // another VRID (not ours to judge) or our own advert
		}
		if l == in.parentLink && in.vmacUp.Load() && r.Dst.IsMulticast() {
			// The up IPv6 VMAC hears every multicast advert (it joined
			// the group, and those from the virtual MAC reach it only):
			// the parent's copy would be a duplicate.
			continue
		}
		// Queued packets are copied, and at most maxMessage of each: a
		// LAN host sending 64 KiB packets to every VRID must not make each
		// instance's queue hold 64 KiB per slot.
		r.Payload = append([]byte(nil), r.Payload[:min(len(r.Payload), maxMessage)]...)
		in.deliver(r)
	}
}
