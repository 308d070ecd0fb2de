package l4proxy

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Connected sockets are raw non-blocking fds owned by an event loop (see
// loop.go); compared with net.TCPConn they skip, per connection, the
// runtime poller's registration, the getsockname/getpeername calls, the
// address parsing, and the TCP_NODELAY setsockopt on accepted sockets
// (they inherit it from the listener).

// linger0 makes close send a RST (an aborted session).
func linger0(fd int) {
	if fd >= 0 {
		_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	}
}

// setKeepAlive turns TCP keep-alive probes on: first after idle, then
// every idle/3, 3 probes.
func setKeepAlive(fd int, idle time.Duration) error {
	secs := max(int(idle/time.Second), 1)
	return errors.Join(
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1),
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs),
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, max(secs/3, 1)),
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 3))
}

// localAddr is getsockname, needed only for the PROXY protocol.
func localAddr(fd int) netip.AddrPort {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}
	}
	return addrPortOf(sa)
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

// The loop's per-event syscalls on non-blocking sockets never block: they
// go in as raw syscalls, without the scheduler's syscall bookkeeping (and
// without waking sysmon on the way in). They return the errno itself.

func rawRead(fd int, b []byte) (int, syscall.Errno) {
	r, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	return int(r), e
}

// rawSend writes without raising SIGPIPE on a reset connection.
func rawSend(fd int, b []byte) (int, syscall.Errno) {
	r, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)),
		unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT, 0, 0)
	return int(r), e
}

func rawSplice(in, out, n int) (int, syscall.Errno) {
	r, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n), spliceFlag)
	return int(r), e
}

func rawEpollWait(epfd int, events []unix.EpollEvent) (int, syscall.Errno) {
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(unsafe.SliceData(events))), uintptr(len(events)), 0, 0, 0)
	return int(r), e
}

// The connect and teardown syscalls of a connection do not block either
// (non-blocking sockets, no lingering close), but on loopback each runs
// the peer's TCP processing inline and may take tens of µs: through
// unix.Syscall the runtime counted that as a blocking syscall, and with
// one P sysmon took the P away (handoff, a spinning M, futex wake-ups to
// get it back) — about 0.3 nanosleep and 0.05 futex per short connection
// under load. As raw syscalls the loop keeps its P.

func rawClose(fd int) {
	_, _, _ = unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}

func rawShutdownWrite(fd int) syscall.Errno {
	_, _, e := unix.RawSyscall(unix.SYS_SHUTDOWN, uintptr(fd), unix.SHUT_WR, 0)
	return e
}

func rawEpollCtl(epfd, op, fd int, ev *unix.EpollEvent) syscall.Errno {
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	return e
}

// rawSocket opens a non-blocking TCP socket.
func rawSocket(family int) (int, syscall.Errno) {
	r, _, e := unix.RawSyscall(unix.SYS_SOCKET, uintptr(family), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	return int(r), e
}

func rawSetsockoptInt(fd, level, opt, v int) syscall.Errno {
	i := int32(v)
	_, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(unsafe.Pointer(&i)), 4, 0)
	return e
}

// rawConnect starts a non-blocking connect to ap, through the loop's
// sockaddr scratch space (no allocation); EINPROGRESS is the usual answer.
func (l *evloop) rawConnect(fd int, ap netip.AddrPort) syscall.Errno {
	var ptr unsafe.Pointer
	var n uintptr
	if a := ap.Addr(); a.Is4() || a.Is4In6() {
		l.csa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.Unmap().As4()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&l.csa4.Port))[:], ap.Port())
		ptr, n = unsafe.Pointer(&l.csa4), unix.SizeofSockaddrInet4
	} else {
		l.csa6 = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&l.csa6.Port))[:], ap.Port())
		ptr, n = unsafe.Pointer(&l.csa6), unix.SizeofSockaddrInet6
	}
	_, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(ptr), n)
	return e
}
