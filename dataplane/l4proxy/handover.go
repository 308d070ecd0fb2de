package l4proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Connection hand-over: a restart (or an upgrade) that cuts nothing.
//
// A TCP connection is a kernel object: its state, sequence numbers and
// queued data live in the socket, not in the process. A process that
// passes both sockets of a proxied connection to its successor (systemd's
// file descriptor store, or SCM_RIGHTS) and exits has not cut anything;
// only the bytes the proxy holds in userspace — a partial write waiting in
// a buffer, spliced data waiting in a pipe — would be lost. HandOver takes
// each connection off its loop at a point between two events, reads what
// its pipes hold into the record, and describes every connection in a
// state file: service, server, both sockets' addresses (the successor
// matches the sockets it receives by them, so their order does not
// matter), the half-closes done, and the pending bytes. The successor
// (Options.Inherited) adopts them on its first Set and goes on copying;
// the clients see a pause as long as the restart, during which the kernel
// keeps acknowledging and queueing their data up to the socket buffers.
//
// UDP binds' sockets go with the listeners (Listeners), so datagrams wait
// in them while no process runs; UDP sessions are not handed over: the
// next datagram of a flow opens a new one (a reply the server sends to the
// old session's socket meanwhile is lost, as on any restart of a UDP
// proxy).
//
// A connection still connecting is handed over as its client socket only:
// the successor picks a server and connects again (nothing was sent to the
// server yet, and nothing was read from the client). A connection waiting
// in a queue for a full server stays with the old process, which serves it
// while it drains (Close).

// HandOverStateName and HandOverConnName name the hand-over's files: the
// state file, and every connection socket (systemd's FDNAME=, which is
// LISTEN_FDNAMES in the successor; Options.Inherited matches by them).
const (
	HandOverStateName = "l4state"
	HandOverConnName  = "l4conn"
)

// handOverVersion is the state file's format; a successor refuses (and
// closes) connections described in a format it does not know.
const handOverVersion = 1

type handOverState struct {
	Version int          `json:"version"`
	Conns   []handedConn `json:"conns"`
}

// handedConn is one connection in the state file.
type handedConn struct {
	Service string `json:"service"`
	// Server is empty for a connection that was not connected yet.
	Server string         `json:"server,omitempty"`
	Client netip.AddrPort `json:"client"`
	Local  netip.AddrPort `json:"local"`
	// The sockets' inode numbers: the successor matches the sockets it
	// receives by them (addresses would not do: a socket both of whose
	// sides sent their FIN has no peer address any more, and may still
	// hold data to forward).
	ClientSock uint64    `json:"client_sock"`
	ServerSock uint64    `json:"server_sock,omitempty"`
	Start      time.Time `json:"start"`
	State      int32     `json:"state,omitempty"`  // upDone | downDone
	Flowed     int32     `json:"flowed,omitempty"` // 1 client spoke, 2 server spoke
	Up         handedDir `json:"up"`               // client → server
	Down       handedDir `json:"down"`             // server → client
}

type handedDir struct {
	// Pending is data read from the source and not yet written.
	Pending []byte `json:"pending,omitempty"`
	EOF     bool   `json:"eof,omitempty"`
	Done    bool   `json:"done,omitempty"`
	Bytes   int64  `json:"bytes,omitempty"`
}

// handed is a loop's answer to msgHandOver: records and duplicated fds.
type handed struct {
	recs []handedConn
	fds  []int
	cut  int // connections that could not be described (dropped)
}

// HandOver is what a pool gives its successor.
type HandOver struct {
	// State describes the connections (named HandOverStateName).
	State *os.File
	// Conns are their sockets (each named HandOverConnName): two per
	// connection, one for a connection that was still connecting.
	Conns []*os.File
	// N counts the connections handed over, Kept those left to drain here
	// (waiting in a queue, or past maxFDs), Cut those that could not be
	// handed over (a failed dup: they were reset).
	N, Kept, Cut int
}

// Close closes the files: once the successor (or systemd's store) holds
// its own copies, the connections do not notice.
func (h *HandOver) Close() {
	if h == nil {
		return
	}
	if h.State != nil {
		_ = h.State.Close()
	}
	for _, f := range h.Conns {
		_ = f.Close()
	}
}

// HandOver stops accepting and takes established (or connecting)
// connections off the pool, for a successor process to adopt through
// Options.Inherited: as many as maxFDs sockets allow (a connection takes
// two; negative: no bound). The listening sockets must have been passed on
// already (Listeners): the pool closes its own. The connections leave the
// pool at once; their sockets stay open in the returned files, which the
// caller sends and then closes. Connections left over, and those waiting
// in a queue, stay and drain as on Close, which the caller calls next.
func (p *Pool) HandOver(maxFDs int) (*HandOver, error) {
	p.StopAccepting()
	var all handed
	budget := maxFDs
	if budget < 0 {
		budget = int(^uint(0) >> 1)
	}
	for _, l := range p.loops {
		ch := make(chan handed, 1)
		l.post(loopMsg{kind: msgHandOver, ho: ch, budget: budget - len(all.fds)})
		h := <-ch
		all.recs = append(all.recs, h.recs...)
		all.fds = append(all.fds, h.fds...)
		all.cut += h.cut
	}
	out := &HandOver{N: len(all.recs), Cut: all.cut}
	for _, svc := range p.liveServices() {
		if svc.set.Load().proto() == ProtoTCP { // UDP sessions end with the pool
			out.Kept += int(svc.cur.Load())
		}
	}
	for _, fd := range all.fds {
		out.Conns = append(out.Conns, os.NewFile(uintptr(fd), HandOverConnName))
	}
	raw, err := json.Marshal(handOverState{Version: handOverVersion, Conns: all.recs})
	if err == nil {
		out.State, err = memFile(HandOverStateName, raw)
	}
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("l4proxy: hand-over state: %w", err)
	}
	return out, nil
}

// liveServices returns the services, draining ones included.
func (p *Pool) liveServices() []*service {
	p.mu.Lock()
	defer p.mu.Unlock()
	svcs := append([]*service(nil), p.draining...)
	for _, s := range p.services {
		svcs = append(svcs, s)
	}
	return svcs
}

// memFile is an anonymous in-memory file holding b (memfd: nothing on
// disk, and the successor reads it from the fd store).
func memFile(name string, b []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// handOver runs on the loop: the connections it owns that are connecting
// or established leave it, described, with duplicates of their sockets,
// as long as budget (sockets) lasts.
func (l *evloop) handOver(budget int) handed {
	var h handed
	for _, c := range l.slots.items {
		if c == nil {
			continue
		}
		switch c.phase.Load() {
		case phConnecting:
			if len(h.fds)+1 <= budget {
				c.handOverConnecting(l, &h)
			}
		case phData:
			if len(h.fds)+2 <= budget {
				c.handOverData(l, &h)
			}
		}
	}
	return h
}

// Adopting reports whether connections handed over by a predecessor wait
// for the first Set.
func (p *Pool) Adopting() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.handed.state != nil || len(p.handed.fds) > 0
}

// handOverConnecting gives up the connect in progress (reset: the server
// got nothing) and hands the client socket over for the successor to
// connect again.
func (c *conn) handOverConnecting(l *evloop, h *handed) {
	cfd, err := dupSock(c.client)
	if err != nil {
		h.cut++
		c.abort(l, termProxyStop)
		return
	}
	_ = rawEpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.client, nil)
	srv := c.srv
	srv.unlink(c)
	linger0(c.server)
	rawClose(c.server)
	c.server, c.srv = -1, nil
	c.svc.releaseServer(srv)
	h.recs = append(h.recs, handedConn{
		Service: c.svc.name, Client: c.caddr, Local: c.laddr, ClientSock: sockIno(cfd), Start: c.start,
	})
	h.fds = append(h.fds, cfd)
	c.handed = true
	c.finish(l)
}

// handOverData describes an established connection, pending bytes
// included, and hands both sockets over.
func (c *conn) handOverData(l *evloop, h *handed) {
	rec := handedConn{
		Service: c.svc.name, Server: c.srv.name, Client: c.caddr, Local: c.laddr,
		ClientSock: sockIno(c.client), ServerSock: sockIno(c.server),
		Start: c.start, State: c.state.Load(), Flowed: c.flowed.Load(),
	}
	var err error
	if rec.Up, err = c.up.handOver(); err == nil {
		rec.Down, err = c.down.handOver()
	}
	var cfd, sfd int = -1, -1
	if err == nil {
		cfd, err = dupSock(c.client)
	}
	if err == nil {
		sfd, err = dupSock(c.server)
	}
	if err != nil {
		if cfd >= 0 {
			_ = unix.Close(cfd)
		}
		h.cut++
		c.abort(l, termProxyStop)
		return
	}
	_ = rawEpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.client, nil)
	_ = rawEpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.server, nil)
	h.recs = append(h.recs, rec)
	h.fds = append(h.fds, cfd, sfd)
	c.handed = true
	c.finish(l)
}

// handOver describes the direction: what waits in its buffer or pipe is
// read out (a pipe holds at most maxSplice bytes, all readable at once).
func (d *direction) handOver() (handedDir, error) {
	hd := handedDir{EOF: d.eof, Done: d.done, Bytes: d.bytes}
	if d.pend != nil {
		hd.Pending = append(hd.Pending, (*d.pend)[d.off:d.end]...)
	}
	for d.inPipe > 0 {
		buf := make([]byte, d.inPipe)
		n, err := unix.Read(d.pipe.r, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return hd, fmt.Errorf("pipe: %v", err)
		}
		hd.Pending = append(hd.Pending, buf[:n]...)
		d.inPipe -= n
	}
	return hd, nil
}

// dupSock duplicates a socket fd for the hand-over.
func dupSock(fd int) (int, error) {
	return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
}

// sockIno is the socket's inode number, which identifies it in every
// process that holds it; 0 if fstat fails.
func sockIno(fd int) uint64 {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return 0
	}
	return st.Ino
}

// maxHandOverState bounds the hand-over state a predecessor left: it
// comes from the fd store, not from this process, and is read before it is
// checked. It holds each connection's bytes in flight (at most a buffer
// each way plus what its pipes held; most connections hold none at the
// hand-over): a state past 1 GiB is refused, and its connections are lost
// as on a plain restart.
const maxHandOverState = 1 << 30

// inheritedConns is what a predecessor handed over, until the first Set
// adopts it.
type inheritedConns struct {
	state *handOverState
	fds   map[uint64]int // by inode
}

// inheritConn takes f if it is part of a connection hand-over: the state
// file, or a connected TCP socket. It reports whether it did.
func (p *Pool) inheritConn(f *os.File) (bool, error) {
	if f.Name() == HandOverStateName {
		raw, err := io.ReadAll(io.NewSectionReader(f, 0, maxHandOverState+1))
		if err != nil {
			return true, fmt.Errorf("hand-over state: %w", err)
		}
		if len(raw) > maxHandOverState {
			return true, fmt.Errorf("hand-over state: larger than %d MiB", maxHandOverState>>20)
		}
		var st handOverState
		if err := json.Unmarshal(raw, &st); err != nil {
			return true, fmt.Errorf("hand-over state: %w", err)
		}
		if st.Version != handOverVersion {
			return true, fmt.Errorf("hand-over state: version %d, this agent reads %d", st.Version, handOverVersion)
		}
		p.handed.state = &st
		return true, nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return false, nil
	}
	fd := -1
	_ = rc.Control(func(raw uintptr) {
		acc, err1 := unix.GetsockoptInt(int(raw), unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		typ, err2 := unix.GetsockoptInt(int(raw), unix.SOL_SOCKET, unix.SO_TYPE)
		if err1 != nil || err2 != nil || acc != 0 || typ != unix.SOCK_STREAM {
			return
		}
		fd, _ = unix.FcntlInt(raw, unix.F_DUPFD_CLOEXEC, 0)
	})
	if fd < 0 {
		return false, nil
	}
	k := sockIno(fd)
	if k == 0 || unix.SetNonblock(fd, true) != nil {
		_ = unix.Close(fd)
		return true, nil
	}
	if p.handed.fds == nil {
		p.handed.fds = map[uint64]int{}
	}
	p.handed.fds[k] = fd
	return true, nil
}

// adoptHanded gives the connections handed over to their services: on the
// first Set, once the services exist. A connection whose service or server
// is gone, or whose sockets did not all arrive, is closed. Called with p.mu
// held.
func (p *Pool) adoptHanded() {
	st, fds := p.handed.state, p.handed.fds
	p.handed = inheritedConns{}
	if st == nil && len(fds) == 0 {
		return
	}
	take := func(k uint64) int {
		fd, ok := fds[k]
		if !ok {
			return -1
		}
		delete(fds, k)
		return fd
	}
	adopted, lost := 0, 0
	pickers := map[*service]*picker{}
	if st != nil {
		for i := range st.Conns {
			rec := &st.Conns[i]
			cfd := take(rec.ClientSock)
			sfd := -1
			if rec.Server != "" {
				sfd = take(rec.ServerSock)
			}
			svc := p.services[rec.Service]
			var srv *server
			if svc != nil && rec.Server != "" {
				srv = svc.serverNamed(rec.Server)
			}
			if cfd < 0 || svc == nil || (rec.Server != "" && (sfd < 0 || srv == nil)) {
				lost++
				for _, fd := range []int{cfd, sfd} {
					if fd >= 0 {
						_ = unix.Close(fd)
					}
				}
				continue
			}
			if len(p.loops) == 0 {
				lost++
				_ = unix.Close(cfd)
				if sfd >= 0 {
					_ = unix.Close(sfd)
				}
				continue
			}
			c := connPool.Get().(*conn)
			c.svc, c.set, c.client = svc, svc.set.Load(), cfd
			c.caddr, c.laddr, c.start = rec.Client, rec.Local, rec.Start
			if pickers[svc] == nil {
				pickers[svc] = &picker{}
			}
			c.shard = pickers[svc]
			// Adopted past maxconn and the per-source limits if need be:
			// these connections exist; they count against the limits.
			if src := c.set.src; src != nil && src.maxConn > 0 {
				svc.srcTbl.hold(rec.Client.Addr())
				c.srcHeld = true
			}
			svc.slots.Add(1)
			svc.cur.Add(1)
			p.conns.Add(1)
			l := p.loops[int(p.nextLp.Add(1))%len(p.loops)]
			if srv == nil {
				svc.total.Add(1)
				l.post(loopMsg{kind: msgNew, c: c})
			} else {
				srv.cur.Add(1)
				c.srv, c.last, c.server = srv, srv, sfd
				l.post(loopMsg{kind: msgAdoptData, c: c, rec: rec})
			}
			adopted++
		}
	}
	for _, fd := range fds {
		lost++
		_ = unix.Close(fd)
	}
	p.log.Info("connections adopted from the previous process", "adopted", adopted, "lost", lost)
}

// hold counts a connection against its source without a check: one
// adopted from a predecessor, which was admitted there.
func (t *srcTable) hold(a netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[netip.Addr]srcEntry)
	}
	e := t.m[a]
	e.cur++
	t.m[a] = e
}

// serverNamed returns the configured server of that name, or nil.
func (svc *service) serverNamed(name string) *server {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	for _, s := range svc.servers {
		if s.name == name {
			return s
		}
	}
	return nil
}

// adoptData runs an established connection handed over on this loop: it
// registers both sockets (edge-triggered registration reports a socket
// that is already readable or writable, so nothing queued meanwhile is
// missed) and restores both directions, pending bytes included.
func (l *evloop) adoptData(c *conn, rec *handedConn) {
	slot := l.slots.put(c)
	c.loop, c.slot = l, slot
	c.phase.Store(phData)
	c.state.Store(rec.State)
	c.flowed.Store(rec.Flowed)
	c.clientAct.Store(l.now)
	c.serverAct.Store(l.now)
	c.up.src, c.up.dst = c.client, c.server
	c.down.src, c.down.dst = c.server, c.client
	c.up.adopt(&rec.Up)
	c.down.adopt(&rec.Down)
	c.srv.link(c)
	var err1, err2 error
	c.cgen, err1 = l.register(c.client, slot, sideClient)
	c.sgen, err2 = l.register(c.server, slot, sideServer)
	if err := errors.Join(err1, err2); err != nil {
		l.pool.log.Warn("adopting a connection", "service", c.svc.name, "client", c.caddr, "err", err)
		c.abort(l, termProxyStop)
	}
}

func (d *direction) adopt(hd *handedDir) {
	d.eof, d.done, d.bytes = hd.EOF, hd.Done, hd.Bytes
	if len(hd.Pending) > 0 && !d.done {
		b := hd.Pending
		d.pend, d.off, d.end = &b, 0, len(b)
		d.paused = true
	}
}
