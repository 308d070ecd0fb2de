package l4proxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// queueService is a service of testServers with a pool (for the queue's
// context) and no sockets.
func queueService(bal Balance, persist time.Duration, specs ...string) (*service, []*server) {
	srvs := testServers(specs...)
	svc := testService(bal, persist, srvs)
	svc.pool = &Pool{ctx: context.Background()}
	return svc, srvs
}

// enqueue puts a waiter in the queue of pinned (nil: the service queue)
// the way wait does, without blocking.
func enqueue(svc *service, pinned *server, name string, names map[*waiter]string) *waiter {
	svc.qmu.Lock()
	w := svc.enqueueLocked(pinned)
	svc.qmu.Unlock()
	names[w] = name
	return w
}

// served lists, in enqueue order, the waiters that were handed a slot and
// which server's ("w1→a"); "w2→∅" is a wake-up without a slot.
func served(ws []*waiter, names map[*waiter]string) string {
	var out []string
	for _, w := range ws {
		select {
		case s := <-w.ch:
			to := "∅"
			if s != nil {
				to = s.name
			}
			out = append(out, names[w]+"→"+to)
		default:
		}
	}
	return strings.Join(out, " ")
}

func queueNames(svc *service, s *server, names map[*waiter]string) string {
	q := svc.queue
	if s != nil {
		q = s.queue
	}
	var out []string
	for _, w := range q {
		out = append(out, names[w])
	}
	return strings.Join(out, ",")
}

func TestQueueHandOver(t *testing.T) {
	tests := []struct {
		name    string
		queue   []string // waiter i+1 waits on this server ("" = service queue)
		release []int    // server index freeing a slot, in order
		want    string
		left    int64 // queued afterwards
	}{
		{"own queue is FIFO", []string{"a", "a", "a"}, []int{0, 0}, "w1→a w2→a", 1},
		{"oldest of own and service queue", []string{"", "a", ""}, []int{0, 0, 0}, "w1→a w2→a w3→a", 0},
		{"own queue before a younger service waiter", []string{"a", ""}, []int{0}, "w1→a", 1},
		{"a server does not serve another's queue", []string{"a", "a"}, []int{1}, "", 2},
		{"any server serves the service queue", []string{"", "", "a"}, []int{1, 1, 1}, "w1→b w2→b", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, srvs := queueService(RoundRobin, 0, "a:1:max=1", "b:1:max=1")
			for _, s := range srvs {
				s.cur.Store(1)
			}
			names := map[*waiter]string{}
			var ws []*waiter
			for i, q := range tt.queue {
				var pin *server
				if q != "" {
					pin = srvs[q[0]-'a']
				}
				ws = append(ws, enqueue(svc, pin, fmt.Sprintf("w%d", i+1), names))
			}
			for _, i := range tt.release {
				svc.releaseServer(srvs[i])
			}
			if got := served(ws, names); got != tt.want {
				t.Errorf("served %q, want %q", got, tt.want)
			}
			if n := svc.queued.Load(); n != tt.left {
				t.Errorf("queued %d, want %d", n, tt.left)
			}
			// A slot handed over is not given back: the server stays full.
			for _, s := range srvs {
				if c := s.cur.Load(); c != 1 && s.queued.Load()+int64(len(svc.queue)) > 0 {
					t.Errorf("server %s: cur %d while connections wait", s.name, c)
				}
			}
		})
	}
}

func TestQueueReleaseWithoutWaiters(t *testing.T) {
	svc, srvs := queueService(RoundRobin, 0, "a:1:max=1")
	srvs[0].cur.Store(1)
	svc.releaseServer(srvs[0])
	if c := srvs[0].cur.Load(); c != 0 {
		t.Errorf("cur %d after release, want 0", c)
	}
}

func TestQueueRedispatch(t *testing.T) {
	svc, srvs := queueService(Source, 0, "a:1:max=1", "b:1:max=2")
	a, b := srvs[0], srvs[1]
	a.cur.Store(1)
	b.cur.Store(2)
	names := map[*waiter]string{}
	var ws []*waiter
	ws = append(ws, enqueue(svc, nil, "w1", names))
	ws = append(ws, enqueue(svc, a, "w2", names))
	ws = append(ws, enqueue(svc, nil, "w3", names))
	ws = append(ws, enqueue(svc, a, "w4", names))
	// a is drained: its waiters join the service queue in age order.
	a.setCfg(Server{Name: "a", Addr: a.cfg.Load().Addr, Weight: 1, MaxConn: 1, State: Drain})
	svc.rebuild()
	if got := queueNames(svc, nil, names); got != "w1,w2,w3,w4" {
		t.Errorf("service queue %q, want w1,w2,w3,w4", got)
	}
	if n := a.queued.Load(); n != 0 || len(a.queue) != 0 {
		t.Errorf("drained server still queues %d", n)
	}
	// b serves them in order; a's slot, when freed, goes to nobody.
	svc.releaseServer(a)
	svc.releaseServer(b)
	svc.releaseServer(b)
	if got := served(ws, names); got != "w1→b w2→b" {
		t.Errorf("served %q, want w1→b w2→b", got)
	}
	if c := a.cur.Load(); c != 0 {
		t.Errorf("drained server cur %d, want 0", c)
	}
	// A raised maxconn hands out the new slots at once.
	b.setCfg(Server{Name: "b", Addr: b.cfg.Load().Addr, Weight: 1, MaxConn: 4})
	svc.rebuild()
	if got := served(ws, names); got != "w3→b w4→b" {
		t.Errorf("served %q, want w3→b w4→b", got)
	}
	// No server left at all: waiters are woken to fail now.
	w5 := enqueue(svc, b, "w5", names)
	b.up.Store(false)
	svc.rebuild()
	if got := served([]*waiter{w5}, names); got != "w5→∅" {
		t.Errorf("served %q, want w5→∅", got)
	}
	if n := svc.queued.Load(); n != 0 {
		t.Errorf("queued %d, want 0", n)
	}
}

func TestPickPinned(t *testing.T) {
	tests := []struct {
		name    string
		bal     Balance
		persist time.Duration
		want    string // pinned server, "" = service queue
	}{
		{"source hash", Source, 0, "own"},
		{"persistence", RoundRobin, time.Hour, "own"},
		{"roundrobin", RoundRobin, 0, ""},
		{"leastconn", LeastConn, 0, ""},
		{"first", First, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, srvs := queueService(tt.bal, tt.persist, "a:1:max=1", "b:1:max=1")
			p := &picker{}
			first, err := p.pick(svc, svc.tbl.Load(), svc.set.Load(), oneClient(0), nil)
			if err != nil {
				t.Fatal(err)
			}
			first.cur.Store(1)
			other := srvs[0]
			if other == first {
				other = srvs[1]
			}
			other.cur.Store(1)
			got, err := p.pick(svc, svc.tbl.Load(), svc.set.Load(), oneClient(0), nil)
			if err != errFull {
				t.Fatalf("err %v, want errFull", err)
			}
			switch {
			case tt.want == "" && got != nil:
				t.Errorf("pinned to %s, want the service queue", got.name)
			case tt.want == "own" && got != first:
				t.Errorf("pinned to %v, want %s", got, first.name)
			}
			if tt.want == "own" {
				// Pinned even when another server has room.
				other.cur.Store(0)
				if got, err := p.pick(svc, svc.tbl.Load(), svc.set.Load(), oneClient(0), nil); err != errFull || got != first {
					t.Errorf("with room elsewhere: %v, %v; want %s, errFull", got, err, first.name)
				}
			}
		})
	}
}

// pinnedClient dials through the proxy and reports its index once the
// server greeted it (it was given a slot); it keeps the connection open.
func pinnedClient(bind netip.AddrPort, i int, served chan<- int, conns chan<- net.Conn) {
	_, c, err := dialName(bind)
	if err != nil {
		served <- -i
		return
	}
	conns <- c
	served <- i
}

func TestServerQueueServesInOrder(t *testing.T) {
	t.Parallel()
	a := newBackend(t, "a")
	b := newBackend(t, "b")
	bind := freePort(t)
	p := newTestPool(t, Options{}, Config{Services: []Service{{
		Name: "pin", Binds: []netip.AddrPort{bind}, Balance: Source,
		Servers:  []Server{{Name: "a", Addr: a.addr, Weight: 1, MaxConn: 1}, {Name: "b", Addr: b.addr, Weight: 1, MaxConn: 1}},
		Timeouts: Timeouts{Queue: time.Minute},
	}}})
	// Every client comes from 127.0.0.1: the hash pins them all to one server.
	name, c1, err := dialName(bind)
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	served := make(chan int, n)
	conns := make(chan net.Conn, n)
	for i := 2; i <= n; i++ {
		go pinnedClient(bind, i, served, conns)
		eventually(t, 10*time.Second, fmt.Sprintf("client %d queued", i), func() bool {
			return serverStats(p, "pin", name).Queue == int64(i-1)
		})
	}
	st := p.Stats().Services[0]
	if st.Queue != n-1 || st.ServiceQueue != 0 {
		t.Errorf("service queue %d, total %d; want 0 and %d", st.ServiceQueue, st.Queue, n-1)
	}
	other := "a"
	if name == "a" {
		other = "b"
	}
	if cur := serverStats(p, "pin", other).Current; cur != 0 {
		t.Errorf("server %s took %d pinned connections", other, cur)
	}
	prev := c1
	for i := 2; i <= n; i++ {
		prev.Close()
		select {
		case got := <-served:
			if got != i {
				t.Fatalf("served client %d, want %d", got, i)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("client %d never served", i)
		}
		prev = <-conns
	}
	prev.Close()
	if s := serverStats(p, "pin", name); s.MaxQueue != n-1 || s.Queue != 0 || s.Total != n {
		t.Errorf("server %s: queue %d max %d total %d; want 0, %d, %d", name, s.Queue, s.MaxQueue, s.Total, n-1, n)
	}
}

func TestServerQueueTimeout(t *testing.T) {
	t.Parallel()
	a := newBackend(t, "a")
	b := newBackend(t, "b")
	bind := freePort(t)
	p, rec := newLoggedPool(t, Config{Services: []Service{{
		Name: "pin", Binds: []netip.AddrPort{bind}, Balance: RoundRobin, Persistence: time.Hour, Log: true,
		Servers:  []Server{{Name: "a", Addr: a.addr, Weight: 1, MaxConn: 1}, {Name: "b", Addr: b.addr, Weight: 1}},
		Timeouts: Timeouts{Queue: 200 * time.Millisecond},
	}}})
	// The first connection goes to a (smooth round robin starts there) and
	// makes the client sticky to it; the second must wait for a, not use b.
	name, c1, err := dialName(bind)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	if name != "a" {
		t.Fatalf("first connection on %s, want a", name)
	}
	if _, _, err := dialName(bind); err == nil {
		t.Fatal("second connection served though its server is full and the queue timed out")
	}
	eventually(t, 10*time.Second, "queue timeout logged", func() bool { return len(rec.conns()) == 1 })
	if l := rec.conns()[0]; l["termination"] != "sQ" || l["server"] != "" {
		t.Errorf("log %v, want termination sQ and no server", l)
	}
	st := p.Stats().Services[0]
	if st.QueueTimeouts != 1 || st.Errors != 1 || st.Queue != 0 {
		t.Errorf("service: queue timeouts %d errors %d queue %d; want 1, 1, 0", st.QueueTimeouts, st.Errors, st.Queue)
	}
	if s := serverStats(p, "pin", "a"); s.QueueTimeouts != 1 || s.MaxQueue != 1 {
		t.Errorf("server a: queue timeouts %d max queue %d; want 1, 1", s.QueueTimeouts, s.MaxQueue)
	}
	if s := serverStats(p, "pin", "b"); s.Total != 0 {
		t.Errorf("server b took %d connections of a client sticky to a", s.Total)
	}
}

func TestServerQueueRedispatchedOnDrain(t *testing.T) {
	t.Parallel()
	a := newBackend(t, "a")
	b := newBackend(t, "b")
	bind := freePort(t)
	cfg := Config{Services: []Service{{
		Name: "pin", Binds: []netip.AddrPort{bind}, Balance: Source,
		Servers:  []Server{{Name: "a", Addr: a.addr, Weight: 1, MaxConn: 1}, {Name: "b", Addr: b.addr, Weight: 1, MaxConn: 1}},
		Timeouts: Timeouts{Queue: time.Minute},
	}}}
	p := newTestPool(t, Options{}, cfg)
	name, c1, err := dialName(bind)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	served := make(chan int, 1)
	conns := make(chan net.Conn, 1)
	go pinnedClient(bind, 2, served, conns)
	eventually(t, 10*time.Second, "client 2 queued", func() bool { return serverStats(p, "pin", name).Queue == 1 })
	// Drain the pinned server: its queue goes to the other one at once.
	for i := range cfg.Services[0].Servers {
		if cfg.Services[0].Servers[i].Name == name {
			cfg.Services[0].Servers[i].State = Drain
		}
	}
	if err := p.Set(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-served:
		if got != 2 {
			t.Fatalf("client 2 failed")
		}
		c := <-conns
		defer c.Close()
	case <-time.After(20 * time.Second):
		t.Fatal("queued client not redispatched")
	}
	if s := serverStats(p, "pin", name); s.Queue != 0 || s.Current != 1 {
		t.Errorf("drained server %s: queue %d current %d; want 0 and its one kept connection", name, s.Queue, s.Current)
	}
}
