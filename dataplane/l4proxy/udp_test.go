package l4proxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// udpEcho is a UDP test server: it answers every datagram with its name,
// a colon and the datagram.
type udpEcho struct {
	name string
	conn *net.UDPConn
	addr netip.AddrPort
	mu   sync.Mutex
	seen map[netip.AddrPort]int // datagrams by source (the proxy's session sockets)
}

func newUDPEcho(t testing.TB, name string) *udpEcho {
	t.Helper()
	// On an address of its own, where its port is free for TCP too (a
	// check may need it).
	a := freePort(t).Addr()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0)))
	if err != nil {
		t.Fatal(err)
	}
	e := &udpEcho{name: name, conn: c, addr: c.LocalAddr().(*net.UDPAddr).AddrPort(), seen: map[netip.AddrPort]int{}}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			e.mu.Lock()
			e.seen[from]++
			e.mu.Unlock()
			_, _ = c.WriteToUDPAddrPort(append([]byte(name+":"), buf[:n]...), from)
		}
	}()
	return e
}

func (e *udpEcho) srv(weight int) Server { return Server{Name: e.name, Addr: e.addr, Weight: weight} }

// udpFlow is one client socket: one flow for the proxy.
type udpFlow struct{ c *net.UDPConn }

func dialUDPFlow(t testing.TB, addr netip.AddrPort) *udpFlow {
	t.Helper()
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &udpFlow{c}
}

// ask sends msg and returns the server that answered; a lost datagram is
// sent again (UDP: a datagram sent before the proxy's socket existed is
// gone, as it would be on a network).
func (f *udpFlow) ask(msg string) (string, error) {
	buf := make([]byte, 65535)
	var last error
	for range 20 {
		if _, err := f.c.Write([]byte(msg)); err != nil {
			return "", err
		}
		_ = f.c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := f.c.Read(buf)
		if err != nil {
			last = err
			continue
		}
		name, body, ok := strings.Cut(string(buf[:n]), ":")
		if !ok || body != msg {
			return "", fmt.Errorf("reply %q to %q", buf[:n], msg)
		}
		return name, nil
	}
	return "", fmt.Errorf("no reply to %q: %w", msg, last)
}

func udpService(bind netip.AddrPort, servers ...Server) Service {
	return Service{Name: "dns", Protocol: ProtoUDP, Binds: []netip.AddrPort{bind}, Servers: servers}
}

// TestUDPRoundRobin: flows (client address and port) are balanced round
// robin over the servers, each flow stays on its server, and the replies
// come from the bind's address.
func TestUDPRoundRobin(t *testing.T) {
	t.Parallel()
	a, b := newUDPEcho(t, "a"), newUDPEcho(t, "b")
	bind := freePort(t)
	p := newTestPool(t, Options{Shards: 1}, Config{Services: []Service{udpService(bind, a.srv(1), b.srv(1))}})
	count := map[string]int{}
	var flows []*udpFlow
	first := map[*udpFlow]string{}
	for i := range 10 {
		f := dialUDPFlow(t, bind)
		name, err := f.ask(fmt.Sprintf("q%d", i))
		if err != nil {
			t.Fatal(err)
		}
		count[name]++
		flows = append(flows, f)
		first[f] = name
	}
	if count["a"] != 5 || count["b"] != 5 {
		t.Errorf("10 flows over two servers of weight 1: %v", count)
	}
	for i, f := range flows {
		for j := range 3 {
			name, err := f.ask(fmt.Sprintf("again %d %d", i, j))
			if err != nil {
				t.Fatal(err)
			}
			if name != first[f] {
				t.Errorf("flow %d moved from %s to %s", i, first[f], name)
			}
		}
	}
	st := p.Stats().Services[0]
	if st.Protocol != ProtoUDP || st.Current != 10 || st.Total != 10 || st.BytesIn == 0 || st.BytesOut <= st.BytesIn {
		t.Errorf("stats: %+v", st)
	}
	for _, sv := range st.Servers {
		if sv.Current != 5 || sv.Total != 5 {
			t.Errorf("server %s: %d sessions, %d in all; want 5 and 5", sv.Name, sv.Current, sv.Total)
		}
	}
}

// TestUDPSessionEnds: a session ends after Timeouts.Client without
// traffic, or after UDPReplies replies; the server sees a new socket for
// the next one.
func TestUDPSessionEnds(t *testing.T) {
	t.Parallel()
	a := newUDPEcho(t, "a")
	idle, once := freePort(t), freePort(t)
	svcIdle := udpService(idle, a.srv(1))
	svcIdle.Timeouts.Client = 200 * time.Millisecond
	svcOnce := udpService(once, a.srv(1))
	svcOnce.Name, svcOnce.UDPReplies = "once", 1
	p := newTestPool(t, Options{Shards: 1}, Config{Services: []Service{svcIdle, svcOnce}})
	cur := func(name string) int64 {
		for _, s := range p.Stats().Services {
			if s.Name == name {
				return s.Current
			}
		}
		return -1
	}
	f := dialUDPFlow(t, idle)
	if _, err := f.ask("one"); err != nil {
		t.Fatal(err)
	}
	if cur("dns") != 1 {
		t.Fatalf("no session after a datagram: %d", cur("dns"))
	}
	eventually(t, 10*time.Second, "the idle session to end", func() bool { return cur("dns") == 0 })
	if _, err := f.ask("two"); err != nil {
		t.Fatal(err)
	}
	g := dialUDPFlow(t, once)
	for i := range 3 {
		if _, err := g.ask(fmt.Sprintf("dns %d", i)); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "the session to end after its reply", func() bool { return cur("once") == 0 })
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	// Two sessions of the idle service, three of the other: five sockets.
	if len(a.seen) != 5 {
		t.Errorf("the server saw %d sources, want 5: %v", len(a.seen), a.seen)
	}
}

// TestUDPServerGone: flows of a server that is removed, or marked down by
// its check, move to another at their next datagram; a server with no
// check listening fails its TCP check and gets no flow.
func TestUDPServerGone(t *testing.T) {
	t.Parallel()
	a, b, c := newUDPEcho(t, "a"), newUDPEcho(t, "b"), newUDPEcho(t, "c")
	bind := freePort(t)
	// TCP checks on the servers' own ports: a and b answer there, c not.
	for _, e := range []*udpEcho{a, b} {
		ln, err := net.Listen("tcp4", e.addr.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	svc := udpService(bind, a.srv(1), b.srv(1), c.srv(1))
	svc.Check = &Check{Type: CheckTCP, Interval: 100 * time.Millisecond, Rise: 1, Fall: 1}
	p := newTestPool(t, Options{Shards: 1}, Config{Services: []Service{svc}})
	eventually(t, 10*time.Second, "c marked down", func() bool { return serverStats(p, "dns", "c").Status == "DOWN" })
	var flows []*udpFlow
	on := map[string]int{}
	for i := range 6 {
		f := dialUDPFlow(t, bind)
		name, err := f.ask(fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		on[name]++
		flows = append(flows, f)
	}
	if on["c"] != 0 || on["a"] != 3 || on["b"] != 3 {
		t.Fatalf("flows with c down: %v", on)
	}
	svc.Servers = []Server{b.srv(1), c.srv(1)}
	if err := p.Set(context.Background(), Config{Services: []Service{svc}}); err != nil {
		t.Fatal(err)
	}
	for i, f := range flows {
		name, err := f.ask(fmt.Sprint("after ", i))
		if err != nil {
			t.Fatal(err)
		}
		if name != "b" {
			t.Errorf("flow %d on %s after a was removed, want b", i, name)
		}
	}
}

// TestUDPValidate: what a UDP service cannot have is refused, positioned.
func TestUDPValidate(t *testing.T) {
	bad := []Service{
		{Name: "wild", Protocol: ProtoUDP, Binds: []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:53")}},
		{Name: "pp", Protocol: ProtoUDP, ProxyProtocol: 2, Binds: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:53")}},
		{Name: "sctp", Protocol: "sctp", Binds: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:54")}},
	}
	for _, s := range bad {
		err := Config{Services: []Service{s}}.Validate()
		if err == nil || !strings.Contains(err.Error(), `service "`+s.Name+`"`) {
			t.Errorf("%s: %v", s.Name, err)
		}
	}
	// TCP and UDP on one address and port are two binds (DNS).
	ok := Config{Services: []Service{
		{Name: "dns-tcp", Binds: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:53")}},
		{Name: "dns-udp", Protocol: ProtoUDP, Binds: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:53")}},
	}}
	if err := ok.Validate(); err != nil {
		t.Errorf("tcp and udp on one port: %v", err)
	}
}

// TestUDPSocketsAcrossRestart: the agent's restart hands the UDP binds'
// sockets over with the listeners, so datagrams that arrive while no
// process reads wait in the socket instead of being refused or dropped:
// after the restart, the bind is served by the very socket it had before
// (same inode), and flows are answered.
func TestUDPSocketsAcrossRestart(t *testing.T) {
	t.Parallel()
	a := newUDPEcho(t, "a")
	bind := freePort(t)
	h := startHelper(t, Config{Services: []Service{udpService(bind, a.srv(1))}}, "L4HELPER_HANDOVER=conns", "L4HELPER_SHARDS=1")
	before := udpInodes(t, bind)
	if len(before) != 1 {
		t.Fatalf("udp sockets on %v: %v", bind, before)
	}
	if _, err := dialUDPFlow(t, bind).ask("before"); err != nil {
		t.Fatal(err)
	}
	pid := h.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var next int
	for {
		line, err := h.readLine(30 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "handover ") {
			next, _ = strconv.Atoi(strings.Fields(line)[1])
			break
		}
	}
	t.Cleanup(func() { _ = syscall.Kill(next, syscall.SIGTERM) })
	eventually(t, 20*time.Second, "the old process gone", func() bool { return !processAlive(pid) })
	if after := udpInodes(t, bind); len(after) != 1 || after[0] != before[0] {
		t.Errorf("udp sockets on %v: %v before the restart, %v after", bind, before, after)
	}
	if _, err := dialUDPFlow(t, bind).ask("after"); err != nil {
		t.Fatal(err)
	}
}

// udpInodes lists the inodes of the UDP sockets bound to addr (IPv4).
func udpInodes(t *testing.T, addr netip.AddrPort) []string {
	t.Helper()
	raw, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		t.Fatal(err)
	}
	a := addr.Addr().As4()
	want := fmt.Sprintf("%02X%02X%02X%02X:%04X", a[3], a[2], a[1], a[0], addr.Port())
	var out []string
	for _, l := range strings.Split(string(raw), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) > 9 && f[1] == want {
			out = append(out, f[9])
		}
	}
	return out
}

// TestUDPBatchesIPv6: an IPv6 bind and server, 64 flows at once (several
// datagrams per recvmmsg and per sendmmsg), datagrams up to the largest
// an IPv4 payload allows and empty ones: every reply reaches its own flow
// whole, and the counters add up.
func TestUDPBatchesIPv6(t *testing.T) {
	t.Parallel()
	echo, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := echo.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = echo.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	pc, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Fatal(err)
	}
	bind := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close()
	p := newTestPool(t, Options{Shards: 1}, Config{Services: []Service{
		udpService(bind, Server{Name: "e", Addr: echo.LocalAddr().(*net.UDPAddr).AddrPort(), Weight: 1}),
	}})
	const flows, rounds = 64, 5
	sizes := []int{0, 1, 1400, 9000, udpBufSize}
	var wg sync.WaitGroup
	errs := make(chan error, flows)
	var want int64 // bytes each way, once per datagram
	for f := range flows {
		for r := range rounds {
			want += int64(sizes[(f+r)%len(sizes)])
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(bind))
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			buf := make([]byte, 65535)
			for r := range rounds {
				msg := make([]byte, sizes[(f+r)%len(sizes)])
				for i := range msg {
					msg[i] = byte(f + r + i)
				}
				ok := false
				// A datagram may be lost (UDP): sent again, a few times.
				for try := 0; try < 10 && !ok; try++ {
					if _, err := c.Write(msg); err != nil {
						errs <- err
						return
					}
					_ = c.SetReadDeadline(time.Now().Add(time.Second))
					n, err := c.Read(buf)
					if err != nil {
						continue
					}
					if n != len(msg) || string(buf[:n]) != string(msg) {
						errs <- fmt.Errorf("flow %d round %d: %d bytes back for %d, or other bytes", f, r, n, len(msg))
						return
					}
					ok = true
				}
				if !ok {
					errs <- fmt.Errorf("flow %d round %d: no reply", f, r)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := p.Stats().Services[0]
	if st.Total != flows || st.Current != flows || st.Servers[0].Total != flows {
		t.Errorf("sessions: total %d current %d server %d, want %d", st.Total, st.Current, st.Servers[0].Total, flows)
	}
	// Datagrams sent again count again: at least every byte once.
	if st.BytesIn < want || st.BytesOut < want {
		t.Errorf("bytes in %d, out %d: want at least %d each way", st.BytesIn, st.BytesOut, want)
	}
}
