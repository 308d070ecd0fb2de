package l4proxy

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/gitgw/gitgw/dataplane/healthcheck"
	"golang.org/x/sys/unix"
)

// A server with Server.SOCKS4 is reached through that proxy (HAProxy's
// `socks4`): the connection's socket connects to the proxy, and, still in
// the connect phase (phConnecting: the connect timeout and the reaper
// bound it, a failure is retried, redispatched and counted like a refused
// connect), sends the CONNECT request and reads the proxy's 8-byte reply
// on the event loop, without a goroutine. Once granted, the socket is a
// plain tunnel to the server: the PROXY protocol header, server TLS and
// splicing run over it exactly as over a direct connection.

// socksHop is the SOCKS4 state of one connect attempt (conn.socks).
type socksHop struct {
	dst  netip.AddrPort // the server asked for; zero: a direct connect
	sent bool           // the request is out
	got  uint8          // bytes of the reply read
	rep  [healthcheck.SOCKS4ReplyLen]byte
}

// errSOCKS4ShortWrite is a request the proxy's socket did not take whole:
// a fresh socket's buffer always takes 9 bytes, so the proxy is broken.
var errSOCKS4ShortWrite = errors.New("socks4: request not sent whole")

// socksTarget is where dial connects for srv's configuration sc: the
// proxy, with the hop that the connect phase then runs, or the server.
func socksTarget(sc *serverCfg) (netip.AddrPort, socksHop) {
	if sc.SOCKS4.IsValid() {
		return sc.SOCKS4, socksHop{dst: sc.Addr}
	}
	return sc.Addr, socksHop{}
}

// socksStep advances the SOCKS4 exchange on the connected socket to the
// proxy: it sends the request once, then reads what the reply has sent
// so far. done: granted (the tunnel is up); an error is a failed connect.
func (c *conn) socksStep() (done bool, err error) {
	h := &c.socks
	if !h.sent {
		req, err := healthcheck.SOCKS4Request(h.dst)
		if err != nil {
			return false, err
		}
		n, err := unix.Write(c.server, req[:])
		if err != nil {
			return false, fmt.Errorf("socks4: send request: %w", err)
		}
		if n != len(req) {
			return false, errSOCKS4ShortWrite
		}
		h.sent = true
	}
	for int(h.got) < len(h.rep) {
		n, err := unix.Read(c.server, h.rep[h.got:])
		switch {
		case err == unix.EAGAIN:
			return false, nil // the rest comes with the next edge
		case err == unix.EINTR:
			continue
		case err != nil:
			return false, fmt.Errorf("socks4: read reply: %w", err)
		case n == 0:
			return false, healthcheck.ErrSOCKS4Closed
		}
		h.got += uint8(n)
	}
	return true, healthcheck.SOCKS4Reply(h.rep)
}

// validateSOCKS4 reports a server's SOCKS4 settings that cannot work in
// its service sv.
func (s Service) validateSOCKS4(where string, sv Server) []error {
	var errs []error
	if !sv.SOCKS4.IsValid() {
		if sv.CheckViaSOCKS4 {
			errs = append(errs, fmt.Errorf("%s: check via socks4 without a socks4 proxy", where))
		}
		return errs
	}
	if sv.SOCKS4.Port() == 0 {
		errs = append(errs, fmt.Errorf("%s: socks4 proxy %v without a port", where, sv.SOCKS4))
	}
	if a := sv.Addr.Addr(); a.IsValid() && !a.Unmap().Is4() {
		errs = append(errs, fmt.Errorf("%s: socks4: address %v is IPv6, SOCKS4 carries IPv4 only", where, sv.Addr))
	}
	switch {
	case s.proto() == ProtoUDP:
		errs = append(errs, fmt.Errorf("%s: socks4: for TCP servers", where))
	case s.Transparent || s.TransparentAddr.IsValid():
		errs = append(errs, fmt.Errorf("%s: socks4 in a transparent service: the server would see the proxy, not the client or the transparent address", where))
	case s.HTTP != nil || s.SNI != nil:
		// Their connections are the HTTP proxy's, which dials directly.
		errs = append(errs, fmt.Errorf("%s: socks4 in an http or sni service: only plain TCP services connect through SOCKS4", where))
	}
	return errs
}

// describeVia is the server's SOCKS4 proxy in HAProxy's words; "" when
// it is reached directly.
func (s Server) describeVia() string {
	if !s.SOCKS4.IsValid() {
		return ""
	}
	if s.CheckViaSOCKS4 {
		return "socks4 " + s.SOCKS4.String() + " check-via-socks4"
	}
	return "socks4 " + s.SOCKS4.String()
}

// checkVia is where the server's checks connect through: its SOCKS4 proxy
// with check-via-socks4, else nowhere (directly).
func (s Server) checkVia() netip.AddrPort {
	if s.CheckViaSOCKS4 {
		return s.SOCKS4
	}
	return netip.AddrPort{}
}

// socksPools refuses the rules of HTTP or SNI service s that send to a
// pool with a server reached through SOCKS4: the HTTP proxy connects to
// the servers it picks directly.
func (c Config) socksPools(where string, s Service) []error {
	var uses []string
	if s.HTTP != nil {
		for _, r := range s.HTTP.Rules {
			uses = append(uses, r.Use)
		}
	}
	if s.SNI != nil {
		for _, r := range s.SNI.Rules {
			uses = append(uses, r.Use)
		}
	}
	var errs []error
	for _, o := range c.Services {
		if o.Name == s.Name || !slices.Contains(uses, o.Name) {
			continue
		}
		for _, sv := range o.Servers {
			if sv.SOCKS4.IsValid() {
				errs = append(errs, fmt.Errorf("%s: rules send to service %q, whose server %q is reached through socks4: HTTP and SNI connect to servers directly", where, o.Name, sv.Name))
			}
		}
	}
	return errs
}
