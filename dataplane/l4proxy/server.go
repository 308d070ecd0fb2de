package l4proxy

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// serverCfg is the part of a server that Set may change in place; it is
// replaced as a whole and read through an atomic pointer.
type serverCfg struct {
	Server
	addrStr string
	tcpAddr *net.TCPAddr
	// unresolved: a named server with no address yet; not eligible.
	unresolved bool
}

// server is the live state of one backend server. Its identity is its name
// within a service: a Set that keeps the name keeps the object, its
// counters, health state and connections.
type server struct {
	name string
	cfg  atomic.Pointer[serverCfg]
	tls  atomic.Pointer[serverTLS] // nil: plain TCP (servertls.go)

	up      atomic.Bool // health: true unless a check marked it down
	removed atomic.Bool

	cur, total          atomic.Int64
	bytesIn, bytesOut   atomic.Int64
	connErrors, retries atomic.Int64
	failedChecks        atomic.Int64
	queued, maxQueued   atomic.Int64 // own queue: connections that must come here
	queueTimeouts       atomic.Int64

	queue []*waiter // guarded by the service's qmu

	// dns is the resolution of Host (resolve.go), guarded by mu (and set
	// under the service's mu too); nil for a server given by address.
	dns *dnsState

	mu         sync.Mutex // guards the fields below
	conns      *conn      // intrusive list of live connections
	lastChange time.Time
	downSince  time.Time
	downtime   time.Duration
	checkDesc  string
	checkDur   time.Duration
	// lastCheck is when the last completed check began, lastCheckOK its
	// result: a gate waits for a check begun after an event (a restart),
	// not for a status that may predate it.
	lastCheck   time.Time
	lastCheckOK bool
	checkStop   func()     // stops the health-check loop (startCheck); nil without checks
	checkSrc    netip.Addr // the source address the running check loop binds (sourceaddr.go)
}

func newServer(s Server, now time.Time) *server {
	sv := &server{name: s.Name, lastChange: now}
	sv.up.Store(true)
	sv.setCfg(s)
	return sv
}

// setCfg applies a configured Server in place. A named server keeps the
// address its resolver found as long as its Host stays the same; a new
// Host starts over, unresolved, with a dnsState whose resolver the caller
// starts (its stop is nil until then). Called with the service's mu held, or
// before s is shared.
func (s *server) setCfg(c Server) {
	var addr netip.Addr
	s.mu.Lock()
	old := s.dns
	switch {
	case c.Host == "":
		s.dns = nil
	case old == nil || old.host != c.Host:
		s.dns = &dnsState{host: c.Host}
	default:
		addr = old.addr
	}
	s.mu.Unlock()
	if old != nil && old != s.dns && old.stop != nil {
		old.stop()
	}
	s.storeCfg(c, addr)
}

// storeCfg publishes c; for a named server, with addr (invalid: unresolved)
// at c.Port. Connections read the address when they connect: those
// already established are not touched.
func (s *server) storeCfg(c Server, addr netip.Addr) {
	sc := &serverCfg{Server: c}
	if c.Host != "" {
		sc.Addr = netip.AddrPort{}
		if addr.IsValid() {
			sc.Addr = netip.AddrPortFrom(addr, c.Port)
		}
		sc.unresolved = !addr.IsValid()
	}
	if sc.Addr.IsValid() {
		sc.addrStr, sc.tcpAddr = sc.Addr.String(), net.TCPAddrFromAddrPort(sc.Addr)
	}
	s.cfg.Store(sc)
}

// stopResolve cancels the server's resolver, if any. Called with the
// service's mu held.
func (s *server) stopResolve() {
	s.mu.Lock()
	d := s.dns
	s.mu.Unlock()
	if d != nil && d.stop != nil {
		d.stop()
	}
}

// eligible reports whether the server may take new connections at all
// (full or not): up, ready, weighted and still configured.
func (s *server) eligible() bool {
	c := s.cfg.Load()
	return s.up.Load() && !s.removed.Load() && !c.unresolved && c.admin() == Ready && c.Weight > 0
}

// eligibleIn reports whether s is eligible and part of the candidate set.
func (s *server) eligibleIn(set []*server) bool {
	return s.eligible() && slices.Contains(set, s)
}

func (s *server) full() bool {
	mc := s.cfg.Load().MaxConn
	return mc > 0 && s.cur.Load() >= int64(mc)
}

// acquire takes a connection slot; false when the server just became full.
func (s *server) acquire() bool {
	mc := int64(s.cfg.Load().MaxConn)
	n := s.cur.Add(1)
	if mc > 0 && n > mc {
		s.cur.Add(-1)
		return false
	}
	return true
}

func (s *server) link(c *conn) {
	s.mu.Lock()
	c.next = s.conns
	if s.conns != nil {
		s.conns.prev = c
	}
	s.conns = c
	s.mu.Unlock()
}

func (s *server) unlink(c *conn) {
	s.mu.Lock()
	if c.prev != nil {
		c.prev.next = c.next
	} else if s.conns == c {
		s.conns = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	}
	c.prev, c.next = nil, nil
	s.mu.Unlock()
}

// shutdownSessions aborts every live connection of the server (their
// loops do it; the requests are posted under the lock, so that no
// connection is recycled under us).
func (s *server) shutdownSessions(term string) int {
	n := 0
	s.mu.Lock()
	for c := s.conns; c != nil; c = c.next {
		c.requestAbort(term)
		n++
	}
	s.mu.Unlock()
	return n
}

// setUp records a health transition; it returns false when nothing changed.
func (s *server) setUp(up bool, now time.Time) bool {
	if s.up.Swap(up) == up {
		return false
	}
	s.mu.Lock()
	s.lastChange = now
	if up {
		if !s.downSince.IsZero() {
			s.downtime += now.Sub(s.downSince)
		}
		s.downSince = time.Time{}
	} else {
		s.downSince = now
	}
	s.mu.Unlock()
	return true
}

// reap hands the server's connections whose connect or whose client or
// server side has outlived its timeout to their loops.
func (s *server) reap(now int64) {
	s.mu.Lock()
	for c := s.conns; c != nil; c = c.next {
		c.reapCheck(now)
	}
	s.mu.Unlock()
}
