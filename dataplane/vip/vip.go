// Package vip installs and removes virtual IP addresses through netlink and
// announces them on the link (gratuitous ARP in the request form, unsolicited
// IPv6 neighbour advertisements), for the VRRP engine.
//
// It is its own package because VIP handling is the part of VRRP that
// touches the kernel's address tables: keeping it behind a *netlink.Handle
// and a per-interface announcer lets the protocol code stay pure, and lets
// these few operations be tested against the real kernel in a namespace.
package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Address is one virtual address with its prefix length and options.
type Address struct {
	Prefix netip.Prefix
	// Label is the IPv4 address label (must start with the interface
	// name, e.g. "eth0:vip"); empty for none.
	Label string
	// Scope is the netlink scope (0 global, 253 link, 254 host).
	Scope int
}

func (a Address) String() string { return a.Prefix.String() }

// Manager adds and removes addresses through one netlink handle, the seam to
// the kernel (a handle opened in a namespace works in that namespace).
type Manager struct {
	h   *netlink.Handle
	log *slog.Logger

	mu sync.Mutex
	// parentSysctls holds, per parent interface, the values its sysctls had
	// before the first VMAC on it changed them, to put back when its last
	// VMAC goes (see EnsureVMAC).
	parentSysctls map[string][]savedSysctl
}

// New returns a manager over h.
func New(h *netlink.Handle, logger *slog.Logger) *Manager {
	return &Manager{h: h, log: logger.With("component", "vip")}
}

func (m *Manager) link(ifname string) (netlink.Link, error) {
	l, err := m.h.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("vip: link %s: %w", ifname, err)
	}
	return l, nil
}

func nlAddr(a Address) *netlink.Addr {
	n := &netlink.Addr{
		IPNet: &net.IPNet{IP: a.Prefix.Addr().AsSlice(), Mask: net.CIDRMask(a.Prefix.Bits(), a.Prefix.Addr().BitLen())},
		Label: a.Label,
		Scope: a.Scope,
	}
	if a.Prefix.Addr().Is6() {
		// A VIP must be usable at once: no duplicate address detection.
		n.Flags = unix.IFA_F_NODAD
	}
	return n
}

// Add installs every address on ifname; addresses already present are left
// alone. It returns the errors of all failed additions joined.
func (m *Manager) Add(ctx context.Context, ifname string, addrs []Address) error {
	l, err := m.link(ifname)
	if err != nil {
		return err
	}
	var errs []error
	for _, a := range addrs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := m.h.AddrAdd(l, nlAddr(a)); err != nil && !errors.Is(err, syscall.EEXIST) {
			errs = append(errs, fmt.Errorf("vip: add %s dev %s: %w", a, ifname, err))
		}
	}
	return errors.Join(errs...)
}

// Remove deletes every address from ifname; absent ones are not an error.
func (m *Manager) Remove(ctx context.Context, ifname string, addrs []Address) error {
	l, err := m.link(ifname)
	if err != nil {
		return err
	}
	var errs []error
	for _, a := range addrs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := m.h.AddrDel(l, nlAddr(a)); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("vip: remove %s dev %s: %w", a, ifname, err))
		}
	}
	return errors.Join(errs...)
}

// Present returns which of addrs are configured on ifname (address and
// prefix length both match).
func (m *Manager) Present(ifname string, addrs []Address) (map[netip.Prefix]bool, error) {
	l, err := m.link(ifname)
	if err != nil {
		return nil, err
	}
	list, err := m.h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("vip: list addresses of %s: %w", ifname, err)
	}
	have := make(map[netip.Prefix]bool, len(list))
	for _, a := range list {
		if p, ok := prefixOf(a.IPNet); ok {
			have[p] = true
		}
	}
	out := make(map[netip.Prefix]bool, len(addrs))
	for _, a := range addrs {
		out[a.Prefix] = have[a.Prefix]
	}
	return out, nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a, ones), true
}

// Event is an address appearing or disappearing on a link.
type Event struct {
	Ifindex int
	Prefix  netip.Prefix
	Added   bool
}

// Watch reports address changes of the network namespace the calling
// thread is in, until ctx ends. The callback runs on Watch's own
// goroutine and must not block for long.
func Watch(ctx context.Context, fn func(Event)) error {
	ch := make(chan netlink.AddrUpdate, 64)
	done := make(chan struct{})
	if err := netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{}); err != nil {
		close(done)
		return fmt.Errorf("vip: subscribe to address changes: %w", err)
	}
	go func() {
		<-ctx.Done()
		close(done)
	}()
	go func() {
		for u := range ch {
			n := u.LinkAddress
			if p, ok := prefixOf(&n); ok {
				fn(Event{Ifindex: u.LinkIndex, Prefix: p, Added: u.NewAddr})
			}
		}
	}()
	return nil
}
