package l4proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// TLS to the servers (HAProxy's `server … ssl`): the client side stays raw
// TCP, the server side is wrapped in crypto/tls.
//
// crypto/tls needs a blocking net.Conn, which the event loops cannot give
// it, so a TLS connection leaves its loop once its TCP connect completes:
//
//   - the loop takes the server socket out of its epoll set and hands it to
//     the runtime poller (a net.Conn), and a goroutine runs the handshake,
//     bounded by what is left of the connect timeout; the client socket
//     stays on the loop meanwhile, so that a failed handshake is retried
//     (or redispatched) exactly like a failed connect, and counted the same
//     way (the server's connection errors, termination SC or sC);
//   - once the handshake is done the loop gives up the client socket too,
//     and two goroutines copy through userspace, one per direction (splice
//     cannot move bytes in or out of a TLS record). The reaper's inactivity
//     timeouts, shutdown-sessions, a removed server's grace and Close reach
//     them through the loop as for any connection;
//   - nothing changes for plain servers: the branch is one nil test after
//     the connect.
//
// Each server keeps its own session cache (HAProxy's ssl-reuse), so that
// the next connection resumes instead of a full handshake; NoReuse turns it
// off. A TLS connection is not handed over to a successor process (its
// session keys live in this process): it stays with the old one, which
// drains it.

// ServerTLS is TLS from the proxy to a server.
type ServerTLS struct {
	// Verify "required" (the default) verifies the server's certificate
	// chain against CAFile (the system's roots without one) and, when a
	// name is known (VerifyHost, else SNI), that the certificate holds it;
	// without a name only the chain is verified, as HAProxy does. "none"
	// accepts any certificate.
	Verify string `json:"verify,omitempty"`
	CAFile string `json:"ca_file,omitempty"`
	// SNI is the name sent in the TLS server_name extension; none when empty.
	SNI string `json:"sni,omitempty"`
	// VerifyHost is the name the certificate must hold, when it differs
	// from SNI (HAProxy's verifyhost).
	VerifyHost string `json:"verify_host,omitempty"`
	// CertFile and KeyFile are a client certificate, for servers that ask.
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
	// ALPN are the protocols offered (HAProxy's alpn), in order.
	ALPN []string `json:"alpn,omitempty"`
	// NoReuse makes every connection a full handshake (HAProxy's
	// no-ssl-reuse); by default each server keeps a session cache.
	NoReuse bool `json:"no_reuse,omitempty"`
}

// TLS verify modes.
const (
	VerifyRequired = "required"
	VerifyNone     = "none"
)

func (t *ServerTLS) verify() string {
	if t.Verify == "" {
		return VerifyRequired
	}
	return t.Verify
}

// validate checks the settings' form; the files are read by Set.
func (t *ServerTLS) validate() []error {
	var errs []error
	switch t.Verify {
	case "", VerifyRequired, VerifyNone:
	default:
		errs = append(errs, fmt.Errorf("tls verify %q: want none or required", t.Verify))
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, errors.New("tls client certificate needs both cert_file and key_file"))
	}
	for _, f := range []struct{ name, v string }{{"sni", t.SNI}, {"verify_host", t.VerifyHost}} {
		if f.v != "" {
			if err := validHostname(f.v); err != nil {
				errs = append(errs, fmt.Errorf("tls %s: %w", f.name, err))
			}
		}
	}
	for i, p := range t.ALPN {
		if p == "" || len(p) > 255 {
			errs = append(errs, fmt.Errorf("tls alpn[%d]: %q: want 1 to 255 bytes", i, p))
		}
	}
	return errs
}

// maxTLSFile bounds what a CA or certificate file may hold.
const maxTLSFile = 1 << 20

func readTLSFile(field, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tls %s: %w", field, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTLSFile+1))
	if err != nil {
		return nil, fmt.Errorf("tls %s: %s: %w", field, path, err)
	}
	if len(b) > maxTLSFile {
		return nil, fmt.Errorf("tls %s: %s: larger than %d bytes", field, path, maxTLSFile)
	}
	return b, nil
}

// compile reads the CA and certificate files and builds the client
// config. Verification is done by verifyPeer rather than by crypto/tls,
// because HAProxy's "verify required" without a name checks the chain
// alone, which crypto/tls cannot be told.
func (t *ServerTLS) compile() (*tls.Config, error) {
	cfg := &tls.Config{
		ServerName:         t.SNI,
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection below, or the operator's explicit "verify: none"
		MinVersion:         tls.VersionTLS12,
		NextProtos:         slices.Clone(t.ALPN),
	}
	var roots *x509.CertPool
	if t.CAFile != "" {
		pem, err := readTLSFile("ca_file", t.CAFile)
		if err != nil {
			return nil, err
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca_file: %s: no PEM certificate", t.CAFile)
		}
	}
	if t.CertFile != "" {
		certPEM, err := readTLSFile("cert_file", t.CertFile)
		if err != nil {
			return nil, err
		}
		keyPEM, err := readTLSFile("key_file", t.KeyFile)
		if err != nil {
			return nil, err
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("tls cert_file: %s: %w", t.CertFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if t.verify() == VerifyRequired {
		name := t.VerifyHost
		if name == "" {
			name = t.SNI
		}
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			return verifyPeer(cs.PeerCertificates, roots, name)
		}
	}
	return cfg, nil
}

// verifyPeer verifies the chain the server sent against roots (nil: the
// system's), and the name when one is given.
func verifyPeer(certs []*x509.Certificate, roots *x509.CertPool, name string) error {
	if len(certs) == 0 {
		return errors.New("server sent no certificate")
	}
	opts := x509.VerifyOptions{Roots: roots, DNSName: name, Intermediates: x509.NewCertPool()}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	_, err := certs[0].Verify(opts)
	return err
}

// tlsKey identifies a ServerTLS's settings (compiled once per Set).
func (t *ServerTLS) key() string {
	return strings.Join([]string{t.verify(), t.CAFile, t.SNI, t.VerifyHost, t.CertFile, t.KeyFile,
		strings.Join(t.ALPN, ","), fmt.Sprint(t.NoReuse)}, "\x00")
}

// compileTLS builds the TLS config of every server that has TLS, reading
// the files; an error names the service, the server and the field, and
// Set then applies nothing (the pool keeps running what it ran).
func compileTLS(cfg Config) (map[string]*tls.Config, error) {
	out := map[string]*tls.Config{}
	var errs []error
	for _, s := range cfg.Services {
		for _, sv := range s.Servers {
			t := sv.TLS
			if t == nil {
				continue
			}
			k := t.key()
			if _, ok := out[k]; ok {
				continue
			}
			c, err := t.compile()
			if err != nil {
				errs = append(errs, fmt.Errorf("service %q: server %q: %w", s.Name, sv.Name, err))
				continue
			}
			out[k] = c
		}
	}
	return out, errors.Join(errs...)
}

// serverTLS is a server's live TLS: the compiled config of its settings,
// with a session cache of its own.
type serverTLS struct {
	base *tls.Config // shared by the servers with the same settings
	cfg  *tls.Config
}

// setTLS publishes the server's TLS config (nil: plain TCP); a server whose
// settings did not change keeps its session cache.
func (s *server) setTLS(base *tls.Config, noReuse bool) {
	if base == nil {
		s.tls.Store(nil)
		return
	}
	if cur := s.tls.Load(); cur != nil && cur.base == base {
		return
	}
	c := base.Clone()
	if !noReuse {
		c.ClientSessionCache = tls.NewLRUClientSessionCache(64)
	}
	s.tls.Store(&serverTLS{base: base, cfg: c})
}

// tlsState is a TLS connection's off-loop part. The loop sets it before
// the handshake starts; only the loop closes its sockets on an abort.
type tlsState struct {
	raw     net.Conn // the server's TCP socket
	tc      *tls.Conn
	cli     net.Conn // the client's socket, once the handshake is done
	aborted atomic.Bool
	err     error // the handshake's result, read by the loop
}

// fdConn hands a raw socket owned by the loop to the runtime poller: a
// net.Conn of its own (a duplicate), the original closed.
func fdConn(fd int, name string) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), name)
	c, err := net.FileConn(f)
	_ = f.Close()
	return c, err
}

// startTLS runs on the loop when the TCP connect to a TLS server has
// completed: the server socket leaves the loop for the handshake.
func (c *conn) startTLS(l *evloop, cfg *tls.Config) {
	_ = rawEpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.server, nil)
	raw, err := fdConn(c.server, "server")
	c.server = -1 // closed: raw holds the socket now
	if err != nil {
		c.srv.unlink(c)
		c.connectFailed(l, err)
		c.connectNext(l)
		return
	}
	c.phase.Store(phTLSHandshake)
	st := &tlsState{raw: raw, tc: tls.Client(raw, cfg)}
	c.tls = st
	deadline := time.Now().Add(time.Duration(c.connDeadline - l.now))
	gen := c.cgen
	go func() {
		_ = raw.SetDeadline(deadline)
		err := st.tc.Handshake()
		_ = raw.SetDeadline(time.Time{})
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			err = fmt.Errorf("%w: TLS handshake: %w", errConnectTimeout, err)
		} else if err != nil {
			err = fmt.Errorf("TLS handshake: %w", err)
		}
		st.err = err
		l.post(loopMsg{kind: msgTLSHandshake, c: c, gen: gen})
	}()
}

// tlsHandshaken runs on the loop when the handshake has ended: a failure
// is a failed connect (retried, redispatched, counted); a success hands
// the client socket over to the copying goroutines.
func (c *conn) tlsHandshaken(l *evloop) {
	st := c.tls
	if st.aborted.Load() {
		_ = st.raw.Close()
		c.tls = nil
		c.finish(l)
		return
	}
	if st.err != nil {
		_ = st.raw.Close()
		c.tls = nil
		srv := c.srv
		c.svc.pool.log.Debug("server TLS handshake failed", "service", c.svc.name, "server", srv.name, "err", st.err)
		srv.unlink(c)
		c.connectFailed(l, st.err)
		c.connectNext(l)
		return
	}
	_ = rawEpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.client, nil)
	cli, err := fdConn(c.client, "client")
	c.client = -1
	if err != nil {
		_ = st.raw.Close()
		c.tls = nil
		c.setTerm(termProxyStop)
		c.finish(l)
		return
	}
	st.cli = cli
	c.term = ""
	c.srv.total.Add(1)
	c.clientAct.Store(l.now)
	c.serverAct.Store(l.now)
	c.phase.Store(phTLSData)
	gen := c.cgen
	done := make(chan struct{}, 2)
	go c.tlsCopy(&c.up, cli, st.tc, done)
	go c.tlsCopy(&c.down, st.tc, cli, done)
	go func() {
		<-done
		<-done
		_ = cli.Close()
		_ = st.tc.Close()
		l.post(loopMsg{kind: msgTLSDone, c: c, gen: gen})
	}()
}

// tlsAbort ends a TLS connection with a RST on both sides; the copying
// goroutines (or the handshake) then fail and the loop finishes it.
func (c *conn) tlsAbort(term string) {
	st := c.tls
	c.setTerm(term)
	st.aborted.Store(true)
	linger0(c.client) // still on the loop during the handshake
	for _, nc := range []net.Conn{st.raw, st.cli} {
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
			_ = tc.Close()
		}
	}
}

// tlsCopy moves one direction of a TLS connection: src → dst until src
// ends (then dst's write side is shut: the half-close) or either fails
// (then both are reset).
func (c *conn) tlsCopy(d *direction, src, dst net.Conn, done chan<- struct{}) {
	defer func() { done <- struct{}{} }()
	bp := bufPool.Get().(*[]byte)
	defer putBuf(bp)
	buf := *bp
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			d.bytes += int64(n)
			now := monoNow()
			c.clientAct.Store(now)
			c.serverAct.Store(now)
			bit := int32(1)
			if !d.toServer {
				bit = 2
			}
			if c.flowed.Load()&bit == 0 {
				c.flowed.Or(bit)
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				c.tlsFail(d.abortTerm(false))
				return
			}
		}
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) {
				c.tlsFail(d.abortTerm(true))
				return
			}
			bit, other := int32(downDone), int32(upDone)
			if d.toServer {
				bit, other = upDone, downDone
			}
			if c.state.Or(bit)&other != 0 {
				return // both ways done: closed normally
			}
			var err error
			if tc, ok := dst.(*tls.Conn); ok {
				err = tc.CloseWrite() // close_notify, then the FIN below
				dst = tc.NetConn()
			}
			if cw, ok := dst.(interface{ CloseWrite() error }); ok && err == nil {
				err = cw.CloseWrite()
			}
			if err != nil {
				c.tlsFail(d.abortTerm(false))
			}
			return
		}
	}
}

// tlsFail resets both sides of a TLS connection from a copying goroutine
// (the other one then fails too). Closing from here is safe: the loop
// only closes them on an abort, and net.Conn.Close may be repeated.
func (c *conn) tlsFail(term string) {
	st := c.tls
	if st.aborted.Load() {
		return // the loop's abort: its term stands
	}
	c.setTerm(term)
	for _, nc := range []net.Conn{st.raw, st.cli} {
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
			_ = tc.Close()
		}
	}
}

// Describe spells the settings the way HAProxy's server line would:
// "verify required ca-file /etc/ca.pem sni api.example"; "" for nil.
func (t *ServerTLS) Describe() string {
	if t == nil {
		return ""
	}
	parts := []string{"verify " + t.verify()}
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+" "+v)
		}
	}
	add("ca-file", t.CAFile)
	add("sni", t.SNI)
	add("verifyhost", t.VerifyHost)
	add("crt", t.CertFile)
	add("key", t.KeyFile)
	add("alpn", strings.Join(t.ALPN, ","))
	if t.NoReuse {
		parts = append(parts, "no-ssl-reuse")
	}
	return strings.Join(parts, " ")
}

// tlsWords is a server's TLS in a plan's change: its settings, or "off".
func tlsWords(d string) string {
	if d == "" {
		return "off"
	}
	return d
}
