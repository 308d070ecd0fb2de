package l4proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/gitgw/gitgw/dataplane/httpproxy"
)

// HTTP mode is a seam, not a second proxy: the pool keeps every listening
// socket (SO_REUSEPORT shards on the loops, the fd store hand-over, the
// source rules and maxconn right after accept), and an accepted
// connection of a service with Service.HTTP leaves the TCP fast path at
// that point only, for the HTTP proxy (package httpproxy), which picks a
// server for each request through PickServer: the same tables, health
// and counters as a TCP connection's pick. A pool that rules send
// requests to is thus a plain service (without binds when only rules
// reach it), so the status page, metrics, checks, track_services and the
// plan see it like any other.

// validateHTTP checks an HTTP service: TCP, and rules that name TCP
// services of c.
func (c Config) validateHTTP(where string, s Service) (errs []error) {
	if s.proto() != ProtoTCP {
		errs = append(errs, fmt.Errorf("%s: http: TCP services only", where))
	}
	if s.Transparent || s.ProxyProtocol != 0 {
		errs = append(errs, fmt.Errorf("%s: http: transparent mode and the PROXY protocol are for TCP mode", where))
	}
	// The HTTP proxy dials the servers itself: from the source address
	// its lease names (PickServer, BindSource), but never from a foreign
	// or the client's address, which would be ignored for the requests
	// it carries.
	if s.TransparentAddr.IsValid() {
		errs = append(errs, fmt.Errorf("%s: http: a transparent address is for TCP mode", where))
	}
	used := map[string]bool{}
	defer func() {
		for _, o := range c.Services {
			if used[o.Name] && (o.TransparentAddr.IsValid() || o.Transparent) {
				errs = append(errs, fmt.Errorf("%s: a rule sends requests to service %q, whose transparent mode or address HTTP and SNI routing do not carry", where, o.Name))
			}
		}
	}()
	pools := func(name string) bool {
		used[name] = true
		for _, o := range c.Services {
			if o.Name == name {
				return o.proto() == ProtoTCP
			}
		}
		return false
	}
	if s.HTTP != nil && s.HTTP.TLS != nil {
		t := s.HTTP.TLS
		for _, b := range t.Binds {
			if !slices.Contains(s.Binds, b) {
				errs = append(errs, fmt.Errorf("%s: http: tls bind %v is none of the service's binds", where, b))
			}
		}
	}
	if s.HTTP != nil && s.SNI != nil {
		errs = append(errs, fmt.Errorf("%s: http and sni: a service terminates TLS or routes it by SNI, not both", where))
	}
	if s.HTTP != nil {
		for _, err := range s.HTTP.Validate(pools) {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		}
	}
	if s.SNI != nil {
		for _, err := range s.SNI.Validate(pools) {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		}
	}
	return append(errs, c.socksPools(where, s)...)
}

// validateCookie checks a service's persistence cookie: a TCP service
// that requests reach in HTTP mode (its own, or a rule's use), servers'
// values that are cookie values, each naming one server, and no value
// without the service's cookie.
func (c Config) validateCookie(where string, s Service) []error {
	values := cookieValues(s)
	if s.Cookie == nil {
		if len(values) > 0 {
			return []error{fmt.Errorf("%s: server cookie values without the service's cookie", where)}
		}
		return nil
	}
	var errs []error
	if s.proto() != ProtoTCP {
		errs = append(errs, fmt.Errorf("%s: cookie: TCP services only", where))
	}
	reached := s.HTTP != nil
	for _, o := range c.Services {
		if o.HTTP != nil {
			for _, r := range o.HTTP.Rules {
				reached = reached || r.Use == s.Name
			}
		}
	}
	if !reached {
		errs = append(errs, fmt.Errorf("%s: cookie: no request reaches the service in HTTP mode (neither its own http nor a rule's use)", where))
	}
	for _, err := range s.Cookie.Validate(values) {
		errs = append(errs, fmt.Errorf("%s: %w", where, err))
	}
	return errs
}

// cookieValues maps the servers of s that have a cookie value to it.
func cookieValues(s Service) map[string]string {
	var m map[string]string
	for _, sv := range s.Servers {
		if sv.Cookie != "" {
			if m == nil {
				m = map[string]string{}
			}
			m[sv.Name] = sv.Cookie
		}
	}
	return m
}

// httpConfig is what the HTTP proxy runs of cfg: its HTTP services, and
// every TCP service as a pool requests may go to.
func httpConfig(cfg Config) httpproxy.Config {
	var hc httpproxy.Config
	for _, s := range cfg.Services {
		if s.proto() != ProtoTCP {
			continue
		}
		d := s.withDefaults()
		pool := httpproxy.Pool{Name: s.Name, Connect: d.Timeouts.Connect, Server: d.Timeouts.Server, Retries: d.Retries}
		if s.Cookie != nil {
			ck := *s.Cookie
			pool.Cookie, pool.CookieValues = &ck, cookieValues(s)
		}
		hc.Pools = append(hc.Pools, pool)
		switch {
		case s.HTTP != nil:
			hc.Frontends = append(hc.Frontends, httpproxy.Frontend{Name: s.Name, HTTP: *s.HTTP, Client: d.Timeouts.Client})
		case s.SNI != nil:
			hc.Frontends = append(hc.Frontends, httpproxy.Frontend{Name: s.Name, SNI: cloneSNI(s.SNI), Client: d.Timeouts.Client})
		}
	}
	return hc
}

// PickServer implements httpproxy.Picker: one request's server, chosen
// by the service's balance among the servers that can take it (up,
// ready, weighted, below their maxconn; backups when no primary is),
// avoiding those a failed connect named. An HTTP request that finds
// every server full is answered 503 at once: it does not queue.
//
// prefer, the server a persistence cookie names, is taken first when it
// can take the request: up, not in maintenance, below its maxconn. As
// HAProxy, a backup server is taken while primaries are up, and a
// draining one (weight 0 or drain) still takes the clients persisted on
// it: draining lets their sessions end. A full one is not waited for
// (HTTP requests do not queue): the balance picks, and the cookie is set
// anew.
func (p *Pool) PickServer(name string, client netip.Addr, avoid []string, prefer string) (httpproxy.Lease, error) {
	svc := (*p.byName.Load())[name]
	if svc == nil {
		return httpproxy.Lease{}, fmt.Errorf("%w: no service %q", httpproxy.ErrNoServer, name)
	}
	lease := func(srv *server) httpproxy.Lease {
		srv.total.Add(1)
		cfg := srv.cfg.Load()
		return httpproxy.Lease{Server: srv.name, Addr: cfg.Addr, Source: svc.set.Load().sourceFor(&cfg.Server), Done: func(ok bool) {
			if !ok {
				srv.connErrors.Add(1)
			}
			svc.releaseServer(srv)
		}}
	}
	set := svc.set.Load()
	var tried []*server
	var preferred *server
	if len(avoid) > 0 || prefer != "" {
		svc.mu.Lock()
		for _, s := range svc.servers {
			if slices.Contains(avoid, s.name) {
				tried = append(tried, s)
			}
			if prefer != "" && s.name == prefer {
				preferred = s
			}
		}
		svc.mu.Unlock()
	}
	if s := preferred; s != nil && !slices.Contains(tried, s) && s.persistable() && s.acquire() {
		return lease(s), nil
	}
	for range 8 {
		srv, err := svc.httpPick.pick(svc, svc.tbl.Load(), set, client, tried)
		if err != nil {
			return httpproxy.Lease{}, fmt.Errorf("%w: service %q: %w", httpproxy.ErrNoServer, name, err)
		}
		if !srv.acquire() {
			continue // filled between the pick and now
		}
		return lease(srv), nil
	}
	return httpproxy.Lease{}, fmt.Errorf("%w: service %q: %w", httpproxy.ErrNoServer, name, errFull)
}

// BindSource implements httpproxy.SourceBinder: the HTTP proxy's
// connections to a server leave from its source address as the TCP
// connections do (bindSource).
func (p *Pool) BindSource(fd uintptr, src netip.Addr, server netip.AddrPort) error {
	return bindSource(int(fd), src, server)
}

var _ httpproxy.SourceBinder = (*Pool)(nil)

// persistable reports whether a client persisted on s (by a cookie) may
// still be sent there: up, configured, resolved and not in maintenance;
// weight and drain do not matter (HAProxy's drain: persistent clients
// only).
func (s *server) persistable() bool {
	c := s.cfg.Load()
	return s.up.Load() && !s.removed.Load() && !c.unresolved && c.Addr.IsValid() && c.admin() != Maint
}

// handOffHTTP gives an accepted connection of an HTTP service to the
// HTTP proxy, as a net.Conn (Go's runtime poller takes over the socket);
// the service's slot, its current count and the source's hold are given
// back when that connection closes.
func (l *evloop) handOffHTTP(svc *service, fd int, held bool, caddr netip.AddrPort) {
	f := os.NewFile(uintptr(fd), "http")
	nc, err := net.FileConn(f)
	_ = f.Close()
	if err != nil {
		l.pool.log.Warn("http: adopt connection", "service", svc.name, "err", err)
		if held {
			svc.srcTbl.release(caddr.Addr(), monoNow())
		}
		svc.releaseSlot()
		return
	}
	svc.cur.Add(1)
	svc.total.Add(1)
	l.pool.http.ServeConn(svc.name, &httpConn{Conn: nc, svc: svc, held: held, caddr: caddr})
}

// httpConn is a connection the HTTP proxy serves.
type httpConn struct {
	net.Conn
	svc   *service
	held  bool
	caddr netip.AddrPort
	once  sync.Once
}

// CloseWrite half-closes the client side (SNI routing's splice).
func (c *httpConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *httpConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		if c.held {
			c.svc.srcTbl.release(c.caddr.Addr(), monoNow())
		}
		c.svc.cur.Add(-1)
		c.svc.releaseSlot()
	})
	return err
}

// closeHTTP stops the HTTP proxy, letting requests in flight finish
// until ctx is done.
func (p *Pool) closeHTTP(ctx context.Context) error {
	if err := p.http.Close(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// cloneHTTP deep-copies h, so that an applied configuration shares no
// slice with its caller's.
func cloneHTTP(h *httpproxy.HTTP) *httpproxy.HTTP {
	if h == nil {
		return nil
	}
	c := *h
	if h.TLS != nil {
		t := *h.TLS
		t.CertFiles = slices.Clone(t.CertFiles)
		t.Binds = slices.Clone(t.Binds)
		c.TLS = &t
	}
	c.Rules = slices.Clone(h.Rules)
	for i, r := range c.Rules {
		r.When = slices.Clone(r.When)
		for j := range r.When {
			r.When[j].Values = slices.Clone(r.When[j].Values)
		}
		if r.Redirect != nil {
			rd := *r.Redirect
			r.Redirect = &rd
		}
		if r.Auth != nil {
			a := *r.Auth
			r.Auth = &a
		}
		c.Rules[i] = r
	}
	c.Userlists = httpproxy.CloneUserlists(h.Userlists)
	httpproxy.CloneHeaders(&c)
	return &c
}

// DescribeHTTP spells a service's HTTP mode for plans: "http; tls 2
// certs; forwardfor; monitor-uri /up; use static if { host -m prefix -i
// img }; …" (every rule, in order: a changed rule changes the plan).
func DescribeHTTP(h *httpproxy.HTTP) string {
	parts := []string{"http"}
	if h.TLS != nil {
		parts = append(parts, fmt.Sprintf("tls %d cert(s) %s", len(h.TLS.CertFiles), strings.Join(h.TLS.CertFiles, " ")))
	}
	if h.ForwardFor {
		parts = append(parts, "forwardfor")
	}
	if h.MonitorURI != "" {
		parts = append(parts, "monitor-uri "+h.MonitorURI)
	}
	for _, r := range h.Rules {
		parts = append(parts, r.String())
	}
	parts = append(parts, httpproxy.DescribeUserlists(h.Userlists)...)
	parts = append(parts, httpproxy.DescribeHeaders(h)...)
	return strings.Join(parts, "; ")
}

// cloneSNI deep-copies s.
func cloneSNI(s *httpproxy.SNI) *httpproxy.SNI {
	if s == nil {
		return nil
	}
	c := *s
	c.Rules = slices.Clone(s.Rules)
	for i := range c.Rules {
		c.Rules[i].Names = slices.Clone(c.Rules[i].Names)
	}
	return &c
}

// DescribeSNI spells SNI routing for plans: "sni; inspect-delay 5s; use
// a if sni a.example; …".
func DescribeSNI(s *httpproxy.SNI) string {
	parts := []string{"sni"}
	if s.InspectDelay > 0 {
		parts = append(parts, "inspect-delay "+s.InspectDelay.String())
	}
	for _, r := range s.Rules {
		m := ""
		if r.Match == httpproxy.MatchSuffix {
			m = "-m end "
		}
		parts = append(parts, fmt.Sprintf("use %s if sni %s%s", r.Use, m, strings.Join(r.Names, " ")))
	}
	return strings.Join(parts, "; ")
}
