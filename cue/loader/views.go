package loader

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/gitgw/gitgw/cue/spec"
)

// Views derives every node's view from one whole-site load, for the
// commands that plan every node (`gitgw plan --all-nodes`): the site is
// evaluated once, not once per node. Each view is what LoadWith returns for
// that node, checks included; their errors come back positioned.
func (s *Site) Views() (map[string]*spec.Node, error) {
	whole, err := s.Whole()
	if err != nil {
		return nil, err
	}
	out := make(map[string]*spec.Node, len(s.Nodes))
	var errs Errors
	for _, node := range s.Nodes {
		n := ViewOf(whole, node)
		errs = append(errs, checkView(n, s.Nodes)...)
		out[node] = n
	}
	if len(errs) > 0 {
		return nil, s.Locate(dedupe(errs))
	}
	return out, nil
}

// ViewOf selects one node's view from a decoded site, as decodeView does
// over the CUE value: its settings, the VRRP instances that give it a
// priority (with every peer's addresses on the instance's interface), the
// services and unit templates whose node lists name it or name no node, and
// its roles as a DR real server (of any service of the site).
func ViewOf(site *spec.Site, node string) *spec.Node {
	n := &spec.Node{Name: node, Site: site.Site, Node: site.Nodes[node],
		VRRP: map[string]spec.VRRPInstance{}, Services: map[string]spec.Service{}, Units: map[string]spec.UnitTemplate{}}
	for name, in := range site.VRRP {
		if _, ok := in.Nodes[node]; !ok {
			continue
		}
		in.PeerAddresses = map[string][]netip.Prefix{}
		for peer := range in.Nodes {
			if ns, ok := site.Nodes[peer]; ok {
				if itf, ok := ns.Interfaces[in.Interface]; ok && itf.Addresses != nil {
					in.PeerAddresses[peer] = itf.Addresses
				}
			}
		}
		n.VRRP[name] = in
	}
	for name, sv := range site.Services {
		if len(sv.Nodes) == 0 || slices.Contains(sv.Nodes, node) {
			n.Services[name] = sv
		}
	}
	n.RealServer = spec.RealServerRoles(n.Node, site.Services)
	for name, u := range site.Units {
		for _, set := range u.Instances {
			if len(set.Nodes) == 0 || slices.Contains(set.Nodes, node) {
				n.Units[name] = u
				break
			}
		}
	}
	return n
}

// NodeNames is the sorted list of a decoded site's nodes.
func NodeNames(site *spec.Site) []string {
	return slices.Sorted(maps.Keys(site.Nodes))
}
