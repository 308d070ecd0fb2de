package l4proxy

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SourceRules are a service's rules on client source addresses (HAProxy's
// `tcp-request connection reject` with ACLs on src, and stick tables on
// src_conn_cur / src_conn_rate). They are checked right after accept,
// before the connection takes a server, a queue place or a buffer.
//
// Allow and deny: when Allow is non-empty only sources in Allow pass; a
// source in Deny is refused even when it is also in Allow (deny wins).
// IPv4 prefixes also match IPv4 clients that reach a dual-stack bind as
// v4-mapped IPv6 addresses, and a v4-mapped IPv6 prefix (::ffff:10.0.0.0/104)
// matches the same IPv4 clients.
//
// A refused connection is reset (RST: SO_LINGER 0 then close), not closed
// gracefully: the client fails at once with "connection reset" instead of
// reading an end of file that looks like a served-then-closed session, and
// the gateway keeps no TIME_WAIT socket per refused connection (a flood of
// refused sources would otherwise fill the TIME_WAIT table).
type SourceRules struct {
	Allow []netip.Prefix `json:"allow,omitempty"`
	Deny  []netip.Prefix `json:"deny,omitempty"`
	// MaxConnPerSource caps the concurrent connections of one source
	// address; further ones are refused. 0: no cap.
	MaxConnPerSource int `json:"max_conn_per_source,omitempty"`
	// MaxRatePerSource caps the new connections of one source address per
	// RatePeriod (default 1s); further ones are refused. It is a token
	// bucket refilled evenly over the period (GCRA) holding up to
	// MaxRatePerSource tokens: a burst of that many passes, then one per
	// RatePeriod/MaxRatePerSource. 0: no cap.
	MaxRatePerSource int           `json:"max_rate_per_source,omitempty"`
	RatePeriod       time.Duration `json:"rate_period,omitempty"`
	// MaxSources bounds the per-source table that the two limits need
	// (default 65536 addresses): when it is full, sources with no live
	// connection are evicted, so that a flood of distinct (spoofed)
	// addresses cannot grow it without bound. A new source that finds the
	// table full of sources that all hold connections is refused
	// (counted as a connection-limit refusal).
	MaxSources int `json:"max_sources,omitempty"`
}

// DefaultMaxSources is SourceRules.MaxSources when zero.
const DefaultMaxSources = 65536

func (r *SourceRules) validate() []error {
	var errs []error
	for _, p := range append(slices.Clip(r.Allow), r.Deny...) {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("source rules: invalid prefix %v", p))
		}
	}
	if r.MaxConnPerSource < 0 || r.MaxRatePerSource < 0 || r.RatePeriod < 0 || r.MaxSources < 0 {
		errs = append(errs, fmt.Errorf("source rules: negative limit"))
	}
	if r.MaxRatePerSource > 0 && r.period()/time.Duration(r.MaxRatePerSource) <= 0 {
		errs = append(errs, fmt.Errorf("source rules: rate %d per %v is too high", r.MaxRatePerSource, r.period()))
	}
	return errs
}

func (r *SourceRules) period() time.Duration {
	if r.RatePeriod == 0 {
		return time.Second
	}
	return r.RatePeriod
}

// srcVerdict is why a source was refused; 0 admits it.
type srcVerdict uint8

const (
	admitted   srcVerdict = iota
	denyList              // the source is in Deny
	notAllowed            // Allow is non-empty and the source is not in it
	connLimit             // MaxConnPerSource reached (or the table is full)
	rateLimit             // MaxRatePerSource reached
)

// srcRules is SourceRules compiled once per configuration: matchers and
// the limits in the units the accept path uses.
type srcRules struct {
	allow, deny prefixSet
	hasAllow    bool
	maxConn     int32
	interval    int64 // ns between tokens: period / rate; 0: no rate limit
	burst       int64 // period - interval: how far ahead of now a source may run
	maxSources  int
}

func compileSource(r *SourceRules) *srcRules {
	if r == nil {
		return nil
	}
	c := &srcRules{
		allow: newPrefixSet(r.Allow), deny: newPrefixSet(r.Deny), hasAllow: len(r.Allow) > 0,
		maxConn: int32(r.MaxConnPerSource), maxSources: r.MaxSources,
	}
	if c.maxSources == 0 {
		c.maxSources = DefaultMaxSources
	}
	if r.MaxRatePerSource > 0 {
		c.interval = int64(r.period()) / int64(r.MaxRatePerSource)
		c.burst = int64(r.period()) - c.interval
	}
	return c
}

// check applies the lists; limits are the table's.
func (c *srcRules) check(a netip.Addr) srcVerdict {
	if c.deny.contains(a) {
		return denyList
	}
	if c.hasAllow && !c.allow.contains(a) {
		return notAllowed
	}
	return admitted
}

// limited reports whether the rules need the per-source table.
func (c *srcRules) limited() bool { return c.maxConn > 0 || c.interval > 0 }

// prefixSet is a set of prefixes as sorted, merged, disjoint ranges of
// 128-bit addresses (IPv4 in its v4-mapped IPv6 form), searched by
// bisection: 14 comparisons for 10,000 ranges, no allocation.
type prefixSet struct {
	lo, hi []u128
}

type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }

func addrU128(a netip.Addr) u128 {
	b := a.As16() // IPv4 becomes ::ffff:a.b.c.d
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// next returns a+1 and whether it did not wrap.
func (a u128) next() (u128, bool) {
	if a.lo != ^uint64(0) {
		return u128{a.hi, a.lo + 1}, true
	}
	if a.hi != ^uint64(0) {
		return u128{a.hi + 1, 0}, true
	}
	return a, false
}

func newPrefixSet(ps []netip.Prefix) prefixSet {
	type rng struct{ lo, hi u128 }
	rs := make([]rng, 0, len(ps))
	for _, p := range ps {
		if !p.IsValid() {
			continue
		}
		p = p.Masked()
		bits := p.Bits()
		if p.Addr().Is4() {
			bits += 96
		}
		lo := addrU128(p.Addr())
		hi := lo
		// Host bits: the low 128-bits bits set.
		host := 128 - bits
		switch {
		case host >= 64:
			hi.lo = ^uint64(0)
			if host > 64 {
				hi.hi |= ^uint64(0) >> (128 - host)
			}
		case host > 0:
			hi.lo |= ^uint64(0) >> (64 - host)
		}
		rs = append(rs, rng{lo, hi})
	}
	slices.SortFunc(rs, func(a, b rng) int {
		switch {
		case a.lo.less(b.lo):
			return -1
		case b.lo.less(a.lo):
			return 1
		}
		return 0
	})
	var s prefixSet
	for _, r := range rs {
		if n := len(s.hi); n > 0 {
			// Overlapping or adjacent to the previous range: extend it.
			end, ok := s.hi[n-1].next()
			if !ok || !end.less(r.lo) {
				if s.hi[n-1].less(r.hi) {
					s.hi[n-1] = r.hi
				}
				continue
			}
		}
		s.lo = append(s.lo, r.lo)
		s.hi = append(s.hi, r.hi)
	}
	return s
}

func (s *prefixSet) len() int { return len(s.lo) }

func (s *prefixSet) contains(a netip.Addr) bool {
	if len(s.lo) == 0 || !a.IsValid() {
		return false
	}
	x := addrU128(a)
	// The last range starting at or before x.
	i, j := 0, len(s.lo)
	for i < j {
		h := int(uint(i+j) >> 1)
		if x.less(s.lo[h]) {
			j = h
		} else {
			i = h + 1
		}
	}
	return i > 0 && !s.hi[i-1].less(x)
}

// srcTable is a service's per-source state for the limits. It lives as
// long as the service (a reconfiguration keeps the counts).
type srcTable struct {
	mu   sync.Mutex
	m    map[netip.Addr]srcEntry
	full bool // the last sweep could not make room: skip sweeps until a source holds no connection
}

type srcEntry struct {
	cur int32 // live connections counted against MaxConnPerSource
	tat int64 // GCRA theoretical arrival time (monoNow ns)
}

// idle reports whether the entry says nothing an absent one would not.
func (e srcEntry) idle(now int64) bool { return e.cur <= 0 && e.tat <= now }

// admit counts a new connection from a against the limits at time now
// (monoNow). held reports whether it took a concurrency slot that
// release must give back.
func (t *srcTable) admit(c *srcRules, a netip.Addr, now int64) (v srcVerdict, held bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[netip.Addr]srcEntry)
	}
	e, ok := t.m[a]
	if !ok && len(t.m) >= c.maxSources {
		if !t.full {
			t.sweep(now, c.maxSources)
		}
		if len(t.m) >= c.maxSources {
			t.full = true
			return connLimit, false
		}
	}
	if c.maxConn > 0 && e.cur >= c.maxConn {
		return connLimit, false
	}
	if c.interval > 0 {
		tat := max(e.tat, now)
		if tat-now > c.burst {
			return rateLimit, false
		}
		e.tat = tat + c.interval
	}
	if c.maxConn > 0 {
		e.cur++
		held = true
	}
	t.m[a] = e
	return admitted, held
}

// sweep makes room: first it drops idle entries; if that freed less than
// an eighth of max, it also drops the rate history of sources holding no
// connection (a flood of fresh addresses must not cost a sweep per
// connection, and those are the flood's own entries).
func (t *srcTable) sweep(now int64, maxN int) {
	before := len(t.m)
	for a, e := range t.m {
		if e.idle(now) {
			delete(t.m, a)
		}
	}
	if freed := before - len(t.m); freed > 0 && freed >= maxN/8 {
		return
	}
	for a, e := range t.m {
		if e.cur <= 0 {
			delete(t.m, a)
		}
	}
}

// release gives back a concurrency slot taken by admit.
func (t *srcTable) release(a netip.Addr, now int64) {
	t.mu.Lock()
	e := t.m[a]
	e.cur--
	if e.cur <= 0 {
		t.full = false // a sweep can evict it now
	}
	if e.idle(now) {
		delete(t.m, a)
	} else {
		t.m[a] = e
	}
	t.mu.Unlock()
}

func (t *srcTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// admitSource decides on a just-accepted connection from a. It counts the
// refusal by reason.
func (svc *service) admitSource(c *srcRules, a netip.Addr) (ok, held bool) {
	v := c.check(a)
	if v == admitted && c.limited() {
		v, held = svc.srcTbl.admit(c, a, monoNow())
	}
	switch v {
	case admitted:
		return true, held
	case denyList:
		svc.deniedList.Add(1)
	case notAllowed:
		svc.deniedNotAllowed.Add(1)
	case connLimit:
		svc.deniedConnLimit.Add(1)
	case rateLimit:
		svc.deniedRateLimit.Add(1)
	}
	return false, false
}

// rstLinger is SO_LINGER {on, 0 s}: close sends a RST.
var rstLinger = unix.Linger{Onoff: 1, Linger: 0}

// refuse resets and closes a refused connection.
func refuse(fd int) {
	_, _, _ = unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_LINGER,
		uintptr(unsafe.Pointer(&rstLinger)), unsafe.Sizeof(rstLinger), 0)
	rawClose(fd)
}
