package kernlb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/google/nftables"
	mdnetlink "github.com/mdlayher/netlink"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// LB drives the agent's nftables tables through two seams: an nftables
// connection (its batches are the kernel's transactions) and a netlink
// handle (links and the neighbour table, for DR). Both opened in a network
// namespace work in that namespace.
type LB struct {
	conn *nftables.Conn
	nl   *netlink.Handle
	log  *slog.Logger
}

// New returns an LB over conn and nl.
func New(conn *nftables.Conn, nl *netlink.Handle, logger *slog.Logger) *LB {
	return &LB{conn: conn, nl: nl, log: logger.With("component", "kernlb")}
}

// Dial opens the nftables connection the way Set needs it: one socket for
// the whole batch, with buffers large enough for the kernel's answer to
// thousands of messages (a batch of 100 services is ~1 MB). netnsFd 0 is
// the caller's namespace.
func Dial(netnsFd int) (*nftables.Conn, error) {
	opts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(func(c *mdnetlink.Conn) error {
		raw, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		err = raw.Control(func(fd uintptr) {
			// FORCE variants: root may exceed net.core.[rw]mem_max.
			serr = errors.Join(
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 16<<20),
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20))
		})
		return errors.Join(err, serr)
	})}
	if netnsFd != 0 {
		opts = append(opts, nftables.WithNetNSFd(netnsFd))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("kernlb: nftables connection: %w", err)
	}
	return c, nil
}

// Resolve fills what the program needs from the node: for DR services the
// interface's index and MAC, and each server's MAC from the neighbour table
// (asking the kernel to resolve it by ARP when absent, until ctx ends). A
// DR server must be on the interface's segment. Servers that are down need
// no MAC. It returns a copy; cfg is not changed.
func (lb *LB) Resolve(ctx context.Context, cfg Config) (Config, error) {
	out := Config{Services: make([]Service, len(cfg.Services))}
	var errs []error
	for i, s := range cfg.Services {
		s.Servers = append([]Server{}, s.Servers...)
		out.Services[i] = s
		if s.Mode != DR {
			continue
		}
		link, err := lb.nl.LinkByName(s.Interface)
		if err != nil {
			errs = append(errs, fmt.Errorf("kernlb: service %s: interface %s: %w", s.Name, s.Interface, err))
			continue
		}
		s.ifindex, s.ifMAC = link.Attrs().Index, link.Attrs().HardwareAddr
		addrs, err := lb.nl.AddrList(link, netlink.FAMILY_V4)
		if err != nil {
			errs = append(errs, fmt.Errorf("kernlb: service %s: addresses of %s: %w", s.Name, s.Interface, err))
			continue
		}
		for j, srv := range s.Servers {
			if !onSegment(addrs, srv.Address.AsSlice()) {
				errs = append(errs, fmt.Errorf("kernlb: service %s: servers[%d] %v: not on the segment of %s (dr rewrites only Ethernet addresses)", s.Name, j, srv.Address, s.Interface))
				continue
			}
			if srv.MAC != nil || srv.Down {
				continue
			}
			mac, err := lb.neighbour(ctx, link.Attrs().Index, srv.Address.AsSlice())
			if err != nil {
				errs = append(errs, fmt.Errorf("kernlb: service %s: servers[%d] %v on %s: %w", s.Name, j, srv.Address, s.Interface, err))
				continue
			}
			s.Servers[j].MAC = mac
		}
		out.Services[i] = s
	}
	return out, errors.Join(errs...)
}

func onSegment(addrs []netlink.Addr, ip net.IP) bool {
	for _, a := range addrs {
		if a.IPNet != nil && a.IPNet.Contains(ip) && !a.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// neighbour returns ip's MAC from the neighbour table, asking the kernel to
// resolve it (NTF_USE: the kernel sends the ARP request itself) and polling
// until it is known or ctx ends.
func (lb *LB) neighbour(ctx context.Context, ifindex int, ip net.IP) (net.HardwareAddr, error) {
	asked := false
	for {
		neighs, err := lb.nl.NeighList(ifindex, netlink.FAMILY_V4)
		if err != nil {
			return nil, fmt.Errorf("neighbours: %w", err)
		}
		for _, n := range neighs {
			usable := n.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE|netlink.NUD_PERMANENT|netlink.NUD_NOARP) != 0
			if n.IP.Equal(ip) && usable && len(n.HardwareAddr) == 6 {
				return n.HardwareAddr, nil
			}
		}
		if !asked {
			asked = true
			err := lb.nl.NeighSet(&netlink.Neigh{LinkIndex: ifindex, Family: netlink.FAMILY_V4, IP: ip,
				State: netlink.NUD_NONE, Flags: netlink.NTF_USE})
			if err != nil {
				return nil, fmt.Errorf("ask for ARP resolution: %w", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no ARP answer: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Set makes the tables forward cfg (validated and resolved): nothing when
// Diff finds no change; otherwise one batch, one kernel transaction, that
// rewrites the agent's chains and sets, so that no packet sees half of a
// configuration. The sets the kernel fills (persistence, DR pins, per-source
// limits) are kept when their definition is unchanged; persistence entries
// that point at a server that no longer takes new flows are dropped in the
// same batch. It returns the changes it made.
func (lb *LB) Set(ctx context.Context, cfg Config) ([]ChangeItem, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	observed, err := lb.Observe()
	if err != nil {
		return nil, err
	}
	changes, err := Diff(cfg, observed)
	if err != nil || len(changes) == 0 {
		return nil, err
	}
	p, err := render(cfg)
	if err != nil {
		return nil, err
	}
	want := observedOf(p)
	for i, tp := range p.tables {
		lb.batchTable(tp, want.Tables[i], observed.Tables[i])
	}
	if err := lb.conn.Flush(); err != nil {
		return nil, fmt.Errorf("kernlb: apply %d change(s) in one batch: %w", len(changes), err)
	}
	for _, c := range changes {
		lb.log.Info("changed", "service", c.Service, "action", string(c.Action), "what", c.Text)
	}
	return changes, nil
}

// batchTable queues one table's rewrite on the connection.
func (lb *LB) batchTable(tp tableProg, want, have *TableState) {
	t := &nftables.Table{Name: TableName, Family: tp.family}
	if want == nil {
		if have != nil {
			lb.conn.DelTable(t)
		}
		return
	}
	lb.conn.AddTable(t)
	keptBase := map[string]bool{}
	keptSet := map[string]bool{}
	if have != nil {
		// Empty every chain first, so that nothing references what goes.
		for name := range have.Chains {
			lb.conn.FlushChain(&nftables.Chain{Table: t, Name: name})
		}
		for name, h := range have.Chains {
			if w := want.Chains[name]; w != nil && h.Hook != "" && w.Hook == h.Hook {
				keptBase[name] = true
				continue
			}
			lb.conn.DelChain(&nftables.Chain{Table: t, Name: name})
		}
		for name, h := range have.Sets {
			if w := want.Sets[name]; w != nil && w.State && h.State && w.Def == h.Def {
				keptSet[name] = true
				continue
			}
			lb.conn.DelSet(&nftables.Set{Table: t, Name: name})
		}
	}
	for _, s := range tp.sets {
		if keptSet[s.set.Name] {
			if s.role == "persist" {
				lb.prunePersist(t, s)
			}
			continue
		}
		set := s.set
		set.Table = t
		// Errors of queued operations come back from Flush.
		_ = lb.conn.AddSet(&set, s.elems)
	}
	chains := map[string]*nftables.Chain{}
	for _, c := range tp.chains {
		ch := &nftables.Chain{Table: t, Name: c.name}
		if c.isBase {
			ch.Type, ch.Hooknum, ch.Priority = c.typ, c.hook, c.prio
			if c.device != "" {
				ch.Device = c.device
			}
			policy := nftables.ChainPolicyAccept
			ch.Policy = &policy
		}
		if !keptBase[c.name] {
			lb.conn.AddChain(ch)
		}
		chains[c.name] = ch
	}
	for _, c := range tp.chains {
		for _, r := range c.rules {
			lb.conn.AddRule(&nftables.Rule{Table: t, Chain: chains[c.name], Exprs: r.exprs, UserData: comment(r.commentText())})
		}
	}
}

// prunePersist queues the removal of persistence entries whose server no
// longer takes new flows (drained, down, removed): a persistent client must
// not keep bringing new flows to a drained server.
func (lb *LB) prunePersist(t *nftables.Table, s *setProg) {
	set := s.set
	set.Table = t
	elems, err := lb.conn.GetSetElements(&set)
	if err != nil {
		lb.log.Warn("read persistence entries", "set", set.Name, "err", err)
		return
	}
	var stale []nftables.SetElement
	for _, e := range elems {
		if !s.liveValues[string(e.Val)] {
			stale = append(stale, nftables.SetElement{Key: e.Key})
		}
	}
	if len(stale) > 0 {
		_ = lb.conn.SetDeleteElements(&set, stale)
	}
}
