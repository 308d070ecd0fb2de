package reconcile

import (
	"context"
	"slices"
	"strings"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/l4proxy"
	"github.com/gitgw/gitgw/reconcile/drift"
)

// The drivers' contributions to status.json: what the fleet view and
// STATUS.md read (VRRP roles, proxy server health). Only states go in, never
// live counters, so that a quiet node writes no status commit.

var (
	_ StatusSectioner = (*VRRPDriver)(nil)
	_ StatusSectioner = (*ProxyDriver)(nil)
)

// StatusSection reports the node's role in each virtual router, and
// where the router is (family, segments), so that the fleet view tells two
// routers that reuse a VRID on two segments apart.
func (d *VRRPDriver) StatusSection(context.Context) (any, error) {
	var s drift.VRRPSection
	d.mu.Lock()
	places := d.places
	d.mu.Unlock()
	for _, in := range d.e.Status() {
		p := places[in.Name]
		s.Instances = append(s.Instances, drift.VRRPInstance{
			Name:      in.Name,
			VRID:      int(in.VRID),
			Interface: in.Interface,
			State:     strings.ToUpper(in.State.String()),
			Priority:  int(in.Priority),
			Family:    p.family,
			Segments:  p.segments,
		})
	}
	return s, nil
}

// place is where a virtual router lives: its VIPs' address family and the
// subnets of its interface on this node.
type place struct {
	family   string
	segments []string
}

// placesOf reads each instance's place from the site, as the vrid-unique
// guardrail does: a segment is a subnet of the node's addresses on the
// instance's interface.
func placesOf(n *spec.Node) map[string]place {
	out := map[string]place{}
	for name, vi := range n.VRRP {
		p := place{family: "IPv4"}
		if len(vi.VIPs) > 0 && !vi.VIPs[0].Address.Addr().Is4() {
			p.family = "IPv6"
		}
		for _, a := range n.Node.Interfaces[vi.Interface].Addresses {
			if seg := a.Masked().String(); !slices.Contains(p.segments, seg) {
				p.segments = append(p.segments, seg)
			}
		}
		slices.Sort(p.segments)
		out[name] = p
	}
	return out
}

// StatusSection reports each service's servers and their health.
func (d *ProxyDriver) StatusSection(context.Context) (any, error) {
	var s drift.ProxySection
	for _, svc := range d.pool.Stats().Services {
		ps := drift.ProxyService{Name: svc.Name}
		for _, srv := range svc.Servers {
			ps.Servers = append(ps.Servers, drift.ProxyServer{Name: srv.Name, Address: srv.Addr, Health: proxyHealth(srv.Status)})
		}
		s.Services = append(s.Services, ps)
	}
	return s, nil
}

// proxyHealth maps the pool's server status (UP, DOWN, NOCHECK, DRAIN,
// MAINT, REMOVED) to the status file's words.
func proxyHealth(status l4proxy.Health) string {
	switch status {
	case l4proxy.StatusUp:
		return "up"
	case l4proxy.StatusDrain:
		return "drain"
	case l4proxy.StatusNoCheck:
		return "unchecked"
	case l4proxy.StatusMaint, l4proxy.StatusRemoved:
		return "disabled"
	}
	return "down"
}

var _ StatusSectioner = (*KernLBDriver)(nil)

// StatusSection reports each kernel service's servers and their health,
// in the proxy's shape (status.json's "kernlb" section).
func (d *KernLBDriver) StatusSection(context.Context) (any, error) {
	var s drift.ProxySection
	for _, svc := range d.KernStats() {
		ps := drift.ProxyService{Name: svc.Name}
		for _, srv := range svc.Servers {
			ps.Servers = append(ps.Servers, drift.ProxyServer{Name: srv.Name, Address: srv.Addr, Health: proxyHealth(srv.Status)})
		}
		s.Services = append(s.Services, ps)
	}
	return s, nil
}
