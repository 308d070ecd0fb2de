package l4proxy

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestServerOwnChecks: beside servers the service's check tests where they
// are, a server may be unchecked (never taken out: NOCHECK, and it takes
// connections although dead), checked at its own address and port, or at
// several targets that must all answer. Real listeners on loopback.
func TestServerOwnChecks(t *testing.T) {
	t.Parallel()
	live := newBackend(t, "live")
	monitor := fakeServer(t, func(c net.Conn) {}) // answers checks only
	// A second target, closed below.
	relayLn, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer relayLn.Close()
	go acceptAndClose(relayLn)
	relay := relayLn.Addr().(*net.TCPAddr).AddrPort()
	dead := freePort(t) // nothing listens there
	bind := freePort(t)
	ck := &Check{Type: CheckTCP, Interval: 20 * time.Millisecond, Timeout: 2 * time.Second, Rise: 1, Fall: 1}
	cfg := Config{Services: []Service{{Name: "mx", Binds: []netip.AddrPort{bind}, Check: ck, Retries: 3, Redispatch: true,
		Servers: []Server{
			srvCfg(live, 1),
			{Name: "unchecked", Addr: dead, Weight: 1, Unchecked: true},
			{Name: "elsewhere", Addr: netip.AddrPortFrom(dead.Addr(), closedPort(t)), Weight: 1, CheckAddr: monitor.Addr(), CheckPort: monitor.Port()},
			{Name: "targets", Addr: live.addr, Weight: 1, CheckTargets: []netip.AddrPort{monitor, relay}},
		}}}}
	p := newTestPool(t, Options{}, cfg)
	eventually(t, 10*time.Second, "every checked server checked", func() bool {
		return serverStats(p, "mx", "elsewhere").Check == "L4 ok" && strings.HasSuffix(serverStats(p, "mx", "targets").Check, "at all 2 targets")
	})
	want := map[string]Health{"live": StatusUp, "unchecked": StatusNoCheck, "elsewhere": StatusUp, "targets": StatusUp}
	for name, st := range want {
		if got := serverStats(p, "mx", name); got.Status != st {
			t.Errorf("server %s: %+v, want %s", name, got, st)
		}
	}
	if got := serverStats(p, "mx", "unchecked"); got.Checked || got.Check != "" || got.FailedChecks != 0 {
		t.Errorf("the unchecked server was checked: %+v", got)
	}
	// The unchecked server, dead, still takes its share: its connect
	// errors count, and a retry reaches another server.
	for range 8 {
		if _, err := roundTrip(bind, "hello"); err != nil {
			t.Fatalf("round trip: %v", err)
		}
	}
	if got := serverStats(p, "mx", "unchecked"); got.ConnectErrors == 0 {
		t.Errorf("the unchecked server took no connection: %+v", got)
	}

	// One target of "targets" stops answering: it goes down, naming it.
	relayLn.Close()
	eventually(t, 10*time.Second, "targets down", func() bool { return serverStats(p, "mx", "targets").Status == StatusDown })
	if got := serverStats(p, "mx", "targets").Check; !strings.HasPrefix(got, "at "+relay.String()+": ") {
		t.Errorf("detail %q does not name %v", got, relay)
	}
	// Set unchecked in place: it is up at once, with no check running.
	cfg.Services[0].Servers[3] = Server{Name: "targets", Addr: live.addr, Weight: 1, Unchecked: true}
	if err := p.Set(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if got := serverStats(p, "mx", "targets"); got.Status != StatusNoCheck {
		t.Errorf("targets made unchecked: %+v, want NOCHECK", got)
	}
	p.mu.Lock()
	svc := p.services["mx"]
	p.mu.Unlock()
	srv := svc.serverNamed("targets")
	svc.mu.Lock() // guards checkStop
	running := srv.checkStop != nil
	svc.mu.Unlock()
	if running {
		t.Error("the check of the server made unchecked still runs")
	}
}

func acceptAndClose(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// TestServerOwnCheckValidate: contradictory own check settings are refused.
func TestServerOwnCheckValidate(t *testing.T) {
	a := netip.MustParseAddrPort("198.51.100.1:25")
	for _, sv := range []Server{
		{Name: "x", Addr: a, Weight: 1, Unchecked: true, CheckPort: 2525},
		{Name: "x", Addr: a, Weight: 1, CheckTargets: []netip.AddrPort{a}, CheckAddr: a.Addr()},
		{Name: "x", Addr: a, Weight: 1, CheckTargets: []netip.AddrPort{netip.MustParseAddrPort("198.51.100.2:0")}},
	} {
		err := Config{Services: []Service{{Name: "s", Binds: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:25")}, Servers: []Server{sv}}}}.Validate()
		if err == nil {
			t.Errorf("%+v: accepted", sv)
		}
	}
}
