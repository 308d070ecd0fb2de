package l4proxy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Servers by name (Server.Host), HAProxy's `server NAME host:port` with
// `init-addr none` and a resolver that re-resolves by interval:
//
//   - Start: a named server is added without an address, DOWN with the
//     reason "unresolved"; its first lookup runs at once, in the
//     background, so that neither Set nor the commit ever waits on, or
//     fails for, a name. A name that never resolves stays shown, DOWN.
//   - Every Service.ResolveInterval (jittered ±10%), the system resolver
//     (/etc/hosts, then DNS per /etc/resolv.conf) is asked again, bounded
//     by ResolveTimeout. One address is used: the current one while the
//     answer still holds it (round-robin DNS does not move traffic), else
//     the first of the answer, IPv4 or IPv6 in the resolver's order.
//   - A new address is applied in place: connections already established
//     keep their socket to the old address; new connections and checks go
//     to the new one. Nothing is cut.
//   - A name that stops resolving keeps its last address, shown stale
//     since the first failure (HAProxy's `hold valid` without a bound).
//
// Each named server has one resolver goroutine, owned by the pool and
// never run on an event loop.

// LookupFunc resolves a host name to its addresses; the production one is
// the system resolver (net.Resolver.LookupNetIP with network "ip").
type LookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

// ResolveTimeout bounds one lookup (and at most the resolve interval).
const ResolveTimeout = 5 * time.Second

// MinResolveInterval bounds Service.ResolveInterval from below.
const MinResolveInterval = 100 * time.Millisecond

func systemLookup(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// validHostname accepts an RFC 1123 host name that is not an IP address.
func validHostname(h string) error {
	name := strings.TrimSuffix(h, ".")
	if name == "" || len(name) > 253 {
		return fmt.Errorf("%q: not a host name (1 to 253 characters)", h)
	}
	if _, err := netip.ParseAddr(name); err == nil || strings.Trim(name, "0123456789.") == "" {
		return fmt.Errorf("%q: an IP address, not a host name", h)
	}
	for _, l := range strings.Split(name, ".") {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("%q: label %q must be 1 to 63 characters, not starting or ending with '-'", h, l)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("%q: label %q: character %q not allowed", h, l, c)
			}
		}
	}
	return nil
}

// dnsState is what the resolver of one named server knows; guarded by
// the server's mu. A new Host gets a new dnsState: results for the old
// one are then ignored.
type dnsState struct {
	host       string
	addr       netip.Addr // last address found; invalid until the first answer
	resolvedAt time.Time  // time of the last answer
	failedAt   time.Time  // first failure since the last answer; zero: none
	err        string     // the last failure
	stop       func()     // cancels the resolver goroutine
}

// startResolve runs the resolver of s for its dnsState d. Called with
// svc.mu held; the goroutine is only cancelled, never waited for, under
// that lock (it takes svc.mu to publish a result).
func (svc *service) startResolve(s *server, d *dnsState) {
	p := svc.pool
	ctx, cancel := context.WithCancel(p.ctx)
	d.stop = cancel
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		var delay time.Duration // the first lookup at once
		for {
			if delay > 0 {
				select {
				case <-ctx.Done():
					return
				case <-p.clock.After(delay):
				}
			}
			every := svc.set.Load().ResolveInterval
			lctx, lcancel := context.WithTimeout(ctx, min(ResolveTimeout, every))
			addrs, err := p.lookup(lctx, d.host)
			lcancel()
			if ctx.Err() != nil {
				return
			}
			svc.resolved(s, d, addrs, err, p.clock.Now())
			delay = jitter(every)
		}
	}()
}

// jitter spreads d by ±10% so that many names do not hit the resolver at once.
func jitter(d time.Duration) time.Duration {
	if span := int64(d / 5); span > 0 {
		return d - d/10 + time.Duration(rand.Int64N(span))
	}
	return d
}

// resolved records one lookup's outcome and applies a new address in
// place.
func (svc *service) resolved(s *server, d *dnsState, addrs []netip.Addr, err error, now time.Time) {
	for i, a := range addrs {
		addrs[i] = a.Unmap()
	}
	addrs = slices.DeleteFunc(addrs, func(a netip.Addr) bool { return !a.IsValid() || a.IsUnspecified() })
	if err == nil && len(addrs) == 0 {
		err = errors.New("no address")
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	s.mu.Lock()
	if s.dns != d || s.removed.Load() {
		s.mu.Unlock()
		return // a result for a name no longer configured
	}
	prev := d.addr
	if err != nil {
		if d.failedAt.IsZero() {
			d.failedAt = now
		}
		d.err = err.Error()
		s.mu.Unlock()
		if prev.IsValid() {
			svc.pool.log.Debug("name does not resolve, keeping its last address", "service", svc.name, "server", s.name, "host", d.host, "addr", prev, "err", err)
		}
		return
	}
	next := addrs[0]
	if slices.Contains(addrs, prev) {
		next = prev
	}
	d.addr, d.resolvedAt, d.failedAt, d.err = next, now, time.Time{}, ""
	s.mu.Unlock()
	if next == prev {
		return
	}
	c := s.cfg.Load().Server
	s.storeCfg(c, next)
	svc.pool.log.Info("server name resolved to a new address", "service", svc.name, "server", s.name, "host", d.host, "addr", next, "previous", prev)
	if !prev.IsValid() {
		svc.rebuild() // unresolved → eligible
	}
}
