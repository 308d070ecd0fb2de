package l4proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Transparent mode (Service.Transparent, HAProxy's `source 0.0.0.0 usesrc
// clientip`): the connection to the server leaves from the client's
// address, so that a server that cannot parse the PROXY protocol still
// sees who connected. The server-side socket gets IP_TRANSPARENT and is
// bound to the client's address (the kernel picks the port) before it
// connects.
//
// The server's replies are addressed to the client, not to this node: the
// servers must route them through this gateway (their default route, or a
// route to the clients' networks, via the gateway's address on their
// segment). On the gateway such a packet would be forwarded to the client,
// which knows nothing of this connection; it must be delivered to the
// proxy's socket instead. The pool sets up, while a transparent service
// exists, the usual policy routing for that:
//
//	nft table inet gitgw_l4proxy_transparent:
//	    prerouting (filter, mangle priority): socket transparent 1 → meta mark set TransparentMark
//	ip rule  fwmark TransparentMark lookup TransparentTable (IPv4 and IPv6), priority TransparentRulePriority
//	ip route local 0.0.0.0/0 dev lo table TransparentTable (and ::/0)
//
// The socket match marks only packets of a connection a transparent socket
// of this node holds: traffic the gateway routes for others is untouched.
// All of it is removed by the Set that leaves no transparent service; a
// pool that closes leaves it, so that an agent restart keeps the
// connections it hands over working.

// The mark, routing table and rule priority of transparent mode: the
// agent's own, picked to stay clear of the usual small numbers.
const (
	TransparentMark         = 0x67770000
	TransparentTable        = 26777
	TransparentRulePriority = 26777
	transparentNftTable     = "gitgw_l4proxy_transparent"
)

// setTransparent sets up (on) or removes the policy routing of transparent
// mode; it is idempotent.
func setTransparent(on bool) error {
	return errors.Join(setTransparentNft(on), setTransparentRouting(on))
}

func setTransparentNft(on bool) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("transparent: nftables: %w", err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("transparent: nftables: %w", err)
	}
	t := &nftables.Table{Name: transparentNftTable, Family: nftables.TableFamilyINet}
	found := false
	for _, have := range tables {
		if have.Name == transparentNftTable {
			found = true
			c.DelTable(t) // replaced as a whole below
		}
	}
	if !found && !on {
		return nil
	}
	if on {
		c.AddTable(t)
		ch := c.AddChain(&nftables.Chain{
			Name: "prerouting", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityMangle,
		})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			&expr.Socket{Key: expr.SocketKeyTransparent, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{1}},
			&expr.Immediate{Register: 1, Data: binaryutil.NativeEndian.PutUint32(TransparentMark)},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
		}})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("transparent: nftables table %s: %w", transparentNftTable, err)
	}
	return nil
}

func setTransparentRouting(on bool) error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("transparent: %w", err)
	}
	var errs []error
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		dst := &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}
		if fam == netlink.FAMILY_V6 {
			dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
		}
		rt := &netlink.Route{
			LinkIndex: lo.Attrs().Index, Dst: dst, Table: TransparentTable,
			Type: unix.RTN_LOCAL, Scope: netlink.SCOPE_HOST, Family: fam,
		}
		rule := netlink.NewRule()
		rule.Family, rule.Table, rule.Priority = fam, TransparentTable, TransparentRulePriority
		rule.Mark = TransparentMark
		mask := uint32(0xffffffff)
		rule.Mask = &mask
		rules, err := netlink.RuleListFiltered(fam, &netlink.Rule{Table: TransparentTable}, netlink.RT_FILTER_TABLE)
		if err != nil {
			errs = append(errs, fmt.Errorf("transparent: ip rule: %w", err))
			continue
		}
		if on {
			if err := netlink.RouteReplace(rt); err != nil {
				errs = append(errs, fmt.Errorf("transparent: local route %v table %d: %w", dst, TransparentTable, err))
			}
			if len(rules) == 0 {
				if err := netlink.RuleAdd(rule); err != nil {
					errs = append(errs, fmt.Errorf("transparent: ip rule fwmark %#x lookup %d: %w", TransparentMark, TransparentTable, err))
				}
			}
			continue
		}
		if len(rules) == 0 {
			continue // never set up here (the route goes with the rule)
		}
		for i := range rules {
			if err := netlink.RuleDel(&rules[i]); err != nil {
				errs = append(errs, fmt.Errorf("transparent: remove ip rule: %w", err))
			}
		}
		if err := netlink.RouteDel(rt); err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("transparent: remove local route %v table %d: %w", dst, TransparentTable, err))
		}
	}
	return errors.Join(errs...)
}

// bindTransparent makes fd a transparent socket bound to the client's
// address (any port) before it connects to server.
func bindTransparent(fd int, client netip.Addr, server netip.AddrPort) error {
	c := client.Unmap()
	s := server.Addr()
	if c.Is4() != (s.Is4() || s.Is4In6()) {
		return fmt.Errorf("transparent: client %v and server %v are not of one address family", c, s)
	}
	var sa unix.Sockaddr
	level, opt := unix.SOL_IP, unix.IP_TRANSPARENT
	if c.Is4() {
		sa = &unix.SockaddrInet4{Addr: c.As4()}
	} else {
		sa = &unix.SockaddrInet6{Addr: c.As16()}
		level, opt = unix.SOL_IPV6, unix.IPV6_TRANSPARENT
	}
	if err := unix.SetsockoptInt(fd, level, opt, 1); err != nil {
		return fmt.Errorf("transparent: IP_TRANSPARENT: %w", err)
	}
	// The port is chosen at connect, by the whole 4-tuple: many
	// connections of one client to one server do not run out of ports.
	_ = unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("transparent: bind %v: %w", c, err)
	}
	return nil
}
