// Package sdnotify is the agent's side of systemd's service protocol:
// sd_notify(3) state lines to $NOTIFY_SOCKET, the watchdog interval from
// $WATCHDOG_USEC, and the listening sockets systemd hands over
// ($LISTEN_FDS). Each is an environment variable and, at most, a datagram
// to a unix socket: small enough not to need a library.
package sdnotify

import (
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Notifier sends state lines to systemd; a nil *Notifier (outside
// systemd) sends nothing.
type Notifier struct {
	addr *net.UnixAddr
}

// New returns the Notifier of $NOTIFY_SOCKET; nil when it is unset.
func New() *Notifier {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:] // abstract socket
	}
	return &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
}

// Notify sends one state ("READY=1", "STATUS=…", "WATCHDOG=1"); errors are
// ignored, as sd_notify does: the agent runs on without systemd hearing.
func (n *Notifier) Notify(state string) {
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

// WatchdogInterval is half of $WATCHDOG_USEC when the watchdog is meant
// for this process, 0 otherwise: pinging at half the timeout leaves a
// whole half for a slow pass.
func WatchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// Listeners are the listening sockets handed over by systemd (LISTEN_FDS,
// from the unit's file descriptor store) or by a previous agent process,
// named by LISTEN_FDNAMES, so that a restart never refuses a connection.
// None unless LISTEN_PID is this process.
func Listeners() []*os.File {
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		return nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n <= 0 {
		return nil
	}
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	var out []*os.File
	for i := 0; i < n; i++ {
		name := "listener"
		if i < len(names) && names[i] != "" {
			name = names[i]
		}
		out = append(out, os.NewFile(uintptr(listenFDsStart+i), name))
	}
	return out
}

// listenFDsStart is SD_LISTEN_FDS_START: the first handed-over descriptor.
const listenFDsStart = 3
