package reconcile

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gitgw/gitgw/dataplane/l4proxy"
)

// UnitHealthy gates one step of a rolling restart: the instance unit
// ("app@8080.service") restarted at restarted must be healthy in the proxy
// pool before the roll moves on. Its servers are those with the instance's
// port and an address of this node (local), in whichever service lists
// them: a server on the same port of another host is not this instance. A
// checked server counts only once a check begun after the restart passed
// and the server is UP (or draining); the status alone may predate the
// restart (the old process answered it). An instance that is no server of
// any service passes, and so does a server of a service without checks.
func UnitHealthy(snap l4proxy.Snapshot, unit string, restarted time.Time, local func(netip.Addr) bool) error {
	at := strings.IndexByte(unit, '@')
	if at < 0 {
		return nil
	}
	port, err := strconv.ParseUint(strings.TrimSuffix(unit[at+1:], ".service"), 10, 16)
	if err != nil {
		return nil
	}
	for _, svc := range snap.Services {
		for _, srv := range svc.Servers {
			ap, err := netip.ParseAddrPort(srv.Addr)
			if err != nil || ap.Port() != uint16(port) || !local(ap.Addr().Unmap()) {
				continue
			}
			switch {
			case srv.Checked && srv.LastCheck.Before(restarted):
				return fmt.Errorf("server %s of service %s: no check since the restart yet", srv.Name, svc.Name)
			case srv.Checked && !srv.LastCheckOK:
				return fmt.Errorf("server %s of service %s: check since the restart failed: %s", srv.Name, svc.Name, srv.Check)
			case !srv.Status.Serving() && srv.Status != l4proxy.StatusDrain:
				return fmt.Errorf("server %s is %s in service %s", srv.Name, srv.Status, svc.Name)
			}
		}
	}
	return nil
}

// HostAddr reports whether a is an address of this host (loopback
// included): a proxy server there is one of this node's unit instances.
func HostAddr(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, x := range addrs {
		if n, ok := x.(*net.IPNet); ok {
			if b, ok := netip.AddrFromSlice(n.IP); ok && b.Unmap() == a.Unmap() {
				return true
			}
		}
	}
	return false
}
