package l4proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UDP services (Service.Protocol "udp": DNS, syslog, RADIUS, NTP), the job
// LVS does for keepalived and nginx's stream module does in proxy mode.
//
// A flow is a client address and port. Its first datagram opens a session:
// a server is picked with the service's balancing (the same pickers,
// weights, backup, persistence, drain and checks as TCP) and a socket
// connected to it is opened, from an ephemeral port of the node; the
// client's datagrams go out through it, and the server's replies come back
// from the bind's address. A session ends after Timeouts.Client without a
// datagram either way, or after UDPReplies replies (1 for DNS: nginx's
// proxy_responses). A session whose server went down or was removed is
// moved to another server at its next datagram: UDP has no connection to
// keep, and a datagram sent to a dead server is lost.
//
// Each bind has one SO_REUSEPORT socket per shard (the kernel spreads
// flows over the shards by their addresses, so a flow stays on one), and
// each shard is an event loop of its own, off the TCP loops: one goroutine
// owning an epoll set of raw non-blocking sockets — the shard's socket and
// the connected socket of each of its sessions — parked in the runtime
// poller on the epoll fd like the TCP loops (loop.go). A wake-up takes
// every datagram that came: the client datagrams with one recvmmsg (up to
// udpBatch), each written to its session's socket, and the replies of
// every session that has one, sent back with one sendmmsg (up to
// udpReplyBatch). Per request that is a write and a read, plus a share of
// the batch calls, where a goroutine per session made two reads (the
// second one finding nothing), two writes through the runtime poller and
// a scheduler wake-up per reply. The sockets are level-triggered, so one
// read per socket and batch is enough (what is left is reported again)
// and only an empty epoll_wait parks the loop. No busy polling (the TCP
// loops' Config.BusyPoll): tried, at 32 flows it cost 10% more CPU per
// request and a worse median, the spinning taking the CPU the clients and
// servers of the same node needed. Idle sessions are ended
// by a sweep on a timer (a quarter of the shortest idle timeout, at most
// 1 s): no timer per session either.

// udpBufSize is the largest datagram forwarded (an IPv4 UDP payload).
const udpBufSize = 65507

const (
	// udpBatch is how many client datagrams one recvmmsg takes, and
	// udpReplyBatch how many replies one sendmmsg sends. Their buffers
	// are full-size (a datagram cannot be read in parts), but only the
	// pages a datagram touched are resident.
	udpBatch      = 8
	udpReplyBatch = 16
	// Epoll data of the shard's own sockets; sessions are their slot.
	udpEvShard = -1
	udpEvWake  = -2
)

// udpBind is the sockets of one UDP bind and the service they feed.
type udpBind struct {
	addr   netip.AddrPort
	svc    atomic.Pointer[service]
	shards []*udpShard
	wg     sync.WaitGroup
}

// udpShard is one SO_REUSEPORT socket, its loop and the sessions of the
// flows the kernel sends it. Everything below stop is the loop's own.
type udpShard struct {
	b    *udpBind
	fd   int // the bound socket, raw (not in the runtime poller)
	epfd int
	efd  int      // eventfd: stop and sweep requests
	f    *os.File // epfd in the runtime poller
	rc   syscall.RawConn

	stop     atomic.Bool
	sweepDue atomic.Bool
	sweepT   *time.Timer
	wakeMu   sync.Mutex // efd against its close (a late sweep timer)

	pick     picker
	sess     map[netip.AddrPort]*udpSession
	slots    slotTable[*udpSession]
	gen      uint32
	now      int64
	stopped  bool
	armed    bool          // a sweep is due on sweepT
	sweepDur time.Duration // sweep period: a quarter of the shortest idle timeout seen
	ev       unix.EpollEvent
	events   [64]unix.EpollEvent
	csa      unix.RawSockaddrInet6 // connect scratch

	in    [udpBatch]unix.Mmsghdr
	inIov [udpBatch]unix.Iovec
	inSa  [udpBatch]unix.RawSockaddrInet6
	inBuf [udpBatch][]byte

	out     [udpReplyBatch]unix.Mmsghdr
	outIov  [udpReplyBatch]unix.Iovec
	outSa   [udpReplyBatch]unix.RawSockaddrInet6
	outBuf  [udpReplyBatch][]byte
	outSess [udpReplyBatch]*udpSession
	outGen  [udpReplyBatch]uint32
	nout    int
}

// udpSession is one client flow; only its shard's loop touches it.
type udpSession struct {
	sh         *udpShard
	svc        *service
	srv        *server
	client     netip.AddrPort
	csa        unix.RawSockaddrInet6 // the client's sockaddr, for sendmmsg
	csalen     uint32
	fd         int // connected to the server
	slot       int32
	gen        uint32
	last       int64 // monoNow of the last datagram either way
	idle       int64 // Timeouts.Client when the session opened
	replies    int
	maxReplies int
	held       bool // counts against the source's limits
	ended      bool
}

// openUDPBind opens the shards of a UDP bind and starts their loops.
func (p *Pool) openUDPBind(addr netip.AddrPort, svc *service) (*udpBind, error) {
	b := &udpBind{addr: addr}
	b.svc.Store(svc)
	var fds []int
	// Sockets handed over by a predecessor first: datagrams that came
	// while no process ran wait in them.
	fds = append(fds, p.inheritedUDP[addr]...)
	delete(p.inheritedUDP, addr)
	for len(fds) < p.opts.Shards {
		fd, err := listenUDP(addr)
		if err != nil {
			if len(fds) > 0 {
				break
			}
			return nil, err
		}
		fds = append(fds, fd)
	}
	if len(fds) == 0 {
		return nil, fmt.Errorf("l4proxy: service %q: udp bind %v: no socket", svc.name, addr)
	}
	for i, fd := range fds {
		sh, err := newUDPShard(b, fd)
		if err != nil {
			for _, fd := range fds[i:] {
				_ = unix.Close(fd)
			}
			b.close()
			return nil, fmt.Errorf("l4proxy: service %q: udp bind %v: %w", svc.name, addr, err)
		}
		b.shards = append(b.shards, sh)
	}
	for _, sh := range b.shards {
		b.wg.Add(1)
		go sh.serve(p)
	}
	return b, nil
}

// newUDPShard sets up the loop of the bound socket fd, which it owns
// from then on.
func newUDPShard(b *udpBind, fd int) (*udpShard, error) {
	sh := &udpShard{b: b, fd: fd, epfd: -1, efd: -1, sess: map[netip.AddrPort]*udpSession{}, sweepDur: time.Second}
	fail := func(err error) (*udpShard, error) {
		sh.fd = -1 // the caller's to close
		sh.closeFDs()
		return nil, err
	}
	var err error
	if sh.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return fail(fmt.Errorf("epoll_create1: %w", err))
	}
	if sh.efd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		return fail(fmt.Errorf("eventfd: %w", err))
	}
	for _, r := range []struct{ fd, data int }{{fd, udpEvShard}, {sh.efd, udpEvWake}} {
		sh.ev = unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(r.data)}
		if err := unix.EpollCtl(sh.epfd, unix.EPOLL_CTL_ADD, r.fd, &sh.ev); err != nil {
			return fail(fmt.Errorf("epoll_ctl: %w", err))
		}
	}
	if err := unix.SetNonblock(sh.epfd, true); err != nil {
		return fail(fmt.Errorf("epoll fd non-blocking: %w", err))
	}
	sh.f = os.NewFile(uintptr(sh.epfd), "udp-epoll")
	if sh.rc, err = sh.f.SyscallConn(); err != nil {
		return fail(fmt.Errorf("epoll fd: %w", err))
	}
	for i := range sh.in {
		sh.inBuf[i] = make([]byte, udpBufSize)
		sh.inIov[i] = unix.Iovec{Base: &sh.inBuf[i][0]}
		sh.inIov[i].SetLen(udpBufSize)
		sh.in[i].Hdr.Name = (*byte)(unsafe.Pointer(&sh.inSa[i]))
		sh.in[i].Hdr.Iov = &sh.inIov[i]
		sh.in[i].Hdr.SetIovlen(1)
	}
	for i := range sh.out {
		sh.outBuf[i] = make([]byte, udpBufSize)
		sh.outIov[i] = unix.Iovec{Base: &sh.outBuf[i][0]}
		sh.out[i].Hdr.Name = (*byte)(unsafe.Pointer(&sh.outSa[i]))
		sh.out[i].Hdr.Iov = &sh.outIov[i]
		sh.out[i].Hdr.SetIovlen(1)
	}
	sh.sweepT = time.AfterFunc(time.Hour, func() {
		sh.sweepDue.Store(true)
		sh.wake()
	})
	sh.sweepT.Stop()
	return sh, nil
}

// closeFDs closes the shard's fds once its loop is over (or never ran).
func (sh *udpShard) closeFDs() {
	if sh.f != nil {
		_ = sh.f.Close()
	} else if sh.epfd >= 0 {
		_ = unix.Close(sh.epfd)
	}
	sh.wakeMu.Lock()
	if sh.efd >= 0 {
		_ = unix.Close(sh.efd)
	}
	sh.efd = -1
	sh.wakeMu.Unlock()
	if sh.fd >= 0 {
		_ = unix.Close(sh.fd)
	}
	sh.f, sh.epfd, sh.fd = nil, -1, -1
}

// wake makes the loop run a batch (to stop, or to sweep).
func (sh *udpShard) wake() {
	sh.wakeMu.Lock()
	if sh.efd >= 0 {
		_, _ = unix.Write(sh.efd, eventfdOne[:])
	}
	sh.wakeMu.Unlock()
}

// listenUDP opens one non-blocking SO_REUSEPORT shard socket with
// IP_FREEBIND (a VIP need not be here yet), as a raw fd: a socket the
// runtime poller watched would wake it for every datagram, for nobody.
func listenUDP(addr netip.AddrPort) (int, error) {
	fd, err := listenUDPSock(addr)
	if err != nil {
		return -1, fmt.Errorf("l4proxy: listen udp %v: %w", addr, err)
	}
	return fd, nil
}

func listenUDPSock(addr netip.AddrPort) (int, error) {
	a := addr.Addr()
	v6 := a.Is6() && !a.Is4In6()
	family := unix.AF_INET
	if v6 {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	opt := func(level, name int) error { return unix.SetsockoptInt(fd, level, name, 1) }
	serr := errors.Join(opt(unix.SOL_SOCKET, unix.SO_REUSEADDR), opt(unix.SOL_SOCKET, unix.SO_REUSEPORT))
	var sa unix.Sockaddr
	if v6 {
		serr = errors.Join(serr, opt(unix.SOL_IPV6, unix.IPV6_FREEBIND), opt(unix.IPPROTO_IPV6, unix.IPV6_V6ONLY))
		sa = &unix.SockaddrInet6{Port: int(addr.Port()), Addr: a.As16()}
	} else {
		serr = errors.Join(serr, opt(unix.SOL_IP, unix.IP_FREEBIND))
		sa = &unix.SockaddrInet4{Port: int(addr.Port()), Addr: a.Unmap().As4()}
	}
	if serr == nil {
		serr = unix.Bind(fd, sa)
	}
	if serr != nil {
		_ = unix.Close(fd)
		return -1, serr
	}
	return fd, nil
}

// close stops the bind's loops (which end their sessions) and closes its
// sockets.
func (b *udpBind) close() {
	for _, sh := range b.shards {
		sh.stop.Store(true)
		sh.wake()
	}
	b.wg.Wait()
	for _, sh := range b.shards {
		sh.sweepT.Stop()
		sh.closeFDs()
	}
}

// serve is the shard's loop goroutine: it returns once the bind closes,
// with every session ended.
func (sh *udpShard) serve(p *Pool) {
	defer sh.b.wg.Done()
	poll := func(uintptr) bool { return sh.poll(p) }
	for !sh.stopped {
		if err := sh.rc.Read(poll); err != nil {
			p.log.Error("udp loop: epoll fd", "err", err)
			break
		}
	}
	for _, s := range sh.sess {
		s.end()
	}
}

// poll runs the batches until an epoll_wait finds nothing (false: park
// in the runtime poller) or the bind closes (true).
func (sh *udpShard) poll(p *Pool) bool {
	for {
		n, errno := rawEpollWait(sh.epfd, sh.events[:])
		if errno != 0 {
			if errno == unix.EINTR {
				continue
			}
			p.log.Error("udp loop: epoll_wait", "err", errno)
			sh.stopped = true
			return true
		}
		if n == 0 {
			return false
		}
		sh.now = monoNow()
		var svc *service
		for i := 0; i < n; i++ {
			e := &sh.events[i]
			switch e.Fd {
			case udpEvShard:
				if svc == nil {
					svc = sh.b.svc.Load()
				}
				sh.readClients(p, svc)
			case udpEvWake:
				var b [8]byte
				_, _ = rawRead(sh.efd, b[:])
			default:
				if s := sh.slots.items[e.Fd]; s != nil && s.gen == uint32(e.Pad) {
					sh.readReply(s)
				}
			}
		}
		sh.flushReplies()
		if sh.stop.Load() {
			sh.stopped = true
			return true
		}
		if sh.sweepDue.Load() {
			sh.sweep()
		}
	}
}

// readClients takes the client datagrams waiting on the shard socket (one
// recvmmsg: more are reported by the next epoll_wait) and sends each to
// its flow's server.
func (sh *udpShard) readClients(p *Pool, svc *service) {
	for i := range sh.in {
		sh.in[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		sh.in[i].Hdr.Flags = 0
	}
	r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(sh.fd), uintptr(unsafe.Pointer(&sh.in[0])), udpBatch, unix.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return // EAGAIN, or an error the socket reported: nothing to forward
	}
	for i := 0; i < int(r); i++ {
		m := &sh.in[i]
		client, ok := sockaddrAddrPort(&sh.inSa[i], m.Hdr.Namelen)
		if !ok {
			continue
		}
		s := sh.session(p, svc, client, i)
		if s == nil {
			continue
		}
		s.last = sh.now
		n := int(m.Len)
		if _, e := rawSend(s.fd, sh.inBuf[i][:n]); e != 0 {
			if e == unix.EAGAIN || e == unix.ENOBUFS {
				continue // the socket's buffer is full: UDP drops it
			}
			// The server's port is closed (an ICMP error came back): the
			// next datagram picks again.
			s.srv.connErrors.Add(1)
			s.end()
			continue
		}
		svc.bytesIn.Add(int64(n))
		s.srv.bytesIn.Add(int64(n))
	}
}

// sockaddrAddrPort is the address in a sockaddr_in or sockaddr_in6
// (unmapped: flows are keyed by the plain address).
func sockaddrAddrPort(sa *unix.RawSockaddrInet6, n uint32) (netip.AddrPort, bool) {
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	switch {
	case sa.Family == unix.AF_INET && n >= unix.SizeofSockaddrInet4:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port), true
	case sa.Family == unix.AF_INET6 && n >= unix.SizeofSockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port), true
	}
	return netip.AddrPort{}, false
}

// session returns the flow's session, opening one (or moving it off a
// server that is down or gone) as needed; nil drops the datagram. in is
// the datagram's index in the batch (its sockaddr is the session's).
func (sh *udpShard) session(p *Pool, svc *service, client netip.AddrPort, in int) *udpSession {
	s := sh.sess[client]
	if s != nil {
		if s.svc == svc && s.srv.up.Load() && !s.srv.removed.Load() && s.srv.cfg.Load().admin() != Maint {
			return s
		}
		s.end()
	}
	set := svc.set.Load()
	held := false
	if set.src != nil {
		var ok bool
		if ok, held = svc.admitSource(set.src, client.Addr()); !ok {
			return nil
		}
	}
	release := func() {
		if held {
			svc.srcTbl.release(client.Addr(), monoNow())
		}
	}
	if !svc.tryAcquireSlot() {
		release()
		return nil // the service is at its maxconn
	}
	srv, err := sh.pick.pick(svc, svc.tbl.Load(), set, client.Addr(), nil)
	if err != nil || !srv.acquire() {
		svc.releaseSlot()
		svc.errors.Add(1)
		release()
		return nil
	}
	fd, err := sh.dialUDP(srv.cfg.Load().Addr)
	if err == nil {
		s = &udpSession{sh: sh, svc: svc, srv: srv, client: client, fd: fd, held: held,
			csa: sh.inSa[in], csalen: sh.in[in].Hdr.Namelen,
			last: sh.now, idle: int64(set.Timeouts.Client), maxReplies: set.UDPReplies}
		s.slot = sh.slots.put(s)
		sh.gen++
		s.gen = sh.gen
		sh.ev = unix.EpollEvent{Events: unix.EPOLLIN, Fd: s.slot, Pad: int32(s.gen)}
		if e := rawEpollCtl(sh.epfd, unix.EPOLL_CTL_ADD, fd, &sh.ev); e != 0 {
			sh.slots.remove(s.slot)
			rawClose(fd)
			err = fmt.Errorf("epoll_ctl: %w", e)
		}
	}
	if err != nil {
		srv.connErrors.Add(1)
		svc.releaseServer(srv)
		svc.releaseSlot()
		svc.errors.Add(1)
		release()
		p.log.Warn("udp session", "service", svc.name, "server", srv.name, "err", err)
		return nil
	}
	svc.cur.Add(1)
	svc.total.Add(1)
	srv.total.Add(1)
	sh.sess[client] = s
	if d := min(max(set.Timeouts.Client/4, time.Millisecond), time.Second); d < sh.sweepDur || !sh.armed {
		sh.sweepDur = min(sh.sweepDur, d)
		if !sh.armed {
			sh.armed = true
			sh.sweepT.Reset(sh.sweepDur)
		}
	}
	return s
}

// dialUDP opens a non-blocking UDP socket connected to ap (from an
// ephemeral port of the node).
func (sh *udpShard) dialUDP(ap netip.AddrPort) (int, error) {
	family := unix.AF_INET
	if a := ap.Addr(); !a.Is4() && !a.Is4In6() {
		family = unix.AF_INET6
	}
	r, _, e := unix.RawSyscall(unix.SYS_SOCKET, uintptr(family), unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if e != 0 {
		return -1, fmt.Errorf("socket: %w", e)
	}
	fd := int(r)
	var n uintptr
	if a := ap.Addr(); family == unix.AF_INET {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sh.csa))
		*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.Unmap().As4()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:], ap.Port())
		n = unix.SizeofSockaddrInet4
	} else {
		sh.csa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sh.csa.Port))[:], ap.Port())
		n = unix.SizeofSockaddrInet6
	}
	if _, _, e := unix.RawSyscall(unix.SYS_CONNECT, r, uintptr(unsafe.Pointer(&sh.csa)), n); e != 0 {
		rawClose(fd)
		return -1, fmt.Errorf("connect %v: %w", ap, e)
	}
	return fd, nil
}

// readReply takes one reply of s's server (more are reported by the next
// epoll_wait) and queues it for the client.
func (sh *udpShard) readReply(s *udpSession) {
	if sh.nout == udpReplyBatch {
		sh.flushReplies()
	}
	k := sh.nout
	// read, not recvfrom: the socket is connected.
	n, e := rawRead(s.fd, sh.outBuf[k])
	switch {
	case e == unix.EAGAIN || e == unix.EINTR:
		return
	case e != 0:
		if e == unix.ECONNREFUSED {
			s.srv.connErrors.Add(1)
		}
		s.end()
		return
	}
	sh.outSa[k] = s.csa
	sh.out[k].Hdr.Namelen = s.csalen
	sh.outIov[k].SetLen(n)
	sh.outSess[k], sh.outGen[k] = s, s.gen
	sh.nout++
	s.last = sh.now
	s.svc.bytesOut.Add(int64(n))
	s.srv.bytesOut.Add(int64(n))
	if s.maxReplies > 0 {
		if s.replies++; s.replies >= s.maxReplies {
			s.end() // the reply is queued already
		}
	}
}

// flushReplies sends the queued replies with sendmmsg. A reply the
// shard's socket cannot take now is dropped (UDP); a client the kernel
// refuses to send to ends its session.
func (sh *udpShard) flushReplies() {
	for i := 0; i < sh.nout; {
		r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(sh.fd), uintptr(unsafe.Pointer(&sh.out[i])), uintptr(sh.nout-i),
			unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
		switch {
		case e == unix.EINTR:
			continue
		case e == unix.EAGAIN || e == unix.ENOBUFS:
			i = sh.nout
		case e != 0:
			if s := sh.outSess[i]; s.gen == sh.outGen[i] && !s.ended {
				s.end()
			}
			i++
		default:
			i += int(r)
		}
	}
	clear(sh.outSess[:sh.nout])
	sh.nout = 0
}

// sweep ends the sessions idle for their timeout, and arms the next
// sweep while sessions remain.
func (sh *udpShard) sweep() {
	sh.sweepDue.Store(false)
	sh.armed = false
	now := monoNow()
	for _, s := range sh.sess {
		if now-s.last >= s.idle {
			s.end()
		}
	}
	if len(sh.sess) > 0 {
		sh.armed = true
		sh.sweepT.Reset(sh.sweepDur)
	}
}

// end closes the session once: its socket, its slot, its source count.
// It runs on the shard's loop.
func (s *udpSession) end() {
	if s.ended {
		return
	}
	s.ended = true
	sh := s.sh
	if sh.sess[s.client] == s {
		delete(sh.sess, s.client)
	}
	sh.slots.remove(s.slot)
	rawClose(s.fd) // leaves the epoll set with it
	svc := s.svc
	svc.releaseServer(s.srv)
	svc.cur.Add(-1)
	svc.releaseSlot()
	if s.held {
		svc.srcTbl.release(s.client.Addr(), monoNow())
	}
	if svc.set.Load().Persistence > 0 {
		svc.sticky.touch(s.client.Addr(), s.srv, monoNow()+int64(svc.set.Load().Persistence))
	}
}

// inheritUDP takes f if it is a bound UDP socket handed over by a
// predecessor (Listeners), for the bind of its address.
func (p *Pool) inheritUDP(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	udp := false
	_ = rc.Control(func(fd uintptr) {
		typ, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE)
		udp = err == nil && typ == unix.SOCK_DGRAM
	})
	if !udp {
		return false
	}
	// A raw duplicate, out of the runtime poller (see listenUDP).
	nfd := -1
	cerr := rc.Control(func(fd uintptr) { nfd, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) })
	if err != nil || cerr != nil {
		return false
	}
	sa, err := unix.Getsockname(nfd)
	var ap netip.AddrPort
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		ap = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		ap = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port))
	default:
		err = errors.New("not an IP socket")
	}
	if err == nil {
		err = unix.SetNonblock(nfd, true)
	}
	if err != nil {
		_ = unix.Close(nfd)
		return false
	}
	if p.inheritedUDP == nil {
		p.inheritedUDP = map[netip.AddrPort][]int{}
	}
	p.inheritedUDP[ap] = append(p.inheritedUDP[ap], nfd)
	return true
}

// closeInheritedUDP closes the UDP sockets no bind claimed.
func (p *Pool) closeInheritedUDP() {
	for addr, fds := range p.inheritedUDP {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
		delete(p.inheritedUDP, addr)
	}
}

// setUDPBinds opens, moves and closes the UDP binds; called by Set with
// p.mu held.
func (p *Pool) setUDPBinds(want map[netip.AddrPort]*service) []error {
	var errs []error
	for addr, svc := range want {
		if b := p.udpBinds[addr]; b != nil {
			b.svc.Store(svc)
			continue
		}
		b, err := p.openUDPBind(addr, svc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.udpBinds[addr] = b
	}
	for addr, b := range p.udpBinds {
		if want[addr] == nil {
			b.close()
			delete(p.udpBinds, addr)
		}
	}
	return errs
}
