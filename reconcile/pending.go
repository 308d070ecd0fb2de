package reconcile

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// Pending is a stand-in for a driver that is not available on this node (not
// built in, or its prerequisite missing: no root, no systemd). Its plan
// lists every resource of its family plainly as "pending", so that a plan
// never drops part of the site silently; it applies nothing.
type Pending struct {
	Family plan.Family
	// Why is shown as the reason of each change.
	Why string
}

var _ Driver = Pending{}

// Name returns the family.
func (p Pending) Name() string { return p.Family.String() }

// Apply does nothing: there is no driver to apply with.
func (p Pending) Apply(context.Context, *spec.Node) error { return nil }

// Plan lists the family's resources (none for a family it does not know).
func (p Pending) Plan(_ context.Context, n *spec.Node) ([]plan.Change, error) {
	var out []plan.Change
	add := func(kind, id string, after any) {
		out = append(out, plan.Change{Driver: p.Family.String(), Kind: kind, ID: id, Action: plan.Pending, After: after, Reason: p.Why})
	}
	if list := familyResources[p.Family]; list != nil {
		if err := list(n, add); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// familyResources lists, per family of plan.Families, the resources a site
// asks of a node, driver-independently: what a pending driver plans and
// what siteplan.Enumerate shows. A family added to plan.Families adds its
// lister here (TestPendingCoversEveryFamily).
var familyResources = map[plan.Family]func(n *spec.Node, add func(kind, id string, after any)) error{
	plan.FamilyTuning: func(n *spec.Node, add func(kind, id string, after any)) error {
		t := n.Node.Tuning
		for _, k := range slices.Sorted(maps.Keys(t.Sysctls)) {
			add(plan.KindSysctl, k, string(t.Sysctls[k]))
		}
		if t.RPSSockFlowEntries != nil {
			add(plan.KindRPSSockFlowEntries, "net.core.rps_sock_flow_entries", *t.RPSSockFlowEntries)
		}
		for _, k := range slices.Sorted(maps.Keys(t.Interfaces)) {
			add(plan.KindNIC, k, t.Interfaces[k])
		}
		return nil
	},
	plan.FamilyRealServer: func(n *spec.Node, add func(kind, id string, after any)) error {
		rs := RealServerConfig(n)
		if len(rs.VIPs) == 0 {
			return nil
		}
		for _, iface := range append([]string{"all"}, rs.Interfaces...) {
			add(plan.KindRealServerSysctl, "net.ipv4.conf."+iface+".arp_ignore", "1")
			add(plan.KindRealServerSysctl, "net.ipv4.conf."+iface+".arp_announce", "2")
		}
		for _, v := range rs.VIPs {
			add(plan.KindRealServerVIP, v.String()+"/32 on lo", "present")
		}
		return nil
	},
	plan.FamilyUnits: func(n *spec.Node, add func(kind, id string, after any)) error {
		for _, k := range slices.Sorted(maps.Keys(n.Units)) {
			add(plan.KindUnitFile, k+"@.service", nil)
			for _, i := range n.Units[k].InstancesFor(n.Name) {
				add(plan.KindUnitInstance, fmt.Sprintf("%s@%s.service", k, i), "active")
			}
		}
		return nil
	},
	plan.FamilyProxy: func(n *spec.Node, add func(kind, id string, after any)) error {
		for _, k := range slices.Sorted(maps.Keys(n.Services)) {
			s := n.Services[k]
			if s.Kernel() {
				continue // the kernel's: FamilyKernLB
			}
			add(plan.KindProxyService, k, fmt.Sprintf("%s %v", s.Balance, s.Binds))
			for _, sk := range slices.Sorted(maps.Keys(s.Servers)) {
				add(plan.KindProxyServer, k+"/"+sk, s.Servers[sk].Address)
			}
		}
		return nil
	},
	plan.FamilyKernLB: func(n *spec.Node, add func(kind, id string, after any)) error {
		svcs, err := KernLBConfig(n)
		if err != nil {
			return err
		}
		for _, ks := range svcs {
			add(plan.KindKernelService, ks.LB.Name, ks.LB.Describe())
			for i, srv := range ks.LB.Servers {
				add(plan.KindKernelServer, ks.LB.Name+"/"+ks.Servers[i], kernServerWords(ks.LB, srv, ks.Disabled[i]))
			}
		}
		return nil
	},
	plan.FamilyVRRP: func(n *spec.Node, add func(kind, id string, after any)) error {
		for _, k := range slices.Sorted(maps.Keys(n.VRRP)) {
			in := n.VRRP[k]
			add(plan.KindVRRPInstance, k, fmt.Sprintf("vrid %d v%d %s priority %d on %s", in.VRID, in.Version, in.AdvertInterval, in.Nodes[n.Name].Priority, in.Interface))
			for _, v := range in.VIPs {
				add(plan.KindVIP, k+"/"+v.Address.String(), v.Address.String())
			}
		}
		return nil
	},
}
