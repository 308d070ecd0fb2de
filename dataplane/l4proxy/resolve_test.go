package l4proxy

import (
	"bufio"
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeLookup answers lookups from a table the test changes; a name not in
// it fails as NXDOMAIN would.
type fakeLookup struct {
	mu    sync.Mutex
	addrs map[string][]netip.Addr
	calls int
	asked map[string]int
}

func (f *fakeLookup) lookup(_ context.Context, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.asked == nil {
		f.asked = map[string]int{}
	}
	f.asked[host]++
	a, ok := f.addrs[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return append([]netip.Addr(nil), a...), nil
}

func (f *fakeLookup) set(host string, addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.addrs == nil {
		f.addrs = map[string][]netip.Addr{}
	}
	if addrs == nil {
		delete(f.addrs, host)
		return
	}
	f.addrs[host] = nil
	for _, a := range addrs {
		f.addrs[host] = append(f.addrs[host], netip.MustParseAddr(a))
	}
}

func (f *fakeLookup) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// twoBackendsSamePort starts backends a and b on two loopback addresses
// with the same port, as one name moving between two hosts would see.
func twoBackendsSamePort(t *testing.T) (a, b *backend) {
	t.Helper()
	randIP := func() netip.Addr {
		var r [3]byte
		_, _ = rand.Read(r[:])
		return netip.AddrFrom4([4]byte{127, 1 + r[0]%250, r[1], 1 + r[2]%250})
	}
	start := func(name string, ln net.Listener) *backend {
		be := &backend{name: name, ln: ln, addr: ln.Addr().(*net.TCPAddr).AddrPort(), conns: map[net.Conn]bool{}}
		be.wg.Add(1)
		go be.serve()
		t.Cleanup(be.kill)
		return be
	}
	for range 20 {
		la, err := net.Listen("tcp4", netip.AddrPortFrom(randIP(), 0).String())
		if err != nil {
			t.Fatal(err)
		}
		port := la.Addr().(*net.TCPAddr).AddrPort().Port()
		lb, err := net.Listen("tcp4", netip.AddrPortFrom(randIP(), port).String())
		if err != nil {
			la.Close() // port taken on the second address: another pair
			continue
		}
		return start("a", la), start("b", lb)
	}
	t.Fatal("no port free on two loopback addresses")
	return nil, nil
}

// TestResolveName drives a server given by name with an injected lookup
// and clock: it resolves at once, follows a changed answer in place while
// a connection opened before the change keeps working, keeps its address
// while the answer holds it among others, and keeps its last address,
// shown stale, once the name stops resolving.
func TestResolveName(t *testing.T) {
	t.Parallel()
	a, b := twoBackendsSamePort(t)
	lk := &fakeLookup{}
	lk.set("app.example", a.addr.Addr().String())
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	bind := freePort(t)
	p := newTestPool(t, Options{Clock: clk, Lookup: lk.lookup}, Config{Services: []Service{{
		Name: "dns", Binds: []netip.AddrPort{bind}, ResolveInterval: 10 * time.Second,
		Servers: []Server{{Name: "app", Host: "app.example", Port: a.addr.Port(), Weight: 1}},
	}}})
	// resolveTick advances past the jittered interval and waits for the
	// lookup it fires to be applied (the resolver waits again).
	resolveTick := func() {
		t.Helper()
		n := lk.count()
		clk.advance(12 * time.Second)
		eventually(t, 20*time.Second, "a lookup", func() bool { return lk.count() > n && clk.pending() == 1 })
	}
	eventually(t, 20*time.Second, "first resolution", func() bool { return serverStats(p, "dns", "app").Addr == a.addr.String() })
	eventually(t, 20*time.Second, "resolver waiting", func() bool { return clk.pending() == 1 })
	st := serverStats(p, "dns", "app")
	if st.Status != StatusNoCheck || st.Host != "app.example" || st.Resolve != "" || !st.ResolvedAt.Equal(clk.Now()) {
		t.Fatalf("after the first answer: %+v", st)
	}
	name, old, err := dialName(bind)
	if err != nil || name != "a" {
		t.Fatalf("first connection: %q %v", name, err)
	}
	defer old.Close()

	// The name moves: new connections go to b, the old one keeps a.
	lk.set("app.example", b.addr.Addr().String())
	resolveTick()
	if st := serverStats(p, "dns", "app"); st.Addr != b.addr.String() || st.Status != StatusNoCheck {
		t.Fatalf("after the move: %+v", st)
	}
	if name, c, err := dialName(bind); err != nil || name != "b" {
		t.Fatalf("connection after the move: %q %v", name, err)
	} else {
		c.Close()
	}
	_ = old.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(old, "still here\n"); err != nil {
		t.Fatalf("old connection cut: %v", err)
	}
	if got, err := bufio.NewReader(old).ReadString('\n'); err != nil || got != "still here\n" {
		t.Fatalf("old connection after the move: %q %v", got, err)
	}

	// Round-robin DNS: an answer that still holds the current address
	// does not move the server.
	lk.set("app.example", a.addr.Addr().String(), b.addr.Addr().String())
	resolveTick()
	if st := serverStats(p, "dns", "app"); st.Addr != b.addr.String() {
		t.Fatalf("moved while the answer still held its address: %+v", st)
	}

	// The name stops resolving: the last address stays, shown stale.
	lk.set("app.example")
	resolveTick()
	failedAt := clk.Now()
	resolveTick()
	st = serverStats(p, "dns", "app")
	if st.Addr != b.addr.String() || st.Status != StatusNoCheck || st.Resolve != "stale" || !st.StaleSince.Equal(failedAt) ||
		!strings.Contains(st.ResolveError, "no such host") {
		t.Fatalf("after the name stopped resolving: %+v (failed first at %v)", st, failedAt)
	}
	if name, c, err := dialName(bind); err != nil || name != "b" {
		t.Fatalf("connection with a stale name: %q %v", name, err)
	} else {
		c.Close()
	}
}

// TestResolveNever: a name that never resolves neither fails Set nor the
// service; it is shown DOWN, "unresolved", and traffic goes to the other
// servers until it answers.
func TestResolveNever(t *testing.T) {
	t.Parallel()
	ip := newBackend(t, "ip")
	named := newBackend(t, "named")
	lk := &fakeLookup{}
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	bind := freePort(t)
	p := newTestPool(t, Options{Clock: clk, Lookup: lk.lookup}, Config{Services: []Service{{
		Name: "dns", Binds: []netip.AddrPort{bind}, ResolveInterval: 10 * time.Second,
		Servers: []Server{
			{Name: "ip", Addr: ip.addr, Weight: 1},
			{Name: "named", Host: "missing.example", Port: named.addr.Port(), Weight: 1},
		},
	}}})
	eventually(t, 20*time.Second, "resolver waiting after its first lookup", func() bool { return lk.count() == 1 && clk.pending() == 1 })
	st := serverStats(p, "dns", "named")
	if st.Status != "DOWN" || st.Resolve != "unresolved" || st.Host != "missing.example" || st.Addr != "" || st.ResolveError == "" {
		t.Fatalf("never resolved: %+v", st)
	}
	if !p.Healthy("dns") {
		t.Fatal("service unhealthy with an IP server up")
	}
	for i := range 6 {
		if name, c, err := dialName(bind); err != nil || name != "ip" {
			t.Fatalf("connection %d: %q %v", i, name, err)
		} else {
			c.Close()
		}
	}
	// It answers at last: in rotation without any Set.
	lk.set("missing.example", named.addr.Addr().String())
	clk.advance(12 * time.Second)
	eventually(t, 20*time.Second, "named server up", func() bool { return serverStats(p, "dns", "named").Status == StatusNoCheck })
	seen := map[string]bool{}
	for range 6 {
		name, c, err := dialName(bind)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		seen[name] = true
	}
	if !seen["named"] {
		t.Errorf("served by %v, want the named server too", seen)
	}
}

// TestResolveHostChange: a Set that changes the name starts over
// (unresolved until the new name answers); one that keeps it keeps the
// address found, without a new lookup.
func TestResolveHostChange(t *testing.T) {
	t.Parallel()
	lk := &fakeLookup{}
	lk.set("one.example", "198.51.100.1")
	lk.set("two.example", "198.51.100.2")
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	cfg := func(host string, weight int) Config {
		return Config{Services: []Service{{
			Name: "dns", Binds: []netip.AddrPort{freePort(t)},
			Servers: []Server{{Name: "app", Host: host, Port: 80, Weight: weight}},
		}}}
	}
	c1 := cfg("one.example", 1)
	p := newTestPool(t, Options{Clock: clk, Lookup: lk.lookup}, c1)
	eventually(t, 20*time.Second, "first name", func() bool { return serverStats(p, "dns", "app").Addr == "198.51.100.1:80" })
	c1.Services[0].Servers[0].Weight = 2
	if err := p.Set(context.Background(), c1); err != nil {
		t.Fatal(err)
	}
	if st := serverStats(p, "dns", "app"); st.Addr != "198.51.100.1:80" || st.Weight != 2 || lk.count() != 1 {
		t.Fatalf("same name, new weight: %+v after %d lookups", st, lk.count())
	}
	c1.Services[0].Servers[0].Host = "two.example"
	if err := p.Set(context.Background(), c1); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "second name", func() bool { return serverStats(p, "dns", "app").Addr == "198.51.100.2:80" })
	// The first name's resolver is gone: the next interval asks only for
	// the second.
	n := lk.count()
	clk.advance(12 * time.Second)
	eventually(t, 20*time.Second, "next lookup", func() bool { return lk.count() > n })
	lk.mu.Lock()
	defer lk.mu.Unlock()
	if lk.asked["one.example"] != 1 || lk.asked["two.example"] != 2 {
		t.Errorf("lookups %v, want one.example once and two.example twice", lk.asked)
	}
}

func TestServerHostValidation(t *testing.T) {
	t.Parallel()
	bind := netip.MustParseAddrPort("127.0.0.1:1")
	for _, tt := range []struct {
		srv  Server
		want string // "" valid
	}{
		{Server{Name: "s", Host: "db-1.example.com", Port: 5432, Weight: 1}, ""},
		{Server{Name: "s", Host: "db.example.com.", Port: 5432, Weight: 1}, ""},
		{Server{Name: "s", Host: "localhost", Port: 80, Weight: 1}, ""},
		{Server{Name: "s", Host: "db.example.com", Weight: 1}, "without a port"},
		{Server{Name: "s", Host: "-db.example.com", Port: 1, Weight: 1}, "not starting or ending"},
		{Server{Name: "s", Host: "db_1.example.com", Port: 1, Weight: 1}, "not allowed"},
		{Server{Name: "s", Host: "a..b", Port: 1, Weight: 1}, "1 to 63"},
		{Server{Name: "s", Host: strings.Repeat("a", 64) + ".example", Port: 1, Weight: 1}, "1 to 63"},
		{Server{Name: "s", Host: "198.51.100.1", Port: 1, Weight: 1}, "an IP address"},
		{Server{Name: "s", Host: "999.1.1.1", Port: 1, Weight: 1}, "an IP address"},
		{Server{Name: "s", Host: "db.example", Port: 1, Addr: netip.MustParseAddrPort("198.51.100.1:1"), Weight: 1}, "both host"},
	} {
		err := Config{Services: []Service{{Name: "x", Binds: []netip.AddrPort{bind}, Servers: []Server{tt.srv}}}}.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%+v: %v", tt.srv, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%+v: error %v, want %q", tt.srv, err, tt.want)
		}
	}
	err := Config{Services: []Service{{Name: "x", Binds: []netip.AddrPort{bind}, ResolveInterval: time.Millisecond}}}.Validate()
	if err == nil || !strings.Contains(err.Error(), "resolve interval") {
		t.Errorf("1ms resolve interval: %v", err)
	}
}

// TestResolveUnresolvedCheck: the health check of a name without an
// address probes nothing and says why.
func TestResolveUnresolvedCheck(t *testing.T) {
	t.Parallel()
	be := newBackend(t, "be") // on 127.0.0.1: what a probe of no address might reach
	lk := &fakeLookup{}
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	p := newTestPool(t, Options{Clock: clk, Lookup: lk.lookup}, Config{Services: []Service{{
		Name: "dns", Binds: []netip.AddrPort{freePort(t)},
		Servers: []Server{{Name: "named", Host: "missing.example", Port: be.addr.Port(), Weight: 1}},
		Check:   &Check{Type: CheckTCP, Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1},
	}}})
	eventually(t, 20*time.Second, "check and resolver waiting", func() bool { return lk.count() == 1 && clk.pending() == 2 })
	clk.advance(2 * time.Second)
	eventually(t, 20*time.Second, "a failed check", func() bool { return serverStats(p, "dns", "named").FailedChecks > 0 })
	if st := serverStats(p, "dns", "named"); st.Check != "unresolved" || st.Status != "DOWN" || be.accept.Load() != 0 {
		t.Fatalf("check of an unresolved name: %+v, %d connections to 127.0.0.1", st, be.accept.Load())
	}
}
