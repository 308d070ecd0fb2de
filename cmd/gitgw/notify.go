package main

import (
	"net"
	"os"
	"strconv"
	"time"
)

// sdNotifier sends sd_notify(3) state lines to $NOTIFY_SOCKET. It is a
// datagram to a unix socket: small enough not to need a library.
type sdNotifier struct {
	addr *net.UnixAddr
}

func newSDNotifier() *sdNotifier {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:] // abstract socket
	}
	return &sdNotifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
}

// Notify sends one state; errors are ignored, as sd_notify does.
func (n *sdNotifier) Notify(state string) {
	if n == nil {
		return
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return
	}
	defer c.Close()
	_, _ = c.Write([]byte(state))
}

// watchdogInterval is half of $WATCHDOG_USEC when the watchdog is meant for
// this process, 0 otherwise.
func watchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}
