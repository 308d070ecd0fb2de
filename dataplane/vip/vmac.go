package vip

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
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
	m.saveParentSysctls(sysctlRoot, parent)
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

// RemoveVMAC deletes the macvlan (its VIPs and its own sysctls go with
// it); absent is fine. When it was the last VMAC on its parent, the
// parent's sysctls that EnsureVMAC changed get back the values they had.
func (m *Manager) RemoveVMAC(name string) error {
	l, err := m.h.LinkByName(name)
	if err != nil {
		return nil
	}
	parentIndex := l.Attrs().ParentIndex
	if err := m.h.LinkDel(l); err != nil {
		return fmt.Errorf("vip: delete vmac %s: %w", name, err)
	}
	return m.restoreParentSysctls(parentIndex)
}

// parentVMACSysctls are the parent's sysctls EnsureVMAC sets.
var parentVMACSysctls = []string{"arp_ignore", "arp_filter"}

// savedSysctl is a sysctl's file and the value it had before a VMAC.
type savedSysctl struct{ path, value string }

// saveParentSysctls records the parent's sysctls the first time a VMAC
// is made on it by this process. The record lives in memory: after a
// crash the next process finds them already set and keeps them, as it
// would keep any value an operator set by hand.
func (m *Manager) saveParentSysctls(sysctlRoot, parent string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.parentSysctls[parent]; ok {
		return
	}
	if m.parentSysctls == nil {
		m.parentSysctls = map[string][]savedSysctl{}
	}
	var saved []savedSysctl
	for _, key := range parentVMACSysctls {
		path := filepath.Join(sysctlRoot, "net/ipv4/conf", parent, key)
		if b, err := os.ReadFile(path); err == nil {
			saved = append(saved, savedSysctl{path, strings.TrimSpace(string(b))})
		}
	}
	m.parentSysctls[parent] = saved
}

// restoreParentSysctls puts back the parent's sysctls once no VMAC is
// left on it.
func (m *Manager) restoreParentSysctls(parentIndex int) error {
	p, err := m.h.LinkByIndex(parentIndex)
	if err != nil {
		return nil // the parent went too: nothing to restore on
	}
	links, err := m.h.LinkList()
	if err != nil {
		return fmt.Errorf("vip: list links: %w", err)
	}
	for _, l := range links {
		if _, ok := l.(*netlink.Macvlan); ok && l.Attrs().ParentIndex == parentIndex && isVMACAddr(l.Attrs().HardwareAddr) {
			return nil // another VMAC still needs them
		}
	}
	parent := p.Attrs().Name
	m.mu.Lock()
	saved, ok := m.parentSysctls[parent]
	delete(m.parentSysctls, parent)
	m.mu.Unlock()
	if !ok {
		return nil
	}
	var errs []error
	for _, s := range saved {
		if err := os.WriteFile(s.path, []byte(s.value), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("vip: restore sysctl %s: %w", s.path, err))
		}
	}
	return errors.Join(errs...)
}

// isVMACAddr reports whether mac is a VRRP virtual router MAC
// (00:00:5e:00:01:XX or, for IPv6, 00:00:5e:00:02:XX).
func isVMACAddr(mac net.HardwareAddr) bool {
	return len(mac) == 6 && mac[0] == 0 && mac[1] == 0 && mac[2] == 0x5e && mac[3] == 0 && (mac[4] == 1 || mac[4] == 2)
}
