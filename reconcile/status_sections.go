package reconcile

import (
	"context"
	"strings"

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

// StatusSection reports the node's role in each virtual router.
func (d *VRRPDriver) StatusSection(context.Context) (any, error) {
	var s drift.VRRPSection
	for _, in := range d.e.Status() {
		s.Instances = append(s.Instances, drift.VRRPInstance{
			Name:      in.Name,
			VRID:      int(in.VRID),
			Interface: in.Interface,
			State:     strings.ToUpper(in.State.String()),
			Priority:  int(in.Priority),
		})
	}
	return s, nil
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

// proxyHealth maps the pool's server status (UP, DOWN, DRAIN, MAINT,
// REMOVED) to the status file's words.
func proxyHealth(status l4proxy.Health) string {
	switch status {
	case l4proxy.StatusUp:
		return "up"
	case l4proxy.StatusDrain:
		return "drain"
	case l4proxy.StatusMaint, l4proxy.StatusRemoved:
		return "disabled"
	}
	return "down"
}
