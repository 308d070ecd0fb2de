package vip

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// HostAddresses lists the addresses of every interface of the network
// namespace h works in, by interface name: the node's own addresses (and
// any VIP it holds now), global and site scope only — link-local and
// loopback addresses are no address a site declares. It is what `gitgw
// import --from-host` fills a node's interfaces with.
func HostAddresses(h *netlink.Handle) (map[string][]netip.Prefix, error) {
	links, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("vip: list links: %w", err)
	}
	out := map[string][]netip.Prefix{}
	for _, l := range links {
		attrs := l.Attrs()
		if attrs.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return nil, fmt.Errorf("vip: addresses of %s: %w", attrs.Name, err)
		}
		list := []netip.Prefix{}
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP)
			if !ok || a.Scope == unix.RT_SCOPE_LINK || a.Scope == unix.RT_SCOPE_HOST || ip.IsLinkLocalUnicast() {
				continue
			}
			bits, _ := a.Mask.Size()
			list = append(list, netip.PrefixFrom(ip.Unmap(), bits))
		}
		out[attrs.Name] = list
	}
	return out, nil
}

// ReadHostAddresses is HostAddresses in the caller's own network
// namespace, for a command that cannot hold a netlink handle itself.
func ReadHostAddresses() (map[string][]netip.Prefix, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("vip: netlink: %w", err)
	}
	defer h.Close()
	return HostAddresses(h)
}
