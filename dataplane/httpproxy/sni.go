package httpproxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// SNI routes a TLS service's connections, not terminated, by the server
// name of their ClientHello: HAProxy's mode tcp `use_backend P if {
// req_ssl_sni -i NAME }` after `tcp-request inspect-delay`. A connection
// whose hello names no rule's name, is no TLS or does not come within
// InspectDelay goes to the service's own servers.
type SNI struct {
	Rules []SNIRule `json:"rules"`
	// InspectDelay bounds the wait for the ClientHello (default 5s).
	InspectDelay time.Duration `json:"inspect_delay,omitempty"`
}

// SNIRule sends the connections whose server name matches one of Names
// (case-insensitive; Match exact or suffix) to the pool Use.
type SNIRule struct {
	Names []string `json:"names"`
	Match Match    `json:"match,omitempty"` // exact (default) or suffix
	Use   string   `json:"use"`
}

// DefaultInspectDelay is SNI.InspectDelay's default.
const DefaultInspectDelay = 5 * time.Second

// Validate reports every problem of s; pools names the services a rule
// may use.
func (s *SNI) Validate(pools func(string) bool) []error {
	var errs []error
	if s.InspectDelay < 0 {
		errs = append(errs, errors.New("sni: negative inspect_delay"))
	}
	for i, r := range s.Rules {
		where := fmt.Sprintf("sni: rule #%d", i+1)
		if len(r.Names) == 0 {
			errs = append(errs, fmt.Errorf("%s: no name", where))
		}
		switch r.Match {
		case "", MatchExact, MatchSuffix:
		default:
			errs = append(errs, fmt.Errorf("%s: match %q (want exact or suffix)", where, r.Match))
		}
		if r.Use == "" || pools != nil && !pools(r.Use) {
			errs = append(errs, fmt.Errorf("%s: use %q: no such TCP proxy service", where, r.Use))
		}
	}
	return errs
}

// pool is the pool of a connection whose hello named name.
func (s *SNI) pool(name, own string) string {
	name = strings.ToLower(name)
	for _, r := range s.Rules {
		for _, n := range r.Names {
			n = strings.ToLower(n)
			if name == n || r.Match == MatchSuffix && strings.HasSuffix(name, n) {
				return r.Use
			}
		}
	}
	return own
}

// errHelloRead ends the handshake once the ClientHello is read.
var errHelloRead = errors.New("client hello read")

// helloConn lets crypto/tls read a ClientHello, records the bytes it
// read, and swallows what it would write (the alert of the aborted
// handshake must not reach the client).
type helloConn struct {
	net.Conn
	buf []byte
}

func (c *helloConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.buf = append(c.buf, b[:n]...)
	return n, err
}

func (c *helloConn) Write(b []byte) (int, error) { return len(b), nil }

// serveSNI reads the ClientHello, picks the pool and splices the
// connection to one of its servers, replaying the bytes read.
func (f *frontend) serveSNI(c net.Conn, s *SNI) {
	defer c.Close()
	delay := s.InspectDelay
	if delay == 0 {
		delay = DefaultInspectDelay
	}
	hc := &helloConn{Conn: c}
	var name string
	_ = c.SetReadDeadline(time.Now().Add(delay))
	_ = tls.Server(hc, &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		name = h.ServerName
		return nil, errHelloRead
	}}).Handshake()
	_ = c.SetReadDeadline(time.Time{})
	pool := s.pool(name, f.name)
	rt := (*f.p.pools.Load())[pool]
	if rt == nil {
		return
	}
	client := netip.Addr{}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		client = ap.Addr().Unmap()
	}
	var avoid []string
	for attempt := 0; ; attempt++ {
		lease, err := f.p.picker.PickServer(pool, client, avoid, "")
		if err != nil {
			f.p.log.Debug("sni: no server", "service", f.name, "err", err)
			return
		}
		sc, err := f.p.dialLease(lease, rt.cfg.Connect)
		if err != nil {
			lease.Done(false)
			if attempt >= rt.cfg.Retries {
				return
			}
			avoid = append(avoid, lease.Server)
			continue
		}
		splice(c, sc, hc.buf, f.client)
		lease.Done(true)
		return
	}
}

// splice copies both ways until both are done, half-closing each side
// as its source ends; pending goes to the server first.
func splice(c, sc net.Conn, pending []byte, idle time.Duration) {
	defer sc.Close()
	if _, err := sc.Write(pending); err != nil {
		return
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(sc, c)
		if tc, ok := sc.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	_, _ = io.Copy(c, sc)
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	// The server is done: the client gets idle long to finish.
	_ = c.SetReadDeadline(time.Now().Add(idle))
	wg.Wait()
}
