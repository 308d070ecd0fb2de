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
)

// conn is one proxied connection: client side, server side, and the two
// directions that copy between them. conns are pooled.
type conn struct {
	svc    *service
	set    *settings
	shard  *picker
	srv    *server
	client *sock
	server *sock
	caddr  netip.AddrPort
	laddr  netip.AddrPort
	start  time.Time

	prev, next *conn // in srv's list, under srv.mu

	up, down direction
	state    atomic.Int32 // upDone | downDone
	// Last activity (monoNow) on each side: data read from it or written
	// to it. The pool's reaper applies the timeouts from these stamps, so
	// the hot path arms no timer.
	clientAct, serverAct atomic.Int64
	flowed               atomic.Int32 // 1: client sent data, 2: server sent data
	aborted              atomic.Bool
	termMu               sync.Mutex
	term                 string
	tried                [4]*server
	ntried               int
}

// direction copies one way: src → dst. Its buffer or pipe is borrowed only
// while data is in flight.
type direction struct {
	c        *conn
	toServer bool
	src, dst *sock
	srcRaw   syscall.RawConn
	dstRaw   syscall.RawConn
	readFn   func(fd uintptr) bool
	spliceFn func(fd uintptr) bool

	buf  *[]byte
	pipe *pipe

	inPipe int
	bulk   bool
	n      int
	err    error
	werr   error
	bytes  int64
}

var connPool = sync.Pool{New: func() any {
	c := &conn{}
	c.up.c, c.down.c = c, c
	c.up.toServer = true
	c.up.readFn, c.down.readFn = c.up.onReadable, c.down.onReadable
	c.up.spliceFn, c.down.spliceFn = c.up.onWritable, c.down.onWritable
	return c
}}

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

func (c *conn) reset() {
	*c = conn{up: direction{c: c, toServer: true, readFn: c.up.readFn, spliceFn: c.up.spliceFn},
		down: direction{c: c, readFn: c.down.readFn, spliceFn: c.down.spliceFn}}
}

func (c *conn) setTerm(t string) {
	c.termMu.Lock()
	if c.term == "" {
		c.term = t
	}
	c.termMu.Unlock()
}

// abort ends the connection at once: both sockets are closed, which wakes
// whichever direction is blocked.
func (c *conn) abort(term string) {
	c.setTerm(term)
	if c.aborted.Swap(true) {
		return
	}
	if c.client != nil {
		c.client.setLinger0()
		_ = c.client.Close()
	}
	if c.server != nil {
		c.server.setLinger0()
		_ = c.server.Close()
	}
}

// serve connects to a server and runs the two directions; it runs on its own
// goroutine, started by the accept loop, and releases everything it holds.
func (c *conn) serve() {
	p := c.svc.pool
	defer p.conns.Done()
	if !c.connect() {
		c.finish()
		return
	}
	c.up.src, c.up.dst = c.client, c.server
	c.down.src, c.down.dst = c.server, c.client
	c.up.srcRaw, c.down.srcRaw = c.client.rc, c.server.rc
	c.up.dstRaw, c.down.dstRaw = c.server.rc, c.client.rc
	// Both directions start on fresh goroutines, with small stacks: the
	// dial above grew this one's, and an idle connection should not keep it.
	p.conns.Add(2)
	go c.down.runOwned()
	go c.up.runOwned()
}

// connect picks a server and dials it, retrying (on another server with
// redispatch) and waiting in the service queue when every server is full.
func (c *conn) connect() bool {
	set := c.set
	svc := c.svc
	attempts := set.Retries + 1
	var srv *server
	for a := 0; a < attempts; a++ {
		if srv == nil || set.Redispatch {
			var err error
			srv, err = svc.pickOrWait(c)
			if err != nil {
				if errors.Is(err, errFull) {
					c.setTerm(termQueueTimeout)
				} else {
					c.setTerm(termNoServer)
				}
				svc.errors.Add(1)
				return false
			}
		} else if !srv.acquire() {
			srv = nil
			continue
		}
		if a > 0 {
			srv.retries.Add(1)
		}
		s, err := set.dial(srv)
		if err == nil {
			c.srv = srv
			c.server = s
			srv.total.Add(1)
			now := monoNow()
			c.clientAct.Store(now)
			c.serverAct.Store(now)
			srv.link(c)
			if set.ProxyProtocol != 0 {
				if err := writeProxyHeader(s, set.ProxyProtocol, c.caddr, c.laddr); err != nil {
					c.setTerm(termServerAbort)
					return false
				}
			}
			if set.KeepAlive > 0 {
				_ = c.client.setKeepAlive(set.KeepAlive)
				_ = s.setKeepAlive(set.KeepAlive)
			}
			return true
		}
		srv.connErrors.Add(1)
		svc.releaseServer(srv)
		if c.ntried < len(c.tried) {
			c.tried[c.ntried] = srv
			c.ntried++
		}
		if isTimeout(err) {
			c.term = ""
			c.setTerm(termConnTimeout)
		} else {
			c.term = ""
			c.setTerm(termConnRefused)
		}
	}
	svc.errors.Add(1)
	return false
}

func isTimeout(err error) bool {
	return errors.Is(err, errConnectTimeout) || errors.Is(err, unix.ETIMEDOUT)
}

// finish runs once both directions are done (or the connect failed).
func (c *conn) finish() {
	if c.client != nil {
		_ = c.client.Close()
	}
	if c.server != nil {
		_ = c.server.Close()
	}
	c.setTerm(termNormal)
	svc, srv, set := c.svc, c.srv, c.set
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
	svc.cur.Add(-1)
	svc.releaseSlot()
	if set.Log {
		name := ""
		if srv != nil {
			name = srv.name
		}
		svc.pool.log.LogAttrs(context.Background(), slog.LevelInfo, "connection",
			slog.String("service", svc.name), slog.String("server", name),
			slog.String("client", c.caddr.String()), slog.Duration("duration", time.Since(c.start)),
			slog.Int64("bytes_in", c.up.bytes), slog.Int64("bytes_out", c.down.bytes),
			slog.String("termination", c.term))
	}
	c.reset()
	connPool.Put(c)
}

// done marks one direction finished; the last one finishes the connection.
func (d *direction) done(abortTerm string) {
	c := d.c
	d.release()
	if abortTerm != "" {
		c.abort(abortTerm)
	}
	bit := int32(downDone)
	if d.toServer {
		bit = upDone
	}
	if c.state.Or(bit)|bit == bothDone {
		c.finish()
		return
	}
}

func (d *direction) release() {
	if d.buf != nil {
		bufPool.Put(d.buf)
		d.buf = nil
	}
	if d.pipe != nil {
		d.c.svc.pool.pipes.put(d.pipe, d.inPipe == 0)
		d.pipe, d.inPipe = nil, 0
	}
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

func (d *direction) abortTerm(reading bool) string {
	if reading == d.toServer {
		return termClientAbort
	}
	return termServerAbort
}

func (d *direction) runOwned() {
	p := d.c.svc.pool
	defer p.conns.Done()
	d.run()
}

// run copies until EOF (then half-closes dst) or an error (then aborts).
func (d *direction) run() {
	for {
		err := d.srcRaw.Read(d.readFn)
		if err != nil {
			d.done(termProxyStop) // closed under us: abort already set the reason
			return
		}
		if d.err != nil {
			d.done(d.abortTerm(true))
			return
		}
		if d.n == 0 { // EOF
			d.release()
			other := int32(upDone)
			if d.toServer {
				other = downDone
			}
			if d.c.state.Load()&other != 0 {
				// The other way is done too: close sends the FIN.
				d.done("")
				return
			}
			if err := d.dst.CloseWrite(); err != nil && !d.c.aborted.Load() {
				d.done(d.abortTerm(false))
				return
			}
			d.done("")
			return
		}
		now := monoNow()
		d.bytes += int64(d.n)
		c := d.c
		if d.toServer {
			c.clientAct.Store(now)
			c.flowed.Or(1)
		} else {
			c.serverAct.Store(now)
			c.flowed.Or(2)
		}
		var werr error
		if d.pipe != nil {
			d.inPipe += d.n
			werr = d.pump()
			if d.n < bulkLow {
				d.bulk = false
			}
			if d.inPipe == 0 && !d.bulk {
				d.c.svc.pool.pipes.put(d.pipe, true)
				d.pipe = nil
			}
		} else {
			b := d.buf
			_, werr = d.dst.Write((*b)[:d.n])
			if d.n == len(*b) && d.c.svc.pool.pipes.enabled() {
				d.bulk = true
			}
			d.buf = nil
			bufPool.Put(b)
		}
		if werr != nil {
			d.done(d.abortTerm(false))
			return
		}
		if d.toServer {
			c.serverAct.Store(monoNow())
		} else {
			c.clientAct.Store(monoNow())
		}
	}
}

// expired reports whether one side of the connection has been inactive
// longer than its timeout, and the termination code if so. Called by the
// reaper under the server's lock.
func (c *conn) expired(now int64) (string, bool) {
	if to := c.sideTimeout(true); to > 0 && now-c.clientAct.Load() > int64(to) {
		return termClientTimeout, true
	}
	if to := c.sideTimeout(false); to > 0 && now-c.serverAct.Load() > int64(to) {
		return termServerTimeout, true
	}
	return "", false
}

// onReadable reads (or splices) from the source once it is readable. It
// is called by the runtime poller; on EAGAIN it gives its buffer or pipe
// back before the goroutine parks, so an idle connection holds neither.
func (d *direction) onReadable(fd uintptr) bool {
	if d.bulk && d.pipe == nil {
		d.pipe = d.c.svc.pool.pipes.get()
	}
	for {
		if d.pipe != nil {
			n, err := unix.Splice(int(fd), nil, d.pipe.w, nil, maxSplice, spliceFlag)
			if err == unix.EINTR {
				continue
			}
			if err == unix.EAGAIN {
				d.c.svc.pool.pipes.put(d.pipe, true)
				d.pipe = nil
				return false
			}
			d.n, d.err = int(max(n, 0)), err
			return true
		}
		if d.buf == nil {
			d.buf = bufPool.Get().(*[]byte)
		}
		n, err := unix.Read(int(fd), *d.buf)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			bufPool.Put(d.buf)
			d.buf = nil
			return false
		}
		d.n, d.err = max(n, 0), err
		return true
	}
}

// pump empties the pipe into dst.
func (d *direction) pump() error {
	for d.inPipe > 0 {
		d.werr = nil
		if err := d.dstRaw.Write(d.spliceFn); err != nil {
			return err
		}
		if d.werr != nil {
			return d.werr
		}
	}
	return nil
}

func (d *direction) onWritable(fd uintptr) bool {
	for {
		n, err := unix.Splice(d.pipe.r, nil, int(fd), nil, d.inPipe, spliceFlag)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return false
		case err != nil:
			d.werr = err
			return true
		}
		d.inPipe -= int(n)
		if d.inPipe == 0 {
			return true
		}
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
