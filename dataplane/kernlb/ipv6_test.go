package kernlb

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
	"golang.org/x/sys/unix"
)

// The IPv6 lab's addresses: the client's segment 2001:db8:1::/64 (and
// 203.0.113.0/24 for the IPv4 service beside), the servers' segment
// 2001:db8:2::/64 (and 198.51.100.0/24) behind the gateway, which the
// servers use as their route back.
const (
	vip6    = "2001:db8:1::100"
	client6 = "2001:db8:1::50"
	// client6b is the client's second address (persistence by source);
	// the kernel may pick either as a connection's source.
	client6b = "2001:db8:1::51"
	local6   = "2001:db8:2::2" // the gateway's second address on the servers' side (fnat)
)

var server6 = [2]string{"2001:db8:2::11", "2001:db8:2::12"}

// v6Lab is a client, one gateway and two dual-stack servers; front is
// the client's segment, back the servers' (nat), with the gateway's ports
// on them (for the benchmark's NAPI threads).
type v6Lab struct {
	client, gw          *lab.Netns
	srv                 [2]*lab.Netns
	front, back         *lab.Switch
	frontPort, backPort string
}

// noDAD turns duplicate address detection off in a namespace of the lab
// (its own sysctls only), so that addresses, link-local ones included,
// are usable at once rather than after DAD's second.
func noDAD(t testing.TB, ns *lab.Netns) {
	t.Helper()
	for _, k := range []string{"all", "default"} {
		ns.Run(t, "sysctl", "-qw", "net.ipv6.conf."+k+".accept_dad=0")
	}
}

func newV6Lab(t testing.TB) *v6Lab {
	t.Helper()
	lab.RequireRoot(t)
	lab.SkipShort(t, "network namespaces")
	lab.RequireCommand(t, "nft", "sysctl")
	l := &v6Lab{}
	front, back := lab.NewSwitch(t), lab.NewSwitch(t)
	l.front, l.back = front, back
	noDAD(t, front.NS)
	noDAD(t, back.NS)
	l.client = lab.NewNetns(t, "h6cl")
	l.gw = lab.NewNetns(t, "h6gw")
	for _, ns := range []*lab.Netns{l.client, l.gw} {
		noDAD(t, ns)
	}
	front.Attach(t, l.client, "eth0", client6+"/64", client6b+"/64", clientIP+"/24")
	l.frontPort = front.Attach(t, l.gw, "eth0", "2001:db8:1::11/64", vip6+"/128", "203.0.113.11/24", vip+"/32")
	l.backPort = back.Attach(t, l.gw, "eth1", "2001:db8:2::1/64", local6+"/64", "198.51.100.1/24")
	l.gw.Run(t, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	l.gw.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	for i := range l.srv {
		s := lab.NewNetns(t, fmt.Sprintf("h6s%d", i+1))
		noDAD(t, s)
		back.Attach(t, s, "eth0", server6[i]+"/64", fmt.Sprintf("198.51.100.%d/24", 11+i))
		s.Run(t, "ip", "-6", "route", "add", "default", "via", "2001:db8:2::1")
		s.Run(t, "ip", "route", "add", "default", "via", "198.51.100.1")
		serveBoth(t, s, fmt.Sprintf("s%d", i+1), "8080")
		l.srv[i] = s
	}
	return l
}

// serveBoth runs, in ns, a TCP and a UDP server on port over both families,
// answering each line or datagram with "<name> <remote address>".
func serveBoth(t testing.TB, ns *lab.Netns, name, port string) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	if err := ns.Do(func() error {
		var err error
		if ln, err = net.Listen("tcp", ":"+port); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", ":"+port)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	echoServers(t, name, ln, pc)
}

// ask opens a connection (network "tcp" or "udp") from the client, from
// laddr if not empty, to dst, sends one line and returns which server
// answered and the client address it saw.
func (l *v6Lab) ask(network, laddr, dst string) (server, seen string, err error) {
	var c net.Conn
	err = l.client.Do(func() error {
		d := net.Dialer{Timeout: 2 * time.Second}
		if laddr != "" {
			if network == "udp" {
				d.LocalAddr = &net.UDPAddr{IP: net.ParseIP(laddr)}
			} else {
				d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(laddr)}
			}
		}
		var err error
		c, err = d.Dial(network, dst)
		return err
	})
	if err != nil {
		return "", "", err
	}
	defer c.Close()
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

func (l *v6Lab) lb(t testing.TB) *LB {
	f, err := os.Open(l.gw.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	lb, err := Open(int(f.Fd()), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lb.Close() })
	return lb
}

// v6Service is a nat service on the IPv6 VIP over both IPv6 servers.
func v6Service(name string, port uint16, proto Protocol, sched Scheduler) Service {
	s := Service{Name: name, VIP: mustAddr(vip6), Port: port, Protocol: proto, Mode: NAT, Scheduler: sched}
	for _, a := range server6 {
		s.Servers = append(s.Servers, Server{Address: mustAddr(a), Port: 8080, Weight: 1})
	}
	return s
}

// TestIPv6NAT: a client reaches two IPv6 servers through an IPv6 VIP in
// mode nat (TCP round robin, UDP, persistence by source over Maglev),
// with an IPv4 service beside it in the same table; fnat over IPv6 gives
// the flows the gateway's local address; a server down is skipped; a Set
// twice is no change; a chain flushed by hand is restored.
func TestIPv6NAT(t *testing.T) {
	l := newV6Lab(t)
	lb := l.lb(t)
	web := v6Service("web6", 80, TCP, RoundRobin)
	dns := v6Service("dns6", 80, UDP, RoundRobin)
	sticky := v6Service("sticky6", 81, TCP, Maglev)
	sticky.Persistence = time.Minute
	// Sources by IPv6 prefix: the client's second address is denied.
	guarded := v6Service("guarded6", 83, TCP, RoundRobin)
	guarded.Allow = []netip.Prefix{netip.MustParsePrefix("2001:db8:1::/64")}
	guarded.Deny = []netip.Prefix{netip.MustParsePrefix(client6b + "/128")}
	full := v6Service("full6", 82, TCP, RoundRobin)
	full.Mode = FNAT
	full.LocalAddresses = []netip.Addr{mustAddr(local6)}
	v4 := Service{Name: "web4", VIP: mustAddr(vip), Port: 80, Protocol: TCP, Mode: NAT, Scheduler: RoundRobin,
		Servers: []Server{{Address: mustAddr("198.51.100.11"), Port: 8080, Weight: 1}, {Address: mustAddr("198.51.100.12"), Port: 8080, Weight: 1}}}
	cfg := Config{Services: []Service{web, dns, sticky, full, guarded, v4}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	set(t, lb, cfg)
	if ch := set(t, lb, cfg); len(ch) != 0 {
		t.Errorf("second Set with the same config changed %v", ch)
	}
	obs, err := lb.Observe()
	if err != nil {
		t.Fatal(err)
	}
	if got := obs.Services()["web6"]; got.Describe() != web.Describe() || len(got.Servers) != 2 || got.Servers[0].Address != mustAddr(server6[0]) || got.Servers[0].Port != 8080 {
		t.Errorf("web6 read back as %s %+v, want %s", got.Describe(), got.Servers, web.Describe())
	}
	if got := obs.Services()["full6"].LocalAddresses; len(got) != 1 || got[0] != mustAddr(local6) {
		t.Errorf("full6's local addresses read back as %v", got)
	}
	if got := obs.Services()["guarded6"]; !samePrefixes(got.Allow, guarded.Allow) || !samePrefixes(got.Deny, guarded.Deny) {
		t.Errorf("guarded6's sources read back as allow %v deny %v", got.Allow, got.Deny)
	}

	web6 := net.JoinHostPort(vip6, "80")
	// balance: rr alternates, and the servers see the client's address.
	balance := func(what string) {
		t.Helper()
		var order []string
		for range 4 {
			srv, seen, err := l.ask("tcp", "", web6)
			if err != nil {
				t.Fatalf("%s: tcp to %s: %v", what, web6, err)
			}
			if ap, err := netip.ParseAddrPort(seen); err != nil || ap.Addr() != mustAddr(client6) && ap.Addr() != mustAddr(client6b) {
				t.Fatalf("%s: %s saw %s, want one of the client's own addresses", what, srv, seen)
			}
			order = append(order, srv)
		}
		for i := 1; i < len(order); i++ {
			if order[i] == order[i-1] {
				t.Errorf("%s: rr sent connections %d and %d to %s: %v", what, i-1, i, order[i], order)
			}
		}
	}
	balance("tcp")
	udpSeen := map[string]bool{}
	for range 4 {
		srv, seen, err := l.ask("udp", "", web6)
		if err != nil {
			t.Fatalf("udp to %s: %v", web6, err)
		}
		if !strings.HasPrefix(seen, "["+client6+"]:") && !strings.HasPrefix(seen, "["+client6b+"]:") {
			t.Fatalf("udp: %s saw %s, want the client's own address", srv, seen)
		}
		udpSeen[srv] = true
	}
	if len(udpSeen) != 2 {
		t.Errorf("udp rr reached %v, want both servers", udpSeen)
	}
	// The IPv4 service beside it.
	v4Seen := map[string]bool{}
	for range 2 {
		srv, seen, err := l.ask("tcp", "", net.JoinHostPort(vip, "80"))
		if err != nil {
			t.Fatalf("the IPv4 service: %v", err)
		}
		if !strings.HasPrefix(seen, clientIP+":") {
			t.Fatalf("ipv4: %s saw %s", srv, seen)
		}
		v4Seen[srv] = true
	}
	if len(v4Seen) != 2 {
		t.Errorf("the IPv4 service reached %v, want both servers", v4Seen)
	}
	// Persistence by source: each client address stays on one server,
	// although maglev hashes the source port too without persistence.
	for _, from := range []string{client6, client6b} {
		first := ""
		for i := range 6 {
			srv, _, err := l.ask("tcp", from, net.JoinHostPort(vip6, "81"))
			if err != nil {
				t.Fatalf("persistence from %s: %v", from, err)
			}
			if i == 0 {
				first = srv
			} else if srv != first {
				t.Fatalf("persistence: connection %d from %s went to %s, the first to %s", i, from, srv, first)
			}
		}
	}
	// The denied address's first packet is dropped; the other passes.
	if _, _, err := l.ask("tcp", client6, net.JoinHostPort(vip6, "83")); err != nil {
		t.Errorf("an allowed source: %v", err)
	}
	if _, _, err := l.ask("tcp", client6b, net.JoinHostPort(vip6, "83")); err == nil {
		t.Errorf("a denied source got through")
	}
	// fnat: the servers see the gateway's local address.
	for range 2 {
		srv, seen, err := l.ask("tcp", "", net.JoinHostPort(vip6, "82"))
		if err != nil {
			t.Fatalf("fnat: %v", err)
		}
		if ap, err := netip.ParseAddrPort(seen); err != nil || ap.Addr() != mustAddr(local6) {
			t.Fatalf("fnat: %s saw %s, want the local address %s", srv, seen, local6)
		}
	}

	// A server down is skipped.
	web.Servers[0].Down = true
	cfg.Services[0] = web
	set(t, lb, cfg)
	for range 4 {
		srv, _, err := l.ask("tcp", "", web6)
		if err != nil {
			t.Fatal(err)
		}
		if srv != "s2" {
			t.Fatalf("a connection went to %s, which is down", srv)
		}
	}
	web.Servers[0].Down = false
	cfg.Services[0] = web
	set(t, lb, cfg)

	// A chain flushed by hand is reported and restored.
	l.gw.Run(t, "nft", "flush", "chain", "inet", "gitgw", "svc-web6")
	if _, _, err := l.ask("tcp", "", web6); err == nil {
		t.Fatalf("the service still works with its chain flushed: the flush did not take")
	}
	obs, err = lb.Observe()
	if err != nil {
		t.Fatal(err)
	}
	d, err := Diff(cfg, obs)
	if err != nil {
		t.Fatal(err)
	}
	if len(d) != 1 || d[0].Action != Restore || !strings.Contains(d[0].Text, "web6") {
		t.Fatalf("Diff after a flush by hand: %v, want one restore of web6", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if ch, err := lb.Set(ctx, cfg); err != nil || len(ch) != 1 {
		t.Fatalf("Set restored %v (%v), want one change", ch, err)
	}
	balance("after the restore")
	if ch := set(t, lb, cfg); len(ch) != 0 {
		t.Errorf("Set after the restore changed %v", ch)
	}
	// A new LB reads every rule and map back as written (the registers
	// of IPv6 keys and values named as the kernel dumps them).
	obs, err = l.lb(t).Observe()
	if err != nil {
		t.Fatal(err)
	}
	if d, err := Diff(cfg, obs); err != nil || len(d) != 0 {
		t.Errorf("the tables read back by a new LB: %v, %v", d, err)
	}
}

// TestIPv6DR: direct routing over IPv6. The gateway holds the IPv6 VIP
// and rewrites the Ethernet addresses of the frames sent to it towards
// the server chosen by Maglev, whose MAC Resolve learnt by neighbour
// discovery; the servers hold the VIP on lo (RealServer, which for IPv6
// needs no knob: Linux answers neighbour solicitations only for the
// addresses of the receiving interface, so the client's neighbour entry
// for the VIP stays the gateway's) and answer the client directly. A
// drained server keeps its established connection (the hold table and
// the pins, whose IPv6 keys fill two registers) and gets no new one; a
// new LB reads the tables back as written.
func TestIPv6DR(t *testing.T) {
	lab.RequireRoot(t)
	lab.SkipShort(t, "network namespaces")
	lab.RequireCommand(t, "nft", "sysctl")
	sw := lab.NewSwitch(t)
	noDAD(t, sw.NS)
	l := &v6Lab{client: lab.NewNetns(t, "h6cl"), gw: lab.NewNetns(t, "h6gw")}
	for _, ns := range []*lab.Netns{l.client, l.gw} {
		noDAD(t, ns)
	}
	sw.Attach(t, l.client, "eth0", client6+"/64")
	sw.Attach(t, l.gw, "eth0", "2001:db8:1::11/64", vip6+"/128")
	addrs := [2]string{"2001:db8:1::21", "2001:db8:1::22"}
	for i := range l.srv {
		s := lab.NewNetns(t, fmt.Sprintf("h6s%d", i+1))
		noDAD(t, s)
		sw.Attach(t, s, "eth0", addrs[i]+"/64")
		if ch := setRealServer(t, s, RealServer{VIPs: []netip.Addr{mustAddr(vip6)}, Interfaces: []string{"eth0"}}); !strings.Contains(words(ch), "add "+vip6+"/128 on lo") {
			t.Fatalf("real server %d setup: %s, want the VIP added on lo", i+1, words(ch))
		}
		if ch := setRealServer(t, s, RealServer{VIPs: []netip.Addr{mustAddr(vip6)}, Interfaces: []string{"eth0"}}); words(ch) != "" {
			t.Errorf("real server %d setup again: %s, want nothing", i+1, words(ch))
		}
		serveBoth(t, s, fmt.Sprintf("s%d", i+1), "80")
		l.srv[i] = s
	}
	lb := l.lb(t)
	web := Service{Name: "web6", VIP: mustAddr(vip6), Port: 80, Protocol: TCP, Mode: DR, Scheduler: Maglev, Interface: "eth0"}
	for _, a := range addrs {
		web.Servers = append(web.Servers, Server{Address: mustAddr(a), Weight: 1})
	}
	cfg := Config{Services: []Service{web}}
	set(t, lb, cfg)
	if ch := set(t, lb, cfg); len(ch) != 0 {
		t.Errorf("second Set with the same config changed %v", ch)
	}
	dst := net.JoinHostPort(vip6, "80")
	seen := map[string]int{}
	for range 20 {
		srv, from, err := l.ask("tcp", "", dst)
		if err != nil {
			t.Fatalf("tcp to %s: %v", dst, err)
		}
		if !strings.HasPrefix(from, "["+client6+"]:") {
			t.Fatalf("%s saw %s, want the client's own address", srv, from)
		}
		seen[srv]++
	}
	if len(seen) != 2 {
		t.Errorf("20 connections reached %v, want both servers", seen)
	}
	gwMAC := strings.Fields(l.gw.Run(t, "cat", "/sys/class/net/eth0/address"))[0]
	if n := l.client.Run(t, "ip", "-6", "neigh", "show", vip6); !strings.Contains(n, gwMAC) {
		t.Errorf("the client's neighbour entry for the VIP is %q, want the gateway's MAC %s", n, gwMAC)
	}

	// Drain the server of an established connection: it keeps it (held
	// slots), new connections go to the other (pinned if they land on a
	// held slot).
	var c net.Conn
	if err := l.client.Do(func() (err error) { c, err = net.DialTimeout("tcp", dst, 2*time.Second); return }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	first, err := askLine(c)
	if err != nil {
		t.Fatal(err)
	}
	idx := 0
	if first == "s2" {
		idx = 1
	}
	cfg.Services[0].Servers[idx].Weight = 0
	set(t, lb, cfg)
	for range 6 {
		srv, _, err := l.ask("tcp", "", dst)
		if err != nil {
			t.Fatal(err)
		}
		if srv == first {
			t.Fatalf("a new connection went to %s, drained", srv)
		}
	}
	for range 3 {
		if srv, err := askLine(c); err != nil || srv != first {
			t.Fatalf("the established connection to %s, drained: answer from %q (%v)", first, srv, err)
		}
	}
	// A new LB reads every rule and map back as written.
	fresh := l.lb(t)
	obs, err := fresh.Observe()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resolved, err := fresh.Resolve(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := Diff(resolved, obs); err != nil || len(d) != 0 {
		t.Errorf("the tables read back by a new LB: %v, %v", d, err)
	}
}

// askLine sends a line on c and returns the name of the server that
// answered.
func askLine(c net.Conn) (string, error) {
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "hello\n"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.Fields(line)[0], nil
}

// BenchmarkKernLBConnRateIPv6: new TCP connections per second (and
// requests per second on kept connections) through an IPv6 VIP in mode
// nat, against HAProxy (mode tcp, 1 thread) on the same gateway and the
// same IPv6 servers, and against the same nat service over IPv4 in the
// same lab: IPv6's longer keys and headers are the only difference. CPU
// as in BenchmarkKernLBConnRate (the gateway's NAPI threads and its
// proxy process); rounds alternate the variants, medians are reported.
func BenchmarkKernLBConnRateIPv6(b *testing.B) {
	const (
		nRounds = 3
		conc    = 32
		dur     = 3 * time.Second
	)
	lab.RequireCommand(b, "haproxy")
	l := newV6Lab(b)
	lb := l.lb(b)
	for _, ns := range []*lab.Netns{l.client, l.gw} {
		ns.Run(b, "sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=1024 65535")
	}
	var m meter
	m.gw = append(m.gw, napiThread(b, l.gw, "eth0", l.front.NS, l.frontPort), napiThread(b, l.gw, "eth1", l.back.NS, l.backPort))
	m.other = append(m.other, napiThread(b, l.front.NS, l.frontPort, l.gw, "eth0"), napiThread(b, l.back.NS, l.backPort, l.gw, "eth1"))
	with := func(pid int) meter { return meter{gw: append(slices.Clone(m.gw), pid), other: m.other} }
	nat6 := v6Service("web6", 80, TCP, RoundRobin)
	nat4 := Service{Name: "web4", VIP: mustAddr(vip), Port: 80, Protocol: TCP, Mode: NAT, Scheduler: RoundRobin,
		Servers: []Server{{Address: mustAddr("198.51.100.11"), Port: 8080, Weight: 1}, {Address: mustAddr("198.51.100.12"), Port: 8080, Weight: 1}}}
	var backends []string
	for _, a := range server6 {
		backends = append(backends, net.JoinHostPort(a, "8080"))
	}
	hapCfg := lab.HAProxyConfig{Services: []lab.HAProxyService{{Name: "web", Bind: net.JoinHostPort(vip6, "80"), Servers: backends}}}
	t6, t4 := []string{net.JoinHostPort(vip6, "80")}, []string{net.JoinHostPort(vip, "80")}
	variants := []string{"haproxy6", "nat6", "nat4"}
	res := map[string][]loadResult{}
	var rounds strings.Builder
	for r := range nRounds {
		set(b, lb, Config{})
		h := lab.StartHAProxyIn(b, l.gw, hapCfg)
		res["haproxy6"] = append(res["haproxy6"], connLoad(b, l.client, t6, conc, dur, false, with(h.Pid())))
		res["ka-haproxy6"] = append(res["ka-haproxy6"], connLoad(b, l.client, t6, conc, dur, true, with(h.Pid())))
		_ = unix.Kill(h.Pid(), unix.SIGKILL)
		_ = h.Cmd.Wait()
		set(b, lb, Config{Services: []Service{nat6, nat4}})
		res["nat6"] = append(res["nat6"], connLoad(b, l.client, t6, conc, dur, false, m))
		res["ka-nat6"] = append(res["ka-nat6"], connLoad(b, l.client, t6, conc, dur, true, m))
		res["nat4"] = append(res["nat4"], connLoad(b, l.client, t4, conc, dur, false, m))
		res["ka-nat4"] = append(res["ka-nat4"], connLoad(b, l.client, t4, conc, dur, true, m))
		for _, v := range variants {
			for _, v := range []string{v, "ka-" + v} {
				x := res[v][r]
				fmt.Fprintf(&rounds, "round %d %-12s %7.0f /s  gateway %6.1f µs CPU each, total %6.1f  errors %d  (machine busy %.0f %% of 2 CPUs)\n",
					r+1, v, x.rate(), x.gwCPUPerConn(), x.cpuPerConn(), x.errs, 50*x.machine.Seconds()/x.dur.Seconds())
			}
		}
	}
	defer func() { b.Logf("rounds:\n%s", rounds.String()) }()
	med := func(v string, f func(loadResult) float64) float64 {
		var xs []float64
		for _, x := range res[v] {
			xs = append(xs, f(x))
		}
		return medianOf(xs)
	}
	rate := func(x loadResult) float64 { return x.rate() }
	gwc := func(x loadResult) float64 { return x.gwCPUPerConn() }
	for _, prefix := range []string{"", "ka-"} {
		unit := "conn"
		if prefix != "" {
			unit = "req"
		}
		hapRate, hapGw := med(prefix+"haproxy6", rate), med(prefix+"haproxy6", gwc)
		for _, v := range variants {
			r, gw := med(prefix+v, rate), med(prefix+v, gwc)
			name := strings.ReplaceAll(prefix+v, "-", "_")
			b.ReportMetric(r, name+"_"+unit+"/s")
			b.ReportMetric(gw, name+"_gw_µs/"+unit)
			if v != "haproxy6" {
				b.ReportMetric(r/hapRate, name+"_rate_vs_haproxy6")
				b.ReportMetric(gw/hapGw, name+"_gw_cpu_vs_haproxy6")
			}
			b.Logf("%-12s %7.0f %s/s (×%.2f HAProxy's over IPv6); gateway CPU per %s %.1f µs (×%.2f HAProxy's)", prefix+v, r, unit, r/hapRate, unit, gw, gw/hapGw)
		}
	}
}
