package kernlb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
	"github.com/vishvananda/netlink"
)

const (
	vip      = "203.0.113.100"
	clientIP = "203.0.113.50"
)

// kernLab is one L2 segment (a bridge) with a client, two gateways and two
// real servers. In DR the servers sit on the segment (203.0.113.21/.22)
// with the VIP on lo; in NAT they sit behind the first gateway on
// 198.51.100.0/24 with it as their default route; in FNAT they sit there
// with no route beyond their segment at all.
type kernLab struct {
	t       testing.TB
	mode    Mode
	client  *lab.Netns
	gw      [2]*lab.Netns
	srv     [2]*lab.Netns
	srvAddr [2]string
	sw      *lab.Switch
	gwPort  [2]string
	// NAT only: the servers' segment, the gateways' ports on it.
	back     *lab.Switch
	backPort [2]string
	// switchedAt is when failoverAfter took gateway 1 off.
	switchedAt time.Time
}

func newKernLab(t testing.TB, mode Mode) *kernLab {
	t.Helper()
	lab.RequireRoot(t)
	lab.SkipShort(t, "network namespaces")
	l := &kernLab{t: t, mode: mode}
	// The FNAT lab's namespaces are named after its author's prefix.
	pre := ""
	if mode == FNAT {
		pre = "h4"
	}
	l.sw = lab.NewSwitch(t)
	l.client = lab.NewNetns(t, pre+"cl")
	l.sw.Attach(t, l.client, "eth0", clientIP+"/24")
	for i := range l.gw {
		l.gw[i] = lab.NewNetns(t, fmt.Sprintf("%sg%d", pre, i+1))
		l.gwPort[i] = l.sw.Attach(t, l.gw[i], "eth0", fmt.Sprintf("203.0.113.%d/24", 11+i))
		l.srv[i] = lab.NewNetns(t, fmt.Sprintf("%ss%d", pre, i+1))
	}
	switch mode {
	case DR:
		for i, s := range l.srv {
			l.srvAddr[i] = fmt.Sprintf("203.0.113.%d", 21+i)
			l.sw.Attach(t, s, "eth0", l.srvAddr[i]+"/24")
			// The real server's own setup, in its own namespace, by the
			// code gitgw runs on a real server: the VIP on lo, never
			// answer ARP for it, never use it as an ARP source.
			setRealServer(t, s, RealServer{VIPs: []netip.Addr{mustAddr(vip)}})
		}
		// A DR gateway does not route: replies can only go straight to the client.
		for _, g := range l.gw {
			g.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=0")
		}
	case NAT, FNAT:
		// The NAT servers' route back is the gateways' second VIP, .1,
		// which moves with the first (holdVIP). FNAT servers have none:
		// they reach only their own segment.
		l.back = lab.NewSwitch(t)
		for i, g := range l.gw {
			l.backPort[i] = l.back.Attach(t, g, "eth1", fmt.Sprintf("198.51.100.%d/24", 2+i))
			g.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		}
		for i, s := range l.srv {
			l.srvAddr[i] = fmt.Sprintf("198.51.100.%d", 11+i)
			l.back.Attach(t, s, "eth0", l.srvAddr[i]+"/24")
			if mode == NAT {
				s.Run(t, "ip", "route", "add", "default", "via", "198.51.100.1")
			}
		}
	}
	return l
}

// backVIP is the NAT servers' route back, held with the VIP.
const backVIP = "198.51.100.1"

// holdVIP puts the VIP (and in NAT the servers' route back) on gateway i:
// the job of VRRP.
func (l *kernLab) holdVIP(i int) {
	l.gw[i].Run(l.t, "ip", "addr", "add", vip+"/32", "dev", "eth0")
	if l.mode == NAT {
		l.gw[i].Run(l.t, "ip", "addr", "add", backVIP+"/24", "dev", "eth1")
	}
}

// holdVIPNow is holdVIP in process, through netlink (for a failover,
// where every millisecond between the steps counts).
func (l *kernLab) holdVIPNow(i int) {
	l.t.Helper()
	add := func(ifname, cidr string) error {
		link, err := netlink.LinkByName(ifname)
		if err != nil {
			return err
		}
		a, err := netlink.ParseAddr(cidr)
		if err != nil {
			return err
		}
		return netlink.AddrAdd(link, a)
	}
	if err := l.gw[i].Do(func() error {
		err := add("eth0", vip+"/32")
		if l.mode == NAT {
			err = errors.Join(err, add("eth1", backVIP+"/24"))
		}
		return err
	}); err != nil {
		l.t.Fatalf("gateway %d takes the VIPs: %v", i+1, err)
	}
}

// portDown takes a switch port down in process, through netlink.
func (l *kernLab) portDown(sw *lab.Switch, port string) {
	l.t.Helper()
	if err := sw.NS.Do(func() error {
		link, err := netlink.LinkByName(port)
		if err != nil {
			return err
		}
		return netlink.LinkSetDown(link)
	}); err != nil {
		l.t.Fatalf("switch port %s down: %v", port, err)
	}
}

// lb opens an LB in gateway i's namespace.
func (l *kernLab) lb(i int) *LB {
	t := l.t
	f, err := os.Open(l.gw[i].Path())
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

// set resolves and applies cfg on lb, failing the test on error.
func set(t testing.TB, lb *LB, cfg Config) []ChangeItem {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := lb.Resolve(ctx, cfg)
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	ch, err := lb.Set(ctx, r)
	if err != nil {
		t.Fatalf("set: %v", err)
	}
	return ch
}

// service is the lab's service on VIP:80 over both servers.
func (l *kernLab) service(proto Protocol, sched Scheduler) Service {
	s := Service{Name: "web", VIP: mustAddr(vip), Port: 80, Protocol: proto, Mode: l.mode, Scheduler: sched}
	if l.mode == DR {
		s.Interface = "eth0"
	}
	for _, a := range l.srvAddr {
		srv := Server{Address: mustAddr(a), Weight: 1}
		if l.mode != DR {
			srv.Port = 8080
		}
		s.Servers = append(s.Servers, srv)
	}
	return s
}

// serve runs, in server i's namespace, a TCP and a UDP server on port
// (80 in DR, 8080 in NAT) that answer each line or datagram with
// "s<i> <remote address>", until the test ends.
func (l *kernLab) serve() {
	port := "80"
	if l.mode != DR {
		port = "8080"
	}
	l.servePort(port)
}

// servePort is serve on the given port.
func (l *kernLab) servePort(port string) {
	t := l.t
	for i, ns := range l.srv {
		name := fmt.Sprintf("s%d", i+1)
		var ln net.Listener
		var pc net.PacketConn
		err := ns.Do(func() error {
			var err error
			if ln, err = net.Listen("tcp4", ":"+port); err != nil {
				return err
			}
			// A UDP server behind DR must answer from the VIP: bound to
			// the wildcard it would answer from its own address, which
			// the client's connected socket ignores (LVS's rule too).
			udpAddr := ":" + port
			if l.mode == DR {
				udpAddr = vip + ":" + port
			}
			pc, err = net.ListenPacket("udp4", udpAddr)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		echoServers(t, name, ln, pc)
	}
}

// echoServers answers, until the test ends, each line on a connection
// of ln and each datagram of pc with "<name> <remote address>".
func echoServers(t testing.TB, name string, ln net.Listener, pc net.PacketConn) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	t.Cleanup(func() {
		ln.Close()
		pc.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					if _, err := r.ReadString('\n'); err != nil {
						return
					}
					if _, err := fmt.Fprintf(c, "%s %s\n", name, c.RemoteAddr()); err != nil {
						return
					}
				}
			}()
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(fmt.Sprintf("%s %s\n", name, from)), from)
		}
	}()
}

// dial opens a TCP connection from the client to the VIP.
func (l *kernLab) dial(laddr string) (net.Conn, error) { return l.dialFrom(laddr, 2*time.Second) }

func (l *kernLab) dialTimeout(d time.Duration) (net.Conn, error) { return l.dialFrom("", d) }

func (l *kernLab) dialFrom(laddr string, timeout time.Duration) (net.Conn, error) {
	return l.dialPort(laddr, "80", timeout)
}

// dialPort is dialFrom to the VIP's given port.
func (l *kernLab) dialPort(laddr, port string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := l.client.Do(func() error {
		d := net.Dialer{Timeout: timeout}
		if laddr != "" {
			a, err := net.ResolveTCPAddr("tcp4", laddr)
			if err != nil {
				return err
			}
			d.LocalAddr = a
		}
		var err error
		c, err = d.Dial("tcp4", net.JoinHostPort(vip, port))
		return err
	})
	return c, err
}

// ask sends one line on c and returns the answer: "s<i> <address seen>".
func ask(c net.Conn) (string, error) { return askWithin(c, 2*time.Second) }

// askWithin is ask with the given deadline.
func askWithin(c net.Conn, d time.Duration) (string, error) {
	_ = c.SetDeadline(time.Now().Add(d))
	if _, err := io.WriteString(c, "hello\n"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// once opens a connection, asks once, closes: which server answered and
// the client address it saw.
func (l *kernLab) once() (server, seen string, err error) { return l.onceTo("80") }

// onceTo is once to the VIP's given port.
func (l *kernLab) onceTo(port string) (server, seen string, err error) {
	c, err := l.dialPort("", port, 2*time.Second)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	ans, err := ask(c)
	if err != nil {
		return "", "", err
	}
	f := strings.Fields(ans)
	if len(f) != 2 {
		return "", "", fmt.Errorf("answer %q", ans)
	}
	return f[0], f[1], nil
}

// udpOnce sends one datagram from a fresh socket and reads the answer.
func (l *kernLab) udpOnce() (string, error) {
	var c net.Conn
	if err := l.client.Do(func() error {
		var err error
		c, err = net.Dial("udp4", vip+":80")
		return err
	}); err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("hello")); err != nil {
		return "", err
	}
	buf := make([]byte, 200)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(buf[:n])), nil
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
