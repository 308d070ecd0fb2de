package l4proxy

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// evloop runs the connect and data phases of its connections: one
// goroutine owning an epoll set of raw non-blocking sockets that Go's
// runtime poller does not know. A connection costs its conn struct and its
// two fds while idle — no goroutine, no buffer.
//
// The loop never blocks in epoll_wait: the epoll fd itself is registered
// in the runtime poller, the loop drains it with epoll_wait(0) and parks
// like any goroutine waiting to read, so timers, accept loops and health
// checks share the Ps normally (a goroutine blocked in a syscall would
// hold its P until sysmon noticed, and then lose it: tried as a locked
// thread blocking in epoll_wait, it cost more CPU per request than the
// runtime's own epoll_wait per batch that it saved; see doc.go).
//
// Sockets are registered once, edge-triggered, for input and output: no
// epoll_ctl per event. A read shorter than the buffer means the socket was
// drained (a later arrival raises a new edge), so the common small message
// costs one read and one write; FIN and errors are read to the end.
//
// With busy polling (Config.BusyPoll), a loop that has just handled events
// keeps polling for that long before it parks: the reply a backend sends a
// few tens of µs later is read at once, instead of after the wake-up of an
// idle CPU, which is most of the latency a proxy adds on a virtual machine
// (HAProxy's `busy-polling`, but only while traffic flows).
type evloop struct {
	pool *Pool
	epfd int
	efd  int      // eventfd: wakes the loop for its inbox
	f    *os.File // epfd in the runtime poller
	rc   syscall.RawConn

	// Owned by the loop goroutine.
	events  [128]unix.EpollEvent
	ev      unix.EpollEvent // scratch for epoll_ctl (no allocation)
	buf     []byte          // the loop's read buffer: data is written out at once
	slots   slotTable[*conn]
	gen     uint32
	now     int64 // monoNow of the current batch
	again   []againRef
	csa4    unix.RawSockaddrInet4 // connect scratch
	csa6    unix.RawSockaddrInet6
	work    []loopMsg
	stop    bool
	lns     slotTable[*listener] // listening shards, by index (epoll data -2-idx)
	againLn []lnRef              // listeners with connections left after maxAccept
	rsa     unix.RawSockaddrAny
	rsalen  uint32
	lastEv  int64 // monoNow of the last batch with events (busy polling)

	mu      sync.Mutex
	inbox   []loopMsg
	pending atomic.Int32
	done    chan struct{}
}

// loopMsg is work posted to a loop from another goroutine.
type loopMsg struct {
	kind   msgKind
	c      *conn
	gen    uint32 // the conn (or listener) registration it is meant for
	term   string
	ln     *listener
	svc    *service
	ack    chan struct{}
	ho     chan<- handed // msgHandOver's answer…
	budget int           // …and the sockets it may hand over
	rec    *handedConn   // msgAdoptData's connection
}

type msgKind uint8

const (
	msgNew          msgKind = iota // an accepted connection
	msgQueued                      // back from a queue wait (c.qsrv, c.qerr)
	msgAbort                       // abort with term (timeout, shutdown-sessions, grace over)
	msgConnTimeout                 // the connect attempt timed out
	msgStop                        // the pool is closed and drained
	msgListen                      // accept on ln for svc
	msgUnlisten                    // stop accepting on ln, then close ack
	msgAcceptRetry                 // a slot freed (or an accept error passed): accept on ln again
	msgHandOver                    // hand every connection over (handover.go), answer on ho
	msgAdoptData                   // run an established connection handed over by a predecessor
	msgTLSHandshake                // a TLS server's handshake ended (c.tls.err)
	msgTLSDone                     // a TLS connection's copying goroutines ended
)

const (
	sideClient = 0
	sideServer = 1
	evFlags    = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET
	evEnd      = unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR
)

var eventfdOne = [8]byte{1, 0, 0, 0, 0, 0, 0, 0}

func newLoop(p *Pool) (*evloop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("l4proxy: epoll_create1: %w", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("l4proxy: eventfd: %w", err)
	}
	l := &evloop{pool: p, epfd: epfd, efd: efd, buf: make([]byte, bufSize), done: make(chan struct{})}
	l.ev = unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: -1}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &l.ev); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(efd)
		return nil, fmt.Errorf("l4proxy: epoll_ctl eventfd: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(efd)
		return nil, fmt.Errorf("l4proxy: epoll fd non-blocking: %w", err)
	}
	l.f = os.NewFile(uintptr(epfd), "epoll")
	l.rc, err = l.f.SyscallConn()
	if err != nil {
		_ = l.f.Close()
		_ = unix.Close(efd)
		return nil, fmt.Errorf("l4proxy: epoll fd: %w", err)
	}
	return l, nil
}

// run is the loop's goroutine; it returns after msgStop.
func (l *evloop) run() {
	defer close(l.done)
	for !l.stop {
		if err := l.rc.Read(l.poll); err != nil {
			l.pool.log.Error("event loop: epoll fd", "err", err)
			return
		}
	}
}

// close releases the loop's fds once run has returned.
func (l *evloop) close() {
	_ = l.f.Close()
	_ = unix.Close(l.efd)
}

// post hands m to the loop; only the first message of an empty inbox
// writes the eventfd.
func (l *evloop) post(m loopMsg) {
	l.mu.Lock()
	wake := len(l.inbox) == 0
	l.inbox = append(l.inbox, m)
	l.pending.Store(1)
	l.mu.Unlock()
	if wake {
		_, _ = unix.Write(l.efd, eventfdOne[:])
	}
}

// poll is the loop body, called by the runtime poller whenever the epoll
// fd is readable; it returns false to park, true to stop.
func (l *evloop) poll(uintptr) bool {
	for {
		n, err := rawEpollWait(l.epfd, l.events[:])
		if err != 0 {
			if err == unix.EINTR {
				continue
			}
			l.pool.log.Error("event loop: epoll_wait", "err", err)
			return true
		}
		l.now = monoNow()
		for i := 0; i < n; i++ {
			e := &l.events[i]
			if e.Fd < 0 {
				if e.Fd <= -2 {
					if ln := l.lns.items[-2-e.Fd]; ln != nil && ln.gen == uint32(e.Pad) {
						l.accept(ln)
					}
				}
				continue // -1, the eventfd: the inbox is read below
			}
			l.dispatch(int(e.Fd), uint32(e.Pad), e.Events)
		}
		if l.pending.Load() != 0 {
			l.drainInbox()
		}
		if l.stop {
			return true
		}
		if len(l.again) > 0 || len(l.againLn) > 0 {
			l.runAgain()
			continue
		}
		if n < len(l.events) {
			if n > 0 {
				l.lastEv = l.now
			}
			if l.now-l.lastEv >= l.pool.busyPoll.Load() {
				return false // park until the runtime poller sees an event
			}
			busyTurn(n == 0)
		}
	}
}

// busyTurn ends a batch of busy polling instead of parking: the P goes to
// any other runnable goroutine (timers, checks and accepts keep their pace
// while a loop polls: it never parks under steady traffic), and after an
// empty poll the CPU goes to any other runnable thread (sched_yield): the
// polling gives way to any thread of the node that has work.
func busyTurn(idle bool) {
	if idle {
		_, _, _ = unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	}
	runtime.Gosched()
}

func (l *evloop) drainInbox() {
	l.mu.Lock()
	l.work, l.inbox = l.inbox, l.work[:0]
	l.pending.Store(0)
	l.mu.Unlock()
	for i := range l.work {
		m := &l.work[i]
		c := m.c
		switch m.kind {
		case msgNew:
			l.adopt(c)
		case msgQueued:
			if c.cgen == m.gen {
				c.dequeued(l)
			}
		case msgAbort:
			// Only a linked connection is aborted from outside; a stale
			// request may find it queued (off the loop) or recycled.
			switch ph := c.phase.Load(); {
			case c.cgen != m.gen:
			case ph == phConnecting || ph == phData:
				c.abort(l, m.term)
			case ph == phTLSHandshake || ph == phTLSData:
				c.tlsAbort(m.term)
			}
		case msgTLSHandshake:
			if c.cgen == m.gen && c.phase.Load() == phTLSHandshake {
				c.tlsHandshaken(l)
			}
		case msgTLSDone:
			if c.cgen == m.gen && c.phase.Load() == phTLSData {
				c.tls = nil
				c.finish(l)
			}
		case msgConnTimeout:
			if c.sgen == m.gen && c.phase.Load() == phConnecting {
				c.connectFailed(l, errConnectTimeout)
				c.connectNext(l)
			}
		case msgStop:
			l.stop = true
		case msgListen:
			l.listen(m.ln, m.svc)
		case msgUnlisten:
			l.unlisten(m.ln)
			close(m.ack)
		case msgAcceptRetry:
			if m.ln.gen == m.gen {
				l.accept(m.ln)
			}
		case msgHandOver:
			m.ho <- l.handOver(m.budget)
		case msgAdoptData:
			l.adoptData(c, m.rec)
		}
		*m = loopMsg{}
	}
}

// runAgain resumes the directions that used up their budget in the last
// batch (edge-triggered: nobody else would read them again).
func (l *evloop) runAgain() {
	againLn := l.againLn
	l.againLn = nil
	for _, r := range againLn {
		if r.ln.gen == r.gen {
			l.accept(r.ln)
		}
	}
	again := l.again
	l.again = nil
	for _, a := range again {
		if a.d.c.cgen == a.gen && a.d.c.phase.Load() == phData && !a.d.done {
			a.d.pump(l, true)
		}
	}
}

// againRef is a direction to resume, valid while its conn keeps gen.
type againRef struct {
	d   *direction
	gen uint32
}

// dispatch routes one socket event to its connection.
func (l *evloop) dispatch(idx int, gen uint32, mask uint32) {
	c := l.slots.items[idx>>1]
	if c == nil {
		return
	}
	if idx&1 == sideServer {
		if c.sgen != gen {
			return
		}
		switch c.phase.Load() {
		case phConnecting:
			c.connected(l, mask)
			return
		case phData:
		default:
			return
		}
		if mask&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			c.up.writable(l)
		}
		if mask&(unix.EPOLLIN|evEnd) != 0 && c.phase.Load() == phData && c.sgen == gen {
			c.down.readable(l, mask)
		}
		return
	}
	if c.cgen != gen {
		return
	}
	if c.phase.Load() != phData {
		c.early |= mask // before the server is connected: read once it is
		return
	}
	if mask&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		c.down.writable(l)
	}
	if mask&(unix.EPOLLIN|evEnd) != 0 && c.phase.Load() == phData && c.cgen == gen {
		c.up.readable(l, mask)
	}
}

// register adds fd to the epoll set for connection slot/side; it returns
// the registration's generation.
func (l *evloop) register(fd int, slot int32, side int) (uint32, error) {
	l.gen++
	l.ev = unix.EpollEvent{Events: evFlags, Fd: slot<<1 | int32(side), Pad: int32(l.gen)}
	if e := rawEpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &l.ev); e != 0 {
		return l.gen, e
	}
	return l.gen, nil
}

// adopt gives an accepted connection a slot and starts its connect phase.
func (l *evloop) adopt(c *conn) {
	slot := l.slots.put(c)
	c.loop, c.slot = l, slot
	gen, err := l.register(c.client, slot, sideClient)
	c.cgen = gen
	c.phase.Store(phPicking)
	if err != nil {
		c.setTerm(termProxyStop)
		c.finish(l)
		return
	}
	c.connectNext(l)
}

// release frees c's slot.
func (l *evloop) release(c *conn) {
	l.slots.remove(c.slot)
}

// slotTable numbers the loop's connections and listeners for epoll's data
// field: put reuses a freed index before growing, so indexes stay small.
type slotTable[T any] struct {
	items []T
	free  []int32
}

func (t *slotTable[T]) put(v T) int32 {
	var i int32
	if n := len(t.free); n > 0 {
		i = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		i = int32(len(t.items))
		t.items = append(t.items, v)
	}
	t.items[i] = v
	return i
}

func (t *slotTable[T]) remove(i int32) {
	var zero T
	t.items[i] = zero
	t.free = append(t.free, i)
}
