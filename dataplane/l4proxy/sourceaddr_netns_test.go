package l4proxy

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// TestSourceAddressServersSee runs a gateway between a client network and
// a server network, each in its namespace. The servers accept only the
// source addresses they were told (an nftables filter in their namespace
// resets every other connection), so a connection or a check from the
// gateway's routed address 198.51.100.1 fails:
//
//   - port 8080 accepts only 198.51.100.2: the service's source address,
//     one of the gateway's own;
//   - port 8081 accepts only 198.51.100.3: the server's own source
//     address, which wins over its service's 198.51.100.2;
//   - port 8082 accepts 203.0.113.99, an address no host holds (HAProxy's
//     `usesrc 203.0.113.99`), for the connections of a second service,
//     and 198.51.100.2 for its checks, which leave from the service's
//     source address as HAProxy's do. The server routes its replies to
//     203.0.113.99 through the gateway (its default route), where the
//     transparent policy routing hands them to the proxy's socket;
//   - port 8083, on the server's IPv6 address, accepts only
//     2001:db8:3::2, an IPv6 source address of the gateway.
//
// Every server is checked: it comes UP only when its checks leave from the
// allowed address. Each server answers with the address it saw, which must
// be what it sees from HAProxy 2.6 with the same source lines, run beside
// the pool in the gateway.
func TestSourceAddressServersSee(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "nft")
	t.Parallel()
	cl, gw, sv := lab.NewNetns(t, "h3c"), lab.NewNetns(t, "h3g"), lab.NewNetns(t, "h3s")
	lab.Veth(t, cl, "eth0", "203.0.113.10/24", gw, "eth0", "203.0.113.1/24")
	lab.Veth(t, gw, "eth1", "198.51.100.1/24", sv, "eth0", "198.51.100.10/24")
	gw.Run(t, "ip", "addr", "add", "198.51.100.2/24", "dev", "eth1")
	gw.Run(t, "ip", "addr", "add", "198.51.100.3/24", "dev", "eth1")
	// IPv6 on the servers' segment, without duplicate address detection
	// (the addresses are usable at once).
	gw.Run(t, "ip", "addr", "add", "2001:db8:3::1/64", "dev", "eth1", "nodad")
	gw.Run(t, "ip", "addr", "add", "2001:db8:3::2/64", "dev", "eth1", "nodad")
	sv.Run(t, "ip", "addr", "add", "2001:db8:3::10/64", "dev", "eth0", "nodad")
	cl.Run(t, "ip", "route", "add", "default", "via", "203.0.113.1")
	sv.Run(t, "ip", "route", "add", "default", "via", "198.51.100.1")
	sv.Run(t, "nft", `table inet only {
		chain input {
			type filter hook input priority 0;
			tcp dport 8080 ip saddr != 198.51.100.2 reject with tcp reset
			tcp dport 8081 ip saddr != 198.51.100.3 reject with tcp reset
			tcp dport 8082 ip saddr != { 198.51.100.2, 203.0.113.99 } reject with tcp reset
			tcp dport 8083 ip6 saddr != 2001:db8:3::2 reject with tcp reset
		}
	}`)
	for _, addr := range []string{"198.51.100.10:8080", "198.51.100.10:8081", "198.51.100.10:8082", "[2001:db8:3::10]:8083"} {
		var ln net.Listener
		if err := sv.Do(func() error {
			var err error
			ln, err = net.Listen("tcp", addr)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Write([]byte(c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().String() + "\n"))
				c.Close()
			}
		}()
	}
	check := &Check{Type: CheckTCP, Interval: 100 * time.Millisecond, Timeout: time.Second, Rise: 1, Fall: 1}
	local := netip.MustParseAddrPort("203.0.113.1:80")
	own := netip.MustParseAddrPort("203.0.113.1:82")
	foreign := netip.MustParseAddrPort("203.0.113.1:81")
	local6 := netip.MustParseAddrPort("203.0.113.1:83")
	cfg := Config{Services: []Service{{
		Name: "local", Binds: []netip.AddrPort{local}, Check: check,
		SourceAddr: netip.MustParseAddr("198.51.100.2"),
		Servers:    []Server{{Name: "app", Addr: netip.MustParseAddrPort("198.51.100.10:8080"), Weight: 1}},
	}, {
		Name: "own", Binds: []netip.AddrPort{own}, Check: check,
		SourceAddr: netip.MustParseAddr("198.51.100.2"),
		Servers: []Server{{Name: "app", Addr: netip.MustParseAddrPort("198.51.100.10:8081"), Weight: 1,
			SourceAddr: netip.MustParseAddr("198.51.100.3")}},
	}, {
		Name: "foreign", Binds: []netip.AddrPort{foreign}, Check: check,
		SourceAddr:      netip.MustParseAddr("198.51.100.2"),
		TransparentAddr: netip.MustParseAddr("203.0.113.99"),
		Servers:         []Server{{Name: "app", Addr: netip.MustParseAddrPort("198.51.100.10:8082"), Weight: 1}},
	}, {
		Name: "local6", Binds: []netip.AddrPort{local6}, Check: check,
		SourceAddr: netip.MustParseAddr("2001:db8:3::2"),
		Servers:    []Server{{Name: "app", Addr: netip.MustParseAddrPort("[2001:db8:3::10]:8083"), Weight: 1}},
	}}}
	h := startHelperWith(t, func(name string, args ...string) *exec.Cmd {
		return gw.Command(context.Background(), name, args...)
	}, cfg)
	// Every server has been checked; its checks passed the server's
	// filter only if they left from the allowed address.
	var snap Snapshot
	eventually(t, 30*time.Second, "a completed check of every server", func() bool {
		var err error
		if snap, err = snapshotIn(gw, h.stats); err != nil {
			return false
		}
		n := 0
		for _, s := range snap.Services {
			for _, sv := range s.Servers {
				if sv.LastCheck.IsZero() {
					return false
				}
				n++
			}
		}
		return n == 4
	})
	for _, s := range snap.Services {
		for _, sv := range s.Servers {
			if !sv.LastCheckOK || sv.FailedChecks != 0 || sv.Status != "UP" {
				t.Errorf("service %s server %s: status %s, check %q, %d failed checks: want UP, every check passed", s.Name, sv.Name, sv.Status, sv.Check, sv.FailedChecks)
			}
		}
	}
	seen := func(bind netip.AddrPort) (string, error) {
		var line string
		err := cl.Do(func() error {
			c, err := net.DialTimeout("tcp4", bind.String(), 5*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			line, err = bufio.NewReader(c).ReadString('\n')
			return err
		})
		return strings.TrimSpace(line), err
	}
	// HAProxy, the reference, in the same gateway with the same settings
	// on ports 90-92: the servers must see the same addresses from it.
	lab.StartHAProxyIn(t, gw, lab.HAProxyConfig{Services: []lab.HAProxyService{
		{Name: "local", Bind: "203.0.113.1:90", Servers: []string{"198.51.100.10:8080"},
			Options: []string{"source 198.51.100.2"}, ServerOptions: "check inter 100ms"},
		{Name: "own", Bind: "203.0.113.1:92", Servers: []string{"198.51.100.10:8081"},
			Options: []string{"source 198.51.100.2"}, ServerOptions: "check inter 100ms source 198.51.100.3"},
		{Name: "foreign", Bind: "203.0.113.1:91", Servers: []string{"198.51.100.10:8082"},
			ServerOptions: "check inter 100ms source 198.51.100.2 usesrc 203.0.113.99"},
		{Name: "local6", Bind: "203.0.113.1:93", Servers: []string{"[2001:db8:3::10]:8083"},
			Options: []string{"source [2001:db8:3::2]"}, ServerOptions: "check inter 100ms"},
	}})
	for _, c := range []struct {
		bind, haproxy netip.AddrPort
		want          string
	}{
		{local, netip.MustParseAddrPort("203.0.113.1:90"), "198.51.100.2"},   // the service's source address
		{own, netip.MustParseAddrPort("203.0.113.1:92"), "198.51.100.3"},     // the server's own, over the service's
		{foreign, netip.MustParseAddrPort("203.0.113.1:91"), "203.0.113.99"}, // the transparent address, not the source
		{local6, netip.MustParseAddrPort("203.0.113.1:93"), "2001:db8:3::2"}, // an IPv6 source address
	} {
		for i := range 2 {
			s, err := seen(c.bind)
			if err != nil {
				t.Fatalf("%v request %d: %v", c.bind, i, err)
			}
			if s != c.want {
				t.Errorf("%v request %d: the server saw %s, want %s", c.bind, i, s, c.want)
			}
			hs, err := seen(c.haproxy)
			if err != nil {
				t.Fatalf("HAProxy %v request %d: %v", c.haproxy, i, err)
			}
			if hs != s {
				t.Errorf("%v request %d: the server saw %s from HAProxy, %s from gitgw", c.bind, i, hs, s)
			}
		}
	}
}
