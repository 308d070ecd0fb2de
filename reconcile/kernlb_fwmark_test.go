package reconcile

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/importer"
	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/dataplane/kernlb"
	"github.com/gitgw/gitgw/test/goldenfile"
	"github.com/gitgw/gitgw/test/lab"
)

// TestKernLBFwmark: a service with binds and fwmarks (keepalived's
// virtual_server_group with fwmark entries) loads from the site, becomes
// one kernel service per bind and per mark, and plans in words: each
// mark's service named with its mark, its servers without a port (the
// client's port kept). Applied to real tables, the plan is empty.
func TestKernLBFwmark(t *testing.T) {
	node := kernNode(t, `
services: mk: {
	mode: "nat", persistence: "900s"
	binds: ["203.0.113.100:80"]
	fwmarks: [1, 2]
	servers: {
		s1: address: "198.51.100.11"
		s2: {address: "198.51.100.12", weight: 2}
	}
	check: {kind: "tcp", port: 80}
}
`)
	svcs, err := KernLBConfig(node)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ks := range svcs {
		got = append(got, ks.LB.Name+": "+ks.LB.Describe())
	}
	want := []string{
		"mk-0: nat tcp 203.0.113.100:80, wrr, persistence 15m0s",
		"mk-1: nat tcp fwmark 1, wrr, persistence 15m0s",
		"mk-2: nat tcp fwmark 2, wrr, persistence 15m0s",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("translated:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	_, d := kernDriverNetns(t)
	var golden strings.Builder
	text, _ := kernPlanText(t, d, node)
	golden.WriteString("## first apply\n" + text + "\n")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Apply(ctx, node); err != nil {
		t.Fatal(err)
	}
	if text, p := kernPlanText(t, d, node); p.HasChanges() {
		t.Errorf("after Apply, the plan still changes:\n%s", text)
	}
	goldenfile.Check(t, filepath.Join("testdata", "kernlb-fwmark-plan.golden"), []byte(golden.String()))
}

// TestKernLBImportedFwmark: keepalived's own fwmark sample (the import
// corpus's acassen-fwmark.conf: virtual_server fwmark 1, NAT, rr,
// persistence_timeout 900, real servers without a port, TCP_CHECK on 80),
// imported by gitgw import, loaded and applied by the kernel driver in a
// gateway namespace, behaves as IPVS would: the packets the firewall marks
// (here to the VIP's ports 80 and 443) reach the servers on the port the
// client asked, the servers see the client's address, and one client's
// connections to both ports stay on one server.
func TestKernLBImportedFwmark(t *testing.T) {
	src, err := os.ReadFile("../cue/importer/testdata/corpus/keepalived/acassen-fwmark.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(src)
	for _, rw := range [][2]string{{"192.168.201.100", "198.51.100.11"}, {"192.168.201.101", "198.51.100.12"}} {
		if !strings.Contains(conf, rw[0]) {
			t.Fatalf("the corpus file no longer holds %s", rw[0])
		}
		conf = strings.ReplaceAll(conf, rw[0], rw[1])
	}
	l := newImportLab(t, conf, "80", "443")
	l.mark("tcp dport { 80, 443 }", 1)
	first := ""
	for i := range 8 {
		port := []string{"80", "443"}[i%2]
		srv, got, err := l.ask(importVIP, port)
		if err != nil {
			t.Fatal(err)
		}
		if got != port {
			t.Fatalf("connection %d to port %s reached %s on port %s, want the client's port kept", i, port, srv, got)
		}
		if first == "" {
			first = srv
		} else if srv != first {
			t.Fatalf("connection %d (port %s) went to %s, the first to %s: persistence_timeout 900 keeps a client on one server", i, port, srv, first)
		}
	}
}

// TestKernLBImportedGroup: a virtual_server_group (an address range, a
// second port, a firewall mark) imported and applied: each of its
// addresses and ports and its marked packets reach the servers (on their
// port, 80); a port the group does not list does not.
func TestKernLBImportedGroup(t *testing.T) {
	conf := `virtual_server_group web {
    203.0.113.100-101 80
    203.0.113.100 8080
    fwmark 5
}
virtual_server group web {
    delay_loop 6
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 198.51.100.11 80 {
        TCP_CHECK {
            connect_timeout 3
        }
    }
    real_server 198.51.100.12 80 {
        TCP_CHECK {
            connect_timeout 3
        }
    }
}
`
	l := newImportLab(t, conf, "80")
	l.gw.Run(t, "ip", "addr", "add", "203.0.113.101/32", "dev", "eth0")
	l.mark("tcp dport 9000", 5)
	for _, to := range [][2]string{{importVIP, "80"}, {"203.0.113.101", "80"}, {importVIP, "8080"}, {importVIP, "9000"}} {
		seen := map[string]bool{}
		for range 2 {
			srv, got, err := l.ask(to[0], to[1])
			if err != nil {
				t.Fatal(err)
			}
			if got != "80" {
				t.Fatalf("%s:%s reached %s on port %s, want the real_server's port 80", to[0], to[1], srv, got)
			}
			seen[srv] = true
		}
		if len(seen) != 2 {
			t.Errorf("rr sent two connections to %s:%s to %v, want both servers", to[0], to[1], seen)
		}
	}
	if _, _, err := l.ask(importVIP, "81"); err == nil {
		t.Errorf("a port the group does not list was forwarded")
	}
}

const importVIP, importClient = "203.0.113.100", "203.0.113.50"

// importLab is a client, a gateway holding importVIP with the kernel
// driver applying the site imported from a keepalived.conf, and two
// servers behind it (198.51.100.11 and .12) answering on ports.
type importLab struct {
	t      *testing.T
	cl, gw *lab.Netns
}

func newImportLab(t *testing.T, keepalivedConf string, ports ...string) *importLab {
	t.Helper()
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "nft")
	lab.SkipShort(t, "network namespaces")
	res, err := importer.Import(importer.Options{Keepalived: []importer.Input{{Node: "gw1", Path: "keepalived.conf", Data: []byte(keepalivedConf)}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Refused) > 0 {
		t.Fatalf("refused: %v", res.Refused)
	}
	dir := t.TempDir()
	if err := importer.WriteDir(dir, res.Files, false); err != nil {
		t.Fatal(err)
	}
	_, node, err := loader.Load(context.Background(), dir, "gw1")
	if err != nil {
		t.Fatal(err)
	}

	l := &importLab{t: t, cl: lab.NewNetns(t, "h1c"), gw: lab.NewNetns(t, "h1g")}
	lab.Veth(t, l.cl, "eth0", importClient+"/24", l.gw, "eth0", "203.0.113.11/24")
	l.gw.Run(t, "ip", "addr", "add", importVIP+"/32", "dev", "eth0")
	l.gw.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	back := lab.NewSwitch(t)
	back.Attach(t, l.gw, "eth1", "198.51.100.1/24")
	for i, a := range []string{"198.51.100.11", "198.51.100.12"} {
		s := lab.NewNetns(t, fmt.Sprintf("h1s%d", i+1))
		back.Attach(t, s, "eth0", a+"/24")
		s.Run(t, "ip", "route", "add", "default", "via", "198.51.100.1")
		for _, port := range ports {
			answerWithPeer(t, s, port, fmt.Sprintf("s%d", i+1))
		}
	}

	f, err := os.Open(l.gw.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	lb, err := kernlb.Open(int(f.Fd()), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	d := NewKernLBDriver(lb, KernLBOptions{}) // no checks: the servers stay up
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Apply(ctx, node); err != nil {
		t.Fatal(err)
	}
	return l
}

// mark plays the operator's firewall: packets to the VIP that match
// match get the mark, before the driver's dstnat chain.
func (l *importLab) mark(match string, mark int) {
	l.gw.Run(l.t, "nft", fmt.Sprintf("add table inet opfw; add chain inet opfw pre { type filter hook prerouting priority mangle; }; "+
		"add rule inet opfw pre ip daddr %s %s meta mark set %d", importVIP, match, mark))
}

// ask connects from the client to addr:port and returns the server that
// answered and the port it answered on, having checked that it saw the
// client's own address.
func (l *importLab) ask(addr, port string) (srv, srvPort string, err error) {
	var ans string
	err = l.cl.Do(func() error {
		c, err := net.DialTimeout("tcp4", net.JoinHostPort(addr, port), 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		ans, err = bufio.NewReader(c).ReadString('\n')
		return err
	})
	if err != nil {
		return "", "", fmt.Errorf("connection to %s:%s: %w", addr, port, err)
	}
	f := strings.Fields(ans)
	if len(f) != 3 || !strings.HasPrefix(f[2], importClient+":") {
		return "", "", fmt.Errorf("connection to %s:%s: answer %q, want a server, its port and the client's own address", addr, port, ans)
	}
	return f[0], f[1], nil
}

// answerWithPeer runs, in ns, a TCP server on port that answers each
// connection with "name port peer" and closes it, until the test ends.
func answerWithPeer(t *testing.T, ns *lab.Netns, port, name string) {
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", ":"+port)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s %s\n", name, port, c.RemoteAddr())
			c.Close()
		}
	}()
}
