package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitgw/gitgw/reconcile/control"
	"github.com/gitgw/gitgw/test/gitremote"
	"github.com/gitgw/gitgw/test/lab"
)

// The kernel modes end to end: a site with nat and dr services, applied by
// the real agent in namespaces, forwarding real TCP and UDP to real
// servers through the kernel (nftables), with the proxy's health checks
// driving the tables.

const (
	kernVIP    = "203.0.113.100"
	kernClient = "203.0.113.50"
)

// kernSite is a site with VI_1 (the VIP, 100 ms adverts) on gw1 and gw2
// and the given services.
func kernSite(services string) map[string]string {
	return map[string]string{
		"cue.mod/module.cue": "module: \"example.net/kernlb-e2e@v0\"\nlanguage: version: \"v0.17.0\"\n",
		"site.cue": `package site

site: {
	name: "kernlb-e2e"
	rollout: pairs: false
	bake: window: "0s"
}

nodes: {
	gw1: interfaces: eth0: addresses: ["203.0.113.11/24"]
	gw2: interfaces: eth0: addresses: ["203.0.113.12/24"]
}

vrrp: VI_1: {
	interface:       "eth0"
	vrid:            51
	version:         3
	advert_interval: "100ms"
	nodes: {gw1: priority: 150, gw2: priority: 100}
	vips: ["203.0.113.100/24"]
}
` + services,
	}
}

// kernServer is a real server: a TCP server answering each line, and a UDP
// server answering each datagram, with "<name> <client address seen>".
type kernServer struct {
	name string
	tcp  net.Listener
	udp  net.PacketConn
	mu   sync.Mutex
	// conns are the accepted connections, closed with the server.
	conns []net.Conn
}

func startKernServer(t *testing.T, ns *lab.Netns, name, tcpAddr, udpAddr string) *kernServer {
	t.Helper()
	s := &kernServer{name: name}
	if err := ns.Do(func() error {
		var err error
		if s.tcp, err = net.Listen("tcp4", tcpAddr); err != nil {
			return err
		}
		s.udp, err = net.ListenPacket("udp4", udpAddr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.tcp.Close(); s.udp.Close(); s.closeConns() })
	go func() {
		for {
			c, err := s.tcp.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			go func() {
				r := bufio.NewReader(c)
				for {
					if _, err := r.ReadString('\n'); err != nil {
						return
					}
					host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
					if _, err := fmt.Fprintf(c, "%s %s\n", name, host); err != nil {
						return
					}
				}
			}()
		}
	}()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := s.udp.ReadFrom(buf)
			if err != nil {
				return
			}
			_ = n
			host, _, _ := net.SplitHostPort(from.String())
			_, _ = s.udp.WriteTo([]byte(name+" "+host), from)
		}
	}()
	return s
}

func (s *kernServer) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}

// kernAsk sends a line on c and returns the answer's fields: server, seen.
func kernAsk(c net.Conn) (string, string, error) {
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "hello\n"); err != nil {
		return "", "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", "", err
	}
	f := strings.Fields(line)
	if len(f) != 2 {
		return "", "", fmt.Errorf("answer %q", line)
	}
	return f[0], f[1], nil
}

func kernDial(client *lab.Netns, port int) (net.Conn, error) {
	var c net.Conn
	err := client.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp4", net.JoinHostPort(kernVIP, fmt.Sprint(port)), 2*time.Second)
		return err
	})
	return c, err
}

// kernUDP sends one datagram from a fresh socket and returns the answer's
// fields.
func kernUDP(client *lab.Netns, port int) (string, string, error) {
	var c net.Conn
	if err := client.Do(func() error {
		var err error
		c, err = net.Dial("udp4", net.JoinHostPort(kernVIP, fmt.Sprint(port)))
		return err
	}); err != nil {
		return "", "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("hello")); err != nil {
		return "", "", err
	}
	buf := make([]byte, 200)
	n, err := c.Read(buf)
	if err != nil {
		return "", "", err
	}
	f := strings.Fields(string(buf[:n]))
	if len(f) != 2 {
		return "", "", fmt.Errorf("answer %q", buf[:n])
	}
	return f[0], f[1], nil
}

// kernStatus reads an agent's status over its socket.
func kernStatus(t *testing.T, sock string) (control.Status, string) {
	out, _, code := runGitgw(t, "status", "--json", "--socket", sock)
	var st control.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		return control.Status{}, out
	}
	return st, out
}

// kernServerStatus is "SERVICE/SERVER" → status of the kernel services.
func kernServerStatus(st control.Status) map[string]string {
	m := map[string]string{}
	for _, s := range st.Services {
		if s.Mode == "" {
			continue
		}
		for _, sv := range s.Servers {
			m[s.Name+"/"+sv.Name] = sv.Status
		}
	}
	return m
}

func vrrpState(st control.Status, name string) string {
	for _, in := range st.VRRP {
		if in.Name == name {
			return in.State
		}
	}
	return ""
}

// startKernAgent runs the agent of node in ns against repo.
func startKernAgent(t *testing.T, ns *lab.Netns, node string, repo *gitremote.Repo) (*netnsAgent, string) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "gitgw.sock")
	units := filepath.Join(dir, "units")
	ag := startNetnsAgent(t, ns, node,
		"--repo", repo.FileURL(), "--node", node, "--state-dir", filepath.Join(dir, "state"),
		"--interval", "1s", "--resync", "1h", "--status-coalesce", "0",
		"--socket", sock, "--listen", "",
		"--unit-dir", units, "--systemd-socket", filepath.Join(units, "none"))
	return ag, sock
}

// TestKernLBSiteDR: a site with a dr TCP service and a dr UDP service
// (Maglev), applied by the real agent on two gateways. The servers see the
// client's own address; a failover of gw1 loses none of the established
// connections, on either server, because gw2 built the same table from
// the same site: when gw1 dies (its switch port cut), and when its agent
// is killed (SIGKILL: the VRRP guardian hands mastership over, and the
// tables forward on without the agent meanwhile). A server that stops
// answering its check then leaves gw2's tables and new connections all go
// to the other.
func TestKernLBSiteDR(t *testing.T) {
	for _, tc := range []struct {
		name string
		kill func(t *testing.T, sw *lab.Switch, port string, ag *netnsAgent)
	}{
		{"node death", func(t *testing.T, sw *lab.Switch, port string, _ *netnsAgent) { sw.SetPort(t, port, false) }},
		{"agent SIGKILL", func(t *testing.T, _ *lab.Switch, _ string, ag *netnsAgent) {
			if err := ag.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { kernDRFailover(t, tc.kill) })
	}
}

func kernDRFailover(t *testing.T, kill func(t *testing.T, sw *lab.Switch, port string, ag *netnsAgent)) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "git", "sysctl")
	gitremote.RequireGit(t)
	repo := gitremote.NewBare(t)
	repo.Commit(t, "main", kernSite(`
services: web: {
	mode:      "dr"
	interface: "eth0"
	balance:   "maglev"
	binds: ["203.0.113.100:80"]
	servers: {
		r1: address: "203.0.113.21:80"
		r2: address: "203.0.113.22:80"
	}
	check: {kind: "tcp", interval: "200ms", rise: 1, fall: 2}
}
services: dns: {
	mode:      "dr"
	protocol:  "udp"
	interface: "eth0"
	balance:   "maglev"
	binds: ["203.0.113.100:5353"]
	// UDP is checked on the servers' TCP port.
	servers: {
		r1: {address: "203.0.113.21:5353", check_port: 80}
		r2: {address: "203.0.113.22:5353", check_port: 80}
	}
	check: {kind: "tcp", interval: "200ms", rise: 1, fall: 2}
}
`), "lab: dr services")

	sw := lab.NewSwitch(t)
	client := lab.NewNetns(t, "kc")
	sw.Attach(t, client, "eth0", kernClient+"/24")
	var gws [2]*lab.Netns
	var ports [2]string
	for i := range gws {
		gws[i] = lab.NewNetns(t, fmt.Sprintf("kg%d", i+1))
		ports[i] = sw.Attach(t, gws[i], "eth0", fmt.Sprintf("203.0.113.%d/24", 11+i))
	}
	servers := map[string]*kernServer{}
	for i, name := range []string{"r1", "r2"} {
		ns := lab.NewNetns(t, "k"+name)
		addr := fmt.Sprintf("203.0.113.%d", 21+i)
		sw.Attach(t, ns, "eth0", addr+"/24")
		// A DR real server: the VIP on lo, never answered for by ARP.
		ns.Run(t, "ip", "addr", "add", kernVIP+"/32", "dev", "lo")
		ns.Run(t, "sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2")
		// Its UDP server answers from the VIP (bound to the wildcard it
		// would answer from its own address, which the client ignores).
		servers[name] = startKernServer(t, ns, name, "0.0.0.0:80", kernVIP+":5353")
	}

	ag1, sock1 := startKernAgent(t, gws[0], "gw1", repo)
	ag2, sock2 := startKernAgent(t, gws[1], "gw2", repo)
	allUp := func(sock string) func() (bool, string) {
		return func() (bool, string) {
			ag1.alive(t, "servers up")
			ag2.alive(t, "servers up")
			st, out := kernStatus(t, sock)
			m := kernServerStatus(st)
			return len(m) == 4 && m["web/r1"] == "UP" && m["web/r2"] == "UP" && m["dns/r1"] == "UP" && m["dns/r2"] == "UP", out
		}
	}
	nicEventually(t, 90*time.Second, "gw1's kernel servers up", allUp(sock1))
	nicEventually(t, 90*time.Second, "gw2's kernel servers up", allUp(sock2))
	nicEventually(t, 30*time.Second, "gw1 master of VI_1", func() (bool, string) {
		st, out := kernStatus(t, sock1)
		return vrrpState(st, "VI_1") == "MASTER", out
	})

	// Established connections through gw1, on both servers, and a UDP
	// stream.
	stream := startKernUDPStream(t, client, 5353)
	const n = 50
	var conns []net.Conn
	on := map[string]int{}
	for i := 0; i < n; i++ {
		c, err := kernDial(client, 80)
		if err != nil {
			t.Fatalf("connection %d through gw1: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		srv, seen, err := kernAsk(c)
		if err != nil {
			t.Fatalf("connection %d through gw1: %v", i, err)
		}
		if seen != kernClient {
			t.Fatalf("server %s saw %s, want the client's own address %s", srv, seen, kernClient)
		}
		on[srv]++
		conns = append(conns, c)
	}
	if on["r1"] == 0 || on["r2"] == 0 {
		t.Fatalf("%d connections spread %v: Maglev should use both servers", n, on)
	}
	udpOn := map[string]int{}
	for i := 0; i < 20; i++ {
		srv, seen, err := kernUDP(client, 5353)
		if err != nil {
			t.Fatalf("UDP datagram %d: %v", i, err)
		}
		if seen != kernClient {
			t.Fatalf("UDP server %s saw %s, want %s", srv, seen, kernClient)
		}
		udpOn[srv]++
	}
	t.Logf("TCP through gw1: %v; UDP: %v", on, udpOn)

	// gw1 dies; gw2 takes VI_1 and the flows.
	kill(t, sw, ports[0], ag1)
	nicEventually(t, 30*time.Second, "gw2 master of VI_1", func() (bool, string) {
		ag2.alive(t, "failover")
		st, out := kernStatus(t, sock2)
		return vrrpState(st, "VI_1") == "MASTER", out
	})
	lost := 0
	for i, c := range conns {
		if _, _, err := kernAsk(c); err != nil {
			t.Errorf("established connection %d lost across the failover: %v", i, err)
			lost++
		}
	}
	// The stream goes on through gw2: 20 more answers.
	before := stream.answered.Load()
	nicEventually(t, 10*time.Second, "the UDP stream answered through gw2", func() (bool, string) {
		got := stream.answered.Load()
		return got >= before+20, fmt.Sprintf("%d answers", got)
	})
	us := stream.stop()
	t.Logf("failover to gw2: %d of %d established connections lost; UDP stream: %s", lost, n, us)

	// r2 stops answering: its check fails on gw2, it leaves the tables of
	// both services, and every new flow goes to r1.
	servers["r2"].tcp.Close()
	nicEventually(t, 30*time.Second, "r2 down on gw2", func() (bool, string) {
		st, out := kernStatus(t, sock2)
		m := kernServerStatus(st)
		return m["web/r2"] == "DOWN" && m["dns/r2"] == "DOWN" && m["web/r1"] == "UP", out
	})
	for i := 0; i < 20; i++ {
		c, err := kernDial(client, 80)
		if err != nil {
			t.Fatalf("new connection %d with r2 down: %v", i, err)
		}
		srv, _, err := kernAsk(c)
		c.Close()
		if err != nil || srv != "r1" {
			t.Fatalf("new connection %d with r2 down: answered by %q (%v), want r1", i, srv, err)
		}
		if srv, _, err := kernUDP(client, 5353); err != nil || srv != "r1" {
			t.Fatalf("datagram %d with r2 down: answered by %q (%v), want r1", i, srv, err)
		}
	}
}

// TestKernLBSiteNAT: a nat TCP service and a nat UDP service on one
// gateway, the servers behind it; the servers see the client's address;
// a table deleted by hand is restored by the agent's next pass (drift);
// an operator's drain override takes a server out of new flows; a server
// whose check fails leaves both services.
func TestKernLBSiteNAT(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "git", "nft")
	gitremote.RequireGit(t)
	repo := gitremote.NewBare(t)
	repo.Commit(t, "main", kernSite(`
nodes: [_]: tuning: sysctls: {"net.ipv4.ip_forward": 1}
nodes: gw1: interfaces: eth1: addresses: ["198.51.100.1/24"]
services: web: {
	mode:    "nat"
	balance: "roundrobin"
	binds: ["203.0.113.100:80"]
	servers: {
		s1: address: "198.51.100.11:8080"
		s2: address: "198.51.100.12:8080"
	}
	check: {kind: "tcp", interval: "200ms", rise: 1, fall: 2}
}
services: dns: {
	mode:     "nat"
	protocol: "udp"
	balance:  "roundrobin"
	binds: ["203.0.113.100:53"]
	servers: {
		s1: {address: "198.51.100.11:5353", check_port: 8080}
		s2: {address: "198.51.100.12:5353", check_port: 8080}
	}
	check: {kind: "tcp", interval: "200ms", rise: 1, fall: 2}
}
`), "lab: nat services")

	sw, back := lab.NewSwitch(t), lab.NewSwitch(t)
	client := lab.NewNetns(t, "nc")
	sw.Attach(t, client, "eth0", kernClient+"/24")
	gw := lab.NewNetns(t, "ng1")
	sw.Attach(t, gw, "eth0", "203.0.113.11/24")
	back.Attach(t, gw, "eth1", "198.51.100.1/24")
	servers := map[string]*kernServer{}
	for i, name := range []string{"s1", "s2"} {
		ns := lab.NewNetns(t, "n"+name)
		back.Attach(t, ns, "eth0", fmt.Sprintf("198.51.100.%d/24", 11+i))
		ns.Run(t, "ip", "route", "add", "default", "via", "198.51.100.1")
		servers[name] = startKernServer(t, ns, name, "0.0.0.0:8080", "0.0.0.0:5353")
	}
	ag, sock := startKernAgent(t, gw, "gw1", repo)
	nicEventually(t, 90*time.Second, "gw1 master with its kernel servers up", func() (bool, string) {
		ag.alive(t, "servers up")
		st, out := kernStatus(t, sock)
		m := kernServerStatus(st)
		return vrrpState(st, "VI_1") == "MASTER" && len(m) == 4 && m["web/s1"] == "UP" && m["web/s2"] == "UP" && m["dns/s1"] == "UP" && m["dns/s2"] == "UP", out
	})

	spread := func(what string) map[string]int {
		t.Helper()
		on := map[string]int{}
		for i := 0; i < 10; i++ {
			c, err := kernDial(client, 80)
			if err != nil {
				t.Fatalf("%s: connection %d: %v", what, i, err)
			}
			srv, seen, err := kernAsk(c)
			c.Close()
			if err != nil {
				t.Fatalf("%s: connection %d: %v", what, i, err)
			}
			if seen != kernClient {
				t.Fatalf("%s: server %s saw %s, want the client's own address %s", what, srv, seen, kernClient)
			}
			on[srv]++
			srv, seen, err = kernUDP(client, 53)
			if err != nil || seen != kernClient {
				t.Fatalf("%s: datagram %d: %q saw %q (%v)", what, i, srv, seen, err)
			}
			on["udp "+srv]++
		}
		return on
	}
	if on := spread("nat"); on["s1"] == 0 || on["s2"] == 0 || on["udp s1"] == 0 || on["udp s2"] == 0 {
		t.Fatalf("round robin over both servers: %v", on)
	}

	// By hand: the agent's table goes. The next pass restores it.
	gw.Run(t, "nft", "delete", "table", "inet", "gitgw")
	// The pass writes the table, then counts the drift it corrected: wait
	// for both, or a status read between the two finds no drift yet.
	nicEventually(t, 30*time.Second, "the table restored and the drift counted", func() (bool, string) {
		out, err := gw.Try("nft", "list", "table", "inet", "gitgw")
		if err != nil {
			return false, out
		}
		st, sout := kernStatus(t, sock)
		return st.DriftCorrected > 0, sout
	})
	spread("after the restore")

	// The operator drains s2 at run time: quiescent, new flows go to s1.
	if out, errs, code := runGitgw(t, "override", "drain", "web/s2", "--socket", sock); code != 0 {
		t.Fatalf("override drain: %d %s %s", code, out, errs)
	}
	nicEventually(t, 30*time.Second, "s2 drained", func() (bool, string) {
		st, out := kernStatus(t, sock)
		return kernServerStatus(st)["web/s2"] == "DRAIN", out
	})
	if on := spread("s2 drained"); on["s2"] != 0 || on["udp s2"] == 0 {
		t.Fatalf("s2 drained in web only: %v", on)
	}
	if out, errs, code := runGitgw(t, "override", "clear", "web/s2", "--socket", sock); code != 0 {
		t.Fatalf("override clear: %d %s %s", code, out, errs)
	}
	nicEventually(t, 30*time.Second, "s2 back", func() (bool, string) {
		st, out := kernStatus(t, sock)
		return kernServerStatus(st)["web/s2"] == "UP", out
	})

	servers["s2"].tcp.Close()
	nicEventually(t, 30*time.Second, "s2 down", func() (bool, string) {
		st, out := kernStatus(t, sock)
		m := kernServerStatus(st)
		return m["web/s2"] == "DOWN" && m["dns/s2"] == "DOWN", out
	})
	if on := spread("s2 down"); on["s2"] != 0 || on["udp s2"] != 0 {
		t.Fatalf("s2 is down but took flows: %v", on)
	}
}

// natSyncSite is the NAT failover site: the servers' route back
// (198.51.100.1, VI_2) moves with the VIP (VI_1) when a gateway dies, and each gateway replicates its nat
// flows to the other (conntrack_sync) when sync is set.
func natSyncSite(sync bool) map[string]string {
	// No mid-stream pickup (conntrackd's advice): a flow the new master
	// does not know is not scheduled again, possibly to another server.
	s := `
nodes: [_]: tuning: sysctls: {"net.ipv4.ip_forward": 1, "net.netfilter.nf_conntrack_tcp_loose": 0}
nodes: gw1: interfaces: eth1: addresses: ["198.51.100.2/24"]
nodes: gw2: interfaces: eth1: addresses: ["198.51.100.3/24"]
vrrp: VI_2: {
	interface:       "eth1"
	vrid:            52
	version:         3
	advert_interval: "100ms"
	nodes: {gw1: priority: 150, gw2: priority: 100}
	vips: ["198.51.100.1/24"]
}
services: web: {
	mode:    "nat"
	balance: "roundrobin"
	binds: ["203.0.113.100:80"]
	servers: {
		s1: address: "198.51.100.11:8080"
		s2: address: "198.51.100.12:8080"
	}
	check: {kind: "tcp", interval: "200ms", rise: 1, fall: 2}
}
`
	if sync {
		s += `
nodes: gw1: conntrack_sync: peer: "203.0.113.12"
nodes: gw2: conntrack_sync: peer: "203.0.113.11"
`
	}
	return kernSite(s)
}

// establishedTo counts the established TCP entries to VIP:80 in ns's
// conntrack table.
func establishedTo(ns *lab.Netns) (int, string) {
	out, err := ns.Try("cat", "/proc/net/nf_conntrack")
	if err != nil {
		return 0, err.Error()
	}
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, " ESTABLISHED ") && strings.Contains(line, "dst="+kernVIP+" ") && strings.Contains(line, "dport=80 ") {
			n++
		}
	}
	return n, fmt.Sprintf("%d established", n)
}

// TestKernLBSiteNATFailoverSync: two gateways with a nat service and
// conntrack_sync to each other. gw1 dies with 30 established connections
// (cut off both segments, or its agent killed with SIGKILL); gw2, which
// received their conntrack entries, carries all of them on, to the server
// each was on.
func TestKernLBSiteNATFailoverSync(t *testing.T) {
	for _, tc := range []struct {
		name string
		kill func(t *testing.T, sw, back *lab.Switch, front, backPort string, ag *netnsAgent)
	}{
		{"node death", func(t *testing.T, sw, back *lab.Switch, front, backPort string, _ *netnsAgent) {
			sw.SetPort(t, front, false)
			back.SetPort(t, backPort, false)
		}},
		{"agent SIGKILL", func(t *testing.T, _, _ *lab.Switch, _, _ string, ag *netnsAgent) {
			if err := ag.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { kernNATFailover(t, tc.kill) })
	}
}

func kernNATFailover(t *testing.T, kill func(t *testing.T, sw, back *lab.Switch, front, backPort string, ag *netnsAgent)) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "git")
	gitremote.RequireGit(t)
	repo := gitremote.NewBare(t)
	repo.Commit(t, "main", natSyncSite(true), "lab: nat with conntrack sync")

	sw, back := lab.NewSwitch(t), lab.NewSwitch(t)
	client := lab.NewNetns(t, "fc")
	sw.Attach(t, client, "eth0", kernClient+"/24")
	var gws [2]*lab.Netns
	var front, backPorts [2]string
	for i := range gws {
		gws[i] = lab.NewNetns(t, fmt.Sprintf("fg%d", i+1))
		front[i] = sw.Attach(t, gws[i], "eth0", fmt.Sprintf("203.0.113.%d/24", 11+i))
		backPorts[i] = back.Attach(t, gws[i], "eth1", fmt.Sprintf("198.51.100.%d/24", 2+i))
	}
	for i, name := range []string{"s1", "s2"} {
		ns := lab.NewNetns(t, "f"+name)
		back.Attach(t, ns, "eth0", fmt.Sprintf("198.51.100.%d/24", 11+i))
		ns.Run(t, "ip", "route", "add", "default", "via", "198.51.100.1")
		startKernServer(t, ns, name, "0.0.0.0:8080", "0.0.0.0:5353")
	}
	ag1, sock1 := startKernAgent(t, gws[0], "gw1", repo)
	ag2, sock2 := startKernAgent(t, gws[1], "gw2", repo)
	for _, g := range []struct {
		ag   *netnsAgent
		sock string
	}{{ag1, sock1}, {ag2, sock2}} {
		nicEventually(t, 90*time.Second, g.ag.name+"'s servers up", func() (bool, string) {
			g.ag.alive(t, "servers up")
			st, out := kernStatus(t, g.sock)
			m := kernServerStatus(st)
			return m["web/s1"] == "UP" && m["web/s2"] == "UP", out
		})
	}
	nicEventually(t, 30*time.Second, "gw1 master of VI_1", func() (bool, string) {
		st, out := kernStatus(t, sock1)
		return vrrpState(st, "VI_1") == "MASTER", out
	})

	const n = 50
	var conns []net.Conn
	was := make([]string, n)
	for i := 0; i < n; i++ {
		c, err := kernDial(client, 80)
		if err != nil {
			t.Fatalf("connection %d through gw1: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		if was[i], _, err = kernAsk(c); err != nil {
			t.Fatalf("connection %d through gw1: %v", i, err)
		}
		conns = append(conns, c)
	}
	nicEventually(t, 30*time.Second, "gw2 holding the flows", func() (bool, string) {
		got, seen := establishedTo(gws[1])
		return got >= n, seen
	})

	kill(t, sw, back, front[0], backPorts[0], ag1)
	nicEventually(t, 30*time.Second, "gw2 master of VI_1", func() (bool, string) {
		ag2.alive(t, "failover")
		st, out := kernStatus(t, sock2)
		return vrrpState(st, "VI_1") == "MASTER", out
	})
	lost := 0
	for i, c := range conns {
		srv, _, err := kernAsk(c)
		if err != nil || srv != was[i] {
			t.Errorf("connection %d (on %s) across the failover: answered by %q, %v", i, was[i], srv, err)
			lost++
		}
	}
	t.Logf("nat failover to gw2 with conntrack sync: %d of %d established connections lost", lost, n)
}

// kernUDPStream sends a datagram every 10 ms from one socket (one flow)
// and records the answers: the longest time without one says how long a
// failover interrupted the flow.
type kernUDPStream struct {
	quit     chan struct{}
	done     chan kernUDPStats
	answered atomic.Int64
}

type kernUDPStats struct {
	sent, answered int
	maxGap         time.Duration
}

func (u kernUDPStats) String() string {
	return fmt.Sprintf("%d of %d datagrams answered, longest gap %v", u.answered, u.sent, u.maxGap.Round(time.Millisecond))
}

func startKernUDPStream(t *testing.T, client *lab.Netns, port int) *kernUDPStream {
	t.Helper()
	var c net.Conn
	if err := client.Do(func() error {
		var err error
		c, err = net.Dial("udp4", net.JoinHostPort(kernVIP, fmt.Sprint(port)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s := &kernUDPStream{quit: make(chan struct{}), done: make(chan kernUDPStats, 1)}
	answers := make(chan time.Time, 1024)
	go func() {
		buf := make([]byte, 200)
		for {
			if _, err := c.Read(buf); err != nil {
				if errors.Is(err, net.ErrClosed) {
					close(answers)
					return
				}
				continue
			}
			answers <- time.Now()
		}
	}()
	go func() {
		var st kernUDPStats
		last := time.Now()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.quit:
				c.Close()
				for range answers {
				}
				s.done <- st
				return
			case <-tick.C:
				if _, err := c.Write([]byte("ping")); err == nil {
					st.sent++
				}
			case at, ok := <-answers:
				if !ok {
					continue
				}
				st.answered++
				s.answered.Add(1)
				st.maxGap = max(st.maxGap, at.Sub(last))
				last = at
			}
		}
	}()
	t.Cleanup(func() {
		select {
		case <-s.quit:
		default:
			s.stop()
		}
	})
	return s
}

func (s *kernUDPStream) stop() kernUDPStats {
	close(s.quit)
	return <-s.done
}
