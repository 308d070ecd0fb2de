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
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "nft")
	lab.SkipShort(t, "network namespaces")
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
	res, err := importer.Import(importer.Options{Keepalived: []importer.Input{{Node: "gw1", Path: "acassen-fwmark.conf", Data: []byte(conf)}}})
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

	const vip, client = "203.0.113.100", "203.0.113.50"
	cl, gw := lab.NewNetns(t, "h1c"), lab.NewNetns(t, "h1g")
	lab.Veth(t, cl, "eth0", client+"/24", gw, "eth0", "203.0.113.11/24")
	gw.Run(t, "ip", "addr", "add", vip+"/32", "dev", "eth0")
	gw.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	back := lab.NewSwitch(t)
	back.Attach(t, gw, "eth1", "198.51.100.1/24")
	for i, a := range []string{"198.51.100.11", "198.51.100.12"} {
		s := lab.NewNetns(t, fmt.Sprintf("h1s%d", i+1))
		back.Attach(t, s, "eth0", a+"/24")
		s.Run(t, "ip", "route", "add", "default", "via", "198.51.100.1")
		for _, port := range []string{"80", "443"} {
			answerWithPeer(t, s, port, fmt.Sprintf("s%d", i+1))
		}
	}
	// The operator's firewall marks what the fwmark service takes.
	gw.Run(t, "nft", "add table inet opfw; add chain inet opfw pre { type filter hook prerouting priority mangle; }; "+
		"add rule inet opfw pre ip daddr "+vip+" tcp dport { 80, 443 } meta mark set 1")

	f, err := os.Open(gw.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lb, err := kernlb.Open(int(f.Fd()), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	d := NewKernLBDriver(lb, KernLBOptions{})
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Apply(ctx, node); err != nil {
		t.Fatal(err)
	}

	first := ""
	for i := range 8 {
		port := []string{"80", "443"}[i%2]
		var ans string
		err := cl.Do(func() error {
			c, err := net.DialTimeout("tcp4", net.JoinHostPort(vip, port), 2*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			ans, err = bufio.NewReader(c).ReadString('\n')
			return err
		})
		if err != nil {
			t.Fatalf("connection %d to %s:%s: %v", i, vip, port, err)
		}
		f := strings.Fields(ans)
		if len(f) != 3 || f[1] != port || !strings.HasPrefix(f[2], client+":") {
			t.Fatalf("connection %d to port %s: answer %q, want a server, port %s and the client's own address", i, port, ans, port)
		}
		if first == "" {
			first = f[0]
		} else if f[0] != first {
			t.Fatalf("connection %d (port %s) went to %s, the first to %s: persistence_timeout 900 keeps a client on one server", i, port, f[0], first)
		}
	}
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
