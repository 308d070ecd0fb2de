package httpproxy

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Picker chooses the server of a pool (a proxy service) for one request:
// the L4 pool's balancing, health, weights, backups and maxconn decide.
// Lease.Done must be called once the request is over. prefer names the
// server a persistence cookie asks for: taken when it can take the
// request (up, not in maintenance, below its maxconn; a backup or a
// draining server too), else the balance picks.
type Picker interface {
	PickServer(pool string, client netip.Addr, avoid []string, prefer string) (Lease, error)
}

// Lease is one server taken for one request.
type Lease struct {
	Server string
	Addr   netip.AddrPort
	// Source is the node's own address the connection leaves from
	// (source.go); invalid: the one the route picks.
	Source netip.Addr
	// Done gives the server's slot back; ok false counts a failed connect.
	Done func(ok bool)
}

// ErrNoServer is what a Picker returns when the pool has no server that
// can take the request (all down, or all at their maxconn).
var ErrNoServer = errors.New("no server available")

// Frontend is one service in HTTP mode as the proxy runs it.
type Frontend struct {
	Name string
	HTTP HTTP
	// Client bounds the wait for a request's headers and an idle
	// keep-alive connection (HAProxy's timeout client / http-keep-alive).
	Client time.Duration
	// SNI, instead of HTTP, routes the connections unterminated by their
	// TLS server name (sni.go).
	SNI *SNI
}

// Pool is the per-request connection settings of a service whose servers
// requests may go to.
type Pool struct {
	Name    string
	Connect time.Duration // connect timeout
	Server  time.Duration // wait for a response's headers (timeout server)
	Retries int           // further connect attempts, each on another server
	// Cookie, when set, persists clients on a server by an HTTP cookie
	// (cookie.go); CookieValues maps each server that has a value to it
	// (a server without one is never persisted on).
	Cookie       *Cookie
	CookieValues map[string]string
}

// transport is what a pool's kept-alive connections depend on: a Set
// that changes only its cookie keeps them.
type transport struct {
	connect, server time.Duration
	retries         int
}

func (pc Pool) transport() transport { return transport{pc.Connect, pc.Server, pc.Retries} }

// Config is every HTTP frontend and every pool of the node.
type Config struct {
	Frontends []Frontend
	Pools     []Pool
}

// Proxy serves the HTTP frontends: the L4 pool accepts their connections
// (it owns the listening sockets, their hand-over and the source rules)
// and gives each to ServeConn; one net/http server per frontend reads the
// requests, the rules pick a pool, and a reverse proxy sends each request
// to a server the Picker chose, over kept-alive connections per server.
// Routing is per request, as HAProxy's default http-keep-alive mode: two
// requests on one client connection may go to two pools.
type Proxy struct {
	log    *slog.Logger
	picker Picker

	mu         sync.Mutex
	frontends  map[string]*frontend
	pools      atomic.Pointer[map[string]*poolRT]
	closed     bool
	serverWait sync.WaitGroup
	// auth remembers successful credential checks (auth.go).
	auth *authCache
}

// New returns a proxy that picks servers through picker.
func New(log *slog.Logger, picker Picker) *Proxy {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{log: log, picker: picker, frontends: map[string]*frontend{}, auth: newAuthCache()}
	empty := map[string]*poolRT{}
	p.pools.Store(&empty)
	return p
}

// frontend is the live state of one Frontend.
type frontend struct {
	p      *Proxy
	name   string
	client time.Duration
	ln     *connListener
	srv    *http.Server
	rt     atomic.Pointer[routes]
	tlsCfg atomic.Pointer[tlsState] // nil: plain HTTP
	sni    atomic.Pointer[SNI]      // set: TLS passthrough routed by SNI
	rp     *httputil.ReverseProxy
}

// tlsState is a frontend's TLS with its certificates loaded.
type tlsState struct {
	*TLS
	cfg *tls.Config
}

// routes is a frontend's HTTP settings compiled.
type routes struct {
	HTTP
	rules        []rule
	reqHeaders   []*header
	rspHeaders   []*header
	afterHeaders []*header
}

type rule struct {
	Rule
	when []*cond
}

// Set makes the proxy run cfg: frontends are added, changed in place
// (rules, certificates) or removed (their connections finish their
// current request); kept-alive server connections of an unchanged pool
// stay. Errors name the frontend; what could be applied is.
func (p *Proxy) Set(cfg Config) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("httpproxy: set: closed")
	}
	var errs []error
	old := *p.pools.Load()
	pools := map[string]*poolRT{}
	for _, pc := range cfg.Pools {
		if rt := old[pc.Name]; rt != nil && rt.cfg.transport() == pc.transport() {
			pools[pc.Name] = &poolRT{cfg: pc, tr: rt.tr, src: rt.src, cookie: newPoolCookie(pc.Cookie, pc.CookieValues)}
			continue
		}
		pools[pc.Name] = newPoolRT(p, pc)
	}
	p.pools.Store(&pools)
	for name, rt := range old {
		if np := pools[name]; np == nil || np.tr != rt.tr {
			rt.closeIdle()
		}
	}
	want := map[string]bool{}
	for _, fc := range cfg.Frontends {
		want[fc.Name] = true
		rts, err := compile(fc.HTTP, p.auth)
		if err != nil {
			errs = append(errs, fmt.Errorf("httpproxy: service %q: %w", fc.Name, err))
			continue
		}
		var tc *tlsState
		if fc.HTTP.TLS != nil {
			cfg, err := loadTLS(fc.HTTP.TLS)
			if err != nil {
				errs = append(errs, fmt.Errorf("httpproxy: service %q: %w", fc.Name, err))
				continue
			}
			tc = &tlsState{TLS: fc.HTTP.TLS, cfg: cfg}
		}
		f := p.frontends[fc.Name]
		if f != nil && f.client != fc.Client {
			f.stop() // http.Server's timeouts are fixed once it serves
			f = nil
		}
		if f == nil {
			f = p.newFrontend(fc.Name, fc.Client)
			p.frontends[fc.Name] = f
		}
		f.rt.Store(rts)
		f.tlsCfg.Store(tc)
		f.sni.Store(fc.SNI)
	}
	for name, f := range p.frontends {
		if !want[name] {
			f.stop()
			delete(p.frontends, name)
		}
	}
	return errors.Join(errs...)
}

func compile(h HTTP, cache *authCache) (*routes, error) {
	if errs := h.Validate(nil); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	r := &routes{HTTP: h}
	lists := map[string]*authList{}
	for name, ul := range h.Userlists {
		lists[name] = &authList{users: ul.Users, cache: cache}
	}
	for _, ru := range h.Rules {
		cr := rule{Rule: ru}
		for _, c := range ru.When {
			cc, err := compileCond(c, lists)
			if err != nil {
				return nil, err
			}
			cr.when = append(cr.when, cc)
		}
		r.rules = append(r.rules, cr)
	}
	for _, a := range h.RequestHeaders {
		ch, err := compileHeader(a, lists, false)
		if err != nil {
			return nil, err
		}
		r.reqHeaders = append(r.reqHeaders, ch)
	}
	for _, a := range h.ResponseHeaders {
		ch, err := compileHeader(a, lists, true)
		if err != nil {
			return nil, err
		}
		r.rspHeaders = append(r.rspHeaders, ch)
	}
	for _, a := range h.AfterResponseHeaders {
		ch, err := compileHeader(a, lists, true)
		if err != nil {
			return nil, err
		}
		r.afterHeaders = append(r.afterHeaders, ch)
	}
	return r, nil
}

// loadTLS reads the PEM files (certificate and key in one file, as
// HAProxy's crt). crypto/tls then picks by SNI among them, the first
// being the default.
func loadTLS(t *TLS) (*tls.Config, error) {
	var certs []tls.Certificate
	for _, f := range t.CertFiles {
		files, err := certFiles(f)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		for _, f := range files {
			pem, err := readCertFile(f)
			if err != nil {
				return nil, fmt.Errorf("tls: %w", err)
			}
			c, err := tls.X509KeyPair(pem, pem)
			if err != nil {
				return nil, fmt.Errorf("tls: %s: %w", f, err)
			}
			certs = append(certs, c)
		}
	}
	return &tls.Config{Certificates: certs, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}, nil
}

// maxCertFile bounds what a certificate file may hold (a chain and its
// key are a few KiB): the files are the node's, named by the site.
const maxCertFile = 1 << 20

// readCertFile reads a certificate file, refusing one over maxCertFile.
func readCertFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCertFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > maxCertFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxCertFile)
	}
	return b, nil
}

// certFiles is path, or every file of the directory path in name order
// but the side files HAProxy reads beside a certificate (.key, .ocsp,
// .issuer, .sctl): HAProxy's crt of a directory.
func certFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		switch filepath.Ext(e.Name()) {
		case ".key", ".ocsp", ".issuer", ".sctl":
			continue
		}
		if e.Type().IsRegular() {
			out = append(out, filepath.Join(path, e.Name()))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no certificate file in the directory", path)
	}
	return out, nil
}

func (p *Proxy) newFrontend(name string, client time.Duration) *frontend {
	f := &frontend{p: p, name: name, client: client, ln: newConnListener()}
	f.rp = &httputil.ReverseProxy{
		Rewrite:        f.rewrite,
		ModifyResponse: f.modifyResponse,
		Transport:      roundTripper{p},
		ErrorHandler:   f.proxyError,
		ErrorLog:       slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
		// FlushInterval 0: a response of known length goes out in one
		// write when the handler ends (one flush per response write cost
		// a syscall each); one of unknown length (chunked, event
		// streams) is flushed at each write, as HAProxy streams it.
		BufferPool: bufPool{},
	}
	f.srv = &http.Server{
		Handler: f,
		// "OPTIONS *" goes through the rules to a server, as HAProxy
		// sends it, instead of net/http's own 200.
		DisableGeneralOptionsHandler: true,
		ReadHeaderTimeout:            client,
		IdleTimeout:                  client,
		// TLS handshakes that fail and malformed requests: the client's
		// problem, at debug.
		ErrorLog: slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	p.serverWait.Add(1)
	go func() {
		defer p.serverWait.Done()
		_ = f.srv.Serve(f.ln)
	}()
	return f
}

// stop closes the frontend's listener; its connections end after their
// current request (http.Server.Shutdown, in the background).
func (f *frontend) stop() {
	f.p.serverWait.Add(1)
	go func() {
		defer f.p.serverWait.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := f.srv.Shutdown(ctx); err != nil {
			_ = f.srv.Close()
		}
	}()
}

// ServeConn serves one accepted connection of the named frontend; the
// proxy owns c from now on. It never blocks the caller (the L4 pool's
// event loop) for long.
func (p *Proxy) ServeConn(name string, c net.Conn) {
	p.mu.Lock()
	f := p.frontends[name]
	p.mu.Unlock()
	if f == nil {
		_ = c.Close()
		return
	}
	if s := f.sni.Load(); s != nil {
		go f.serveSNI(c, s)
		return
	}
	if tc := f.tlsCfg.Load(); tc != nil {
		local, _ := netip.ParseAddrPort(c.LocalAddr().String())
		if tc.covers(local) {
			c = tls.Server(c, tc.cfg) // the handshake runs on the connection's goroutine
		}
	}
	f.ln.push(c)
}

// Close stops every frontend, letting requests in flight finish until
// ctx is done.
func (p *Proxy) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	fs := p.frontends
	p.frontends = map[string]*frontend{}
	p.mu.Unlock()
	var errs []error
	for _, f := range fs {
		if err := f.srv.Shutdown(ctx); err != nil {
			_ = f.srv.Close()
			errs = append(errs, fmt.Errorf("httpproxy: close %q: %w", f.name, err))
		}
	}
	for _, rt := range *p.pools.Load() {
		rt.closeIdle()
	}
	return errors.Join(errs...)
}

type ctxKey struct{}

// reqState travels with a request from the handler to the round tripper.
type reqState struct {
	pool   string
	client netip.Addr
	lease  *Lease
	rt     *routes // the rules and rewrites the request was decided by
	info   reqInfo // what header values read
}

// ServeHTTP evaluates the monitor URI and the rules, then proxies.
func (f *frontend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := f.rt.Load()
	client := remoteAddr(r)
	var info *reqInfo // what header rewrites read
	if len(rt.reqHeaders)+len(rt.rspHeaders)+len(rt.afterHeaders) > 0 {
		info = &reqInfo{src: client, dst: localAddr(r), tls: r.TLS != nil}
	}
	if len(rt.afterHeaders) > 0 {
		w = &afterWriter{ResponseWriter: w, hs: rt.afterHeaders, r: r, info: info}
	}
	if rt.MonitorURI != "" && r.URL.Path == rt.MonitorURI {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "<html><body><h1>200 OK</h1>\nService ready.\n</body></html>\n")
		return
	}
	pool := f.name
	for i := range rt.rules {
		ru := &rt.rules[i]
		if !ru.match(r, client) {
			continue
		}
		switch {
		case ru.Deny != 0:
			w.Header().Set("Content-Type", "text/html")
			w.Header().Set("Connection", "close")
			w.WriteHeader(ru.Deny)
			_, _ = fmt.Fprintf(w, "<html><body><h1>%d %s</h1>\nRequest forbidden by administrative rules.\n</body></html>\n", ru.Deny, http.StatusText(ru.Deny))
			return
		case ru.Redirect != nil:
			redirect(w, r, ru.Redirect)
			return
		case ru.Tarpit > 0:
			tarpit(w, r, ru.Tarpit)
			return
		case ru.Auth != nil:
			askAuth(w, cmp.Or(ru.Auth.Realm, f.name))
			return
		}
		pool = ru.Use
		break
	}
	st := &reqState{pool: pool, client: client, rt: rt}
	if info != nil {
		info.pool = pool
		st.info = *info
	}
	if len(rt.reqHeaders) > 0 {
		r = r.Clone(r.Context())
		if !rewriteRequest(rt.reqHeaders, r, st.info) {
			badRequest(w)
			return
		}
	}
	f.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, st)))
	if st.lease != nil {
		st.lease.Done(true)
	}
}

func redirect(w http.ResponseWriter, r *http.Request, rd *Redirect) {
	code := rd.Code
	if code == 0 {
		code = http.StatusFound
	}
	var loc string
	switch {
	case rd.Scheme != "":
		loc = rd.Scheme + "://" + r.Host + r.RequestURI
	case rd.Location != "":
		loc = rd.Location
	default:
		loc = strings.TrimSuffix(rd.Prefix, "/") + r.RequestURI
	}
	w.Header().Set("Location", loc)
	w.Header().Set("Content-Length", "0")
	w.Header().Set("Connection", "close")
	w.WriteHeader(code)
}

// rewrite keeps the request as the client sent it (Host included),
// except X-Forwarded-For with forwardfor: HAProxy adds the client's
// address and passes every other header through.
func (f *frontend) rewrite(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = "pool" // the round tripper puts the server's address here
	pr.Out.Host = pr.In.Host
	for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		if v, ok := pr.In.Header[h]; ok {
			pr.Out.Header[h] = v
		}
	}
	if st, _ := pr.In.Context().Value(ctxKey{}).(*reqState); st != nil && st.rt.forwardFor(st.client, pr.Out.Header) {
		pr.Out.Header["X-Forwarded-For"] = append(pr.Out.Header["X-Forwarded-For"], st.client.String())
	}
	if _, ok := pr.In.Header["User-Agent"]; !ok {
		pr.Out.Header["User-Agent"] = nil // as received: none
	}
}

// proxyError answers as HAProxy does: 503 when no server could be
// reached, 502 when the server failed after it was.
func (f *frontend) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusBadGateway
	var ne *net.OpError
	if errors.Is(err, ErrNoServer) || errors.As(err, &ne) && ne.Op == "dial" {
		code = http.StatusServiceUnavailable
	}
	if errors.Is(err, context.Canceled) {
		return // the client went away
	}
	f.p.log.Debug("request failed", "service", f.name, "err", err)
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(code)
	_, _ = fmt.Fprintf(w, "<html><body><h1>%d %s</h1>\n</body></html>\n", code, http.StatusText(code))
}

func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// poolRT is the transport to one pool's servers: kept-alive connections
// per server address, the pool's timeouts.
type poolRT struct {
	cfg    Pool
	tr     *http.Transport   // from the address the route picks
	src    *sourceTransports // from a source address (source.go)
	cookie *poolCookie       // nil: no cookie persistence
}

func newPoolRT(p *Proxy, pc Pool) *poolRT {
	return &poolRT{cfg: pc, tr: newTransport(pc, nil), src: &sourceTransports{p: p, pc: pc}, cookie: newPoolCookie(pc.Cookie, pc.CookieValues)}
}

// roundTripper picks a server of the request's pool and sends the
// request there; a connect that fails is retried on another server when
// the request has no body (nothing was consumed).
type roundTripper struct{ p *Proxy }

func (t roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	st, _ := req.Context().Value(ctxKey{}).(*reqState)
	if st == nil {
		return nil, errors.New("httpproxy: request without routing state")
	}
	rt := (*t.p.pools.Load())[st.pool]
	if rt == nil {
		return nil, fmt.Errorf("%w: pool %q is not a proxy service here", ErrNoServer, st.pool)
	}
	prefer := ""
	if rt.cookie != nil {
		prefer = rt.cookie.preferred(req)
	}
	var avoid []string
	for attempt := 0; ; attempt++ {
		lease, err := t.p.picker.PickServer(st.pool, st.client, avoid, prefer)
		if err != nil {
			return nil, err
		}
		req.URL.Host = lease.Addr.String()
		resp, err := rt.transport(lease.Source).RoundTrip(req)
		if err == nil {
			st.lease = &lease
			if rt.cookie != nil {
				rt.cookie.respond(resp, lease.Server, prefer != "" && lease.Server == prefer)
			}
			return resp, nil
		}
		var ne *net.OpError
		dialFailed := errors.As(err, &ne) && ne.Op == "dial"
		lease.Done(!dialFailed)
		if !dialFailed || attempt >= rt.cfg.Retries || req.Body != nil && req.Body != http.NoBody {
			return nil, err
		}
		avoid = append(avoid, lease.Server)
	}
}

// connListener is a net.Listener fed by ServeConn.
type connListener struct {
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newConnListener() *connListener {
	return &connListener{ch: make(chan net.Conn, 256), done: make(chan struct{})}
}

// push queues c for Accept; a full queue is waited on off the caller.
func (l *connListener) push(c net.Conn) {
	select {
	case l.ch <- c:
		return
	default:
	}
	go func() {
		select {
		case l.ch <- c:
		case <-l.done:
			_ = c.Close()
		}
	}()
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.closed.Do(func() {
		close(l.done)
		for {
			select {
			case c := <-l.ch:
				_ = c.Close()
			default:
				return
			}
		}
	})
	return nil
}

func (l *connListener) Addr() net.Addr { return &net.TCPAddr{} }

// bufPool lends the reverse proxy its copy buffers: without one, each
// request would allocate a 32 KiB buffer.
type bufPool struct{}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufPool) Get() []byte  { return *copyBufs.Get().(*[]byte) }
func (bufPool) Put(b []byte) { copyBufs.Put(&b) }

// idleConn is a server connection on which each read and write must make
// progress within idle: HAProxy's timeout server, an inactivity timeout
// (a response whose body stalls is cut; an idle kept-alive connection is
// closed after it too).
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c *idleConn) Read(b []byte) (int, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(c.idle))
	return c.Conn.Read(b)
}

func (c *idleConn) Write(b []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.idle))
	return c.Conn.Write(b)
}
