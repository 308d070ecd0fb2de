package l4proxy

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Termination codes, HAProxy-style: first letter who/what ended the
// session (C client, S server, P proxy, c/s client/server timeout, - normal),
// second letter the phase (Q queue, C connect, D data, - done).
const (
	termNormal        = "--"
	termClientAbort   = "CD"
	termServerAbort   = "SD"
	termClientTimeout = "cD"
	termServerTimeout = "sD"
	termConnRefused   = "SC"
	termConnTimeout   = "sC"
	termNoServer      = "SC"
	termQueueTimeout  = "sQ"
	termProxyStop     = "PD" // pool closed or server removed after its grace
	termServerDown    = "SD" // shutdown-sessions on a server marked down
)

const (
	bufSize    = 16 << 10
	maxSplice  = 1 << 20
	bulkLow    = 4 << 10 // a splice this small ends bulk mode
	upDone     = 1
	downDone   = 2
	bothDone   = upDone | downDone
	spliceFlag = unix.SPLICE_F_NONBLOCK | unix.SPLICE_F_MOVE
	// pumpBudget bounds the reads one direction does per event before the
	// loop serves the others (it resumes after the batch).
	pumpBudget = 16
)

// Connection phases (conn.phase).
const (
	phFree       int32 = iota // pooled
	phPicking                 // on its loop, choosing a server
	phQueued                  // waiting in a queue, off the loop
	phConnecting              // connect(2) in progress
	phData                    // established: the two directions run
	// A TLS server's connection (servertls.go): off the loop.
	phTLSHandshake // the server side's handshake runs on a goroutine
	phTLSData      // established: two goroutines copy
)

// conn is one proxied connection: client side, server side, and the two
// directions that copy between them. It lives on one event loop, which
// alone touches its sockets; other goroutines post messages to the loop.
// conns are pooled.
type conn struct {
	svc    *service
	set    *settings
	shard  *picker
	srv    *server // the server connected (or being connected) to
	last   *server // the server of the last attempt (retries without redispatch)
	loop   *evloop
	client int // fds; -1 when closed
	server int
	slot   int32
	cgen   uint32 // registration generation of the client fd (the conn's identity on its loop)
	sgen   uint32 // of the current server fd
	caddr  netip.AddrPort
	laddr  netip.AddrPort
	start  time.Time
	// srcHeld: the connection counts against its source's
	// MaxConnPerSource (finish gives it back).
	srcHeld bool
	// handed: the connection went to a successor process (handover.go);
	// finish closes this process's copies of its sockets only.
	handed bool

	prev, next *conn // in srv's list, under srv.mu

	up, down direction
	phase    atomic.Int32
	state    atomic.Int32 // upDone | downDone
	// Last activity (monoNow) on each side: data read from it or written
	// to it. The pool's reaper applies the timeouts from these stamps, so
	// the hot path arms no timer.
	clientAct, serverAct atomic.Int64
	connDeadline         int64        // monoNow by which the connect must complete
	flowed               atomic.Int32 // 1: client sent data, 2: server sent data
	early                uint32       // client events seen before the data phase (loop only)
	termMu               sync.Mutex
	term                 string
	tried                [4]*server
	ntried               int
	attempts             int
	qsrv                 *server // result of a queue wait
	qerr                 error
	tls                  *tlsState // a TLS server's connection (servertls.go)
	socks                socksHop  // a server reached through SOCKS4 (socks4.go)
}

// direction copies one way: src → dst. It borrows a pooled buffer or pipe
// only while data it read could not be written yet.
type direction struct {
	c        *conn
	toServer bool
	src, dst int

	pend     *[]byte // unwritten data: pend[off:end]
	off, end int
	pipe     *pipe
	inPipe   int
	bulk     bool
	eof      bool // src ended; dst is shut once pending data is out
	paused   bool // src may hold data not read because dst was full
	done     bool
	bytes    int64
}

var connPool = sync.Pool{New: func() any {
	c := &conn{client: -1, server: -1}
	c.up.c, c.down.c = c, c
	c.up.toServer = true
	return c
}}

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// putBuf returns a pending buffer to the pool; one of another size (data
// handed over by a predecessor, handover.go) is left to the collector.
func putBuf(b *[]byte) {
	if len(*b) == bufSize {
		bufPool.Put(b)
	}
}

func (c *conn) reset() {
	*c = conn{client: -1, server: -1, up: direction{c: c, toServer: true}, down: direction{c: c}}
}

func (c *conn) setTerm(t string) {
	c.termMu.Lock()
	if c.term == "" {
		c.term = t
	}
	c.termMu.Unlock()
}

// requestAbort asks c's loop to abort it. Callers hold the lock of the
// server list c is linked in, so c is not recycled under them.
func (c *conn) requestAbort(term string) {
	if l := c.loop; l != nil {
		l.post(loopMsg{kind: msgAbort, c: c, gen: c.cgen, term: term})
	}
}

// abort ends the connection at once with a RST on both sides.
func (c *conn) abort(l *evloop, term string) {
	c.setTerm(term)
	linger0(c.client)
	linger0(c.server)
	c.finish(l)
}

// connectNext starts the next connect attempt: picks a server (or parks
// the connection in a queue) and starts a non-blocking connect to it.
func (c *conn) connectNext(l *evloop) {
	for {
		if c.attempts > c.set.Retries {
			c.svc.errors.Add(1)
			c.finish(l)
			return
		}
		srv := c.choose(l)
		if srv == nil {
			return // queued, or finished
		}
		if err := c.dial(l, srv); err == nil {
			return
		} else {
			c.connectFailed(l, err)
		}
	}
}

// choose returns a server with a slot taken; nil when the connection went
// to a queue wait or failed.
func (c *conn) choose(l *evloop) *server {
	svc, set := c.svc, c.set
	if c.last != nil && !set.Redispatch {
		if c.last.acquire() {
			return c.last
		}
		c.last = nil // full now: pick again
	}
	for {
		srv, err := c.shard.pick(svc, svc.tbl.Load(), set, c.caddr.Addr(), c.tried[:c.ntried])
		if err == nil {
			if srv.acquire() {
				return srv
			}
			continue
		}
		if errors.Is(err, errFull) {
			c.waitInQueue(l)
			return nil
		}
		c.term = ""
		c.setTerm(termNoServer)
		svc.errors.Add(1)
		c.finish(l)
		return nil
	}
}

// waitInQueue waits for a slot off the loop: on a goroutine, the only
// one a connection ever gets, and only while servers are full.
func (c *conn) waitInQueue(l *evloop) {
	c.phase.Store(phQueued)
	gen := c.cgen
	go func() {
		c.qsrv, c.qerr = c.svc.pickOrWait(c)
		l.post(loopMsg{kind: msgQueued, c: c, gen: gen})
	}()
}

// dequeued continues on the loop after a queue wait.
func (c *conn) dequeued(l *evloop) {
	srv, err := c.qsrv, c.qerr
	c.qsrv, c.qerr = nil, nil
	c.phase.Store(phPicking)
	if err != nil {
		c.term = ""
		if errors.Is(err, errFull) {
			c.setTerm(termQueueTimeout)
		} else {
			c.setTerm(termNoServer)
		}
		c.svc.errors.Add(1)
		c.finish(l)
		return
	}
	if err := c.dial(l, srv); err != nil {
		c.connectFailed(l, err)
		c.connectNext(l)
	}
}

// dial starts connecting to srv, whose slot is taken; nil when the
// connect is in progress (or done and handled).
func (c *conn) dial(l *evloop, srv *server) error {
	c.attempts++
	if c.attempts > 1 {
		srv.retries.Add(1)
	}
	c.srv, c.last = srv, srv
	ap, hop := socksTarget(srv.cfg.Load())
	c.socks = hop
	family := unix.AF_INET
	if a := ap.Addr(); !a.Is4() && !a.Is4In6() {
		family = unix.AF_INET6
	}
	fd, errno := rawSocket(family)
	if errno != 0 {
		return errno
	}
	_ = rawSetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if err := c.bindFrom(fd, srv, ap); err != nil {
		rawClose(fd)
		return err
	}
	errno = l.rawConnect(fd, ap)
	if errno != 0 && errno != unix.EINPROGRESS {
		rawClose(fd)
		return errno
	}
	c.server = fd
	c.connDeadline = l.now + int64(c.set.Timeouts.Connect)
	c.phase.Store(phConnecting)
	gen, rerr := l.register(fd, c.slot, sideServer)
	c.sgen = gen
	srv.link(c)
	if rerr != nil {
		return rerr
	}
	if errno == 0 {
		c.connected(l, unix.EPOLLOUT)
	}
	return nil
}

// bindFrom binds the server socket fd to the address the connection
// leaves from (sourceaddr.go), when the service names one.
func (c *conn) bindFrom(fd int, srv *server, ap netip.AddrPort) error {
	switch {
	case c.set.TransparentAddr.IsValid():
		return bindTransparent(fd, c.set.TransparentAddr, ap)
	case c.set.Transparent:
		return bindTransparent(fd, c.caddr.Addr(), ap)
	}
	if a := c.set.sourceFor(&srv.cfg.Load().Server); a.IsValid() {
		return bindSource(fd, a, ap)
	}
	return nil
}

// connectFailed undoes a failed attempt: counts it, frees the server's
// slot and remembers the server so that a redispatch avoids it.
func (c *conn) connectFailed(l *evloop, err error) {
	srv := c.srv
	if c.server >= 0 {
		srv.unlink(c)
		rawClose(c.server)
		c.server = -1
	}
	c.srv = nil
	c.phase.Store(phPicking)
	srv.connErrors.Add(1)
	c.svc.releaseServer(srv)
	if c.ntried < len(c.tried) {
		c.tried[c.ntried] = srv
		c.ntried++
	}
	c.term = ""
	if isTimeout(err) {
		c.setTerm(termConnTimeout)
	} else {
		c.setTerm(termConnRefused)
	}
}

func isTimeout(err error) bool {
	return errors.Is(err, errConnectTimeout) || errors.Is(err, unix.ETIMEDOUT)
}

// errConnectTimeout is a connect that did not complete in time.
var errConnectTimeout = errors.New("connect timeout")

// connected runs when the server socket of a connecting conn signals.
func (c *conn) connected(l *evloop, mask uint32) {
	var err error
	if mask&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		// Failed: SO_ERROR says why (only then: a writable socket without
		// an error condition is connected, as HAProxy assumes too).
		soerr, gerr := unix.GetsockoptInt(c.server, unix.SOL_SOCKET, unix.SO_ERROR)
		switch {
		case gerr != nil:
			err = gerr
		case soerr != 0:
			err = unix.Errno(soerr)
		default:
			err = unix.ECONNRESET
		}
	} else if mask&unix.EPOLLOUT == 0 && !c.socks.sent {
		return // not yet
	}
	if err == nil && c.socks.dst.IsValid() {
		// Through a SOCKS4 proxy: connected to it, the CONNECT is still
		// to be made.
		var granted bool
		if granted, err = c.socksStep(); err == nil && !granted {
			return // the reply is to come
		}
		if err != nil {
			c.svc.pool.log.Debug("socks4 connect failed", "service", c.svc.name, "server", c.srv.name, "err", err)
		}
		// The server may speak right behind the reply: that edge is spent.
		mask |= unix.EPOLLIN
	}
	if err != nil {
		c.connectFailed(l, err)
		c.connectNext(l)
		return
	}
	c.term = ""
	srv := c.srv
	if st := srv.tls.Load(); st != nil {
		if !c.preamble(l) {
			return
		}
		c.startTLS(l, st.cfg)
		return
	}
	srv.total.Add(1)
	c.clientAct.Store(l.now)
	c.serverAct.Store(l.now)
	c.phase.Store(phData)
	c.up.src, c.up.dst = c.client, c.server
	c.down.src, c.down.dst = c.server, c.client
	if !c.preamble(l) {
		return
	}
	// Either side may have spoken already: the client's edges came while
	// we were connecting (dispatch kept them in c.early), the server's are
	// in mask. A side that has not spoken is not read: its first data
	// raises a new edge. That saves a read ending in EAGAIN per side and
	// connection.
	if c.early&(unix.EPOLLIN|evEnd) != 0 {
		c.up.pump(l, c.early&evEnd != 0)
	}
	if mask&(unix.EPOLLIN|evEnd) != 0 && c.phase.Load() == phData && !c.down.done {
		c.down.pump(l, mask&evEnd != 0)
	}
}

// preamble runs once the server is connected: the PROXY protocol header
// (in clear, before any TLS, as HAProxy sends it) and keep-alive. False
// when the connection was aborted.
func (c *conn) preamble(l *evloop) bool {
	set := c.set
	if set.ProxyProtocol != 0 {
		var arr [108]byte
		hdr := appendProxyHeader(arr[:0], set.ProxyProtocol, c.caddr, c.laddr)
		if n, err := unix.Write(c.server, hdr); err != nil || n != len(hdr) {
			c.abort(l, termServerAbort)
			return false
		}
	}
	if set.KeepAlive > 0 {
		_ = setKeepAlive(c.client, set.KeepAlive)
		_ = setKeepAlive(c.server, set.KeepAlive)
	}
	return true
}

// finish releases everything the connection holds; it runs on its loop
// (or on the accepting goroutine when it never reached one).
func (c *conn) finish(l *evloop) {
	if c.client >= 0 {
		rawClose(c.client)
	}
	if c.server >= 0 {
		rawClose(c.server)
	}
	c.up.release()
	c.down.release()
	c.phase.Store(phFree)
	if l != nil {
		l.release(c)
	}
	c.setTerm(termNormal)
	svc, srv, set := c.svc, c.srv, c.set
	p := svc.pool
	if srv != nil {
		srv.unlink(c)
		svc.releaseServer(srv)
		srv.bytesIn.Add(c.up.bytes)
		srv.bytesOut.Add(c.down.bytes)
		if set.Persistence > 0 {
			svc.sticky.touch(c.caddr.Addr(), srv, monoNow()+int64(set.Persistence))
		}
	}
	svc.bytesIn.Add(c.up.bytes)
	svc.bytesOut.Add(c.down.bytes)
	if c.srcHeld {
		c.srcHeld = false
		svc.srcTbl.release(c.caddr.Addr(), monoNow())
	}
	svc.cur.Add(-1)
	svc.releaseSlot()
	if set.Log && !c.handed {
		name := ""
		if srv != nil {
			name = srv.name
		}
		p.log.LogAttrs(context.Background(), slog.LevelInfo, "connection",
			slog.String("service", svc.name), slog.String("server", name),
			slog.String("client", c.caddr.String()), slog.Duration("duration", time.Since(c.start)),
			slog.Int64("bytes_in", c.up.bytes), slog.Int64("bytes_out", c.down.bytes),
			slog.String("termination", c.term))
	}
	c.reset()
	connPool.Put(c)
	p.conns.Done()
}

// sideTimeout is the inactivity timeout of the client or the server side.
func (c *conn) sideTimeout(client bool) time.Duration {
	t := &c.set.Timeouts
	if c.state.Load() != 0 {
		if client && t.ClientFin > 0 {
			return t.ClientFin
		}
		if !client && t.ServerFin > 0 {
			return t.ServerFin
		}
	}
	if t.Tunnel > 0 && c.flowed.Load() == 3 {
		return t.Tunnel
	}
	if client {
		return t.Client
	}
	return t.Server
}

// reapCheck is the reaper's look at one linked connection (under its
// server's lock): a connect past its deadline, or a side inactive past its
// timeout, is handed to the loop.
func (c *conn) reapCheck(now int64) {
	switch c.phase.Load() {
	case phConnecting:
		if now > c.connDeadline {
			c.loop.post(loopMsg{kind: msgConnTimeout, c: c, gen: c.sgen})
		}
	case phData, phTLSData:
		if term, ok := c.expired(now); ok {
			c.requestAbort(term)
		}
	}
}

// expired reports whether one side of the connection has been inactive
// longer than its timeout, and the termination code if so.
func (c *conn) expired(now int64) (string, bool) {
	if to := c.sideTimeout(true); to > 0 && now-c.clientAct.Load() > int64(to) {
		return termClientTimeout, true
	}
	if to := c.sideTimeout(false); to > 0 && now-c.serverAct.Load() > int64(to) {
		return termServerTimeout, true
	}
	return "", false
}

func (d *direction) abortTerm(reading bool) string {
	if reading == d.toServer {
		return termClientAbort
	}
	return termServerAbort
}

func (d *direction) release() {
	if d.pend != nil {
		putBuf(d.pend)
		d.pend = nil
	}
	if d.pipe != nil {
		d.c.svc.pool.pipes.put(d.pipe, d.inPipe == 0)
		d.pipe, d.inPipe = nil, 0
	}
}

// blocked: data read from src waits for dst to take it.
func (d *direction) blocked() bool { return d.pend != nil || d.inPipe > 0 }

func (d *direction) readable(l *evloop, mask uint32) {
	if d.done || d.eof {
		return
	}
	if d.blocked() {
		d.paused = true
		return
	}
	d.pump(l, mask&evEnd != 0)
}

// stamp records activity: read from src (and written to dst).
func (d *direction) stamp(l *evloop, n int) {
	c := d.c
	d.bytes += int64(n)
	if d.toServer {
		c.clientAct.Store(l.now)
		c.serverAct.Store(l.now)
		if c.flowed.Load()&1 == 0 {
			c.flowed.Or(1)
		}
	} else {
		c.serverAct.Store(l.now)
		c.clientAct.Store(l.now)
		if c.flowed.Load()&2 == 0 {
			c.flowed.Or(2)
		}
	}
}

// pump moves data src → dst until src is drained, dst is full, the
// stream ends or the budget is spent. drain: read until EAGAIN even after
// a short read (a FIN or an error may follow the data).
func (d *direction) pump(l *evloop, drain bool) {
	if d.blocked() {
		// Resumed (budget spent, then the peer filled up in the same
		// batch): what was read must go out first.
		d.paused = true
		return
	}
	c := d.c
	pipes := &c.svc.pool.pipes
	for budget := pumpBudget; ; budget-- {
		if budget == 0 {
			l.again = append(l.again, againRef{d, c.cgen})
			return
		}
		if d.bulk && d.pipe == nil {
			if d.pipe = pipes.get(); d.pipe == nil {
				d.bulk = false
			}
		}
		if d.pipe != nil {
			n, err := rawSplice(d.src, d.pipe.w, maxSplice)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				pipes.put(d.pipe, true)
				d.pipe = nil
				return
			case err != 0:
				c.abort(l, d.abortTerm(true))
				return
			case n == 0:
				pipes.put(d.pipe, true)
				d.pipe = nil
				d.onEOF(l)
				return
			}
			d.inPipe += int(n)
			d.stamp(l, int(n))
			if !d.flushPipe(l) {
				return
			}
			if n < bulkLow {
				d.bulk = false
				pipes.put(d.pipe, true)
				d.pipe = nil
			}
			continue
		}
		n, err := rawRead(d.src, l.buf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return
		case err != 0:
			c.abort(l, d.abortTerm(true))
			return
		case n == 0:
			d.onEOF(l)
			return
		}
		d.stamp(l, n)
		w, err := writeAll(d.dst, l.buf[:n])
		if err != 0 {
			c.abort(l, d.abortTerm(false))
			return
		}
		if w < n {
			d.pend = bufPool.Get().(*[]byte)
			d.off, d.end = 0, copy(*d.pend, l.buf[w:n])
			d.paused = true
			return
		}
		if n == len(l.buf) {
			if pipes.enabled() {
				d.bulk = true
			}
		} else if !drain {
			return // a short read drained the socket: the next arrival raises an edge
		}
	}
}

// writeAll writes b to fd until done or fd is full; it returns what was
// written and a write error other than EAGAIN.
func writeAll(fd int, b []byte) (int, syscall.Errno) {
	w := 0
	for w < len(b) {
		n, err := rawSend(fd, b[w:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return w, 0
		case err != 0:
			return w, err
		}
		w += n
	}
	return w, 0
}

// flushPipe splices the pipe into dst; false when dst is full (the
// direction waits for EPOLLOUT) or the connection was aborted.
func (d *direction) flushPipe(l *evloop) bool {
	for d.inPipe > 0 {
		n, err := rawSplice(d.pipe.r, d.dst, d.inPipe)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			d.paused = true
			return false
		case err != 0:
			d.c.abort(l, d.abortTerm(false))
			return false
		}
		d.inPipe -= int(n)
	}
	return true
}

// writable runs when dst may take data again: flush what waits, then
// resume reading src (or shut dst if src ended meanwhile).
func (d *direction) writable(l *evloop) {
	if d.done || !d.blocked() {
		return
	}
	if d.pend != nil {
		b := *d.pend
		w, err := writeAll(d.dst, b[d.off:d.end])
		if err != 0 {
			d.c.abort(l, d.abortTerm(false))
			return
		}
		d.off += w
		if d.off < d.end {
			return
		}
		putBuf(d.pend)
		d.pend = nil
	}
	if d.inPipe > 0 {
		if !d.flushPipe(l) {
			return
		}
		if !d.bulk {
			d.c.svc.pool.pipes.put(d.pipe, true)
			d.pipe = nil
		}
	}
	d.c.serverAct.Store(l.now)
	d.c.clientAct.Store(l.now)
	if d.eof {
		d.shut(l)
		return
	}
	if d.paused {
		d.paused = false
		d.pump(l, true)
	}
}

// onEOF: src sent its FIN. Once pending data is out, dst is shut (the
// half-close), or the connection ends if the other way is done too.
func (d *direction) onEOF(l *evloop) {
	d.eof = true
	if d.blocked() {
		return
	}
	d.shut(l)
}

func (d *direction) shut(l *evloop) {
	c := d.c
	d.done = true
	d.release()
	bit, other := int32(downDone), int32(upDone)
	if d.toServer {
		bit, other = upDone, downDone
	}
	if c.state.Or(bit)&other != 0 {
		c.finish(l) // close sends the FIN
		return
	}
	if rawShutdownWrite(d.dst) != 0 {
		c.abort(l, d.abortTerm(false))
	}
}

// pipe is a kernel pipe used to splice one direction's bulk data.
type pipe struct{ r, w int }

// pipePool bounds how many pipes exist (HAProxy's maxpipes) and reuses them;
// when it is exhausted directions copy through buffers instead.
type pipePool struct {
	mu    sync.Mutex
	free  []*pipe
	total int
	max   int
}

func (p *pipePool) enabled() bool { return p.max > 0 }

func (p *pipePool) get() *pipe {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		pp := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return pp
	}
	if p.total >= p.max {
		p.mu.Unlock()
		return nil
	}
	p.total++
	p.mu.Unlock()
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		p.mu.Lock()
		p.total--
		p.mu.Unlock()
		return nil
	}
	_, _ = unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, maxSplice)
	return &pipe{r: fds[0], w: fds[1]}
}

// put returns a pipe; a pipe that may still hold data is closed instead.
func (p *pipePool) put(pp *pipe, empty bool) {
	p.mu.Lock()
	if empty && len(p.free) < 64 {
		p.free = append(p.free, pp)
		p.mu.Unlock()
		return
	}
	p.total--
	p.mu.Unlock()
	_ = unix.Close(pp.r)
	_ = unix.Close(pp.w)
}

func (p *pipePool) close() {
	p.mu.Lock()
	free := p.free
	p.free = nil
	p.total -= len(free)
	p.mu.Unlock()
	for _, pp := range free {
		_ = unix.Close(pp.r)
		_ = unix.Close(pp.w)
	}
}
