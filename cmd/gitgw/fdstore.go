package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/gitgw/gitgw/dataplane/l4proxy"
)

// fdStoreName names the proxy's listeners in systemd's file descriptor
// store (FDNAME= may not hold the addresses: ':' separates names in
// LISTEN_FDNAMES). The pool matches inherited sockets by address.
const fdStoreName = "l4proxy"

// fdStore keeps the proxy's listening sockets in systemd's file descriptor
// store (FileDescriptorStoreMax= in the unit): an agent restarted after a
// crash gets them back in LISTEN_FDS and adopts them, so the kernel goes on
// queueing connections while no agent runs instead of refusing them.
type fdStore struct {
	addr *net.UnixAddr
	pool interface {
		Listeners() ([]*os.File, error)
	}
	log  *slog.Logger
	last string
}

// newFDStore returns nil outside systemd or without a proxy pool.
func newFDStore(pool *l4proxy.Pool, log *slog.Logger) *fdStore {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	if pool == nil {
		return nil
	}
	return &fdStore{addr: &net.UnixAddr{Name: path, Net: "unixgram"}, log: log.With("component", "fdstore"), pool: pool}
}

// sync replaces the stored listeners when the set of bound addresses
// changed since the last call.
func (s *fdStore) sync() {
	if s == nil {
		return
	}
	files, err := s.pool.Listeners()
	defer func() {
		for _, f := range files {
			_ = f.Close()
		}
	}()
	if err != nil {
		s.log.Warn("listeners not stored for a restart", "err", err)
		return
	}
	names := make([]string, 0, len(files))
	fds := make([]int, 0, len(files))
	for _, f := range files {
		names = append(names, f.Name())
		fds = append(fds, int(f.Fd()))
	}
	slices.Sort(names)
	key := strings.Join(names, " ")
	if key == s.last {
		return
	}
	if err := s.send("FDSTOREREMOVE=1\nFDNAME="+fdStoreName, nil); err != nil {
		s.log.Warn("listeners not stored for a restart", "err", err)
		return
	}
	if len(fds) > 0 {
		if err := s.send("FDSTORE=1\nFDNAME="+fdStoreName, fds); err != nil {
			s.log.Warn("listeners not stored for a restart", "err", err)
			return
		}
	}
	s.last = key
	s.log.Debug("listeners stored for a restart", "listeners", key)
}

func (s *fdStore) send(state string, fds []int) error {
	// An unconnected socket: a connected one refuses WriteMsgUnix with
	// ancillary data through the address-taking path.
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("fd store: %w", err)
	}
	defer c.Close()
	var oob []byte
	if len(fds) > 0 {
		oob = syscall.UnixRights(fds...)
	}
	if _, _, err := c.WriteMsgUnix([]byte(state), oob, s.addr); err != nil {
		return fmt.Errorf("fd store: %w", err)
	}
	return nil
}
