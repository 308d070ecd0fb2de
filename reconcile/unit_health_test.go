package reconcile

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/dataplane/l4proxy"
)

func TestUnitHealthy(t *testing.T) {
	restart := time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)
	before, after := restart.Add(-300*time.Millisecond), restart.Add(100*time.Millisecond)
	local := func(a netip.Addr) bool {
		return a == netip.MustParseAddr("127.0.0.1") || a == netip.MustParseAddr("198.51.100.11") || a == netip.MustParseAddr("2001:db8::11")
	}
	srv := func(addr, status string, checked bool, last time.Time, ok bool) l4proxy.ServerStats {
		return l4proxy.ServerStats{Name: "s-" + addr, Addr: addr, Status: l4proxy.Health(status), Checked: checked, LastCheck: last, LastCheckOK: ok, Check: "L4 connect: refused"}
	}
	snap := func(svcs ...l4proxy.ServiceStats) l4proxy.Snapshot { return l4proxy.Snapshot{Services: svcs} }
	svc := func(name string, servers ...l4proxy.ServerStats) l4proxy.ServiceStats {
		return l4proxy.ServiceStats{Name: name, Servers: servers}
	}
	for _, c := range []struct {
		name string
		snap l4proxy.Snapshot
		unit string
		want string // "" healthy, else a part of the error
	}{
		{"not a port instance", snap(svc("web", srv("127.0.0.1:8080", "DOWN", true, before, false))), "app@blue.service", ""},
		{"no server on the port", snap(svc("web", srv("127.0.0.1:8081", "DOWN", true, after, false))), "app@8080.service", ""},
		{"same port on another host is not this instance", snap(svc("web", srv("198.51.100.12:8080", "DOWN", true, after, false))), "app@8080.service", ""},
		{"stale UP from before the restart", snap(svc("web", srv("127.0.0.1:8080", "UP", true, before, true))), "app@8080.service", "no check since the restart"},
		{"fresh check passed, UP", snap(svc("web", srv("127.0.0.1:8080", "UP", true, after, true))), "app@8080.service", ""},
		{"check begun at the restart counts", snap(svc("web", srv("127.0.0.1:8080", "UP", true, restart, true))), "app@8080.service", ""},
		{"fresh check failed", snap(svc("web", srv("198.51.100.11:8080", "UP", true, after, false))), "app@8080.service", "check since the restart failed"},
		{"fresh check passed, still DOWN (rise)", snap(svc("web", srv("127.0.0.1:8080", "DOWN", true, after, true))), "app@8080.service", "is DOWN in service web"},
		{"draining passes", snap(svc("web", srv("127.0.0.1:8080", "DRAIN", true, after, true))), "app@8080.service", ""},
		{"unchecked (NOCHECK) passes: nothing to wait for", snap(svc("web", srv("127.0.0.1:8080", "NOCHECK", false, time.Time{}, false))), "app@8080.service", ""},
		{"unchecked MAINT", snap(svc("web", srv("127.0.0.1:8080", "MAINT", false, time.Time{}, false))), "app@8080.service", "is MAINT"},
		{"IPv6 local server", snap(svc("web", srv("[2001:db8::11]:8080", "UP", true, before, true))), "app@8080.service", "no check since the restart"},
		{"the service that lists it, not another", snap(
			svc("api", srv("198.51.100.12:8080", "DOWN", true, after, false)),
			svc("web", srv("127.0.0.1:8080", "UP", true, after, true), srv("127.0.0.1:9090", "DOWN", true, after, false)),
		), "app@8080.service", ""},
		{"every service listing it", snap(
			svc("api", srv("127.0.0.1:8080", "UP", true, before, true)),
			svc("web", srv("127.0.0.1:8080", "UP", true, after, true)),
		), "app@8080.service", "of service api: no check since the restart"},
	} {
		err := UnitHealthy(c.snap, c.unit, restart, local)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.want)
		}
	}
}

func TestHostAddr(t *testing.T) {
	if !HostAddr(netip.MustParseAddr("127.0.0.1")) {
		t.Error("127.0.0.1 not a host address")
	}
	if HostAddr(netip.MustParseAddr("203.0.113.254")) {
		t.Error("203.0.113.254 taken for a host address")
	}
}
