package l4proxy

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// backend is a loopback test server: it greets with its name and a newline,
// then echoes until EOF, then half-closes its side.
type backend struct {
	name   string
	ln     net.Listener
	addr   netip.AddrPort
	accept atomic.Int64
	mu     sync.Mutex
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
	silent bool // no greeting
}

func newBackend(t testing.TB, name string) *backend {
	return newBackendOpt(t, name, false)
}

func newSilentBackend(t testing.TB, name string) *backend {
	return newBackendOpt(t, name, true)
}

func newBackendOpt(t testing.TB, name string, silent bool) *backend {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, ln: ln, addr: ln.Addr().(*net.TCPAddr).AddrPort(), conns: map[net.Conn]bool{}, silent: silent}
	b.wg.Add(1)
	go b.serve()
	t.Cleanup(b.kill)
	return b
}

func (b *backend) serve() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.accept.Add(1)
		b.mu.Lock()
		b.conns[c] = true
		b.mu.Unlock()
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			defer func() {
				b.mu.Lock()
				delete(b.conns, c)
				b.mu.Unlock()
				c.Close()
			}()
			if !b.silent {
				if _, err := io.WriteString(c, b.name+"\n"); err != nil {
					return
				}
			}
			if _, err := io.Copy(c, c); err != nil {
				return
			}
			_ = c.(*net.TCPConn).CloseWrite()
			_, _ = io.Copy(io.Discard, c)
		}()
	}
}

// kill closes the listener and resets every connection.
func (b *backend) kill() {
	_ = b.ln.Close()
	b.mu.Lock()
	for c := range b.conns {
		_ = c.(*net.TCPConn).SetLinger(0)
		_ = c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// freePort returns an address for the pool to bind: a random loopback
// address other than 127.0.0.1 with a port that was free on it. Outgoing
// connections of concurrent tests take ephemeral ports on 127.0.0.1 and so
// cannot grab the port between this probe and the pool's bind.
func freePort(t testing.TB) netip.AddrPort {
	t.Helper()
	var b [3]byte
	_, _ = rand.Read(b[:])
	ip := netip.AddrFrom4([4]byte{127, 1 + b[0]%250, b[1], 1 + b[2]%250})
	ln, err := net.Listen("tcp4", netip.AddrPortFrom(ip, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newTestPool(t testing.TB, opts Options, cfg Config) *Pool {
	t.Helper()
	return newTestPoolLog(t, testLogger(t), opts, cfg)
}

// newLoggedPool is newTestPool with its log records kept for the test.
func newLoggedPool(t testing.TB, cfg Config) (*Pool, *logRecorder) {
	t.Helper()
	rec := &logRecorder{}
	return newTestPoolLog(t, slog.New(rec), Options{}, cfg), rec
}

// oneSlotPool runs service name over one backend with maxconn 1 (a 30 s
// queue timeout) and holds its only slot with connection c1.
func oneSlotPool(t testing.TB, name string) (p *Pool, a *backend, bind netip.AddrPort, c1 net.Conn) {
	t.Helper()
	a = newBackend(t, "a")
	bind = freePort(t)
	p = newTestPool(t, Options{}, Config{Services: []Service{{
		Name: name, Binds: []netip.AddrPort{bind},
		Servers:  []Server{{Name: "a", Addr: a.addr, Weight: 1, MaxConn: 1}},
		Timeouts: Timeouts{Queue: 30 * time.Second},
	}}})
	_, c1, err := dialName(bind)
	if err != nil {
		t.Fatal(err)
	}
	return p, a, bind, c1
}

func newTestPoolLog(t testing.TB, logger *slog.Logger, opts Options, cfg Config) *Pool {
	t.Helper()
	p := New(logger, opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	if err := p.Set(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	return p
}

func srvCfg(b *backend, weight int) Server {
	return Server{Name: b.name, Addr: b.addr, Weight: weight}
}

// dialName connects through the proxy and returns the greeting's server name.
func dialName(addr netip.AddrPort) (string, net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr.String(), 10*time.Second)
	if err != nil {
		return "", nil, err
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		c.Close()
		return "", nil, fmt.Errorf("read greeting: %w", err)
	}
	_ = c.SetDeadline(time.Time{})
	return strings.TrimSpace(line), c, nil
}

// roundTrip does one request through the proxy: greeting, echo of msg.
func roundTrip(addr netip.AddrPort, msg string) (string, error) {
	name, c, err := dialName(addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		return name, err
	}
	_ = c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil {
		return name, err
	}
	if string(got) != msg {
		return name, fmt.Errorf("echo: got %d bytes, want %d", len(got), len(msg))
	}
	return name, nil
}

// eventually polls cond until it holds or the (generous) deadline passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func serverStats(p *Pool, svc, srv string) ServerStats {
	for _, s := range p.Stats().Services {
		if s.Name != svc {
			continue
		}
		for _, x := range s.Servers {
			if x.Name == srv {
				return x
			}
		}
	}
	return ServerStats{}
}

// load runs n concurrent clients doing round trips until stop is closed;
// it returns how many succeeded and the failures.
type loadResult struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []error
}

func runLoad(addr netip.AddrPort, workers int, stop <-chan struct{}) (*loadResult, *sync.WaitGroup) {
	r := &loadResult{}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := roundTrip(addr, "ping through the pool\n"); err != nil {
					r.failed.Add(1)
					r.mu.Lock()
					if len(r.errs) < 10 {
						r.errs = append(r.errs, err)
					}
					r.mu.Unlock()
					continue
				}
				r.ok.Add(1)
			}
		}()
	}
	return r, &wg
}
