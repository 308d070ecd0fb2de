package l4proxy

import (
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitgw/gitgw/dataplane/httpproxy"
)

// socksPeer is a minimal SOCKS4 server on loopback for the tests that
// run without root: it grants a CONNECT by connecting to the destination
// and relaying, or refuses every CONNECT with code 0x5B. The netns lab
// (socks4_netns_test.go) runs OpenSSH's instead.
type socksPeer struct {
	ln     net.Listener
	addr   netip.AddrPort
	refuse bool
	mu     sync.Mutex
	asked  []netip.AddrPort // the destinations of the requests
	users  map[string]int   // the user ids sent
	wg     sync.WaitGroup
}

func newSOCKSPeer(t testing.TB, refuse bool) *socksPeer {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &socksPeer{ln: ln, addr: ln.Addr().(*net.TCPAddr).AddrPort(), refuse: refuse, users: map[string]int{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *socksPeer) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			// The request, then a user id ended by NUL: gitgw sends none,
			// HAProxy "HAProxy".
			var req [8]byte
			if _, err := io.ReadFull(c, req[:]); err != nil || req[0] != 4 || req[1] != 1 {
				return
			}
			var user []byte
			for one := make([]byte, 1); ; {
				if _, err := io.ReadFull(c, one); err != nil || len(user) > 255 {
					return
				}
				if one[0] == 0 {
					break
				}
				user = append(user, one[0])
			}
			p.mu.Lock()
			p.users[string(user)]++
			p.mu.Unlock()
			dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte(req[4:8])), uint16(req[2])<<8|uint16(req[3]))
			p.mu.Lock()
			p.asked = append(p.asked, dst)
			p.mu.Unlock()
			if p.refuse {
				_, _ = c.Write([]byte{0, 0x5b, 0, 0, 0, 0, 0, 0})
				return
			}
			s, err := net.DialTimeout("tcp4", dst.String(), 5*time.Second)
			if err != nil {
				_, _ = c.Write([]byte{0, 0x5b, 0, 0, 0, 0, 0, 0})
				return
			}
			defer s.Close()
			if _, err := c.Write([]byte{0, 0x5a, 0, 0, 0, 0, 0, 0}); err != nil {
				return
			}
			_ = c.SetDeadline(time.Time{})
			done := make(chan struct{})
			go func() {
				_, _ = io.Copy(s, c)
				_ = s.(*net.TCPConn).CloseWrite()
				close(done)
			}()
			_, _ = io.Copy(c, s)
			_ = c.(*net.TCPConn).CloseWrite()
			<-done
		}()
	}
}

func (p *socksPeer) requests() []netip.AddrPort {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]netip.AddrPort(nil), p.asked...)
}

// TestSOCKS4Tunnel: a server with a SOCKS4 proxy is reached by a CONNECT
// through it, for the server's own address, and the data path (greeting,
// echo, half-close) runs through the tunnel.
func TestSOCKS4Tunnel(t *testing.T) {
	a := newBackend(t, "a")
	proxy := newSOCKSPeer(t, false)
	bind := freePort(t)
	p := newTestPool(t, Options{}, Config{Services: []Service{{
		Name: "smtp", Binds: []netip.AddrPort{bind},
		Servers: []Server{{Name: "a", Addr: a.addr, Weight: 1, SOCKS4: proxy.addr}},
	}}})
	for i := range 3 {
		name, err := roundTrip(bind, strings.Repeat("through the tunnel ", 1000))
		if err != nil || name != "a" {
			t.Fatalf("request %d: %q %v", i, name, err)
		}
	}
	if got := proxy.requests(); len(got) != 3 || got[0] != a.addr {
		t.Errorf("the proxy was asked for %v, want 3 CONNECTs to %v", got, a.addr)
	}
	proxy.mu.Lock()
	if proxy.users[""] != 3 || len(proxy.users) != 1 {
		t.Errorf("user ids sent: %v, want 3 empty ones", proxy.users)
	}
	proxy.mu.Unlock()
	if st := serverStats(p, "smtp", "a"); st.Total != 3 || st.ConnectErrors != 0 {
		t.Errorf("server a: total %d connect errors %d, want 3 and 0", st.Total, st.ConnectErrors)
	}
}

// TestSOCKS4RefusedRedispatches: a CONNECT the proxy refuses (0x5B) is a
// failed connect: counted on the server and redispatched to another, so
// that no client sees it.
func TestSOCKS4RefusedRedispatches(t *testing.T) {
	b := newBackend(t, "b")
	proxy := newSOCKSPeer(t, true)
	bind := freePort(t)
	p := newTestPool(t, Options{}, Config{Services: []Service{{
		Name: "smtp", Binds: []netip.AddrPort{bind}, Redispatch: true,
		Servers: []Server{
			{Name: "a", Addr: netip.MustParseAddrPort("198.51.100.10:25"), Weight: 1, SOCKS4: proxy.addr},
			srvCfg(b, 1),
		},
	}}})
	for i := range 6 {
		name, err := roundTrip(bind, "hello\n")
		if err != nil || name != "b" {
			t.Fatalf("request %d: %q %v, want b", i, name, err)
		}
	}
	if len(proxy.requests()) == 0 {
		t.Fatal("the refusing proxy was never asked")
	}
	st := serverStats(p, "smtp", "a")
	if st.ConnectErrors != int64(len(proxy.requests())) || st.Total != 0 {
		t.Errorf("server a: %d connect errors, %d sessions; want one error per refused CONNECT (%d) and none",
			st.ConnectErrors, st.Total, len(proxy.requests()))
	}
}

// TestSOCKS4Validate refuses what SOCKS4 cannot carry.
func TestSOCKS4Validate(t *testing.T) {
	proxy := netip.MustParseAddrPort("127.0.0.1:1080")
	bind := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:80")}
	for _, tc := range []struct {
		name string
		svc  Service
		want string
	}{
		{"ipv6 server", Service{Servers: []Server{{Addr: netip.MustParseAddrPort("[2001:db8::1]:25"), SOCKS4: proxy}}}, "SOCKS4 carries IPv4 only"},
		{"check via without proxy", Service{Servers: []Server{{Addr: netip.MustParseAddrPort("198.51.100.1:25"), CheckViaSOCKS4: true}}}, "check via socks4 without a socks4 proxy"},
		{"udp", Service{Protocol: ProtoUDP, Servers: []Server{{Addr: netip.MustParseAddrPort("198.51.100.1:53"), SOCKS4: proxy}}}, "socks4: for TCP servers"},
		{"transparent", Service{Transparent: true, Servers: []Server{{Addr: netip.MustParseAddrPort("198.51.100.1:25"), SOCKS4: proxy}}}, "transparent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.svc
			s.Name, s.Binds = "s", bind
			s.Servers[0].Name, s.Servers[0].Weight = "a", 1
			err := Config{Services: []Service{s}}.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
	// HTTP mode connects to its servers, and its pools', directly.
	via := Server{Name: "a", Addr: netip.MustParseAddrPort("198.51.100.1:80"), Weight: 1, SOCKS4: proxy}
	err := Config{Services: []Service{
		{Name: "web", Binds: bind, HTTP: &httpproxy.HTTP{Rules: []httpproxy.Rule{{Use: "pool"}}}, Servers: []Server{via}},
		{Name: "pool", Servers: []Server{via}},
	}}.Validate()
	for _, want := range []string{`service "web": server "a": socks4 in an http or sni service`, `rules send to service "pool", whose server "a" is reached through socks4`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("http: got %v, want an error with %q", err, want)
		}
	}
}

// TestSOCKS4Checks: with check-via-socks4 a server is checked through
// its proxy (and marked down when the proxy is dead); without it, it is
// checked directly, as HAProxy does, and a dead proxy does not take it
// out.
func TestSOCKS4Checks(t *testing.T) {
	a := newBackend(t, "a")
	proxy := newSOCKSPeer(t, false)
	dead := newSOCKSPeer(t, false)
	dead.ln.Close() // nothing listens there any more
	bind := freePort(t)
	p := newTestPool(t, Options{}, Config{Services: []Service{{
		Name: "smtp", Binds: []netip.AddrPort{bind},
		Servers: []Server{
			{Name: "via", Addr: a.addr, Weight: 1, SOCKS4: proxy.addr, CheckViaSOCKS4: true},
			{Name: "dead-via", Addr: a.addr, Weight: 1, SOCKS4: dead.addr, CheckViaSOCKS4: true},
			{Name: "dead-direct", Addr: a.addr, Weight: 1, SOCKS4: dead.addr},
		},
		Check: &Check{Type: CheckTCP, Interval: 50 * time.Millisecond, Rise: 1, Fall: 1},
	}}})
	eventually(t, 10*time.Second, "checks on every server", func() bool {
		for _, n := range []string{"via", "dead-via", "dead-direct"} {
			if serverStats(p, "smtp", n).LastCheck.IsZero() {
				return false
			}
		}
		return true
	})
	eventually(t, 10*time.Second, "dead-via down", func() bool { return serverStats(p, "smtp", "dead-via").Status == StatusDown })
	for n, want := range map[string]Health{"via": StatusUp, "dead-direct": StatusUp} {
		if st := serverStats(p, "smtp", n); st.Status != want {
			t.Errorf("server %s: %s (%s), want %s", n, st.Status, st.Check, want)
		}
	}
	if d := serverStats(p, "smtp", "dead-via").Check; !strings.Contains(d, "via socks4 "+dead.addr.String()) {
		t.Errorf("dead-via's check says %q, want the proxy named", d)
	}
	if len(proxy.requests()) == 0 {
		t.Error("server via was not checked through its proxy")
	}
}

// TestSOCKS4ServerTLS: server TLS runs inside the tunnel, as HAProxy's
// `ssl … socks4`: the proxy is asked for the server, and the handshake
// (SNI, chain verified against the CA) is with the server behind it.
func TestSOCKS4ServerTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	_, _, pair := ca.issue(t, dir, "api", "api.example")
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go serveTLSEcho(ln, &tls.Config{Certificates: []tls.Certificate{pair}})
	srvAddr := ln.Addr().(*net.TCPAddr).AddrPort()
	proxy := newSOCKSPeer(t, false)
	bind := freePort(t)
	newTestPool(t, Options{}, Config{Services: []Service{{
		Name: "api", Binds: []netip.AddrPort{bind},
		Servers: []Server{{Name: "a", Addr: srvAddr, Weight: 1, SOCKS4: proxy.addr,
			TLS: &ServerTLS{CAFile: ca.pemFile, SNI: "api.example"}}},
	}}})
	line, c, err := dialName(bind)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if line != "sni=api.example client=- alpn=-" {
		t.Errorf("the server saw %q", line)
	}
	if _, err := io.WriteString(c, "inside the tunnel"); err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).CloseWrite()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if got, err := io.ReadAll(c); err != nil || string(got) != "inside the tunnel" {
		t.Errorf("echo %q %v", got, err)
	}
	if got := proxy.requests(); len(got) != 1 || got[0] != srvAddr {
		t.Errorf("the proxy was asked for %v, want %v", got, srvAddr)
	}
}

// TestSOCKS4ProxySilent: a proxy that takes the connection and never
// answers the CONNECT fails the attempt once the connect timeout is spent
// (counted, redispatched), not later.
func TestSOCKS4ProxySilent(t *testing.T) {
	mute, err := net.Listen("tcp4", "127.0.0.1:0") // accepts, never speaks
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mute.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	b := newBackend(t, "b")
	bind := freePort(t)
	p := newTestPool(t, Options{}, Config{Services: []Service{{
		Name: "smtp", Binds: []netip.AddrPort{bind}, Redispatch: true,
		Timeouts: Timeouts{Connect: 300 * time.Millisecond},
		Servers: []Server{
			{Name: "a", Addr: netip.MustParseAddrPort("198.51.100.10:25"), Weight: 1, SOCKS4: mute.Addr().(*net.TCPAddr).AddrPort()},
			srvCfg(b, 1),
		},
	}}})
	for i := range 4 {
		if name, err := roundTrip(bind, "hello\n"); err != nil || name != "b" {
			t.Fatalf("request %d: %q %v, want b", i, name, err)
		}
	}
	if st := serverStats(p, "smtp", "a"); st.ConnectErrors == 0 || st.Total != 0 {
		t.Errorf("server a: %d connect errors, %d sessions; want its silent CONNECTs failed", st.ConnectErrors, st.Total)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(held) == 0 {
		t.Error("the silent proxy was never connected to")
	}
}
