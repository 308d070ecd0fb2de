package l4proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gitgw/gitgw/dataplane/httpproxy"
	"golang.org/x/sys/unix"
)

// Options are the pool's process-level settings (not part of the site).
type Options struct {
	// Shards is the number of SO_REUSEPORT listeners per bind; default
	// GOMAXPROCS (one per core the runtime uses).
	Shards int
	// MaxPipes bounds the kernel pipes used for splicing (HAProxy maxpipes);
	// default 1024, negative disables splicing.
	MaxPipes int
	// Inherited are listening sockets handed over by a previous process
	// (systemd's fd store or an exec hand-over, see Pool.Listeners). A bind
	// whose address matches adopts them instead of opening new sockets, so
	// that its accept queue is never dropped; those left unclaimed by the
	// first Set are closed.
	Inherited []*os.File
	// Clock drives health checks and name resolution; default the real clock.
	Clock Clock
	// Lookup resolves the names of servers given by Host; default the
	// system resolver (resolve.go).
	Lookup LookupFunc
}

// Pool is the set of proxied services of a node.
type Pool struct {
	log    *slog.Logger
	opts   Options
	clock  Clock
	lookup LookupFunc
	pipes  pipePool

	ctx    context.Context // cancelled by Close: stops checks and timers
	cancel context.CancelFunc
	bg     sync.WaitGroup // accept loops, checks, drain timers
	conns  sync.WaitGroup // live connections
	loops  []*evloop      // the event loops that run connections, one per P
	nextLp atomic.Uint32  // round-robin of listener shards over loops

	mu        sync.Mutex // serialises Set and Close; guards the fields below
	services  map[string]*service
	draining  []*service
	binds     map[netip.AddrPort]*bindGroup
	inherited map[netip.AddrPort][]int // listening sockets handed over, by address
	handed    inheritedConns           // connections handed over, until the first Set
	udpBinds  map[netip.AddrPort]*udpBind
	// UDP sockets handed over, by address, until a bind claims them.
	inheritedUDP map[netip.AddrPort][]int // raw fds
	// transparent is the state of transparent mode's policy routing:
	// 0 not known yet (a previous process may have left it), 1 on, 2 off.
	transparent int8
	applied     *Config
	closed      bool
	reapEvery   atomic.Int64 // reaper period: a quarter of the shortest timeout
	busyPoll    atomic.Int64 // Config.BusyPoll in ns, read by the loops
	// tlsCfgs are the servers' TLS configs compiled by the current Set, by
	// settings (ServerTLS.key).
	tlsCfgs map[string]*tls.Config

	// http serves the connections of HTTP services (http.go); byName
	// is the services by name for its picks, swapped by Set.
	http   *httpproxy.Proxy
	byName atomic.Pointer[map[string]*service]
}

// New returns an empty pool; Set gives it services.
func New(logger *slog.Logger, opts Options) *Pool {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.Shards <= 0 {
		opts.Shards = runtime.GOMAXPROCS(0)
	}
	if opts.MaxPipes == 0 {
		opts.MaxPipes = 1024
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.Lookup == nil {
		opts.Lookup = systemLookup
	}
	p := &Pool{
		log:       logger.With("component", "l4proxy"),
		opts:      opts,
		clock:     opts.Clock,
		lookup:    opts.Lookup,
		services:  map[string]*service{},
		binds:     map[netip.AddrPort]*bindGroup{},
		inherited: map[netip.AddrPort][]int{},
		udpBinds:  map[netip.AddrPort]*udpBind{},
	}
	p.pipes.max = max(opts.MaxPipes, 0)
	p.http = httpproxy.New(logger.With("component", "httpproxy"), p)
	p.byName.Store(&map[string]*service{})
	p.ctx, p.cancel = context.WithCancel(context.Background())
	for _, f := range opts.Inherited {
		if p.inheritUDP(f) {
			_ = f.Close()
			continue
		}
		if ok, err := p.inheritConn(f); ok {
			if err != nil {
				p.log.Warn("connections handed over are lost", "err", err)
			}
			_ = f.Close()
			continue
		}
		fd, ap, err := adoptListener(f)
		_ = f.Close()
		if err != nil {
			p.log.Warn("inherited fd is not a TCP listener", "listener", f.Name(), "err", err)
			continue
		}
		p.inherited[ap] = append(p.inherited[ap], fd)
	}
	for range runtime.GOMAXPROCS(0) {
		l, err := newLoop(p)
		if err != nil {
			p.log.Error("event loop", "err", err)
			break
		}
		p.loops = append(p.loops, l)
		go l.run()
	}
	p.bg.Add(2)
	go p.housekeeping()
	go p.reaper()
	return p
}

// settings is a service's configuration with defaults applied; replaced
// as a whole on Set.
type settings struct {
	Service
	src *srcRules // Service.Source compiled; nil: no rules
}

func newSettings(s Service) *settings {
	return &settings{Service: s.withDefaults(), src: compileSource(s.Source)}
}

// service is the live state of one Service.
type service struct {
	pool *Pool
	name string
	set  atomic.Pointer[settings]
	tbl  atomic.Pointer[lbTable]

	cur, total        atomic.Int64
	slots             atomic.Int64 // maxconn slots: live connections + accept loops about to accept
	bytesIn, bytesOut atomic.Int64
	errors            atomic.Int64
	queued            atomic.Int64 // waiting connections, service and server queues together
	maxQueued         atomic.Int64
	maxSvcQueued      atomic.Int64
	queueTimeouts     atomic.Int64

	// Source rules (source.go): refusals by reason, per-source limits.
	deniedList, deniedNotAllowed     atomic.Int64
	deniedConnLimit, deniedRateLimit atomic.Int64
	srcTbl                           srcTable

	sticky stickyTable
	// httpPick is the balancing state of HTTP requests sent here
	// (PickServer); connections use their listener shard's.
	httpPick picker

	// Listeners that stopped accepting because the service is at its
	// maxconn; a freed slot resumes them (listen.go).
	starvedMu sync.Mutex
	starved   []lnRef
	nstarved  atomic.Int32

	mu       sync.Mutex // guards servers, draining and checkCfg; held by Set and health flips
	servers  []*server
	draining []*server
	checkCfg *Check

	qmu   sync.Mutex // guards queue, qseq and every server's queue (queue.go)
	queue []*waiter  // connections that may go to any server
	qseq  uint64
}

// Set makes the pool match cfg: services, binds and servers are added,
// changed in place or removed without closing established connections or
// refusing new ones (a removed server's connections drain for its
// service's DrainGrace). Calling it again with the same cfg does nothing.
// It returns every failure joined; what could be applied is applied.
func (p *Pool) Set(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("l4proxy: invalid config: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("l4proxy: set: pool closed")
	}
	if p.applied != nil && reflect.DeepEqual(*p.applied, cfg) {
		return nil
	}
	// TLS files are read before anything changes: a missing or bad one
	// leaves the pool running what it ran.
	tlsCfgs, err := compileTLS(cfg)
	if err != nil {
		return fmt.Errorf("l4proxy: %w", err)
	}
	p.tlsCfgs = tlsCfgs
	p.busyPoll.Store(int64(cfg.BusyPoll))
	var errs []error
	now := p.clock.Now()
	want := map[string]bool{}
	for _, sc := range cfg.Services {
		want[sc.Name] = true
		svc := p.services[sc.Name]
		if svc == nil {
			svc = &service{pool: p, name: sc.Name}
			p.services[sc.Name] = svc
		}
		svc.update(sc, now)
	}
	byName := map[string]*service{}
	for name := range want {
		byName[name] = p.services[name]
	}
	p.byName.Store(&byName)
	// The HTTP frontends exist before their binds accept.
	if err := p.http.Set(httpConfig(cfg)); err != nil {
		errs = append(errs, err)
	}
	// Binds: open new ones first (add before delete), move binds between
	// services without closing their sockets, then close those not wanted.
	wantBinds := map[netip.AddrPort]*service{}
	wantUDP := map[netip.AddrPort]*service{}
	for _, sc := range cfg.Services {
		for _, b := range sc.Binds {
			if sc.proto() == ProtoUDP {
				wantUDP[b] = p.services[sc.Name]
			} else {
				wantBinds[b] = p.services[sc.Name]
			}
		}
	}
	errs = append(errs, p.setUDPBinds(wantUDP)...)
	if err := p.setTransparentMode(cfg); err != nil {
		errs = append(errs, err)
	}
	for addr, svc := range wantBinds {
		g := p.binds[addr]
		switch {
		case g == nil:
			g, err := p.openBind(addr, svc)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			p.binds[addr] = g
		case g.svc != svc:
			g.pause()
			g.svc = svc
			g.start(p)
		}
	}
	for addr, g := range p.binds {
		if wantBinds[addr] == nil {
			g.close()
			delete(p.binds, addr)
		}
	}
	for name, svc := range p.services {
		if !want[name] {
			delete(p.services, name)
			svc.retire(now)
			p.draining = append(p.draining, svc)
		}
	}
	// Connections handed over by a predecessor go to their services now
	// that these exist.
	p.adoptHanded()
	// Sockets handed over but not claimed belong to binds that are gone.
	p.closeInheritedUDP()
	for addr, fds := range p.inherited {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
		delete(p.inherited, addr)
	}
	p.reapEvery.Store(int64(reapPeriod(cfg)))
	if len(errs) > 0 {
		// Not recorded as applied: the same config is tried again next time
		// (a bind may succeed once its address or port is free).
		p.applied = nil
		return errors.Join(errs...)
	}
	cp := cloneConfig(cfg)
	p.applied = &cp
	return nil
}

func cloneConfig(c Config) Config {
	out := c // pool-wide settings as they are
	out.Services = make([]Service, len(c.Services))
	for i, s := range c.Services {
		s.Binds = append([]netip.AddrPort(nil), s.Binds...)
		s.Servers = append([]Server(nil), s.Servers...)
		for j, sv := range s.Servers {
			s.Servers[j].CheckTargets = slices.Clone(sv.CheckTargets)
			if sv.TLS != nil {
				t := *sv.TLS
				t.ALPN = slices.Clone(t.ALPN)
				s.Servers[j].TLS = &t
			}
		}
		if s.Check != nil {
			ck := *s.Check
			ck.Command = append([]string(nil), ck.Command...)
			s.Check = &ck
		}
		s.HTTP, s.SNI = cloneHTTP(s.HTTP), cloneSNI(s.SNI)
		if s.Cookie != nil {
			ck := *s.Cookie
			s.Cookie = &ck
		}
		if s.Source != nil {
			src := *s.Source
			src.Allow = append([]netip.Prefix(nil), src.Allow...)
			src.Deny = append([]netip.Prefix(nil), src.Deny...)
			s.Source = &src
		}
		out.Services[i] = s
	}
	return out
}

// Applied returns the configuration of the last successful Set (zero before).
func (p *Pool) Applied() Config {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.applied == nil {
		return Config{}
	}
	return cloneConfig(*p.applied)
}

// update applies a Service to the live service in place.
func (svc *service) update(sc Service, now time.Time) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	set := newSettings(sc)
	svc.set.Store(set)
	svc.wakeStarved() // maxconn may have been raised
	byName := map[string]*server{}
	for _, s := range svc.servers {
		byName[s.name] = s
	}
	var next []*server
	kept := map[*server]bool{}
	for _, c := range sc.Servers {
		s := byName[c.Name]
		if s == nil {
			s = newServer(c, now)
		} else {
			s.setCfg(c)
		}
		if c.TLS != nil {
			s.setTLS(svc.pool.tlsCfgs[c.TLS.key()], c.TLS.NoReuse)
		} else {
			s.setTLS(nil, false)
		}
		if d := s.dns; d != nil && d.stop == nil {
			svc.startResolve(s, d) // a new name
		}
		kept[s] = true
		next = append(next, s)
	}
	for _, s := range svc.servers {
		if !kept[s] {
			svc.retireServer(s, set.DrainGrace)
		}
	}
	svc.servers = next
	// Health checks: restart all when the check changed, else start the
	// missing ones and stop those of servers in maintenance.
	ck := set.Check
	changed := !reflect.DeepEqual(ck, svc.checkCfg)
	svc.checkCfg = ck
	for _, s := range next {
		c := s.cfg.Load()
		wantCheck := ck != nil && c.admin() != Maint && !c.Unchecked
		src := sc.sourceFor(&c.Server)
		if s.checkStop != nil && (changed || !wantCheck || src != s.checkSrc) {
			s.checkStop()
			s.checkStop = nil
		}
		if wantCheck && s.checkStop == nil {
			sck := ck
			if src.IsValid() {
				// The server's checks leave from its source address,
				// as its connections do (HAProxy's `source`).
				cp := *ck
				cp.Source = src
				sck = &cp
			}
			svc.startCheck(s, sck)
			s.checkSrc = src
		}
		if (ck == nil || c.Unchecked) && !s.up.Load() {
			s.setUp(true, now) // no check: always up
		}
	}
	svc.rebuild()
}

func (svc *service) startCheck(s *server, ck *Check) {
	p := svc.pool
	ctx, cancel := context.WithCancel(p.ctx)
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		svc.runChecks(ctx, s, ck)
	}()
	// Stopping does not wait for the loop: it is stopped with svc.mu
	// held, which a loop reporting a flip waits for (serverHealth), and
	// a verdict it reports after the stop is dropped there. Close waits
	// for it (p.bg).
	s.checkStop = cancel
}

// retireServer stops new traffic to a removed server and closes its
// remaining connections after grace. Called with svc.mu held.
func (svc *service) retireServer(s *server, grace time.Duration) {
	s.removed.Store(true)
	s.stopResolve()
	if s.checkStop != nil {
		s.checkStop()
		s.checkStop = nil
	}
	svc.draining = append(svc.draining, s)
	p := svc.pool
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		select {
		case <-p.ctx.Done():
		case <-time.After(grace):
		}
		if n := s.shutdownSessions(termProxyStop); n > 0 {
			p.log.Info("closed connections of removed server after grace", "service", svc.name, "server", s.name, "connections", n)
		}
	}()
}

// retire removes a whole service: its binds are already closed or moved.
func (svc *service) retire(now time.Time) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	grace := svc.set.Load().DrainGrace
	for _, s := range svc.servers {
		svc.retireServer(s, grace)
	}
	svc.servers = nil
	svc.rebuild()
	_ = now
}

// rebuild publishes a new balancing table and serves or redispatches
// queued connections accordingly. Called with svc.mu held.
func (svc *service) rebuild() {
	svc.tbl.Store(buildTable(svc.servers))
	svc.requeue(append(append([]*server(nil), svc.servers...), svc.draining...))
}

// serverHealth is called by a check loop (ctx, its life) when a server
// flips. A loop stopped meanwhile (its server unchecked, in maintenance
// or removed, or its check changed) no longer speaks for the server.
func (svc *service) serverHealth(ctx context.Context, s *server, up bool, detail string, now time.Time) {
	svc.mu.Lock()
	if ctx.Err() != nil || !s.setUp(up, now) {
		svc.mu.Unlock()
		return
	}
	svc.rebuild()
	shutdown := !up && svc.set.Load().ShutdownOnDown
	svc.mu.Unlock()
	state := StatusDown
	if up {
		state = StatusUp
	}
	// DOWN needs a look; UP is the service getting better.
	lvl := slog.LevelWarn
	if up {
		lvl = slog.LevelInfo
	}
	svc.pool.log.Log(context.Background(), lvl, "server "+string(state), "service", svc.name, "server", s.name, "check", detail)
	if shutdown {
		if n := s.shutdownSessions(termServerDown); n > 0 {
			svc.pool.log.Info("shut sessions of server marked down", "service", svc.name, "server", s.name, "connections", n)
		}
	}
}

// setTransparentMode sets transparent mode's policy routing up while a
// service is transparent (the client's address or a fixed foreign one),
// and removes it once none is. Called with p.mu held.
func (p *Pool) setTransparentMode(cfg Config) error {
	want := int8(2)
	for _, s := range cfg.Services {
		if s.Transparent || s.TransparentAddr.IsValid() {
			want = 1
		}
	}
	if want == p.transparent {
		return nil
	}
	err := setTransparent(want == 1)
	switch {
	case err == nil:
		p.transparent = want
		p.log.Debug("transparent mode routing", "enabled", want == 1)
	case want == 2 && p.transparent == 0:
		// Nothing known to remove (an unprivileged pool cannot even look).
		p.log.Debug("transparent mode routing not checked", "err", err)
		p.transparent = want
		err = nil
	}
	return err
}

// StopAccepting closes every listener (the sockets live on in a process
// that inherited them) and leaves established connections running: the
// first half of a hand-over. Close then drains.
func (p *Pool) StopAccepting() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, g := range p.binds {
		g.close()
		delete(p.binds, addr)
	}
}

// Close stops accepting, stops checks, and waits for connections to end
// until ctx is done, then closes those left. It returns ctx's error if
// connections had to be cut.
func (p *Pool) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	for addr, g := range p.binds {
		g.close()
		delete(p.binds, addr)
	}
	for addr, b := range p.udpBinds {
		b.close()
		delete(p.udpBinds, addr)
	}
	for _, fds := range p.inherited {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
	}
	p.inherited = nil
	for _, fd := range p.handed.fds {
		_ = unix.Close(fd)
	}
	p.closeInheritedUDP()
	p.handed = inheritedConns{}
	svcs := append([]*service(nil), p.draining...)
	for _, s := range p.services {
		svcs = append(svcs, s)
	}
	p.mu.Unlock()

	herr := p.closeHTTP(ctx)
	drained := make(chan struct{})
	go func() { p.conns.Wait(); close(drained) }()
	var err error
	select {
	case <-drained:
	case <-ctx.Done():
		err = fmt.Errorf("l4proxy: close: connections cut: %w", ctx.Err())
	}
	p.cancel() // stops checks, drain timers and queue waits
	for _, svc := range svcs {
		svc.mu.Lock()
		all := append(append([]*server(nil), svc.servers...), svc.draining...)
		svc.mu.Unlock()
		for _, s := range all {
			s.shutdownSessions(termProxyStop)
		}
	}
	<-drained
	p.bg.Wait()
	for _, l := range p.loops {
		l.post(loopMsg{kind: msgStop})
		<-l.done
		l.close()
	}
	p.pipes.close()
	return errors.Join(err, herr)
}

// housekeeping expires persistence entries and forgets drained servers.
func (p *Pool) housekeeping() {
	defer p.bg.Done()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		}
		now := monoNow()
		p.mu.Lock()
		svcs := append([]*service(nil), p.draining...)
		for _, s := range p.services {
			svcs = append(svcs, s)
		}
		var still []*service
		for _, s := range p.draining {
			if s.cur.Load() > 0 {
				still = append(still, s)
			}
		}
		p.draining = still
		p.mu.Unlock()
		for _, svc := range svcs {
			svc.sticky.expire(now)
			svc.mu.Lock()
			var keep []*server
			for _, s := range svc.draining {
				if s.cur.Load() > 0 {
					keep = append(keep, s)
				}
			}
			svc.draining = keep
			svc.mu.Unlock()
		}
	}
}

// reapPeriod is a quarter of the shortest timeout (connect or inactivity), between 10ms
// and 1s: timeouts fire late by at most that much.
func reapPeriod(cfg Config) time.Duration {
	period := time.Second
	for _, s := range cfg.Services {
		t := s.withDefaults().Timeouts
		for _, d := range []time.Duration{t.Connect, t.Client, t.Server, t.Tunnel, t.ClientFin, t.ServerFin} {
			if d > 0 {
				period = min(period, d/4)
			}
		}
	}
	return max(period, 10*time.Millisecond)
}

// reaper applies the inactivity timeouts: HAProxy-style coarse timers,
// one pass over the live connections per period, instead of a runtime
// timer re-armed on every read and write.
func (p *Pool) reaper() {
	defer p.bg.Done()
	for {
		d := time.Duration(p.reapEvery.Load())
		if d <= 0 {
			d = time.Second
		}
		t := time.NewTimer(d)
		select {
		case <-p.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		p.mu.Lock()
		svcs := append([]*service(nil), p.draining...)
		for _, s := range p.services {
			svcs = append(svcs, s)
		}
		p.mu.Unlock()
		now := monoNow()
		for _, svc := range svcs {
			svc.mu.Lock()
			all := append(append([]*server(nil), svc.servers...), svc.draining...)
			svc.mu.Unlock()
			for _, s := range all {
				s.reap(now)
			}
		}
	}
}
