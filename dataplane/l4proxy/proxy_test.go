package l4proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestProxyRoundRobin(t *testing.T) {
	t.Parallel()
	a, b := newBackend(t, "a"), newBackend(t, "b")
	bind := freePort(t)
	p := newTestPool(t, Options{}, Config{Services: []Service{{
		Name: "web", Binds: []netip.AddrPort{bind}, Servers: []Server{srvCfg(a, 3), srvCfg(b, 1)},
	}}})
	count := map[string]int{}
	for i := 0; i < 40; i++ {
		name, err := roundTrip(bind, strings.Repeat("x", i*100))
		if err != nil {
			t.Fatal(err)
		}
		count[name]++
	}
	// Two shards each run their own smooth WRR: the split is 3:1 up to a
	// shard's rounding.
	if count["a"] < 26 || count["b"] < 6 {
		t.Errorf("distribution %v, want about 30/10", count)
	}
	st := p.Stats()
	if st.Services[0].Total != 40 {
		t.Errorf("service total %d, want 40", st.Services[0].Total)
	}
	eventually(t, 10*time.Second, "connections closed in stats", func() bool { return p.Stats().Services[0].Current == 0 })
}

func TestHalfCloseBothWays(t *testing.T) {
	t.Parallel()
	// Server that reads everything, then answers: the client shuts its
	// write side first and must still get the whole answer.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
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
			go func() {
				defer c.Close()
				in, _ := io.ReadAll(c)
				if string(in) == "server-first" {
					// Server-side half close: it says goodbye first, then
					// keeps reading what the client still sends.
					_, _ = io.WriteString(c, "bye")
					_ = c.(*net.TCPConn).CloseWrite()
					return
				}
				_, _ = io.WriteString(c, "got:"+string(in))
			}()
		}
	}()
	bind := freePort(t)
	newTestPool(t, Options{}, Config{Services: []Service{{
		Name: "hc", Binds: []netip.AddrPort{bind},
		Servers: []Server{{Name: "s", Addr: ln.Addr().(*net.TCPAddr).AddrPort(), Weight: 1}},
	}}})
	c, err := net.Dial("tcp", bind.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "hello")
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "got:hello" {
		t.Fatalf("client half-close: got %q, %v", got, err)
	}

	// Server half-closes first; the client keeps sending afterwards.
	ln2, _ := net.Listen("tcp4", "127.0.0.1:0")
	t.Cleanup(func() { ln2.Close() })
	received := make(chan string, 1)
	go func() {
		c, err := ln2.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.WriteString(c, "bye")
		_ = c.(*net.TCPConn).CloseWrite()
		in, _ := io.ReadAll(c)
		received <- string(in)
	}()
	bind2 := freePort(t)
	newTestPool(t, Options{}, Config{Services: []Service{{
		Name: "hc2", Binds: []netip.AddrPort{bind2},
		Servers: []Server{{Name: "s", Addr: ln2.Addr().(*net.TCPAddr).AddrPort(), Weight: 1}},
	}}})
	c2, err := net.Dial("tcp", bind2.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_ = c2.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c2)
	got2, err := io.ReadAll(br)
	if err != nil || string(got2) != "bye" {
		t.Fatalf("server half-close: got %q, %v", got2, err)
	}
	// The client's direction still works after the server's FIN.
	if _, err := io.WriteString(c2, "after-fin"); err != nil {
		t.Fatal(err)
	}
	c2.(*net.TCPConn).CloseWrite()
	select {
	case r := <-received:
		if r != "after-fin" {
			t.Fatalf("server received %q after its FIN, want after-fin", r)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("server never got the client's data after its own FIN")
	}
}

func TestClientTimeout(t *testing.T) {
	t.Parallel()
	a := newSilentBackend(t, "a")
	bind := freePort(t)
	p := newTestPool(t, Options{}, Config{Services: []Service{{
		Name: "slow", Binds: []netip.AddrPort{bind}, Servers: []Server{srvCfg(a, 1)},
		Timeouts: Timeouts{Client: time.Second, Server: time.Hour},
	}}})
	c, err := net.Dial("tcp", bind.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// An active client is not cut: keep talking past the timeout.
	var last time.Time
	for i := 0; i < 8; i++ {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "x")
		buf := make([]byte, 1)
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatalf("active client cut after %d exchanges: %v", i, err)
		}
		last = time.Now()
		time.Sleep(100 * time.Millisecond)
	}
	// Then go silent: the proxy must close within a generous bound.
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	_, err = c.Read(make([]byte, 1))
	if err == nil {
		t.Fatal("read returned data, want the connection closed")
	}
	if d := time.Since(last); d < 900*time.Millisecond {
		t.Errorf("closed after %v, before the 1s timeout", d)
	}
	eventually(t, 10*time.Second, "connection released", func() bool { return p.Stats().Services[0].Current == 0 })
}

func TestMaxConnQueue(t *testing.T) {
	t.Parallel()
	p, a, bind, c1 := oneSlotPool(t, "q")
	done := make(chan error, 1)
	go func() {
		_, err := roundTrip(bind, "queued")
		done <- err
	}()
	eventually(t, 10*time.Second, "second connection queued", func() bool { return p.Stats().Services[0].Queue == 1 })
	if a.accept.Load() != 1 {
		t.Fatalf("server saw %d connections while maxconn is 1", a.accept.Load())
	}
	c1.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("queued connection: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("queued connection never served")
	}
}

// TestClientSpeaksBeforeConnect: data and FIN a client sends while its
// connection waits for a server (here in a queue) arrive before the data
// phase; the loop keeps those edges and reads them once connected.
func TestClientSpeaksBeforeConnect(t *testing.T) {
	t.Parallel()
	p, _, bind, c1 := oneSlotPool(t, "early")
	c2, err := net.Dial("tcp", bind.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_ = c2.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c2, "spoken early"); err != nil {
		t.Fatal(err)
	}
	_ = c2.(*net.TCPConn).CloseWrite()
	eventually(t, 10*time.Second, "second connection queued", func() bool { return p.Stats().Services[0].Queue == 1 })
	c1.Close()
	got, err := io.ReadAll(c2)
	if err != nil || string(got) != "a\nspoken early" {
		t.Fatalf("got %q, %v; want the greeting and the echo of what was sent while queued", got, err)
	}
}

func TestQueueTimeout(t *testing.T) {
	t.Parallel()
	a := newBackend(t, "a")
	bind := freePort(t)
	p := newTestPool(t, Options{}, Config{Services: []Service{{
		Name: "qt", Binds: []netip.AddrPort{bind},
		Servers:  []Server{{Name: "a", Addr: a.addr, Weight: 1, MaxConn: 1}},
		Timeouts: Timeouts{Queue: 200 * time.Millisecond},
	}}})
	_, c1, err := dialName(bind)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	if _, _, err := dialName(bind); err == nil {
		t.Fatal("second connection served though the server is full and the queue timed out")
	}
	if e := p.Stats().Services[0].Errors; e != 1 {
		t.Errorf("service errors %d, want 1", e)
	}
}

func TestRetryRedispatch(t *testing.T) {
	t.Parallel()
	good := newBackend(t, "good")
	dead := freePort(t) // nothing listens: connection refused
	bind := freePort(t)
	p := newTestPool(t, Options{}, Config{Services: []Service{{
		Name: "rd", Binds: []netip.AddrPort{bind}, Redispatch: true, Retries: 2,
		Servers: []Server{{Name: "dead", Addr: dead, Weight: 1}, srvCfg(good, 1)},
	}}})
	for i := 0; i < 10; i++ {
		if name, err := roundTrip(bind, "hi"); err != nil || name != "good" {
			t.Fatalf("round trip %d: %q %v", i, name, err)
		}
	}
	if st := serverStats(p, "rd", "dead"); st.ConnectErrors == 0 {
		t.Errorf("dead server has no connect errors: %+v", st)
	}
}

func TestBackupAndHealthCheck(t *testing.T) {
	t.Parallel()
	prim, bak := newBackend(t, "primary"), newBackend(t, "backup")
	bind := freePort(t)
	p := newTestPool(t, Options{}, Config{Services: []Service{{
		Name: "bk", Binds: []netip.AddrPort{bind},
		Servers: []Server{srvCfg(prim, 1), {Name: "backup", Addr: bak.addr, Weight: 1, Backup: true}},
		Check:   &Check{Type: CheckTCP, Interval: 50 * time.Millisecond, Rise: 2, Fall: 2},
	}}})
	for i := 0; i < 5; i++ {
		if name, err := roundTrip(bind, "x"); err != nil || name != "primary" {
			t.Fatalf("before failure: %q %v", name, err)
		}
	}
	if !p.Healthy("bk") || p.Healthy("nope") {
		t.Fatal("Healthy wrong before failure")
	}
	prim.kill()
	eventually(t, 20*time.Second, "primary marked down", func() bool { return serverStats(p, "bk", "primary").Status == "DOWN" })
	if !p.Healthy("bk") {
		t.Error("service with an up backup reported unhealthy")
	}
	for i := 0; i < 5; i++ {
		if name, err := roundTrip(bind, "x"); err != nil || name != "backup" {
			t.Fatalf("after failure: %q %v", name, err)
		}
	}
	bak.kill()
	eventually(t, 20*time.Second, "service unhealthy once the backup is down too", func() bool { return !p.Healthy("bk") })
	if st := serverStats(p, "bk", "primary"); !strings.HasPrefix(st.Check, "L4 connect") || st.Downtime <= 0 && st.LastChange.IsZero() {
		t.Errorf("stats of the down server: %+v", st)
	}
}

func TestBulkSplice(t *testing.T) {
	t.Parallel()
	a := newSilentBackend(t, "a")
	bind := freePort(t)
	p := newTestPool(t, Options{}, Config{Services: []Service{{
		Name: "bulk", Binds: []netip.AddrPort{bind}, Servers: []Server{srvCfg(a, 1)},
	}}})
	payload := make([]byte, 32<<20)
	rand.Read(payload)
	want := sha256.Sum256(payload)
	c, err := net.Dial("tcp", bind.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.Write(payload)
		c.(*net.TCPConn).CloseWrite()
	}()
	h := sha256.New()
	n, err := io.Copy(h, c)
	wg.Wait()
	if err != nil || n != int64(len(payload)) || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("echoed %d bytes (err %v), want %d intact", n, err, len(payload))
	}
	eventually(t, 10*time.Second, "bytes accounted", func() bool {
		s := p.Stats().Services[0]
		return s.BytesIn == int64(len(payload)) && s.BytesOut == int64(len(payload))
	})
	p.pipes.mu.Lock()
	used := p.pipes.total
	p.pipes.mu.Unlock()
	if used == 0 {
		t.Errorf("32 MiB moved without ever taking a pipe: splice path not used")
	}
}

func TestProxyProtocol(t *testing.T) {
	t.Parallel()
	for _, v := range []int{1, 2} {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		hdr := make(chan []byte, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			buf := make([]byte, 256)
			n, _ := c.Read(buf)
			hdr <- buf[:n]
		}()
		bind := freePort(t)
		newTestPool(t, Options{}, Config{Services: []Service{{
			Name: "pp", Binds: []netip.AddrPort{bind}, ProxyProtocol: v,
			Servers: []Server{{Name: "s", Addr: ln.Addr().(*net.TCPAddr).AddrPort(), Weight: 1}},
		}}})
		c, err := net.Dial("tcp", bind.String())
		if err != nil {
			t.Fatal(err)
		}
		client := c.LocalAddr().(*net.TCPAddr).AddrPort()
		var got []byte
		select {
		case got = <-hdr:
		case <-time.After(20 * time.Second):
			t.Fatal("no header")
		}
		c.Close()
		want := appendProxyHeader(nil, v, client, bind)
		if !bytes.Equal(got, want) {
			t.Errorf("v%d header %q, want %q", v, got, want)
		}
	}
}

func TestProxyHeaderEncoding(t *testing.T) {
	src := netip.MustParseAddrPort("203.0.113.7:51000")
	dst := netip.MustParseAddrPort("203.0.113.100:80")
	if got := string(appendProxyHeader(nil, 1, src, dst)); got != "PROXY TCP4 203.0.113.7 203.0.113.100 51000 80\r\n" {
		t.Errorf("v1: %q", got)
	}
	v6 := string(appendProxyHeader(nil, 1, netip.MustParseAddrPort("[2001:db8::7]:1"), netip.MustParseAddrPort("[2001:db8::1]:443")))
	if v6 != "PROXY TCP6 2001:db8::7 2001:db8::1 1 443\r\n" {
		t.Errorf("v1 v6: %q", v6)
	}
	v2 := appendProxyHeader(nil, 2, src, dst)
	want := append(proxyV2Sig[:], 0x21, 0x11, 0, 12, 203, 0, 113, 7, 203, 0, 113, 100, 0xC7, 0x38, 0, 80)
	if !bytes.Equal(v2, want) {
		t.Errorf("v2: % x\nwant % x", v2, want)
	}
}

func TestValidate(t *testing.T) {
	bad := Config{BusyPoll: time.Second, Services: []Service{
		{Name: "a", Binds: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:80")}, Balance: "random",
			Servers: []Server{{Name: "s", Weight: 300}, {Name: "s", Addr: netip.MustParseAddrPort("127.0.0.1:1"), Weight: 1}}},
		{Name: "a", Binds: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:80")}, Check: &Check{Type: "ping"}},
	}}
	err := bad.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`unknown balance "random"`, "invalid address", "weight 300", `server "s": duplicate`,
		`service "a": duplicate name`, "already used", `unknown check type "ping"`, "no bind", "busy poll 1s: must be between 0 and 10ms"} {
		if want == "no bind" {
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestSetIdempotentAndClose(t *testing.T) {
	t.Parallel()
	a := newBackend(t, "a")
	bind := freePort(t)
	cfg := Config{Services: []Service{{Name: "i", Binds: []netip.AddrPort{bind}, Servers: []Server{srvCfg(a, 1)}}}}
	p := newTestPool(t, Options{}, cfg)
	p.mu.Lock()
	g := p.binds[bind]
	p.mu.Unlock()
	if err := p.Set(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	same := p.binds[bind] == g
	p.mu.Unlock()
	if !same {
		t.Error("second identical Set replaced the listeners")
	}
	if got := p.Applied(); len(got.Services) != 1 || got.Services[0].Name != "i" {
		t.Errorf("Applied() = %+v", got)
	}
}

func TestSetRetriesFailedBind(t *testing.T) {
	t.Parallel()
	a := newBackend(t, "a")
	busy, err := net.Listen("tcp4", "127.0.0.1:0") // no SO_REUSEPORT: the pool cannot share it
	if err != nil {
		t.Fatal(err)
	}
	bind := busy.Addr().(*net.TCPAddr).AddrPort()
	cfg := Config{Services: []Service{{Name: "r", Binds: []netip.AddrPort{bind}, Servers: []Server{srvCfg(a, 1)}}}}
	p := New(testLogger(t), Options{})
	t.Cleanup(func() { p.Close(context.Background()) })
	if err := p.Set(context.Background(), cfg); err == nil {
		t.Fatal("Set on a busy port succeeded")
	}
	busy.Close()
	if err := p.Set(context.Background(), cfg); err != nil {
		t.Fatalf("second Set after the port was freed: %v", err)
	}
	if _, err := roundTrip(bind, "x"); err != nil {
		t.Fatal(err)
	}
}

// TestAcceptedInheritsNoDelay checks the assumption that saves a
// setsockopt per connection: accepted sockets inherit TCP_NODELAY from
// the listener.
func TestAcceptedInheritsNoDelay(t *testing.T) {
	fd, err := listenTCP(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", addrPortOf(sa).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nfd := -1
	eventually(t, 10*time.Second, "accept", func() bool {
		nfd, _, _ = unix.Accept4(fd, unix.SOCK_CLOEXEC)
		return nfd >= 0
	})
	defer unix.Close(nfd)
	v, err := unix.GetsockoptInt(nfd, unix.IPPROTO_TCP, unix.TCP_NODELAY)
	if err != nil || v == 0 {
		t.Fatalf("accepted socket TCP_NODELAY = %d, %v", v, err)
	}
}

// TestBulkStopAndGo moves bulk data to a reader that keeps stopping: the
// loop's directions alternate between using up their read budget (resumed
// after the batch) and waiting for a full peer, and no byte may be lost,
// duplicated or reordered on the way (splice and buffer paths both).
func TestBulkStopAndGo(t *testing.T) {
	t.Parallel()
	for _, pipes := range []int{0, -1} {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		payload := make([]byte, 48<<20)
		rand.Read(payload)
		want := sha256.Sum256(payload)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			c.Write(payload)
		}()
		bind := freePort(t)
		newTestPool(t, Options{MaxPipes: pipes}, Config{Services: []Service{{
			Name: "sg", Binds: []netip.AddrPort{bind},
			Servers: []Server{{Name: "s", Addr: ln.Addr().(*net.TCPAddr).AddrPort(), Weight: 1}},
		}}})
		c, err := net.Dial("tcp", bind.String())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(120 * time.Second))
		h := sha256.New()
		buf := make([]byte, 200<<10)
		var got int
		for got < len(payload) {
			n, err := io.ReadFull(c, buf[:min(len(buf), len(payload)-got)])
			h.Write(buf[:n])
			got += n
			if err != nil {
				t.Fatalf("maxpipes %d: read %d of %d bytes: %v", pipes, got, len(payload), err)
			}
			if got%(4<<20) < len(buf) {
				time.Sleep(2 * time.Millisecond) // stop: the proxy's writes to us fill up
			}
		}
		c.Close()
		if !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatalf("maxpipes %d: %d bytes arrived altered", pipes, got)
		}
	}
}

// TestServiceMaxConn: beyond the service's maxconn, clients wait in the
// kernel's accept backlog; a connection that ends, or a raised maxconn,
// lets the next ones in.
func TestServiceMaxConn(t *testing.T) {
	t.Parallel()
	a := newBackend(t, "a")
	bind := freePort(t)
	cfg := Config{Services: []Service{{
		Name: "m", Binds: []netip.AddrPort{bind}, MaxConn: 1, Servers: []Server{srvCfg(a, 1)},
	}}}
	p := newTestPool(t, Options{Shards: 2}, cfg)
	_, c1, err := dialName(bind)
	if err != nil {
		t.Fatal(err)
	}
	greeted := make(chan net.Conn, 2)
	dialed := make(chan struct{}, 2)
	for range 2 {
		go func() {
			c, err := net.DialTimeout("tcp", bind.String(), 10*time.Second)
			dialed <- struct{}{}
			if err == nil {
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				_, err = bufio.NewReader(c).ReadString('\n')
			}
			if err != nil {
				t.Error(err)
				c = nil
			}
			greeted <- c
		}()
	}
	// Both complete their handshake in the backlog; neither is accepted.
	<-dialed
	<-dialed
	if cur, acc := p.Stats().Services[0].Current, a.accept.Load(); cur != 1 || acc != 1 {
		t.Fatalf("service current %d, server accepted %d with maxconn 1", cur, acc)
	}
	c1.Close()
	var c2 net.Conn
	select {
	case c2 = <-greeted:
	case <-time.After(20 * time.Second):
		t.Fatal("no waiting client let in after a connection ended")
	}
	if c2 == nil {
		return
	}
	defer c2.Close()
	cfg.Services[0].MaxConn = 2
	if err := p.Set(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	select {
	case c3 := <-greeted:
		if c3 != nil {
			c3.Close()
		}
	case <-time.After(20 * time.Second):
		t.Fatal("raising maxconn let no waiting client in")
	}
}

// TestConnectTimeout: a server whose SYNs go unanswered (its accept queue
// is full) fails the connect after the connect timeout (sC), and with
// redispatch the retry goes to the other server.
func TestConnectTimeout(t *testing.T) {
	t.Parallel()
	good := newBackend(t, "good")
	// A listener with a backlog of 0 that never accepts: once its queue
	// holds a connection, further SYNs are dropped.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(fd)
	full := addrPortOf(sa)
	for range 2 {
		if c, err := net.DialTimeout("tcp", full.String(), 200*time.Millisecond); err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	bind := freePort(t)
	p, rec := newLoggedPool(t, Config{Services: []Service{{
		Name: "ct", Binds: []netip.AddrPort{bind}, Balance: First, Log: true, Retries: 1, Redispatch: true,
		Servers:  []Server{{Name: "full", Addr: full, Weight: 1}, srvCfg(good, 1)},
		Timeouts: Timeouts{Connect: 300 * time.Millisecond},
	}}})
	if name, err := roundTrip(bind, "x"); err != nil || name != "good" {
		t.Fatalf("round trip: %q, %v; want the retry on good", name, err)
	}
	if s := serverStats(p, "ct", "full"); s.ConnectErrors != 1 {
		t.Errorf("full server: %d connect errors, want 1", s.ConnectErrors)
	}
	// Without a retry left, the timeout ends the connection: sC.
	cfg := p.Applied()
	cfg.Services[0].Retries = -1
	if err := p.Set(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if _, _, err := dialName(bind); err == nil {
		t.Fatal("connection served though its only attempt timed out")
	}
	eventually(t, 10*time.Second, "two connection log lines", func() bool { return len(rec.conns()) == 2 })
	if l := rec.conns()[1]; l["termination"] != "sC" {
		t.Errorf("log %v, want termination sC", l)
	}
}
