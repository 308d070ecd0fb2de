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

// VMACName is the name of the virtual-MAC interface of an IPv4 VRID on
// parent: "vr<VRID><parent>", cut to the kernel's 15 bytes, never with a
// dot (dots break sysctl paths, keepalived #2512).
func VMACName(parent string, vrid uint8) string {
	return vmacName("vr", parent, vrid)
}

// VMAC6Name is the name of the virtual-MAC interface of an IPv6 VRID on
// parent: "v6r<VRID><parent>", distinct from the IPv4 one of the same VRID
// (the two families' virtual routers are independent, RFC 5798 §7.3, and
// have different MACs).
func VMAC6Name(parent string, vrid uint8) string {
	return vmacName("v6r", parent, vrid)
}

func vmacName(prefix, parent string, vrid uint8) string {
	n := fmt.Sprintf("%s%d%s", prefix, vrid, parent)
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

// VMAC6Addr is the IPv6 virtual router MAC 00:00:5e:00:02:VRID (RFC 5798
// §7.3).
func VMAC6Addr(vrid uint8) net.HardwareAddr {
	return net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x02, vrid}
}

// EnsureVMAC creates (or adopts) the macvlan of vrid on parent, in private
// mode with the virtual MAC of the family (v6: the IPv6 one, under its own
// name); an IPv4 one is set up, an IPv6 one down (below). sysctlRoot is normally /proc/sys (the calling thread's network
// namespace). It returns the macvlan's name.
//
// IPv4: the sysctls a VIP holder behind a macvlan needs (keepalived's set):
// on the macvlan arp_ignore=1 (answer only for its own addresses),
// accept_local=1, rp_filter=0; on the parent arp_ignore=1 and arp_filter=1
// so that it never answers ARP for the VIPs with its own MAC.
//
// IPv6: the virtual MAC is on both routers' macvlans at once, and a
// bridge learns it at the port of whoever last sent a frame with it, so
// the backup's macvlan must send nothing: no MLD report (for ff02::12, or
// leaving a VIP's solicited-node group), no router solicitation, no
// neighbour solicitation or advertisement. keepalived keeps its IPv6 VMAC
// up on the backup with a copy of the parent's link-local and then needs a
// firewall rule against the neighbour advertisements (keepalived #2329)
// while its MLD reports still leak. Here the IPv6 macvlan is down except
// while master (SetVMACUp): a down interface sends nothing and, being out
// of the macvlan table, no longer captures the master's adverts, which
// then reach the parent, where the backup listens. The macvlan also gets
// addr_gen_mode=1 (no EUI-64 link-local from the shared MAC: identical on
// both routers, DAD would fail), accept_dad=0, accept_ra=0,
// router_solicitations=0 and keep_addr_on_down=0 (going down drops the
// VIPs without an MLD leave), and no address but the VIPs: adverts leave
// from the node's own link-local, as RFC 5798 §5.1.2.1 wants, named as
// source by the VRRP socket (IPV6_FREEBIND: it lives on the parent), and
// unsolicited NAs for the VIPs leave from the macvlan with the VIP as
// source. Why not the parent's link-local copied onto the macvlan: the
// macvlan would answer neighbour solicitations for it with the VMAC, and
// a neighbour talking to the node's own link-local (a BGP session, a
// next hop) would follow the VMAC to the other router after a failover.
// The cost: the master's macvlan sends its MLD reports (for the VIPs'
// solicited-node groups) from ::, which RFC 3590 lets a querier or a
// snooping switch ignore; a switch doing so would not forward neighbour
// solicitations for the VIPs to the master (the parent's own report for
// ff02::12 is unaffected).
//
// The parent's IPv6 settings are not touched: neighbour discovery only
// answers for addresses on the receiving interface, so the parent never
// answers for the VIPs.
func (m *Manager) EnsureVMAC(parent string, vrid uint8, v6 bool, sysctlRoot string) (string, error) {
	name, mac := VMACName(parent, vrid), VMACAddr(vrid)
	if v6 {
		name, mac = VMAC6Name(parent, vrid), VMAC6Addr(vrid)
	}
	p, err := m.link(parent)
	if err != nil {
		return "", err
	}
	if l, err := m.h.LinkByName(name); err == nil {
		_, ok := l.(*netlink.Macvlan)
		if !ok || l.Attrs().ParentIndex != p.Attrs().Index || l.Attrs().HardwareAddr.String() != mac.String() {
			return "", fmt.Errorf("vip: vmac %s exists but is not the macvlan of VRID %d on %s", name, vrid, parent)
		}
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
	type sysctl struct{ dev, key, val string }
	var set []sysctl
	dir := "net/ipv4/conf"
	if v6 {
		dir = "net/ipv6/conf"
		set = []sysctl{
			{name, "addr_gen_mode", "1"}, {name, "accept_dad", "0"},
			{name, "accept_ra", "0"}, {name, "router_solicitations", "0"},
			{name, "keep_addr_on_down", "0"},
		}
	} else {
		m.saveParentSysctls(sysctlRoot, parent)
		set = []sysctl{
			{name, "arp_ignore", "1"}, {name, "accept_local", "1"}, {name, "rp_filter", "0"},
			{parent, "arp_ignore", "1"}, {parent, "arp_filter", "1"},
		}
	}
	for _, s := range set {
		path := filepath.Join(sysctlRoot, dir, s.dev, s.key)
		if err := os.WriteFile(path, []byte(s.val), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("vip: vmac sysctl %s: %w", path, err))
		}
	}
	l, err := m.h.LinkByName(name)
	if err != nil {
		return "", fmt.Errorf("vip: vmac %s: %w", name, err)
	}
	if v6 {
		// An adopted macvlan (left by a crash, or by a kernel that made a
		// link-local before addr_gen_mode was set) may hold one: it goes.
		addrs, err := m.h.AddrList(l, netlink.FAMILY_V6)
		if err != nil {
			errs = append(errs, fmt.Errorf("vip: vmac %s addresses: %w", name, err))
		}
		for _, a := range addrs {
			if a.IP.IsLinkLocalUnicast() {
				if err := m.h.AddrDel(l, &a); err != nil {
					errs = append(errs, fmt.Errorf("vip: vmac %s: remove link-local %s: %w", name, a.IPNet, err))
				}
			}
		}
	}
	if err := m.setUp(l, !v6); err != nil {
		errs = append(errs, err)
	}
	return name, errors.Join(errs...)
}

// SetVMACUp sets an (IPv6) VMAC up, for a master, or down: see
// EnsureVMAC.
func (m *Manager) SetVMACUp(name string, up bool) error {
	l, err := m.link(name)
	if err != nil {
		return err
	}
	return m.setUp(l, up)
}

func (m *Manager) setUp(l netlink.Link, up bool) error {
	set, what := m.h.LinkSetUp, "up"
	if !up {
		set, what = m.h.LinkSetDown, "down"
	}
	if err := set(l); err != nil {
		return fmt.Errorf("vip: set vmac %s %s: %w", l.Attrs().Name, what, err)
	}
	return nil
}

// RemoveVMAC deletes the macvlan (its VIPs and its own sysctls go with
// it); absent is fine. When it was the last VMAC on its parent, the
// parent's sysctls that EnsureVMAC changed (IPv4 only) get back the values they had.
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

// restoreParentSysctls puts back the parent's sysctls once no IPv4 VMAC
// is left on it (IPv6 VMACs need none of them).
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
		if _, ok := l.(*netlink.Macvlan); ok && l.Attrs().ParentIndex == parentIndex && isVMAC4Addr(l.Attrs().HardwareAddr) {
			return nil // another IPv4 VMAC still needs them
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

// isVMAC4Addr reports whether mac is an IPv4 VRRP virtual router MAC
// (00:00:5e:00:01:XX).
func isVMAC4Addr(mac net.HardwareAddr) bool {
	return len(mac) == 6 && mac[0] == 0 && mac[1] == 0 && mac[2] == 0x5e && mac[3] == 0 && mac[4] == 1
}
