package l4proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Listening sockets are raw fds too: each SO_REUSEPORT shard is registered
// in one event loop's epoll set, and the loop accepts on it between the
// events of its connections (HAProxy's model), so that a new connection
// costs no goroutine switch and no hand-off. Go's runtime poller never sees
// a listening socket either (it would be woken for every connection).

// bindGroup is the SO_REUSEPORT shards of one bind and the service they feed.
type bindGroup struct {
	addr netip.AddrPort
	svc  *service
	lns  []*listener
}

// listener is one listening shard.
type listener struct {
	fd    int
	addr  netip.AddrPort
	shard *picker
	loop  *evloop // accepts on fd, and runs the connections accepted
	// Owned by the loop while listening.
	svc *service
	idx int32
	gen uint32 // registration generation; 0 when not listening
}

// lnRef names a listener registration (stale once it was paused).
type lnRef struct {
	ln  *listener
	gen uint32
}

// maxAccept bounds the connections accepted per readiness event before
// the loop serves its connections again (HAProxy's tune.maxaccept, which
// defaults to 4 there; 4 and 64 measured the same here under 50 concurrent
// short connections).
const maxAccept = 64

// openBind opens the shards of one bind, adopting inherited sockets first.
func (p *Pool) openBind(addr netip.AddrPort, svc *service) (*bindGroup, error) {
	g := &bindGroup{addr: addr, svc: svc}
	inh := p.inherited[addr]
	delete(p.inherited, addr)
	for _, fd := range inh {
		g.lns = append(g.lns, &listener{fd: fd, addr: addr})
	}
	for len(g.lns) < p.opts.Shards {
		fd, err := listenTCP(addr)
		if err != nil {
			if len(g.lns) > 0 {
				break // keep what we have: at least one shard listens
			}
			return nil, fmt.Errorf("l4proxy: service %q: listen %v: %w", svc.name, addr, err)
		}
		g.lns = append(g.lns, &listener{fd: fd, addr: addr})
	}
	g.start(p)
	return g, nil
}

// listenTCP opens one SO_REUSEPORT shard with IP_FREEBIND, so the VIP
// need not be on the node yet, and TCP_NODELAY, which accepted sockets
// inherit.
func listenTCP(addr netip.AddrPort) (int, error) {
	a := addr.Addr()
	v6 := a.Is6() && !a.Is4In6()
	family := unix.AF_INET
	var sa unix.Sockaddr
	if v6 {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(addr.Port()), Addr: a.As16()}
	} else {
		sa = &unix.SockaddrInet4{Port: int(addr.Port()), Addr: a.Unmap().As4()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	opt := func(level, name int) error { return unix.SetsockoptInt(fd, level, name, 1) }
	err = errors.Join(opt(unix.SOL_SOCKET, unix.SO_REUSEADDR), opt(unix.SOL_SOCKET, unix.SO_REUSEPORT),
		opt(unix.IPPROTO_TCP, unix.TCP_NODELAY))
	if v6 {
		err = errors.Join(err, opt(unix.SOL_IPV6, unix.IPV6_V6ONLY), opt(unix.SOL_IPV6, unix.IPV6_FREEBIND))
	} else {
		err = errors.Join(err, opt(unix.SOL_IP, unix.IP_FREEBIND))
	}
	if err != nil {
		_ = unix.Close(fd)
		return -1, os.NewSyscallError("setsockopt", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		_ = unix.Close(fd)
		return -1, os.NewSyscallError("bind", err)
	}
	// The kernel caps the backlog at net.core.somaxconn.
	if err := unix.Listen(fd, 1<<16-1); err != nil {
		_ = unix.Close(fd)
		return -1, os.NewSyscallError("listen", err)
	}
	return fd, nil
}

// adoptListener takes a listening TCP socket handed over as a file: a
// duplicate of its fd (non-blocking), and its address.
func adoptListener(f *os.File) (int, netip.AddrPort, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, netip.AddrPort{}, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(raw uintptr) { fd, derr = unix.FcntlInt(raw, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, netip.AddrPort{}, err
	}
	if derr != nil {
		return -1, netip.AddrPort{}, derr
	}
	acc, err1 := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	typ, err2 := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	sa, err3 := unix.Getsockname(fd)
	if err := errors.Join(err1, err2, err3, unix.SetNonblock(fd, true)); err != nil || acc != 1 || typ != unix.SOCK_STREAM {
		_ = unix.Close(fd)
		return -1, netip.AddrPort{}, fmt.Errorf("not a listening stream socket (%v)", err)
	}
	ap := addrPortOf(sa)
	if !ap.IsValid() {
		_ = unix.Close(fd)
		return -1, netip.AddrPort{}, errors.New("not an IP socket")
	}
	return fd, ap, nil
}

// start has each shard's loop accept on it for g.svc.
func (g *bindGroup) start(p *Pool) {
	for _, l := range g.lns {
		l.shard = &picker{}
		if l.loop == nil {
			if len(p.loops) == 0 {
				p.log.Error("no event loop: not accepting", "bind", g.addr)
				continue
			}
			l.loop = p.loops[int(p.nextLp.Add(1))%len(p.loops)]
		}
		l.loop.post(loopMsg{kind: msgListen, ln: l, svc: g.svc})
	}
}

// pause stops accepting without closing the sockets (their queues keep
// filling and are served by the next start); it returns once no loop
// touches them.
func (g *bindGroup) pause() {
	var acks []chan struct{}
	for _, l := range g.lns {
		if l.loop == nil {
			continue
		}
		ack := make(chan struct{})
		l.loop.post(loopMsg{kind: msgUnlisten, ln: l, ack: ack})
		acks = append(acks, ack)
	}
	for _, ack := range acks {
		<-ack
	}
}

func (g *bindGroup) close() {
	g.pause()
	for _, l := range g.lns {
		_ = unix.Close(l.fd)
	}
}

// listen registers ln in the loop and accepts what its queue holds.
func (l *evloop) listen(ln *listener, svc *service) {
	if ln.gen != 0 {
		l.unlisten(ln)
	}
	idx := l.lns.put(ln)
	l.gen++
	ln.idx, ln.gen, ln.svc = idx, l.gen, svc
	l.ev = unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: -2 - idx, Pad: int32(ln.gen)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, ln.fd, &l.ev); err != nil {
		l.pool.log.Error("listen: epoll_ctl", "bind", ln.addr, "err", err)
	}
	l.accept(ln)
}

func (l *evloop) unlisten(ln *listener) {
	if ln.gen == 0 {
		return
	}
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, ln.fd, nil)
	l.lns.remove(ln.idx)
	ln.gen, ln.svc = 0, nil
}

// accept takes up to maxAccept connections from ln's queue and starts
// them; with more waiting, ln is resumed after the batch.
func (l *evloop) accept(ln *listener) {
	svc := ln.svc
	p := l.pool
	for range maxAccept {
		if !svc.tryAcquireSlot() {
			svc.starve(ln)
			if !svc.tryAcquireSlot() {
				return // clients wait in the kernel's backlog
			}
		}
		fd, errno := l.accept4(ln.fd)
		switch errno {
		case 0:
		case unix.EINTR, unix.ECONNABORTED:
			svc.releaseSlot()
			continue
		case unix.EAGAIN:
			svc.releaseSlot()
			return
		default:
			// EMFILE and friends: retry later instead of spinning (an
			// edge-triggered listener would not signal again).
			svc.releaseSlot()
			p.log.Warn("accept failed", "service", svc.name, "bind", ln.addr, "err", errno)
			ref := lnRef{ln, ln.gen}
			time.AfterFunc(50*time.Millisecond, func() { l.post(loopMsg{kind: msgAcceptRetry, ln: ref.ln, gen: ref.gen}) })
			return
		}
		caddr := l.peerAddr()
		set := svc.set.Load()
		held := false
		if set.src != nil {
			var ok bool
			if ok, held = svc.admitSource(set.src, caddr.Addr()); !ok {
				refuse(fd)
				svc.releaseSlot()
				continue
			}
		}
		if set.HTTP != nil || set.SNI != nil {
			l.handOffHTTP(svc, fd, held, caddr)
			continue
		}
		c := connPool.Get().(*conn)
		c.svc, c.set, c.shard, c.client = svc, set, ln.shard, fd
		c.srcHeld = held
		c.start = time.Now()
		c.caddr = caddr
		c.laddr = ln.addr
		if c.set.ProxyProtocol != 0 {
			c.laddr = localAddr(fd)
		}
		svc.cur.Add(1)
		svc.total.Add(1)
		p.conns.Add(1)
		l.adopt(c)
	}
	l.againLn = append(l.againLn, lnRef{ln, ln.gen})
}

// accept4 accepts into the loop's sockaddr buffer (no allocation).
func (l *evloop) accept4(fd int) (int, unix.Errno) {
	l.rsalen = unix.SizeofSockaddrAny
	r, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&l.rsa)), uintptr(unsafe.Pointer(&l.rsalen)),
		unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	return int(r), e
}

// peerAddr decodes the address of the last accept4.
func (l *evloop) peerAddr() netip.AddrPort {
	switch l.rsa.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&l.rsa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:]))
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&l.rsa))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:]))
	}
	return netip.AddrPort{}
}

// tryAcquireSlot takes one of the service's maxconn slots if one is free.
func (svc *service) tryAcquireSlot() bool {
	mc := int64(svc.set.Load().MaxConn)
	for {
		n := svc.slots.Load()
		if mc > 0 && n >= mc {
			return false
		}
		if svc.slots.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (svc *service) releaseSlot() {
	svc.slots.Add(-1)
	if svc.nstarved.Load() > 0 {
		svc.wakeStarved()
	}
}

// starve records that ln stopped accepting for want of a slot. The caller
// tries once more afterwards: a slot freed in between saw no one starved.
func (svc *service) starve(ln *listener) {
	svc.starvedMu.Lock()
	svc.starved = append(svc.starved, lnRef{ln, ln.gen})
	svc.nstarved.Store(int32(len(svc.starved)))
	svc.starvedMu.Unlock()
}

// wakeStarved resumes the listeners that wait for a slot.
func (svc *service) wakeStarved() {
	if svc.nstarved.Load() == 0 {
		return
	}
	svc.starvedMu.Lock()
	refs := svc.starved
	svc.starved = nil
	svc.nstarved.Store(0)
	svc.starvedMu.Unlock()
	for _, r := range refs {
		r.ln.loop.post(loopMsg{kind: msgAcceptRetry, ln: r.ln, gen: r.gen})
	}
}

// Listeners returns duplicates of every listening socket (and of every
// UDP bind's sockets), for a successor process to adopt through
// Options.Inherited (systemd FDSTORE=1 with FDNAME, or exec ExtraFiles).
// The caller owns and closes the files.
func (p *Pool) Listeners() ([]*os.File, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var files []*os.File
	var errs []error
	for addr, g := range p.binds {
		for _, l := range g.lns {
			nfd, err := unix.FcntlInt(uintptr(l.fd), unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				errs = append(errs, fmt.Errorf("l4proxy: dup listener %v: %w", addr, err))
				continue
			}
			files = append(files, os.NewFile(uintptr(nfd), "l4proxy:"+addr.String()))
		}
	}
	for addr, b := range p.udpBinds {
		for _, sh := range b.shards {
			nfd, err := unix.FcntlInt(uintptr(sh.fd), unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				errs = append(errs, fmt.Errorf("l4proxy: dup udp socket %v: %w", addr, err))
				continue
			}
			files = append(files, os.NewFile(uintptr(nfd), "l4proxy-udp:"+addr.String()))
		}
	}
	return files, errors.Join(errs...)
}
