package vip

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"

	"github.com/vishvananda/netlink"
)

// VMACName is the name of the virtual-MAC interface of a VRID on parent:
// "vr<VRID><parent>", cut to the kernel's 15 bytes, never with a dot (dots
// break sysctl paths, keepalived #2512).
func VMACName(parent string, vrid uint8) string {
	n := fmt.Sprintf("vr%d%s", vrid, parent)
	if len(n) > 15 {
		n = n[:15]
	}
	b := []byte(n)
	for i := range b {
		if b[i] == '.' {
			b[i] = '-'
		}
	}
	return string(b)
}

// VMACAddr is the IPv4 virtual router MAC 00:00:5e:00:01:VRID (RFC 5798
// §7.3).
func VMACAddr(vrid uint8) net.HardwareAddr {
	return net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x01, vrid}
}

// EnsureVMAC creates (or adopts) the macvlan of vrid on parent, in private
// mode with the virtual MAC, up, with the sysctls a VIP holder behind a
// macvlan needs (keepalived's set): on the macvlan arp_ignore=1 (answer only
// for its own addresses), accept_local=1, rp_filter=0; on the parent
// arp_ignore=1 and arp_filter=1 so that it never answers ARP for the VIPs
// with its own MAC. sysctlRoot is normally /proc/sys (the calling thread's
// network namespace). It returns the macvlan's name.
func (m *Manager) EnsureVMAC(parent string, vrid uint8, sysctlRoot string) (string, error) {
	name := VMACName(parent, vrid)
	mac := VMACAddr(vrid)
	p, err := m.link(parent)
	if err != nil {
		return "", err
	}
	if l, err := m.h.LinkByName(name); err == nil {
		mv, ok := l.(*netlink.Macvlan)
		if !ok || l.Attrs().ParentIndex != p.Attrs().Index || l.Attrs().HardwareAddr.String() != mac.String() {
			return "", fmt.Errorf("vip: vmac %s exists but is not the macvlan of VRID %d on %s", name, vrid, parent)
		}
		_ = mv
	} else {
		mv := &netlink.Macvlan{
			LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: p.Attrs().Index, HardwareAddr: mac},
			Mode:      netlink.MACVLAN_MODE_PRIVATE,
		}
		if err := m.h.LinkAdd(mv); err != nil && !errors.Is(err, syscall.EEXIST) {
			return "", fmt.Errorf("vip: create vmac %s on %s: %w", name, parent, err)
		}
	}
	if sysctlRoot == "" {
		sysctlRoot = "/proc/sys"
	}
	var errs []error
	for _, s := range []struct{ dev, key, val string }{
		{name, "arp_ignore", "1"}, {name, "accept_local", "1"}, {name, "rp_filter", "0"},
		{parent, "arp_ignore", "1"}, {parent, "arp_filter", "1"},
	} {
		path := filepath.Join(sysctlRoot, "net/ipv4/conf", s.dev, s.key)
		if err := os.WriteFile(path, []byte(s.val), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("vip: vmac sysctl %s: %w", path, err))
		}
	}
	l, err := m.h.LinkByName(name)
	if err != nil {
		return "", fmt.Errorf("vip: vmac %s: %w", name, err)
	}
	if err := m.h.LinkSetUp(l); err != nil {
		errs = append(errs, fmt.Errorf("vip: set vmac %s up: %w", name, err))
	}
	return name, errors.Join(errs...)
}

// RemoveVMAC deletes the macvlan (its VIPs go with it); absent is fine.
func (m *Manager) RemoveVMAC(name string) error {
	l, err := m.h.LinkByName(name)
	if err != nil {
		return nil
	}
	if err := m.h.LinkDel(l); err != nil {
		return fmt.Errorf("vip: delete vmac %s: %w", name, err)
	}
	return nil
}
