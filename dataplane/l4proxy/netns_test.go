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

// TestVIPArrivesLater runs the examples/lab service (web on the VIP
// 203.0.113.100:80 to 198.51.100.11:8080 and .12:8080) in a namespace of
// its own. The pool binds the VIP before the node holds it (IP_FREEBIND),
// as on a VRRP backup; once the VIP arrives, as VRRP would bring it,
// clients are served without any reconfiguration.
func TestVIPArrivesLater(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip")
	t.Parallel()
	ns := lab.NewNetns(t, "l4")
	peer := lab.NewNetns(t, "l4p") // the other end of the gateway's link
	lab.Veth(t, ns, "eth0", "198.51.100.11/24", peer, "eth0", "")
	ns.Run(t, "ip", "addr", "add", "198.51.100.12/24", "dev", "eth0")
	for _, name := range []string{"11", "12"} {
		var ln net.Listener
		if err := ns.Do(func() error {
			var err error
			ln, err = net.Listen("tcp4", "198.51.100."+name+":8080")
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
				c.Write([]byte("app-" + name + "\n"))
				c.Close()
			}
		}()
	}
	vip := netip.MustParseAddrPort("203.0.113.100:80")
	startHelperWith(t, func(name string, args ...string) *exec.Cmd {
		return ns.Command(context.Background(), name, args...)
	}, Config{Services: []Service{{
		Name: "web", Binds: []netip.AddrPort{vip},
		Servers: []Server{
			{Name: "app1", Addr: netip.MustParseAddrPort("198.51.100.11:8080"), Weight: 100},
			{Name: "app2", Addr: netip.MustParseAddrPort("198.51.100.12:8080"), Weight: 100},
		},
		Check: &Check{Type: CheckTCP, Interval: 200 * time.Millisecond},
	}}})
	dial := func() (string, error) {
		var line string
		err := ns.Do(func() error {
			c, err := net.DialTimeout("tcp4", vip.String(), 5*time.Second)
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
	// No VIP here yet: the pool listens anyway, nothing can reach it.
	if got, err := dial(); err == nil {
		t.Fatalf("reached the VIP before it was on the node: %q", got)
	}
	// VRRP makes this node master: the VIP arrives.
	ns.Run(t, "ip", "addr", "add", "203.0.113.100/24", "dev", "eth0")
	seen := map[string]bool{}
	for i := 0; i < 10; i++ {
		got, err := dial()
		if err != nil {
			t.Fatalf("request %d through the VIP: %v", i, err)
		}
		seen[got] = true
	}
	if !seen["app-11"] || !seen["app-12"] {
		t.Errorf("served by %v, want both servers", seen)
	}
}
