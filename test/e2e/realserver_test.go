package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/gitremote"
	"github.com/gitgw/gitgw/test/lab"
)

// realServerSite is kernSite with node r1, the real server of the dr
// service web that gw1 runs; extra is appended.
func realServerSite(extra string) map[string]string {
	return kernSite(`
nodes: r1: interfaces: eth0: addresses: ["203.0.113.21/24"]
services: web: {
	nodes: ["gw1"]
	mode:      "dr"
	interface: "eth0"
	balance:   "maglev"
	binds: ["203.0.113.100:80"]
	servers: r1: address: "203.0.113.21:80"
	check: {kind: "tcp", interval: "200ms", rise: 1, fall: 2}
}
` + extra)
}

// TestKernLBSiteDRRealServer: a DR real server set up by the real agent
// running on it (--node r1), from the site alone. Before its agent runs,
// the gateway forwards to r1 and the flow fails (r1 does not hold the VIP);
// with the VIP on lo but the ARP knobs left alone, r1 answers ARP for the
// VIP and takes it from the gateway; once its agent has run, the client is
// answered by r1 from the VIP, r1 sees the client's own address, and r1
// no longer answers ARP for the VIP. A VIP and a knob changed by hand are
// put back (drift). When the site says real_server "off",
// the agent undoes it: the VIP goes and the knobs get their values back.
func TestKernLBSiteDRRealServer(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "git", "sysctl")
	gitremote.RequireGit(t)
	repo := gitremote.NewBare(t)
	repo.Commit(t, "main", realServerSite(""), "lab: dr with a real server in the site")

	sw := lab.NewSwitch(t)
	client := lab.NewNetns(t, "hc")
	sw.Attach(t, client, "eth0", kernClient+"/24")
	gw := lab.NewNetns(t, "hg1")
	gwPort := sw.Attach(t, gw, "eth0", "203.0.113.11/24")
	r1 := lab.NewNetns(t, "hr1")
	sw.Attach(t, r1, "eth0", "203.0.113.21/24")
	startKernServer(t, r1, "r1", "0.0.0.0:80", "0.0.0.0:5353")
	r1MAC := macOf(t, r1, "eth0")

	ag, sock := startKernAgent(t, gw, "gw1", repo)
	nicEventually(t, 90*time.Second, "gw1 master with r1 up", func() (bool, string) {
		ag.alive(t, "r1 up")
		st, out := kernStatus(t, sock)
		return vrrpState(st, "VI_1") == "MASTER" && kernServerStatus(st)["web/r1"] == "UP", out
	})

	// No real server setup: gw1 forwards the frames to r1, which drops
	// them (the VIP is not its address).
	if c, err := kernDial(client, 80); err == nil {
		srv, seen, err := kernAsk(c)
		c.Close()
		t.Fatalf("without the VIP on r1 the flow works (%s %s %v): the test cannot tell the setup's effect", srv, seen, err)
	}

	// Half a setup, by hand: the VIP on lo, the ARP knobs left at 0. With
	// the gateway cut off, r1 answers the client's ARP for the VIP and
	// serves it directly: the VIP is stolen from the gateway.
	r1.Run(t, "ip", "addr", "add", kernVIP+"/32", "dev", "lo")
	stolen := func() (string, error) {
		sw.SetPort(t, gwPort, false)
		defer sw.SetPort(t, gwPort, true)
		client.Run(t, "ip", "neigh", "flush", "dev", "eth0")
		c, err := kernDial(client, 80)
		if err != nil {
			return "", err
		}
		defer c.Close()
		srv, _, err := kernAsk(c)
		return srv + " at " + neighOf(t, client, kernVIP), err
	}
	if got, err := stolen(); err != nil || got != "r1 at "+r1MAC {
		t.Fatalf("the control case: with arp_ignore 0 r1 should answer ARP for the VIP, got %q (%v)", got, err)
	}
	r1.Run(t, "ip", "addr", "del", kernVIP+"/32", "dev", "lo")
	client.Run(t, "ip", "neigh", "flush", "dev", "eth0")

	// The agent on r1 sets it up from the site.
	rag, rsock := startKernAgent(t, r1, "r1", repo)
	setUp := func() (bool, string) {
		rag.alive(t, "the real server set up")
		addrs := r1.Run(t, "ip", "-4", "-o", "addr", "show", "dev", "lo")
		knobs := strings.Fields(r1.Run(t, "sysctl", "-n", "net.ipv4.conf.all.arp_ignore", "net.ipv4.conf.all.arp_announce",
			"net.ipv4.conf.eth0.arp_ignore", "net.ipv4.conf.eth0.arp_announce"))
		return strings.Contains(addrs, kernVIP+"/32") && strings.Join(knobs, " ") == "1 2 1 2", addrs + fmt.Sprint(knobs)
	}
	nicEventually(t, 60*time.Second, "r1 set up by its agent", setUp)

	for i := 0; i < 10; i++ {
		c, err := kernDial(client, 80)
		if err != nil {
			t.Fatalf("connection %d through gw1 to r1: %v", i, err)
		}
		srv, seen, err := kernAsk(c)
		// The client dialled the VIP: the answer comes from the VIP.
		if ra := c.RemoteAddr().(*net.TCPAddr).IP.String(); ra != kernVIP {
			t.Errorf("connection %d: answered from %s", i, ra)
		}
		c.Close()
		if err != nil || srv != "r1" || seen != kernClient {
			t.Fatalf("connection %d: answered by %q, seeing %q (%v); want r1 seeing the client's own %s", i, srv, seen, err, kernClient)
		}
	}
	if got, err := stolen(); err == nil {
		t.Fatalf("with the knobs set, r1 still answers ARP for the VIP: %s", got)
	}
	// By hand on r1: the VIP deleted, arp_announce reset. Its agent puts
	// them back (drift mode correct), well before its hourly resync.
	r1.Run(t, "ip", "addr", "del", kernVIP+"/32", "dev", "lo")
	r1.Run(t, "sysctl", "-qw", "net.ipv4.conf.all.arp_announce=0")
	nicEventually(t, 30*time.Second, "r1's setup restored by its agent", setUp)
	nicEventually(t, 10*time.Second, "the drift counted", func() (bool, string) {
		st, out := kernStatus(t, rsock)
		return st.DriftCorrected > 0, out
	})

	// The site turns r1's setup off: its agent undoes it.
	repo.Commit(t, "main", realServerSite(`nodes: r1: real_server: "off"`+"\n"), "lab: r1 set up by other means")
	nicEventually(t, 60*time.Second, "r1's setup undone by its agent", func() (bool, string) {
		rag.alive(t, "the undo")
		addrs := r1.Run(t, "ip", "-4", "-o", "addr", "show", "dev", "lo")
		knobs := strings.Fields(r1.Run(t, "sysctl", "-n", "net.ipv4.conf.all.arp_ignore", "net.ipv4.conf.all.arp_announce",
			"net.ipv4.conf.eth0.arp_ignore", "net.ipv4.conf.eth0.arp_announce"))
		return !strings.Contains(addrs, kernVIP) && strings.Join(knobs, " ") == "0 0 0 0", addrs + fmt.Sprint(knobs)
	})
}

// macOf is the MAC address of ifname in ns.
func macOf(t *testing.T, ns *lab.Netns, ifname string) string {
	t.Helper()
	f := strings.Fields(ns.Run(t, "ip", "-o", "link", "show", ifname))
	for i, w := range f {
		if w == "link/ether" && i+1 < len(f) {
			return f[i+1]
		}
	}
	t.Fatalf("no MAC for %s in %v", ifname, f)
	return ""
}

// neighOf is the MAC ns's neighbour table holds for addr ("" if none).
func neighOf(t *testing.T, ns *lab.Netns, addr string) string {
	t.Helper()
	f := strings.Fields(ns.Run(t, "ip", "neigh", "show", addr))
	for i, w := range f {
		if w == "lladdr" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}
