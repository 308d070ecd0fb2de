package l4proxy

import (
	"errors"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sock is a connected TCP socket on a non-blocking fd that the runtime
// poller watches (an *os.File), driven by raw syscalls. Compared with
// net.TCPConn it skips, per connection, the getsockname/getpeername calls,
// the address parsing and the context machinery of net.Dialer, and the
// TCP_NODELAY setsockopt (accepted sockets inherit it from the listener).
type sock struct {
	f  *os.File
	rc syscall.RawConn
}

func newSock(fd int) (*sock, error) {
	f := os.NewFile(uintptr(fd), "tcp")
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return &sock{f: f, rc: rc}, nil
}

// Write writes all of b, waiting in the poller while the socket is full.
func (s *sock) Write(b []byte) (int, error) { return s.f.Write(b) }

func (s *sock) Close() error { return s.f.Close() }

func (s *sock) control(fn func(fd int) error) error {
	var ierr error
	if err := s.rc.Control(func(fd uintptr) { ierr = fn(int(fd)) }); err != nil {
		return err
	}
	return ierr
}

// CloseWrite sends a FIN: the half-close.
func (s *sock) CloseWrite() error {
	return s.control(func(fd int) error { return unix.Shutdown(fd, unix.SHUT_WR) })
}

// setLinger0 makes Close send a RST (an aborted session).
func (s *sock) setLinger0() {
	_ = s.control(func(fd int) error {
		return unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	})
}

// setKeepAlive turns TCP keep-alive probes on: first after idle, then
// every idle/3, 3 probes.
func (s *sock) setKeepAlive(idle time.Duration) error {
	secs := max(int(idle/time.Second), 1)
	return s.control(func(fd int) error {
		return errors.Join(
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1),
			unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs),
			unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, max(secs/3, 1)),
			unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 3))
	})
}

// localAddr is getsockname, needed only for the PROXY protocol.
func (s *sock) localAddr() netip.AddrPort {
	var ap netip.AddrPort
	_ = s.control(func(fd int) error {
		sa, err := unix.Getsockname(fd)
		if err == nil {
			ap = addrPortOf(sa)
		}
		return err
	})
	return ap
}

func sockaddrOf(ap netip.AddrPort) (unix.Sockaddr, int) {
	a := ap.Addr()
	if a.Is4() || a.Is4In6() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.Unmap().As4()}, unix.AF_INET
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}, unix.AF_INET6
}

func addrPortOf(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port))
	}
	return netip.AddrPort{}
}

// errConnectTimeout is a connect that did not complete in time.
var errConnectTimeout = errors.New("connect timeout")

// dialTCP connects to ap, with TCP_NODELAY, within timeout.
func dialTCP(ap netip.AddrPort, timeout time.Duration) (*sock, error) {
	sa, family := sockaddrOf(ap)
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	err = unix.Connect(fd, sa)
	if err != nil && err != unix.EINPROGRESS && err != unix.EINTR {
		_ = unix.Close(fd)
		return nil, os.NewSyscallError("connect", err)
	}
	s, serr := newSock(fd)
	if serr != nil {
		return nil, serr
	}
	if err == nil {
		return s, nil
	}
	// Connecting: ask connect(2) again once writable — EALREADY while in
	// progress, EISCONN once established, or the failure.
	_ = s.f.SetWriteDeadline(time.Now().Add(timeout))
	var cerr error
	werr := s.rc.Write(func(fd uintptr) bool {
		for {
			switch e := unix.Connect(int(fd), sa); e {
			case unix.EINTR:
				continue
			case unix.EALREADY, unix.EINPROGRESS:
				return false
			case nil, unix.EISCONN:
				cerr = nil
			default:
				cerr = e
			}
			return true
		}
	})
	if werr != nil {
		_ = s.Close()
		if errors.Is(werr, os.ErrDeadlineExceeded) {
			return nil, errConnectTimeout
		}
		return nil, werr
	}
	if cerr != nil {
		_ = s.Close()
		return nil, os.NewSyscallError("connect", cerr)
	}
	_ = s.f.SetWriteDeadline(time.Time{})
	return s, nil
}
