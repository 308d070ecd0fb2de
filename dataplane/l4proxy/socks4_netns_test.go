package l4proxy

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/gitremote"
	"github.com/gitgw/gitgw/test/lab"
)

// TestSOCKS4ThroughOpenSSH runs the proxy on a gateway that cannot reach
// the server network at all: only a SOCKS4 proxy can, OpenSSH's dynamic
// forwarding (ssh -D) on a host between them, which HAProxy's socks4
// servers are commonly pointed at.
//
//	gateway 203.0.113.1 ── 203.0.113.2 socks host 198.51.100.1 ── 198.51.100.10 server
//
// Server a (198.51.100.10:25, checked through the proxy) must see the
// socks host's 198.51.100.1; server gone (a port nothing listens on behind
// the proxy, unchecked so that it stays in rotation) makes OpenSSH hang up
// on the CONNECT, which must count as a failed connect and redispatch;
// server b (on the socks host's own address, so that it can be checked
// directly, as HAProxy checks a socks4 server without check-via-socks4)
// carries traffic through the proxy too. Once the proxy dies, a is marked
// down by its check through the proxy, and b stays up. HAProxy 2.6 runs
// beside it on the same servers with the lines the import maps (socks4,
// check-via-socks4): it must answer the same and mark the same servers
// down, which is what the import claims.
func TestSOCKS4ThroughOpenSSH(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "ssh", "sshd")
	t.Parallel()
	gw, sx, sv := lab.NewNetns(t, "h2g"), lab.NewNetns(t, "h2x"), lab.NewNetns(t, "h2s")
	lab.Veth(t, gw, "eth0", "203.0.113.1/24", sx, "eth0", "203.0.113.2/24")
	lab.Veth(t, sx, "eth1", "198.51.100.1/24", sv, "eth0", "198.51.100.10/24")

	// The servers answer with their name and the address they see.
	serve := func(ns *lab.Netns, name, addr string) {
		var ln net.Listener
		if err := ns.Do(func() error {
			var err error
			ln, err = net.Listen("tcp4", addr)
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
				fmt.Fprintf(c, "%s %s\n", name, c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr())
				c.Close()
			}
		}()
	}
	serve(sv, "a", "198.51.100.10:25")
	serve(sx, "b", "203.0.113.2:2525")

	// The SOCKS proxy: sshd on the socks host's loopback, and ssh -D.
	var sshd *gitremote.SSHD
	if err := sx.Do(func() error {
		sshd = gitremote.StartSSHDWith(t, gitremote.SSHDOptions{TCPForwarding: true})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	socks := netip.MustParseAddrPort("203.0.113.2:1080")
	ssh := sx.Command(context.Background(), "ssh", "-N", "-F", "/dev/null", "-D", socks.String(),
		"-i", sshd.ClientKey, "-o", "UserKnownHostsFile="+sshd.KnownHosts, "-o", "StrictHostKeyChecking=yes",
		"-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-p", fmt.Sprint(sshd.Port), sshd.User+"@127.0.0.1")
	logPath := t.TempDir() + "/ssh.log"
	sshLog, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer sshLog.Close()
	ssh.Stdout, ssh.Stderr = sshLog, sshLog
	if err := ssh.Start(); err != nil {
		t.Fatal(err)
	}
	sshDone := make(chan struct{})
	go func() { _ = ssh.Wait(); close(sshDone) }()
	killSSH := func() {
		_ = ssh.Process.Signal(syscall.SIGTERM) // ip netns exec execs ssh: the same PID
		<-sshDone
	}
	t.Cleanup(killSSH)
	eventually(t, 20*time.Second, "ssh -D listening", func() bool {
		select {
		case <-sshDone:
			out, _ := os.ReadFile(logPath)
			t.Fatalf("ssh -D exited: %s", out)
		default:
		}
		return gw.Do(func() error {
			c, err := net.DialTimeout("tcp4", socks.String(), time.Second)
			if err == nil {
				c.Close()
			}
			return err
		}) == nil
	})

	// The gateway has no route to the server network.
	if err := gw.Do(func() error {
		c, err := net.DialTimeout("tcp4", "198.51.100.10:25", 2*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}); err == nil {
		t.Fatal("the gateway reaches the server directly: the lab proves nothing")
	}

	bind := netip.MustParseAddrPort("203.0.113.1:25")
	h := startHelperWith(t, func(name string, args ...string) *exec.Cmd {
		return gw.Command(context.Background(), name, args...)
	}, Config{Services: []Service{{
		Name: "smtp", Binds: []netip.AddrPort{bind}, Redispatch: true,
		Servers: []Server{
			{Name: "a", Addr: netip.MustParseAddrPort("198.51.100.10:25"), Weight: 1, SOCKS4: socks, CheckViaSOCKS4: true},
			{Name: "gone", Addr: netip.MustParseAddrPort("198.51.100.10:26"), Weight: 1, SOCKS4: socks, Unchecked: true},
			{Name: "b", Addr: netip.MustParseAddrPort("203.0.113.2:2525"), Weight: 1, SOCKS4: socks},
		},
		Check: &Check{Type: CheckTCP, Interval: 100 * time.Millisecond, Rise: 1, Fall: 1},
	}}})
	// HAProxy 2.6 beside it, with the import's source lines: s1 is a, s2
	// gone, s3 b.
	hbind := "203.0.113.1:26"
	hstats := "203.0.113.1:8404"
	lab.StartHAProxyIn(t, gw, lab.HAProxyConfig{Services: []lab.HAProxyService{
		{Name: "smtp", Bind: hbind, Servers: []string{
			"198.51.100.10:25 socks4 " + socks.String() + " check-via-socks4 check inter 100 fall 1 rise 1",
			"198.51.100.10:26 socks4 " + socks.String(),
			"203.0.113.2:2525 socks4 " + socks.String() + " check inter 100 fall 1 rise 1",
		}},
		{Name: "stats", Bind: hstats, Options: []string{"mode http", "stats enable", "stats uri /"}},
	}})
	hap := func() map[string]string {
		st, err := haproxyStatus(gw, hstats, "smtp")
		if err != nil {
			t.Fatalf("haproxy stats: %v", err)
		}
		return map[string]string{"a": st["s1"], "gone": st["s2"], "b": st["s3"]}
	}
	stats := func() map[string]ServerStats {
		s, err := snapshotIn(gw, h.stats)
		if err != nil {
			t.Fatalf("stats: %v", err)
		}
		out := map[string]ServerStats{}
		for _, svc := range s.Services {
			for _, x := range svc.Servers {
				out[x.Name] = x
			}
		}
		return out
	}
	// Servers start up: their first checks must have passed.
	eventually(t, 20*time.Second, "the first checks of a and b", func() bool {
		st := stats()
		return !st["a"].LastCheck.IsZero() && !st["b"].LastCheck.IsZero()
	})
	for n, x := range stats() {
		if n != "gone" && x.Status != StatusUp {
			t.Fatalf("server %s: %s (%s) with the proxy up", n, x.Status, x.Check)
		}
	}
	eventually(t, 20*time.Second, "haproxy's a and b checked up", func() bool {
		h := hap()
		return h["a"] == "UP" && h["b"] == "UP"
	})

	ask := func(bind string) (string, error) {
		var line string
		err := gw.Do(func() error {
			c, err := net.DialTimeout("tcp4", bind, 5*time.Second)
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
	for _, peer := range []struct{ name, bind string }{{"gitgw", bind.String()}, {"haproxy", hbind}} {
		seen := map[string]int{}
		for i := range 9 {
			got, err := ask(peer.bind)
			if err != nil {
				t.Fatalf("%s: request %d: %v", peer.name, i, err)
			}
			seen[got]++
		}
		// Through the proxy: a sees the socks host's address on its network.
		if seen["a 198.51.100.1"] == 0 || seen["b 203.0.113.2"] == 0 || len(seen) != 2 {
			t.Errorf("%s: answers %v, want a seeing 198.51.100.1 and b seeing 203.0.113.2", peer.name, seen)
		}
	}
	st := stats()
	if g := st["gone"]; g.ConnectErrors == 0 || g.Total != 0 {
		t.Errorf("server gone: %d connect errors, %d sessions; want its CONNECTs failed and none served", g.ConnectErrors, g.Total)
	}
	if st["a"].Total+st["b"].Total != 9 {
		t.Errorf("a served %d and b %d, want the 9 requests between them", st["a"].Total, st["b"].Total)
	}

	// The proxy dies: a is checked through it, b directly.
	killSSH()
	killed := time.Now()
	eventually(t, 20*time.Second, "a down and b checked since", func() bool {
		st := stats()
		return st["a"].Status == StatusDown && st["b"].LastCheck.After(killed)
	})
	if b := stats()["b"]; b.Status != StatusUp {
		t.Errorf("b checked directly is %s (%s), want UP: its check does not go through the proxy", b.Status, b.Check)
	}
	// HAProxy: a goes down the same way; b, checked at the same pace,
	// has been checked since too by then.
	eventually(t, 20*time.Second, "haproxy's a down", func() bool { return hap()["a"] == "DOWN" })
	if h := hap(); h["b"] != "UP" {
		t.Errorf("haproxy's b is %s, want UP (the reference this test holds gitgw to)", h["b"])
	}
	if a := stats()["a"]; !strings.Contains(a.Check, "via socks4 "+socks.String()) {
		t.Errorf("a's check says %q, want the proxy named", a.Check)
	}
}

// haproxyStatus reads the status column of proxy px's servers from
// HAProxy's stats page (its CSV) inside ns.
func haproxyStatus(ns *lab.Netns, addr, px string) (map[string]string, error) {
	out := map[string]string{}
	err := ns.Do(func() error {
		c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := fmt.Fprintf(c, "GET /;csv HTTP/1.0\r\nHost: %s\r\n\r\n", addr); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		r := csv.NewReader(resp.Body)
		r.FieldsPerRecord = -1
		rows, err := r.ReadAll()
		if err != nil || len(rows) == 0 {
			return fmt.Errorf("csv: %v (%d rows)", err, len(rows))
		}
		status := slices.Index(rows[0], "status")
		if status < 0 {
			return fmt.Errorf("no status column in %v", rows[0])
		}
		for _, row := range rows[1:] {
			if len(row) > status && row[0] == px {
				out[row[1]] = row[status]
			}
		}
		return nil
	})
	return out, err
}
