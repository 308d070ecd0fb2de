package policies

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/gitgw/gitgw/cue/spec"
)

// natRouteBack refuses a nat server that no gateway of its service can be
// the route back of. In nat the gateway rewrites the request's destination
// and conntrack undoes it on the reply: a reply that bypasses the gateway
// reaches the client from the server's own address, and the client drops
// it. The site cannot see the servers' routes, but it can see whether a
// gateway is on their segment at all: a server on no segment where the
// node has an address or holds a VIP is reached through some router, and
// nothing says that router sends the replies back. Nodes whose addresses
// the site does not state are not checked (as bind-address), and a service
// with route_back: "routed" is trusted: the operator names the router
// the site does not describe.
func natRouteBack(in *Input, r report) {
	for _, name := range slices.Sorted(maps.Keys(in.Services)) {
		s := in.Services[name]
		if s.Mode != spec.ModeNAT || s.RouteBack == spec.RouteBackRouted {
			continue
		}
		nodes := s.Nodes
		if len(nodes) == 0 {
			nodes = slices.Sorted(maps.Keys(in.Nodes))
		}
		for _, sn := range slices.Sorted(maps.Keys(s.Servers)) {
			ap, err := s.Servers[sn].AddrPort()
			if err != nil || !plainAddr(ap.Addr()) {
				continue // service-feature-built reports it
			}
			for _, n := range nodes {
				segs, stated := gatewaySegments(in, n)
				if !stated || slices.ContainsFunc(segs, func(p netip.Prefix) bool { return p.Contains(ap.Addr()) }) {
					continue
				}
				r.add("services."+spec.Label(name)+".servers."+spec.Label(sn)+".address",
					"service %s: server %s: %s is on no segment of node %s (%s): nat needs the gateway as the servers' route back (a reply that bypasses it is dropped by the client); "+
						"give the servers' segment a VIP on the gateways and make it their default route, or use mode dr or proxy, "+
						"or set route_back: \"routed\" if a router the site does not describe sends their replies back",
					name, sn, ap.Addr(), n, segmentList(segs))
				break // one node is enough to say it
			}
		}
	}
}

// gatewaySegments are the subnets where node n has an address or holds a
// VIP of one of its instances; stated is false when the site states no
// address of n.
func gatewaySegments(in *Input, n string) ([]netip.Prefix, bool) {
	var out []netip.Prefix
	ns := in.Nodes[n]
	for _, ifname := range slices.Sorted(maps.Keys(ns.Interfaces)) {
		for _, p := range ns.Interfaces[ifname].Addresses {
			out = append(out, p.Masked())
		}
	}
	if len(out) == 0 {
		return nil, false
	}
	for _, name := range slices.Sorted(maps.Keys(in.VRRP)) {
		vi := in.VRRP[name]
		if _, ok := vi.Nodes[n]; !ok {
			continue
		}
		for _, v := range vi.VIPs {
			if !v.Address.IsSingleIP() { // a /32 VIP is no segment
				out = append(out, v.Address.Masked())
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out), true
}

func segmentList(ps []netip.Prefix) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, ", ")
}

// drRealServer refuses a dr service that runs on one of its own real
// servers (a node whose address is one of its servers, real_server not
// "off"): that node would hold the VIP on lo and forward it too, so its
// own copy of the service would send every packet it accepts back onto
// the segment, itself included. It also refuses real_server: "on" on a
// node that no dr service names as a server: the operator said the node is
// one, so an address that does not match is a mistake, not a choice.
func drRealServer(in *Input, r report) {
	for _, n := range slices.Sorted(maps.Keys(in.Nodes)) {
		roles, ok := in.RealServers[n]
		if !ok {
			roles = spec.RealServerRoles(in.Nodes[n], in.Services)
		}
		if in.Nodes[n].RealServer == spec.RealServerOn && len(roles) == 0 {
			r.add("nodes."+spec.Label(n)+".real_server", "node %s is real_server \"on\", but no dr service names one of its addresses (%s) as a server: correct the server's address or the node's interfaces, or remove real_server",
				n, nodeAddresses(in.Nodes[n]))
		}
		seen := map[string]bool{}
		for _, rl := range roles {
			s, ok := in.Services[rl.Service]
			if !ok || seen[rl.Service] || len(s.Nodes) > 0 && !slices.Contains(s.Nodes, n) {
				continue
			}
			seen[rl.Service] = true
			path := "services." + spec.Label(rl.Service) + ".nodes"
			if len(s.Nodes) == 0 {
				path = "services." + spec.Label(rl.Service) + ".mode"
			}
			r.add(path, "service %s: node %s is one of its real servers (server %s, %s) and would forward the service too (a dr service runs on every node its nodes list names, or on every node without one): list the gateways in services.%s.nodes",
				rl.Service, n, rl.Server, rl.Address, spec.Label(rl.Service))
		}
	}
}

func nodeAddresses(ns spec.NodeSettings) string {
	var s []string
	for _, ifname := range slices.Sorted(maps.Keys(ns.Interfaces)) {
		for _, p := range ns.Interfaces[ifname].Addresses {
			s = append(s, fmt.Sprintf("%s on %s", p.Addr(), ifname))
		}
	}
	if len(s) == 0 {
		return "none stated"
	}
	return strings.Join(s, ", ")
}
