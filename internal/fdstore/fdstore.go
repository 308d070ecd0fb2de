// Package fdstore keeps the L4 proxy's sockets in systemd's file
// descriptor store across agent restarts: the listeners, so that the
// kernel goes on queueing connections while no agent runs, and at a stop
// the established connections, so that a restart cuts none. It is the
// policy (what to store, when) over sd_notify's FDSTORE= protocol.
package fdstore

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/gitgw/gitgw/dataplane/l4proxy"
)

// Name names the proxy's listeners in systemd's file descriptor
// store (FDNAME= may not hold the addresses: ':' separates names in
// LISTEN_FDNAMES). The pool matches inherited sockets by address.
const Name = "l4proxy"

// Store keeps the proxy's listening sockets in systemd's file descriptor
// store (FileDescriptorStoreMax= in the unit): an agent restarted after a
// crash gets them back in LISTEN_FDS and adopts them, so the kernel goes on
// queueing connections while no agent runs instead of refusing them.
//
// An agent that stops (systemctl restart, an upgrade's restart, any stop)
// also stores its established connections (HandOver): the next agent
// adopts them and goes on copying, so a restart cuts none. A stop that is
// not a restart ends them: systemd closes the store when the unit goes
// inactive. How many fit is the store's size, $FDSTORE (set by systemd
// 254 and later from FileDescriptorStoreMax=, and by the unit for older
// ones); without it connections are not handed over and drain as before.
type Store struct {
	addr *net.UnixAddr
	pool interface {
		Listeners() ([]*os.File, error)
		HandOver(maxFDs int) (*l4proxy.HandOver, error)
		Adopting() bool
	}
	log  *slog.Logger
	last string
	// max is the store's size ($FDSTORE), 0 when unknown; nlisteners the
	// listeners stored.
	max, nlisteners int
	// cleared: the connections handed over by the previous agent were
	// adopted and removed from the store.
	cleared bool
}

// New returns the store of $NOTIFY_SOCKET; nil (which stores nothing)
// outside systemd or without a proxy pool.
func New(pool *l4proxy.Pool, log *slog.Logger) *Store {
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
	s := &Store{addr: &net.UnixAddr{Name: path, Net: "unixgram"}, log: log.With("component", "fdstore"), pool: pool}
	s.max, _ = strconv.Atoi(os.Getenv("FDSTORE"))
	return s
}

// Sync replaces the stored listeners when the set of bound addresses
// changed since the last call; the agent calls it after each pass.
func (s *Store) Sync() {
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
	if !s.cleared && !s.pool.Adopting() {
		// Adopted: the store's copies would keep the sockets open (no FIN)
		// after this agent closes them.
		s.cleared = true
		for _, name := range []string{l4proxy.HandOverConnName, l4proxy.HandOverStateName} {
			if err := s.send("FDSTOREREMOVE=1\nFDNAME="+name, nil); err != nil {
				s.log.Warn("handed-over connections not removed from the store", "err", err)
			}
		}
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
	if err := s.send("FDSTOREREMOVE=1\nFDNAME="+Name, nil); err != nil {
		s.log.Warn("listeners not stored for a restart", "err", err)
		return
	}
	if len(fds) > 0 {
		if err := s.send("FDSTORE=1\nFDNAME="+Name, fds); err != nil {
			s.log.Warn("listeners not stored for a restart", "err", err)
			return
		}
	}
	s.last = key
	s.nlisteners = len(fds)
	s.log.Debug("listeners stored for a restart", "listeners", key)
}

// fdBatch is the number of sockets per store message: the kernel passes
// at most 253 (SCM_MAX_FD) in one, systemd reads up to 768.
const fdBatch = 200

// HandOver stores the proxy's established connections for the next
// agent, once this one stops; those that do not fit in the store stay and
// drain as the pool closes. FDPOLL=0: systemd must not drop a socket whose
// peer closed meanwhile, the next agent forwards what it still holds.
func (s *Store) HandOver() {
	if s == nil || s.max <= 0 {
		return
	}
	s.last = "" // store the listeners again: they must be there
	s.Sync()
	room := s.max - s.nlisteners - 1
	if room <= 0 {
		s.log.Warn("connections not handed over: the fd store is full", "capacity", s.max, "listeners", s.nlisteners)
		return
	}
	ho, err := s.pool.HandOver(room)
	if err != nil {
		s.log.Error("connections not handed over", "err", err)
		return
	}
	defer ho.Close()
	for _, name := range []string{l4proxy.HandOverConnName, l4proxy.HandOverStateName} {
		if err := s.send("FDSTOREREMOVE=1\nFDNAME="+name, nil); err != nil {
			s.log.Error("connections not handed over", "err", err)
			return
		}
	}
	if err := s.send("FDSTORE=1\nFDPOLL=0\nFDNAME="+l4proxy.HandOverStateName, []int{int(ho.State.Fd())}); err != nil {
		s.log.Error("connections not handed over", "err", err)
		return
	}
	stored := 0
	for i := 0; i < len(ho.Conns); i += fdBatch {
		batch := ho.Conns[i:min(i+fdBatch, len(ho.Conns))]
		fds := make([]int, len(batch))
		for j, f := range batch {
			fds[j] = int(f.Fd())
		}
		if err := s.send("FDSTORE=1\nFDPOLL=0\nFDNAME="+l4proxy.HandOverConnName, fds); err != nil {
			s.log.Error("connections not handed over", "sockets", len(ho.Conns)-stored, "err", err)
			break
		}
		stored += len(batch)
	}
	s.log.Info("connections handed over to the next agent", "connections", ho.N, "sockets", stored,
		"draining", ho.Kept, "cut", ho.Cut)
}

func (s *Store) send(state string, fds []int) error {
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
