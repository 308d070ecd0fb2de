package healthcheck

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"regexp"
)

// prober connects a check to one server: plain TCP or TLS, always under
// the check's deadline. One prober belongs to one server's check loop, so
// it needs no lock.
type prober struct {
	ck  *Check
	max int // what an expect searches at most

	tls    *tls.Config // nil: no TLS
	tlsErr error       // a CA or certificate file that could not be loaded
	// byName is the TLS config with the target's address as the name to
	// verify, kept for the (usually single) target it was built for.
	byName     *tls.Config
	byNameAddr netip.Addr
	res        map[string]*regexp.Regexp // compiled expect_regex of http requests
	dialer     net.Dialer                // checkDialer, from the check's Source
	// via, when valid, is the SOCKS4 proxy every connection of the check
	// goes through (Loop.Via, set before each check).
	via netip.AddrPort
}

func newProber(c *Check) *prober {
	p := &prober{ck: c, max: c.maxRead(), dialer: checkDialer}
	if a := c.Source; a.IsValid() {
		p.dialer.LocalAddr = &net.TCPAddr{IP: a.AsSlice()}
		// A VIP taken as source binds before the node holds it; its
		// checks fail until it does, as the connections would.
		p.dialer.Control = freeBind
	}
	if c.TLS != nil {
		p.tls, p.tlsErr = checkTLSConfig(c)
	}
	return p
}

// checkTLSConfig reads the CA and client certificate files. A session
// cache lets servers resume sessions: no certificate to send and verify
// at every check.
func checkTLSConfig(c *Check) (*tls.Config, error) {
	t := c.TLS
	cfg := &tls.Config{
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.Verify == "none", //nolint:gosec // the operator's explicit "verify: none"
		ClientSessionCache: tls.NewLRUClientSessionCache(4),
		MinVersion:         tls.VersionTLS12,
		// Plain X25519 first: Go's default hybrid post-quantum key share
		// doubled the CPU of a TLS check (BenchmarkChecks1000), and a
		// health check carries no secret worth harvesting.
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256},
	}
	if cfg.ServerName == "" && c.Host != "" {
		cfg.ServerName = c.Host
	}
	if t.CAFile != "" {
		pem, err := readFileBounded(t.CAFile, 1<<20)
		if err != nil {
			return nil, fmt.Errorf("tls ca_file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca_file %s: no PEM certificate", t.CAFile)
		}
	}
	if t.CertFile != "" {
		certPEM, err := readFileBounded(t.CertFile, 1<<20)
		if err != nil {
			return nil, fmt.Errorf("tls cert_file: %w", err)
		}
		keyPEM, err := readFileBounded(t.KeyFile, 1<<20)
		if err != nil {
			return nil, fmt.Errorf("tls key_file: %w", err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("tls client certificate %s: %w", t.CertFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// tlsFor is the TLS config for a target: without a configured name, the
// certificate must name the address the check connects to.
func (p *prober) tlsFor(t netip.AddrPort) *tls.Config {
	if p.tls.ServerName != "" || p.tls.InsecureSkipVerify {
		return p.tls
	}
	if p.byName == nil || p.byNameAddr != t.Addr() {
		p.byName = p.tls.Clone()
		p.byName.ServerName = t.Addr().String()
		p.byNameAddr = t.Addr()
	}
	return p.byName
}

// dial connects to t, through the SOCKS4 proxy p.via when there is one,
// in TLS when the check has it and useTLS holds; the connection's
// deadline is the check's. On failure it returns the reason.
func (p *prober) dial(ctx context.Context, t netip.AddrPort, useTLS bool) (net.Conn, string) {
	if useTLS && p.tlsErr != nil {
		return nil, "L6 " + p.tlsErr.Error()
	}
	var c net.Conn
	var err error
	if p.via.IsValid() {
		c, err = DialSOCKS4(ctx, &p.dialer, p.via, t)
		if err != nil {
			return nil, "L4 connect via socks4 " + p.via.String() + ": " + shortErr(err)
		}
	} else if c, err = p.dialer.DialContext(ctx, "tcp", t.String()); err != nil {
		return nil, "L4 connect: " + shortErr(err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if !useTLS || p.tls == nil {
		return c, ""
	}
	tc := tls.Client(c, p.tlsFor(t))
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = c.Close()
		return nil, "L6 TLS handshake: " + err.Error()
	}
	return tc, ""
}

// abort closes a check's connection with a reset, as HAProxy does: no
// FIN exchange, no TLS close_notify, and no TIME_WAIT socket left behind
// for every check (a thousand checks a second would otherwise hold some
// 60,000 of them, and the ports they pin).
func abort(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

func (p *prober) connectOnly(ctx context.Context, t netip.AddrPort) (bool, string) {
	c, why := p.dial(ctx, t, true)
	if c == nil {
		return false, why
	}
	abort(c)
	if p.tls != nil {
		return true, "L6 ok"
	}
	return true, "L4 ok"
}

// verdict is what a matcher makes of the reply read so far.
type verdict int

const (
	needMore verdict = iota
	pass
	fail
)

// step is one step of a sequence, prepared: a connect, a send, or an
// expect whose matcher decides on the reply read since the last send.
type step struct {
	connect bool
	port    uint16
	noTLS   bool
	send    []byte
	match   func(reply []byte) (verdict, string)
	what    string // the expect in words, for failures
}

func stepsFrom(cs []CheckStep) ([]step, error) {
	var out []step
	for i, s := range cs {
		switch {
		case s.Connect:
			out = append(out, step{connect: true, port: s.Port, noTLS: s.NoTLS})
		case s.Send != nil:
			out = append(out, step{send: s.Send})
		case s.Expect != nil:
			out = append(out, expectBytes(s.Expect))
		case s.ExpectRegex != "":
			re, err := regexp.Compile(s.ExpectRegex)
			if err != nil {
				return nil, fmt.Errorf("step %d: expect_regex: %w", i, err)
			}
			out = append(out, step{what: fmt.Sprintf("rstring %q", s.ExpectRegex), match: func(b []byte) (verdict, string) {
				if re.Match(b) {
					return pass, ""
				}
				return needMore, ""
			}})
		}
	}
	return out, nil
}

func expectBytes(want []byte) step {
	return step{what: quoteBytes(want), match: func(b []byte) (verdict, string) {
		if bytes.Contains(b, want) {
			return pass, ""
		}
		return needMore, ""
	}}
}

// sequence runs the steps over one connection at a time (HAProxy's
// tcp-check). What an expect searches is capped at p.max bytes.
func (p *prober) sequence(ctx context.Context, t netip.AddrPort, steps []step) (bool, string) {
	var c net.Conn
	defer func() {
		if c != nil {
			abort(c)
		}
	}()
	buf := make([]byte, 0, min(512, p.max))
	for i, s := range steps {
		if c == nil && !s.connect {
			var why string
			if c, why = p.dial(ctx, t, true); c == nil {
				return false, why
			}
		}
		switch {
		case s.connect:
			if c != nil {
				abort(c)
				c = nil
			}
			to := t
			if s.port != 0 {
				to = netip.AddrPortFrom(t.Addr(), s.port)
			}
			var why string
			if c, why = p.dial(ctx, to, !s.noTLS); c == nil {
				return false, fmt.Sprintf("step %d: %s", i+1, why)
			}
			buf = buf[:0]
		case s.send != nil:
			buf = buf[:0]
			if _, err := c.Write(s.send); err != nil {
				return false, fmt.Sprintf("L7 step %d: send: %s", i+1, shortErr(err))
			}
		default:
			for {
				v, why := s.match(buf)
				if v == pass {
					break
				}
				if v == fail {
					return false, fmt.Sprintf("L7 step %d: %s", i+1, why)
				}
				if len(buf) >= p.max {
					return false, fmt.Sprintf("L7 step %d: expect %s not found in the first %d bytes", i+1, s.what, p.max)
				}
				if len(buf) == cap(buf) {
					buf = append(buf[:cap(buf)], make([]byte, min(cap(buf), p.max-cap(buf)))...)[:len(buf)]
				}
				n, err := c.Read(buf[len(buf):min(cap(buf), p.max)])
				buf = buf[:len(buf)+n]
				if n == 0 && err != nil {
					return false, fmt.Sprintf("L7 step %d: expect %s: %s", i+1, s.what, shortErr(err))
				}
			}
		}
	}
	return true, "L7 ok"
}
