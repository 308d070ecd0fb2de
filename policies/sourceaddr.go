package policies

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/gitgw/gitgw/cue/spec"
)

// sourceAddress checks the addresses a proxy service connects to its
// servers from (#Service.source_address, #Server.source_address and
// #Service.transparent_address):
//
//   - only the L4 proxy binds them: a kernel-mode or UDP service would
//     ignore them; HTTP and SNI routing (the HTTP proxy's own dials), in a
//     service or a service their rules send to, bind a source address
//     but no transparent address, nor the client's (transparent);
//   - a source address is the node's own: one of the addresses of every
//     node that runs the service, or a VIP of an instance of it; any
//     other address never gets the servers' replies (a typo, or a
//     foreign address that belongs in transparent_address);
//   - a transparent address is foreign: held by no node of the site (its
//     holder would get the servers' replies, not this gateway's socket),
//     and on no segment of a gateway where a server of the service is:
//     that server would look for it on the link instead of routing its
//     replies through the gateway, and nobody answers.
//
// Nodes whose addresses the site does not state are left alone (an
// import with the facts still to fill in).
func sourceAddress(in *Input, r report) {
	routed := map[string]string{} // services HTTP or SNI rules send to, by a service that does
	for _, name := range slices.Sorted(maps.Keys(in.Services)) {
		s := in.Services[name]
		if s.HTTP != nil {
			for _, rl := range s.HTTP.Rules {
				if rl.Use != "" && routed[rl.Use] == "" {
					routed[rl.Use] = name
				}
			}
		}
		if s.SNI != nil {
			for _, rl := range s.SNI.Rules {
				if routed[rl.Use] == "" {
					routed[rl.Use] = name
				}
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(in.Services)) {
		s := in.Services[name]
		path := "services." + spec.Label(name)
		if s.Transparent && !s.Kernel() {
			switch {
			case s.HTTP != nil || s.SNI != nil:
				r.add(path+".transparent", "service %s: transparent: HTTP and SNI routing connect to the servers from the gateway's own addresses only (source_address)", name)
			case routed[name] != "":
				r.add(path+".transparent", "service %s: transparent: service %s's HTTP or SNI rules send to it, and they connect from the gateway's own addresses only (source_address)", name, routed[name])
			}
		}
		type field struct{ path, what, addr string }
		var fields []field
		if s.SourceAddress != "" {
			fields = append(fields, field{path + ".source_address", "source_address", s.SourceAddress})
		}
		for _, sn := range slices.Sorted(maps.Keys(s.Servers)) {
			if a := s.Servers[sn].SourceAddress; a != "" {
				fields = append(fields, field{path + ".servers." + spec.Label(sn) + ".source_address", "server " + sn + ": source_address", a})
			}
		}
		if s.TransparentAddress != "" {
			fields = append(fields, field{path + ".transparent_address", "transparent_address", s.TransparentAddress})
		}
		if len(fields) == 0 {
			continue
		}
		var why, foreignWhy string // of every field; of transparent_address
		switch {
		case s.Kernel():
			why = fmt.Sprintf("mode %q forwards in the kernel: only proxy mode connects from an address of its choosing", s.Mode)
		case s.Protocol == "udp":
			why = "a udp service: only TCP services connect from an address of their choosing in this gitgw"
		case s.HTTP != nil || s.SNI != nil:
			foreignWhy = "HTTP and SNI routing connect to the servers from the gateway's own addresses only (source_address)"
		case routed[name] != "":
			foreignWhy = fmt.Sprintf("service %s's HTTP or SNI rules send to it, and they connect from the gateway's own addresses only (source_address)", routed[name])
		}
		if why != "" {
			for _, f := range fields {
				r.add(f.path, "service %s: %s: %s", name, f.what, why)
			}
			continue
		}
		for _, f := range fields {
			if f.what == "transparent_address" && foreignWhy != "" {
				r.add(f.path, "service %s: %s: %s", name, f.what, foreignWhy)
				continue
			}
			a, err := netip.ParseAddr(f.addr)
			if err != nil {
				continue // the schema refuses it
			}
			a = a.Unmap()
			if f.what == "transparent_address" {
				transparentForeign(in, r, name, s, f.path, a)
				continue
			}
			for _, n := range nodesOf(in, s) {
				held, stated := heldBy(in, n)
				if stated && !held[a] {
					r.add(f.path, "service %s: %s %s is neither one of node %s's addresses nor a VIP of its instances: the servers' replies would never reach it (a foreign address is transparent_address)", name, f.what, a, n)
					break // one node is enough to say it
				}
			}
		}
	}
}

// transparentForeign checks that a transparent address is foreign and
// routed through the gateway (sourceAddress).
func transparentForeign(in *Input, r report, name string, s spec.Service, path string, a netip.Addr) {
	for _, n := range slices.Sorted(maps.Keys(in.Nodes)) {
		if held, _ := heldBy(in, n); held[a] {
			r.add(path, "service %s: transparent_address %s is held by node %s: the servers' replies would go to it, not to the gateway's socket; a gateway's own address is source_address", name, a, n)
			return
		}
	}
	for _, n := range nodesOf(in, s) {
		segs, _ := gatewaySegments(in, n)
		for _, seg := range segs {
			if !seg.Contains(a) {
				continue
			}
			for _, sn := range slices.Sorted(maps.Keys(s.Servers)) {
				ap, err := s.Servers[sn].AddrPort()
				if err == nil && seg.Contains(ap.Addr().Unmap()) {
					r.add(path, "service %s: transparent_address %s is on the segment %s of node %s where server %s is: the server would look for it on the link instead of routing its replies through the gateway; pick an address off the servers' segments", name, a, seg, n, sn)
					return
				}
			}
		}
	}
}

// heldBy are the addresses node n holds: its interfaces' and the VIPs of
// its instances; stated is false when the site states none of its own.
func heldBy(in *Input, n string) (held map[netip.Addr]bool, stated bool) {
	held = map[netip.Addr]bool{}
	for _, ifc := range in.Nodes[n].Interfaces {
		for _, p := range ifc.Addresses {
			held[p.Addr().Unmap()] = true
		}
	}
	stated = len(held) > 0
	for _, vi := range in.VRRP {
		if _, ok := vi.Nodes[n]; !ok {
			continue
		}
		for _, v := range append(slices.Clone(vi.VIPs), vi.ExcludedVIPs...) {
			held[v.Address.Addr().Unmap()] = true
		}
	}
	return held, stated
}
