package policies

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
)

// kernelServiceBuilt refuses, at their place in the site, what the kernel
// load balancer (modes nat, fnat and dr) cannot carry, so that a site is
// never applied with part of a service silently dropped: the proxy's
// scheduling by connection counts, queues and PROXY headers; servers by
// name, or of another address family than the VIPs (the kernel's NAT
// keeps a flow in its family: no NAT64; a service by mark only is IPv4);
// in dr, a server port other than the VIP's and a scheduler per packet. In proxy mode, "maglev" is the
// kernel's only.
func kernelServiceBuilt(in *Input, name string, s spec.Service, r report) {
	path := "services." + spec.Label(name)
	switch {
	case s.RouteBack != "" && s.Mode == spec.ModeFNAT:
		r.add(path+".route_back", "service %s: route_back is for nat; fnat's servers answer its local address, the gateway itself, whatever their routes", name)
	case s.RouteBack != "" && s.Mode != spec.ModeNAT:
		r.add(path+".route_back", "service %s: route_back is for nat (the servers' replies through the gateway); mode %s does not rewrite them", name, cmpMode(s.Mode))
	}
	if len(s.LocalAddresses) > 0 && s.Mode != spec.ModeFNAT {
		r.add(path+".local_addresses", "service %s: local_addresses are fnat's (the source of the flows towards the servers); mode %s does not rewrite the source", name, cmpMode(s.Mode))
	}
	if s.Mode == spec.ModeFNAT && len(s.Fwmarks) > 0 {
		r.add(path+".fwmarks", "service %s: fnat finds the flows whose source it rewrites by their VIP and port: a service by mark has none (use nat)", name)
	}
	// A proxy-mode TCP service without binds is a pool other services'
	// HTTP or SNI rules send to (guardrail http-pool checks that some do).
	if len(s.Binds) == 0 && len(s.Fwmarks) == 0 && (s.Kernel() || s.Protocol == "udp") {
		r.add(path+".binds", "service %s: no binds and no fwmarks: the service would take no packet", name)
	}
	for i, m := range s.Fwmarks {
		if m == proxyTransparentMark {
			r.add(fmt.Sprintf("%s.fwmarks.%d", path, i), "service %s: fwmark %#x is the mark gitgw's transparent proxy sets on its servers' replies: the service would take them; pick another mark", name, m)
		}
	}
	if !s.Kernel() {
		if s.Balance == "maglev" {
			r.add(path+".balance", "service %s: balance \"maglev\" is a kernel scheduler: use mode nat or dr, or another balance in proxy mode", name)
		}
		if len(s.Fwmarks) > 0 {
			r.add(path+".fwmarks", "service %s: fwmarks select packets in the kernel: use mode nat or dr (the proxy takes connections on its binds only)", name)
		}
		for _, sn := range slices.Sorted(maps.Keys(s.Servers)) {
			if _, err := netip.ParseAddr(s.Servers[sn].Address); err == nil {
				r.add(path+".servers."+spec.Label(sn)+".address", "service %s: server %s: %s: the proxy connects to an address and a port; a server without a port (the client's port kept) is for modes nat and dr", name, sn, s.Servers[sn].Address)
			}
		}
		return
	}
	switch s.Balance {
	case "leastconn", "first":
		r.add(path+".balance", "service %s: balance %q needs per-server connection counts, which mode %s does not keep: use roundrobin, source or maglev", name, s.Balance, s.Mode)
	case "roundrobin", "":
		if s.Mode == spec.ModeDR {
			r.add(path+".balance", "service %s: dr keeps no connection state, so roundrobin would send each packet of a connection to the next server: use source or maglev", name)
		}
	}
	if s.Mode == spec.ModeDR && s.Interface == "" {
		r.add(path+".interface", "service %s: dr needs the segment's interface (where packets for the VIP arrive and leave towards the servers)", name)
	}
	if (s.Mode == spec.ModeNAT || s.Mode == spec.ModeFNAT) && s.Interface != "" {
		r.add(path+".interface", "service %s: interface is for dr; %s forwards by routing", name, s.Mode)
	}
	if p := s.Persistence.D(); p != 0 && (p < time.Second || p > 720*time.Hour) {
		r.add(path+".persistence", "service %s: persistence %v: kernel modes keep between 1s and 720h", name, p)
	}
	if s.MaxConn > 0 {
		r.add(path+".maxconn", "service %s: maxconn: mode %s has no queue to hold connections beyond a limit (use source.max_conn_per_source)", name, s.Mode)
	}
	if s.ProxyProtocol != "" {
		r.add(path+".proxy_protocol", "service %s: proxy_protocol: mode %s forwards packets unchanged; the servers see the client's address already", name, s.Mode)
	}
	var ports []uint16
	v6 := kernIPv6(s)
	for i, b := range s.Binds {
		at := fmt.Sprintf("%s.binds.%d", path, i)
		ap, err := netip.ParseAddrPort(b)
		switch {
		case err != nil || !plainAddr(ap.Addr()) || ap.Addr().IsUnspecified():
			r.add(at, "service %s: %s: mode %s forwards to a VIP and port (an IPv4 or IPv6 address, no wildcard)", name, b, s.Mode)
			continue
		case ap.Addr().Is6() != v6:
			r.add(at, "service %s: %s: the binds of a kernel service are of one address family, %s here (its servers are too: the kernel's NAT keeps a flow in its family)", name, b, familyName(v6))
			continue
		}
		ports = append(ports, ap.Port())
	}
	// Servers with and without a port, for a nat service by mark.
	withPort, keepPort := "", ""
	for _, sn := range slices.Sorted(maps.Keys(s.Servers)) {
		sv := s.Servers[sn]
		sp := path + ".servers." + spec.Label(sn)
		ap, err := sv.AddrPort()
		if err == nil && ap.Port() == 0 {
			keepPort = cmp.Or(keepPort, sn)
			if len(s.Fwmarks) > 0 && sv.CheckPort == 0 && s.Check != nil && s.Check.Port == 0 && checkNeedsPort(s.Check.Kind) {
				r.add(sp+".address", "service %s: server %s: %s keeps the client's port, so its %s check has no port to reach: set check.port or the server's check_port", name, sn, sv.Address, s.Check.Kind)
			}
		} else if err == nil {
			withPort = cmp.Or(withPort, sn)
		}
		switch {
		case err != nil:
			r.add(sp+".address", "service %s: server %s: %s: mode %s forwards to an address, not a name", name, sn, sv.Address, s.Mode)
		case !plainAddr(ap.Addr()) || ap.Addr().Is6() != v6:
			r.add(sp+".address", "service %s: server %s: %s: mode %s forwards %s flows to %s servers only (the kernel's NAT keeps a flow in its family: no NAT64)", name, sn, sv.Address, s.Mode, familyName(v6), familyName(v6))
		case s.Mode == spec.ModeDR && ap.Port() != 0 && len(s.Fwmarks) > 0:
			r.add(sp+".address", "service %s: server %s: %s: dr rewrites only Ethernet addresses, so a service with fwmarks cannot send to a port: give the address alone (the client's port is kept)", name, sn, sv.Address)
		case s.Mode == spec.ModeDR && ap.Port() != 0 && slices.ContainsFunc(ports, func(p uint16) bool { return p != ap.Port() }):
			r.add(sp+".address", "service %s: server %s: %s: dr rewrites only Ethernet addresses, so the server's port must be the VIP's (%s)", name, sn, sv.Address, portList(ports))
		case s.Mode == spec.ModeDR && s.Interface != "":
			if n, seg, off := offSegment(in, s, ap.Addr()); off {
				r.add(sp+".address", "service %s: server %s: %s is not on the segment of %s on node %s (%s): dr reaches a server by its Ethernet address, on that segment only", name, sn, ap.Addr(), s.Interface, n, seg)
			}
		}
		if sv.MaxConn > 0 {
			r.add(sp+".maxconn", "service %s: server %s: maxconn: mode %s keeps no per-server connection count", name, sn, s.Mode)
		}
	}
	if s.Mode == spec.ModeNAT && len(s.Fwmarks) > 0 && withPort != "" && keepPort != "" {
		r.add(path+".servers."+spec.Label(keepPort)+".address", "service %s: server %s has no port while server %s has one: in a service with fwmarks the servers either all name a port or none (none: each keeps the client's port)", name, keepPort, withPort)
	}
	if src := s.Source; src != nil {
		for list, cidrs := range map[string][]string{"allow": src.Allow, "deny": src.Deny} {
			for i, c := range cidrs {
				p, err := netip.ParsePrefix(c)
				if err != nil {
					if a, aerr := netip.ParseAddr(c); aerr == nil {
						p = netip.PrefixFrom(a, a.BitLen())
					}
				}
				if !p.IsValid() || p.Addr().Is6() != v6 {
					r.add(fmt.Sprintf("%s.source.%s.%d", path, list, i), "service %s: %s: the service's flows are %s: mode %s matches %s sources only", name, c, familyName(v6), s.Mode, familyName(v6))
				}
			}
		}
		if s.Mode == spec.ModeDR && src.MaxConnPerSource > 0 {
			r.add(path+".source.max_conn_per_source", "service %s: dr keeps no connection state to count: use nat", name)
		}
		if src.MaxRatePerSource != "" {
			n, per, err := spec.ParseRate(src.MaxRatePerSource)
			switch {
			case err != nil:
				r.add(path+".source.max_rate_per_source", "service %s: %v", name, err)
			case s.Mode == spec.ModeDR:
				r.add(path+".source.max_rate_per_source", "service %s: dr keeps no connection state, so it cannot tell a new connection from a packet: use nat", name)
			case (int64(n)*int64(time.Second))%int64(per) != 0 || int64(n)*int64(time.Second) < int64(per):
				r.add(path+".source.max_rate_per_source", "service %s: %s: mode nat counts whole new connections per second; %d per %v is not (write it per second)", name, src.MaxRatePerSource, n, per)
			}
		}
	}
}

// kernIPv6 reports a kernel service whose flows are IPv6: its first bind
// that is an address and port is IPv6 (a service by mark only is IPv4).
func kernIPv6(s spec.Service) bool {
	for _, b := range s.Binds {
		if ap, err := netip.ParseAddrPort(b); err == nil && plainAddr(ap.Addr()) {
			return ap.Addr().Is6()
		}
	}
	return false
}

// plainAddr: an IPv4 or IPv6 address without a zone and not IPv4-mapped,
// as the kernel's rules compare header bytes.
func plainAddr(a netip.Addr) bool { return a.IsValid() && a.Zone() == "" && !a.Is4In6() }

func familyName(v6 bool) string {
	if v6 {
		return "IPv6"
	}
	return "IPv4"
}

// proxyTransparentMark is the packet mark the proxy's transparent mode
// sets in prerouting on the replies of its servers (l4proxy's
// TransparentMark, stated here so that the guardrails check a site without
// depending on the data plane; a test holds the two equal).
const proxyTransparentMark = 0x67770000

// checkNeedsPort: a check of this kind connects to a port (a command or
// an ICMP echo does not).
func checkNeedsPort(kind string) bool { return kind != "command" && kind != "icmp" }

func cmpMode(m spec.ServiceMode) spec.ServiceMode {
	if m == "" {
		return spec.ModeProxy
	}
	return m
}

func portList(ports []uint16) string {
	var b strings.Builder
	for i, p := range ports {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(int(p)))
	}
	return b.String()
}

// offSegment finds a node of s whose site lists addresses on s's dr
// interface, none of whose prefixes holds a: the first such node and its
// prefixes. Nodes that list no address there are left alone.
func offSegment(in *Input, s spec.Service, a netip.Addr) (string, string, bool) {
	nodes := s.Nodes
	if len(nodes) == 0 {
		nodes = slices.Sorted(maps.Keys(in.Nodes))
	}
	for _, n := range nodes {
		ifc, ok := in.Nodes[n].Interfaces[s.Interface]
		if !ok || len(ifc.Addresses) == 0 {
			continue
		}
		var segs []string
		on := false
		for _, p := range ifc.Addresses {
			segs = append(segs, p.Masked().String())
			on = on || p.Contains(a)
		}
		if !on {
			return n, strings.Join(segs, ", "), true
		}
	}
	return "", "", false
}

// fnatLocalAddress checks an fnat service's local addresses: of the
// service's family (the kernel's NAT keeps a flow in its family), not a VIP (a VIP is on one gateway at a
// time: the peer's copy of the service would give its flows a source the
// other gateway holds, and the servers' replies would go there), held by
// some gateway of the service, and each gateway holding one (a gateway
// gives its flows the local addresses it holds, as DPVS each node its
// own local_address_group). Nodes whose addresses the site does not state
// are reported: which local addresses they hold cannot be known. Whether
// an address is held by no gateway at all is checked on the whole site
// only, where every gateway is known.
func fnatLocalAddress(in *Input, r report) {
	vips := map[netip.Addr]string{}
	for _, name := range slices.Sorted(maps.Keys(in.VRRP)) {
		for _, v := range append(slices.Clone(in.VRRP[name].VIPs), in.VRRP[name].ExcludedVIPs...) {
			if _, ok := vips[v.Address.Addr()]; !ok {
				vips[v.Address.Addr()] = name
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(in.Services)) {
		s := in.Services[name]
		if s.Mode != spec.ModeFNAT {
			continue
		}
		path := "services." + spec.Label(name) + ".local_addresses"
		if len(s.LocalAddresses) == 0 {
			r.add(path, "service %s: fnat needs local_addresses: the gateways' own addresses on the servers' side, the sources of the flows towards the servers", name)
			continue
		}
		nodes := s.Nodes
		if len(nodes) == 0 {
			nodes = slices.Sorted(maps.Keys(in.Nodes))
		}
		heldBy := map[netip.Addr]bool{}
		for _, n := range nodes {
			ns, ok := in.Nodes[n]
			if !ok {
				continue // another node's view
			}
			held := spec.HeldLocalAddresses(ns, s)
			for _, a := range held {
				heldBy[a] = true
			}
			if len(held) == 0 {
				r.add(path, "service %s: node %s holds none of its local addresses (%s; the node's: %s): a gateway gives the flows a source it holds; add one to the node's interfaces, or list the node's own",
					name, n, strings.Join(s.LocalAddresses, ", "), nodeAddresses(ns))
			}
		}
		seen := map[netip.Addr]int{}
		for i, l := range s.LocalAddresses {
			at := fmt.Sprintf("%s.%d", path, i)
			a, err := netip.ParseAddr(l)
			switch {
			case err != nil:
				r.add(at, "service %s: %q is not an IP address", name, l)
				continue
			case !plainAddr(a) || a.Is6() != kernIPv6(s):
				r.add(at, "service %s: %s: the service's flows are %s: fnat gives them a source of their family", name, a, familyName(kernIPv6(s)))
			case vips[a] != "":
				r.add(at, "service %s: %s is a VIP of instance %s: a VIP is on one gateway at a time, and the servers would answer whichever holds it; give the gateways' own addresses", name, a, vips[a])
			case in.Whole && !heldBy[a]:
				r.add(at, "service %s: %s is held by no gateway of the service (%s): the servers' replies to it would reach none; add it to a gateway's interfaces, or remove it",
					name, a, strings.Join(nodes, ", "))
			}
			if j, ok := seen[a]; ok {
				r.add(at, "service %s: %s is listed twice (local_addresses.%d)", name, a, j)
			}
			seen[a] = i
		}
	}
}
