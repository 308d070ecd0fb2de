package l4proxy

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func testServers(specs ...string) []*server {
	// spec: name[:weight][:b][:max=N]
	var out []*server
	for i, sp := range specs {
		f := strings.Split(sp, ":")
		s := Server{Name: f[0], Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}), 80), Weight: 1}
		for _, o := range f[1:] {
			switch {
			case o == "b":
				s.Backup = true
			case strings.HasPrefix(o, "max="):
				fmt.Sscan(o[4:], &s.MaxConn)
			default:
				fmt.Sscan(o, &s.Weight)
			}
		}
		out = append(out, newServer(s, time.Unix(0, 0)))
	}
	return out
}

func testService(bal Balance, persist time.Duration, servers []*server) *service {
	svc := &service{name: "t"}
	svc.set.Store(newSettings(Service{Name: "t", Balance: bal, Persistence: persist}))
	svc.servers = servers
	svc.tbl.Store(buildTable(servers))
	return svc
}

func seq(t *testing.T, svc *service, p *picker, n int, client func(i int) netip.Addr) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < n; i++ {
		s, err := p.pick(svc, svc.tbl.Load(), svc.set.Load(), client(i), nil)
		if err != nil {
			b.WriteString("!")
			continue
		}
		b.WriteString(s.name)
	}
	return b.String()
}

func oneClient(int) netip.Addr { return netip.MustParseAddr("203.0.113.7") }

func clientN(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

func TestRoundRobinSmooth(t *testing.T) {
	tests := []struct {
		servers []string
		want    string
	}{
		{[]string{"a", "b", "c"}, "abcabc"},
		// nginx's smooth WRR sequence for 5,1,1.
		{[]string{"a:5", "b:1", "c:1"}, "aabacaaaabacaa"},
		// Drained (weight 0) and backup servers take nothing while a primary is up.
		{[]string{"a:0", "b", "c:1:b"}, "bbbb"},
		// Only backups left: they share the load.
		{[]string{"a:0", "b:1:b", "c:1:b"}, "bcbc"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.servers, ","), func(t *testing.T) {
			svc := testService(RoundRobin, 0, testServers(tt.servers...))
			if got := seq(t, svc, &picker{}, len(tt.want), oneClient); got != tt.want {
				t.Errorf("sequence = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRoundRobinSkipsFull(t *testing.T) {
	srvs := testServers("a:1:max=1", "b")
	svc := testService(RoundRobin, 0, srvs)
	srvs[0].cur.Store(1)
	if got := seq(t, svc, &picker{}, 3, oneClient); got != "bbb" {
		t.Errorf("got %q, want bbb", got)
	}
	srvs[1].cfg.Load().Server.MaxConn = 0
	srvs[1].setCfg(Server{Name: "b", Addr: srvs[1].cfg.Load().Addr, Weight: 1, MaxConn: 1})
	srvs[1].cur.Store(1)
	if _, err := (&picker{}).pick(svc, svc.tbl.Load(), svc.set.Load(), oneClient(0), nil); err != errFull {
		t.Errorf("all full: err = %v, want errFull", err)
	}
}

func TestLeastConnWeighted(t *testing.T) {
	srvs := testServers("a:2", "b:1")
	svc := testService(LeastConn, 0, srvs)
	p := &picker{}
	// Simulate connections that stay open: a should get twice b's share.
	for i := 0; i < 300; i++ {
		s, err := p.pick(svc, svc.tbl.Load(), svc.set.Load(), oneClient(0), nil)
		if err != nil {
			t.Fatal(err)
		}
		s.cur.Add(1)
	}
	a, b := srvs[0].cur.Load(), srvs[1].cur.Load()
	if a != 200 || b != 100 {
		t.Errorf("leastconn spread a=%d b=%d, want 200/100", a, b)
	}
}

func TestSourceConsistentHash(t *testing.T) {
	srvs := testServers("a", "b", "c", "d")
	svc := testService(Source, 0, srvs)
	p := &picker{}
	const n = 4000
	before := make([]*server, n)
	count := map[string]int{}
	for i := 0; i < n; i++ {
		s, err := p.pick(svc, svc.tbl.Load(), svc.set.Load(), clientN(i), nil)
		if err != nil {
			t.Fatal(err)
		}
		before[i] = s
		count[s.name]++
		// Same client, same server.
		if s2, _ := p.pick(svc, svc.tbl.Load(), svc.set.Load(), clientN(i), nil); s2 != s {
			t.Fatalf("client %d moved between picks", i)
		}
	}
	for name, c := range count {
		if c < n/4/2 || c > n/4*2 {
			t.Errorf("server %s got %d of %d clients: badly spread %v", name, c, n, count)
		}
	}
	// Take c down: only c's clients move.
	srvs[2].up.Store(false)
	svc.tbl.Store(buildTable(srvs))
	moved := 0
	for i := 0; i < n; i++ {
		s, _ := p.pick(svc, svc.tbl.Load(), svc.set.Load(), clientN(i), nil)
		if s != before[i] {
			moved++
			if before[i].name != "c" {
				t.Fatalf("client %d moved from %s to %s though %s is up", i, before[i].name, s.name, before[i].name)
			}
		}
	}
	if moved != count["c"] {
		t.Errorf("moved %d clients, want %d (c's share)", moved, count["c"])
	}
}

func TestFirst(t *testing.T) {
	srvs := testServers("a:1:max=2", "b:1:max=2", "c")
	svc := testService(First, 0, srvs)
	p := &picker{}
	var got strings.Builder
	for i := 0; i < 6; i++ {
		s, err := p.pick(svc, svc.tbl.Load(), svc.set.Load(), oneClient(0), nil)
		if err != nil {
			t.Fatal(err)
		}
		s.cur.Add(1)
		got.WriteString(s.name)
	}
	if got.String() != "aabbcc" {
		t.Errorf("first: %q, want aabbcc", got.String())
	}
}

func TestPersistence(t *testing.T) {
	srvs := testServers("a", "b", "c")
	svc := testService(RoundRobin, time.Hour, srvs)
	p := &picker{}
	first := map[int]string{}
	for i := 0; i < 30; i++ {
		s, _ := p.pick(svc, svc.tbl.Load(), svc.set.Load(), clientN(i), nil)
		first[i] = s.name
	}
	for round := 0; round < 3; round++ {
		for i := 0; i < 30; i++ {
			s, _ := p.pick(svc, svc.tbl.Load(), svc.set.Load(), clientN(i), nil)
			if s.name != first[i] {
				t.Fatalf("client %d: %s then %s despite persistence", i, first[i], s.name)
			}
		}
	}
	// A sticky server that goes down loses its clients.
	srvs[0].up.Store(false)
	svc.tbl.Store(buildTable(srvs))
	for i := 0; i < 30; i++ {
		s, _ := p.pick(svc, svc.tbl.Load(), svc.set.Load(), clientN(i), nil)
		if s.name == "a" {
			t.Fatalf("client %d still sent to down server a", i)
		}
	}
	// Expiry.
	svc.sticky.expire(monoNow() + int64(2*time.Hour))
	if n := svc.sticky.len(); n != 0 {
		t.Errorf("%d sticky entries after expiry", n)
	}
}

func TestTriedServersAreAvoided(t *testing.T) {
	srvs := testServers("a", "b")
	svc := testService(RoundRobin, 0, srvs)
	p := &picker{}
	for i := 0; i < 4; i++ {
		s, err := p.pick(svc, svc.tbl.Load(), svc.set.Load(), oneClient(0), srvs[:1])
		if err != nil || s.name != "b" {
			t.Fatalf("pick with a tried = %v, %v; want b", s, err)
		}
	}
	// Everything tried: fall back to a tried one rather than failing.
	if s, err := p.pick(svc, svc.tbl.Load(), svc.set.Load(), oneClient(0), srvs); err != nil || s == nil {
		t.Fatalf("all tried: %v, %v", s, err)
	}
}

func TestNoServer(t *testing.T) {
	srvs := testServers("a")
	srvs[0].up.Store(false)
	svc := testService(RoundRobin, 0, srvs)
	if _, err := (&picker{}).pick(svc, svc.tbl.Load(), svc.set.Load(), oneClient(0), nil); err != errNoServer {
		t.Errorf("err = %v, want errNoServer", err)
	}
}
