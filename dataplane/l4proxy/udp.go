package l4proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

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
// Each bind has one SO_REUSEPORT socket per shard, read by one goroutine
// (the kernel spreads flows over the shards by their addresses, so a flow
// stays on one); each session has one goroutine that waits for replies
// through the runtime poller and borrows a buffer only while a datagram is
// there. Nothing of this runs on the TCP event loops.

// udpBufSize is the largest datagram forwarded (an IPv4 UDP payload).
const udpBufSize = 65507

var udpBufPool = sync.Pool{New: func() any { b := make([]byte, udpBufSize); return &b }}

// udpBind is the sockets of one UDP bind and the service they feed.
type udpBind struct {
	addr   netip.AddrPort
	svc    atomic.Pointer[service]
	shards []*udpShard
	wg     sync.WaitGroup
}

// udpShard is one SO_REUSEPORT socket and the sessions of the flows the
// kernel sends it.
type udpShard struct {
	b    *udpBind
	conn *net.UDPConn
	pick picker
	mu   sync.Mutex
	sess map[netip.AddrPort]*udpSession
}

// udpSession is one client flow.
type udpSession struct {
	sh      *udpShard
	svc     *service
	srv     *server
	client  netip.AddrPort
	up      *net.UDPConn // connected to the server
	rc      syscall.RawConn
	last    atomic.Int64 // monoNow of the last datagram either way
	replies atomic.Int64
	held    bool // counts against the source's limits
	once    sync.Once
}

// openUDPBind opens the shards of a UDP bind and starts reading them.
func (p *Pool) openUDPBind(addr netip.AddrPort, svc *service) (*udpBind, error) {
	b := &udpBind{addr: addr}
	b.svc.Store(svc)
	// Sockets handed over by a predecessor first: datagrams that came
	// while no process ran wait in them.
	for _, c := range p.inheritedUDP[addr] {
		b.shards = append(b.shards, &udpShard{b: b, conn: c, sess: map[netip.AddrPort]*udpSession{}})
	}
	delete(p.inheritedUDP, addr)
	for len(b.shards) < p.opts.Shards {
		c, err := listenUDP(addr)
		if err != nil {
			if len(b.shards) > 0 {
				break
			}
			return nil, err
		}
		b.shards = append(b.shards, &udpShard{b: b, conn: c, sess: map[netip.AddrPort]*udpSession{}})
	}
	if len(b.shards) == 0 {
		return nil, fmt.Errorf("l4proxy: service %q: udp bind %v: no socket", svc.name, addr)
	}
	for _, sh := range b.shards {
		b.wg.Add(1)
		go sh.serve(p)
	}
	return b, nil
}

// listenUDP opens one SO_REUSEPORT shard with IP_FREEBIND (a VIP need not
// be here yet).
func listenUDP(addr netip.AddrPort) (*net.UDPConn, error) {
	c, err := listenUDPSock(addr)
	if err != nil {
		return nil, fmt.Errorf("l4proxy: listen udp %v: %w", addr, err)
	}
	return c, nil
}

func listenUDPSock(addr netip.AddrPort) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(network, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			opt := func(level, name int) error { return unix.SetsockoptInt(int(fd), level, name, 1) }
			serr = errors.Join(opt(unix.SOL_SOCKET, unix.SO_REUSEADDR), opt(unix.SOL_SOCKET, unix.SO_REUSEPORT))
			if network == "udp6" {
				serr = errors.Join(serr, opt(unix.SOL_IPV6, unix.IPV6_FREEBIND))
			} else {
				serr = errors.Join(serr, opt(unix.SOL_IP, unix.IP_FREEBIND))
			}
		})
		return errors.Join(err, serr)
	}}
	network := "udp4"
	if a := addr.Addr(); a.Is6() && !a.Is4In6() {
		network = "udp6"
	}
	pc, err := lc.ListenPacket(context.Background(), network, addr.String())
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// close stops the bind's readers and ends its sessions.
func (b *udpBind) close() {
	for _, sh := range b.shards {
		_ = sh.conn.Close()
	}
	b.wg.Wait()
	for _, sh := range b.shards {
		sh.mu.Lock()
		all := make([]*udpSession, 0, len(sh.sess))
		for _, s := range sh.sess {
			all = append(all, s)
		}
		sh.mu.Unlock()
		for _, s := range all {
			s.end()
		}
	}
}

// serve reads the client datagrams of one shard.
func (sh *udpShard) serve(p *Pool) {
	defer sh.b.wg.Done()
	buf := make([]byte, udpBufSize)
	for {
		n, client, err := sh.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
		svc := sh.b.svc.Load()
		s := sh.session(p, svc, client)
		if s == nil {
			continue
		}
		s.last.Store(monoNow())
		_, err = s.up.Write(buf[:n])
		if errors.Is(err, net.ErrClosed) {
			// The session ended (idle, or its last reply) as the datagram
			// came: it opens the next one.
			if s = sh.session(p, svc, client); s == nil {
				continue
			}
			_, err = s.up.Write(buf[:n])
		}
		if err != nil {
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

// session returns the flow's session, opening one (or moving it off a
// server that is down or gone) as needed; nil drops the datagram.
func (sh *udpShard) session(p *Pool, svc *service, client netip.AddrPort) *udpSession {
	sh.mu.Lock()
	s := sh.sess[client]
	sh.mu.Unlock()
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
	up, err := net.DialUDP("udp", nil, srv.cfg.Load().tcpUDPAddr())
	var rc syscall.RawConn
	if err == nil {
		rc, err = up.SyscallConn()
	}
	if err != nil {
		if up != nil {
			_ = up.Close()
		}
		srv.connErrors.Add(1)
		svc.releaseServer(srv)
		svc.releaseSlot()
		svc.errors.Add(1)
		release()
		p.log.Warn("udp session", "service", svc.name, "server", srv.name, "err", err)
		return nil
	}
	s = &udpSession{sh: sh, svc: svc, srv: srv, client: client, up: up, rc: rc, held: held}
	s.last.Store(monoNow())
	svc.cur.Add(1)
	svc.total.Add(1)
	srv.total.Add(1)
	sh.mu.Lock()
	sh.sess[client] = s
	sh.mu.Unlock()
	p.udpWG.Add(1)
	go s.forward(p, set.Timeouts.Client, set.UDPReplies)
	return s
}

// tcpUDPAddr is the server's address as a *net.UDPAddr.
func (c *serverCfg) tcpUDPAddr() *net.UDPAddr { return net.UDPAddrFromAddrPort(c.Addr) }

// forward sends the server's datagrams to the client until the session
// is idle for idle, has had maxReplies replies (0: no bound), or ends.
func (s *udpSession) forward(p *Pool, idle time.Duration, maxReplies int) {
	defer p.udpWG.Done()
	defer s.end()
	var armed time.Time
	for {
		// The deadline is moved only once half of it is used: a timer
		// reset per reply costs more than the reply's own syscalls.
		if now := time.Now(); armed.Sub(now) < idle/2 {
			armed = now.Add(idle)
			_ = s.up.SetReadDeadline(armed)
		}
		var n int
		var rerr error
		err := s.rc.Read(func(fd uintptr) bool {
			bp := udpBufPool.Get().(*[]byte)
			defer udpBufPool.Put(bp)
			// read, not recvfrom: the socket is connected, and recvfrom
			// would allocate the sender's address for every datagram.
			r, e := unix.Read(int(fd), *bp)
			if e == unix.EAGAIN {
				return false
			}
			if e != nil {
				rerr = e
				return true
			}
			n = r
			if _, werr := s.sh.conn.WriteToUDPAddrPort((*bp)[:r], s.client); werr != nil {
				rerr = werr
			}
			return true
		})
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			if time.Duration(monoNow()-s.last.Load()) < idle {
				continue // the client spoke meanwhile
			}
			return
		case err != nil:
			return // closed by end
		case rerr != nil:
			if errors.Is(rerr, unix.ECONNREFUSED) {
				s.srv.connErrors.Add(1)
			}
			return
		}
		s.last.Store(monoNow())
		s.svc.bytesOut.Add(int64(n))
		s.srv.bytesOut.Add(int64(n))
		if maxReplies > 0 && s.replies.Add(1) >= int64(maxReplies) {
			return
		}
	}
}

// end closes the session once: its socket, its slot, its source count.
func (s *udpSession) end() {
	s.once.Do(func() {
		sh := s.sh
		sh.mu.Lock()
		if sh.sess[s.client] == s {
			delete(sh.sess, s.client)
		}
		sh.mu.Unlock()
		_ = s.up.Close()
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
	})
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
	pc, err := net.FilePacketConn(f) // a duplicate
	if err != nil {
		return false
	}
	c, ok := pc.(*net.UDPConn)
	if !ok {
		_ = pc.Close()
		return false
	}
	ap := c.LocalAddr().(*net.UDPAddr).AddrPort()
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if p.inheritedUDP == nil {
		p.inheritedUDP = map[netip.AddrPort][]*net.UDPConn{}
	}
	p.inheritedUDP[ap] = append(p.inheritedUDP[ap], c)
	return true
}

// closeInheritedUDP closes the UDP sockets no bind claimed.
func (p *Pool) closeInheritedUDP() {
	for addr, cs := range p.inheritedUDP {
		for _, c := range cs {
			_ = c.Close()
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
