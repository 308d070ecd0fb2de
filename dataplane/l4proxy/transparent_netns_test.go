package l4proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// TestTransparentServerSeesClient runs a gateway between a client network
// and a server network, each in its namespace: the server routes back
// through the gateway, and the transparent service connects to it from the
// client's own address. The server must see 203.0.113.10, not the
// gateway's 198.51.100.1. The policy routing the replies need exists while
// the service does, and is gone once it is removed.
func TestTransparentServerSeesClient(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "nft")
	t.Parallel()
	cl, gw, sv := lab.NewNetns(t, "tpc"), lab.NewNetns(t, "tpg"), lab.NewNetns(t, "tps")
	lab.Veth(t, cl, "eth0", "203.0.113.10/24", gw, "eth0", "203.0.113.1/24")
	lab.Veth(t, gw, "eth1", "198.51.100.1/24", sv, "eth0", "198.51.100.10/24")
	cl.Run(t, "ip", "route", "add", "default", "via", "203.0.113.1")
	sv.Run(t, "ip", "route", "add", "default", "via", "198.51.100.1")
	// The server answers with the address it sees.
	var ln net.Listener
	if err := sv.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", "198.51.100.10:8080")
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
	bind := netip.MustParseAddrPort("203.0.113.1:80")
	svc := Service{Name: "web", Transparent: true, Binds: []netip.AddrPort{bind},
		Servers: []Server{{Name: "app", Addr: netip.MustParseAddrPort("198.51.100.10:8080"), Weight: 1}}}
	// The second configuration: the service without transparent mode.
	plain := svc
	plain.Transparent = false
	raw, _ := json.Marshal(Config{Services: []Service{plain}})
	cfg2 := t.TempDir() + "/cfg2.json"
	if err := os.WriteFile(cfg2, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	h := startHelperWith(t, func(name string, args ...string) *exec.Cmd {
		return gw.Command(context.Background(), name, args...)
	}, Config{Services: []Service{svc}}, "L4HELPER_CONFIG2="+cfg2)
	seen := func() (string, error) {
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
	for i := range 3 {
		got, err := seen()
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got != "203.0.113.10" {
			t.Errorf("request %d: the server saw %s, want the client's 203.0.113.10", i, got)
		}
	}
	routing := func() string {
		return gw.Run(t, "ip", "rule") + gw.Run(t, "ip", "route", "show", "table", "26777") + gw.Run(t, "nft", "list", "tables")
	}
	if r := routing(); !strings.Contains(r, "fwmark 0x67770000 lookup 26777") || !strings.Contains(r, "local default dev lo") ||
		!strings.Contains(r, transparentNftTable) {
		t.Errorf("transparent routing on the gateway:\n%s", r)
	}
	if err := syscall.Kill(h.cmd.Process.Pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	if line, err := h.readLine(30 * time.Second); err != nil || line != "reconfigured" {
		t.Fatalf("reconfigure: %q %v", line, err)
	}
	if r := routing(); strings.Contains(r, "26777") || strings.Contains(r, transparentNftTable) {
		t.Errorf("transparent routing left after the service stopped being transparent:\n%s", r)
	}
	if got, err := seen(); err != nil || got != "198.51.100.1" {
		t.Errorf("without transparent mode the server saw %q (%v), want the gateway's 198.51.100.1", got, err)
	}
}
