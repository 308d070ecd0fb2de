package l4proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// TestSourceRulesNetns: a gateway namespace runs the pool (a separate
// process) on 203.0.113.1:80 and [2001:db8::1]:80 with an allow list of
// the client link and a deny list of one IPv4 and one IPv6 client; a
// client namespace connects from allowed and denied addresses of both
// families. Denied clients are reset before the backend sees them.
func TestSourceRulesNetns(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip")
	t.Parallel()
	gw := lab.NewNetns(t, "src")
	cl := lab.NewNetns(t, "srcc")
	lab.Veth(t, gw, "eth0", "203.0.113.1/24", cl, "eth0", "203.0.113.21/24")
	cl.Run(t, "ip", "addr", "add", "203.0.113.22/24", "dev", "eth0")
	gw.Run(t, "ip", "addr", "add", "2001:db8::1/64", "dev", "eth0", "nodad")
	cl.Run(t, "ip", "addr", "add", "2001:db8::21/64", "dev", "eth0", "nodad")
	cl.Run(t, "ip", "addr", "add", "2001:db8::22/64", "dev", "eth0", "nodad")
	gw.Run(t, "ip", "addr", "add", "198.51.100.11/32", "dev", "lo")

	var ln net.Listener
	if err := gw.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", "198.51.100.11:8080")
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
			c.Write([]byte("app\n"))
			c.Close()
		}
	}()
	v4, v6 := netip.MustParseAddrPort("203.0.113.1:80"), netip.MustParseAddrPort("[2001:db8::1]:80")
	h := startHelperWith(t, func(name string, args ...string) *exec.Cmd {
		return gw.Command(context.Background(), name, args...)
	}, Config{Services: []Service{{
		Name: "web", Binds: []netip.AddrPort{v4, v6},
		Servers: []Server{{Name: "app", Addr: netip.MustParseAddrPort("198.51.100.11:8080"), Weight: 1}},
		Source: &SourceRules{
			Allow: prefixes("203.0.113.0/24", "2001:db8::/64"),
			Deny:  prefixes("203.0.113.22/32", "2001:db8::22/128"),
		},
	}}})

	// dial connects from src in the client namespace: the greeting, or
	// "reset".
	dial := func(src string, to netip.AddrPort) (string, error) {
		var got string
		err := cl.Do(func() error {
			d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
			c, err := d.Dial("tcp", to.String())
			if errors.Is(err, syscall.ECONNRESET) {
				got = "reset"
				return nil
			}
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if errors.Is(err, syscall.ECONNRESET) {
				got = "reset"
				return nil
			}
			got = strings.TrimSpace(line)
			return err
		})
		return got, err
	}
	for _, tc := range []struct {
		src  string
		to   netip.AddrPort
		want string
	}{
		{"203.0.113.21", v4, "app"},
		{"203.0.113.22", v4, "reset"},
		{"2001:db8::21", v6, "app"},
		{"2001:db8::22", v6, "reset"},
	} {
		got, err := dial(tc.src, tc.to)
		if err != nil {
			t.Fatalf("from %s to %v: %v", tc.src, tc.to, err)
		}
		if got != tc.want {
			t.Errorf("from %s to %v: %q, want %q", tc.src, tc.to, got, tc.want)
		}
	}
	// The helper's stats, fetched from inside the gateway namespace.
	var snap Snapshot
	if err := gw.Do(func() error {
		c, err := net.DialTimeout("tcp4", h.stats, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")
		raw, err := io.ReadAll(c)
		if err != nil {
			return err
		}
		_, body, _ := strings.Cut(string(raw), "\r\n\r\n")
		return json.Unmarshal([]byte(body), &snap)
	}); err != nil {
		t.Fatal(err)
	}
	if d := snap.Services[0].Denied; d.DenyList != 2 || d.NotAllowed != 0 || snap.Services[0].Total != 2 {
		t.Errorf("stats: denied %+v, total %d; want 2 by the deny list, 2 served", d, snap.Services[0].Total)
	}
}
