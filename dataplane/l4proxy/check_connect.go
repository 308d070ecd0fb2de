package l4proxy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// connectCheck is the plain TCP check (HAProxy's `check` without rules):
// a non-blocking connect on a bare socket, its result read from
// SO_ERROR once the socket is writable, then a reset. It skips what
// net.Dial adds (TCP_NODELAY, getsockname, getpeername, address
// parsing, net.Conn's bookkeeping), which with a thousand checks a
// second is a good part of the checker's CPU (BenchmarkTCPCheck).
func connectCheck(ctx context.Context, t netip.AddrPort) error {
	var sa unix.Sockaddr
	family := unix.AF_INET6
	if a := t.Addr(); a.Is4() || a.Is4In6() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: int(t.Port()), Addr: a.Unmap().As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(t.Port()), Addr: a.As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	// Registered with the runtime's poller before the connect, so that the
	// edge of its completion cannot come before the poller watches.
	f := os.NewFile(uintptr(fd), "check")
	defer f.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = f.SetWriteDeadline(dl)
	}
	// A stopped check loop (a reconfiguration) must not wait for the timeout.
	stop := context.AfterFunc(ctx, func() { _ = f.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	started, soErr := false, 0
	werr := rc.Write(func(fd uintptr) bool {
		if !started {
			started = true
			err = unix.Connect(int(fd), sa)
			return !errors.Is(err, unix.EINPROGRESS) // else wait for writability
		}
		soErr, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		return true
	})
	switch {
	case werr != nil:
		if errors.Is(werr, os.ErrDeadlineExceeded) {
			if ctx.Err() == context.Canceled {
				return ctx.Err()
			}
			return errors.New("i/o timeout")
		}
		return werr
	case err != nil:
		return err
	case soErr != 0:
		return syscall.Errno(soErr)
	}
	// Closed with a reset, as HAProxy does: no TIME_WAIT left behind.
	_ = rc.Control(func(fd uintptr) {
		_ = unix.SetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	})
	return nil
}
