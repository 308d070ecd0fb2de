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
	Family string
	// Why is shown as the reason of each change.
	Why string
}

var _ Driver = Pending{}

// Name returns the family.
func (p Pending) Name() string { return p.Family }

// Apply does nothing: there is no driver to apply with.
func (p Pending) Apply(context.Context, *spec.Node) error { return nil }

// Plan lists the family's resources.
func (p Pending) Plan(_ context.Context, n *spec.Node) ([]plan.Change, error) {
	var out []plan.Change
	add := func(kind, id string, after any) {
		out = append(out, plan.Change{Driver: p.Family, Kind: kind, ID: id, Action: plan.Pending, After: after, Reason: p.Why})
	}
	switch p.Family {
	case "tuning":
		t := n.Node.Tuning
		for _, k := range slices.Sorted(maps.Keys(t.Sysctls)) {
			add("sysctl", k, string(t.Sysctls[k]))
		}
		if t.RPSSockFlowEntries != nil {
			add("rps_sock_flow_entries", "net.core.rps_sock_flow_entries", *t.RPSSockFlowEntries)
		}
		for _, k := range slices.Sorted(maps.Keys(t.Interfaces)) {
			add("nic", k, t.Interfaces[k])
		}
	case "units":
		for _, k := range slices.Sorted(maps.Keys(n.Units)) {
			add("unit_file", k+"@.service", nil)
			for _, i := range n.Units[k].InstancesFor(n.Name) {
				add("unit_instance", fmt.Sprintf("%s@%s.service", k, i), "active")
			}
		}
	case "proxy":
		for _, k := range slices.Sorted(maps.Keys(n.Services)) {
			s := n.Services[k]
			if s.Kernel() {
				continue
			}
			add("proxy_service", k, fmt.Sprintf("%s %v", s.Balance, s.Binds))
			for _, sk := range slices.Sorted(maps.Keys(s.Servers)) {
				add("proxy_server", k+"/"+sk, s.Servers[sk].Address)
			}
		}
	case "kernlb":
		svcs, err := KernLBConfig(n)
		if err != nil {
			return nil, err
		}
		for _, ks := range svcs {
			add("kernel_service", ks.LB.Name, ks.LB.Describe())
			for i, srv := range ks.LB.Servers {
				add("kernel_server", ks.LB.Name+"/"+ks.Servers[i], kernServerWords(ks.LB, srv, ks.Disabled[i]))
			}
		}
	case "vrrp":
		for _, k := range slices.Sorted(maps.Keys(n.VRRP)) {
			in := n.VRRP[k]
			add("vrrp_instance", k, fmt.Sprintf("vrid %d v%d %s priority %d on %s", in.VRID, in.Version, in.AdvertInterval, in.Nodes[n.Name].Priority, in.Interface))
			for _, v := range in.VIPs {
				add("vip", k+"/"+v.Address.String(), v.Address.String())
			}
		}
	}
	return out, nil
}
