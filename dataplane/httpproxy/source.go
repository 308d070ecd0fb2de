package httpproxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// A pool's connections to a server leave from the address its lease
// names (Lease.Source: the server's or the service's source_address,
// HAProxy's `source ADDR`), else from the one the routing table picks.
// The bind itself is the L4 pool's (a Picker that is a SourceBinder), so
// that a request's connection leaves from where a TCP connection to the
// same server does: the same options (a VIP the node does not hold yet
// binds; the port is picked at connect by the whole 4-tuple).
//
// Kept-alive connections are per source: each source address has a
// transport of its own, so that a connection from one address never
// carries a request its lease wants from another (a server whose source
// changed gets new connections; the old ones idle out).

// SourceBinder binds a socket to src, before it connects to server.
type SourceBinder interface {
	BindSource(fd uintptr, src netip.Addr, server netip.AddrPort) error
}

// sourceTransports are a pool's transports by source address, made on
// first use.
type sourceTransports struct {
	p  *Proxy
	pc Pool
	mu sync.Mutex
	m  map[netip.Addr]*http.Transport
}

// transport is the transport of connections leaving from src (invalid:
// the route's).
func (rt *poolRT) transport(src netip.Addr) *http.Transport {
	if !src.IsValid() {
		return rt.tr
	}
	s := rt.src
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.m[src]
	if t == nil {
		b, _ := s.p.picker.(SourceBinder)
		t = newTransport(s.pc, sourceControl(b, src))
		if s.m == nil {
			s.m = map[netip.Addr]*http.Transport{}
		}
		s.m[src] = t
	}
	return t
}

// closeIdle closes the pool's idle connections, from every source.
func (rt *poolRT) closeIdle() {
	rt.tr.CloseIdleConnections()
	rt.src.mu.Lock()
	defer rt.src.mu.Unlock()
	for _, t := range rt.src.m {
		t.CloseIdleConnections()
	}
}

// newTransport is a transport to a pool's servers with its timeouts;
// control, when set, binds each socket before it connects.
func newTransport(pc Pool, control func(network, address string, c syscall.RawConn) error) *http.Transport {
	d := &net.Dialer{Timeout: pc.Connect, Control: control}
	dial := d.DialContext
	if pc.Server > 0 {
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &idleConn{Conn: c, idle: pc.Server}, nil
		}
	}
	return &http.Transport{
		DialContext:           dial,
		ResponseHeaderTimeout: pc.Server,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
	}
}

// sourceControl binds a dialed socket to src through b; without a
// binder the dial fails (the request is answered 503, as when no
// server can be reached), never leaving from another address.
func sourceControl(b SourceBinder, src netip.Addr) func(network, address string, c syscall.RawConn) error {
	return func(_, address string, c syscall.RawConn) error {
		if b == nil {
			return fmt.Errorf("source address %v: no binder", src)
		}
		server, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("source address %v: server %q: %w", src, address, err)
		}
		var berr error
		if err := c.Control(func(fd uintptr) { berr = b.BindSource(fd, src, server) }); err != nil {
			return err
		}
		return berr
	}
}

// dialLease connects to a lease's server (SNI routing), from its source
// address when it has one.
func (p *Proxy) dialLease(lease Lease, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	if lease.Source.IsValid() {
		b, _ := p.picker.(SourceBinder)
		d.Control = sourceControl(b, lease.Source)
	}
	return d.Dial("tcp", lease.Addr.String())
}
