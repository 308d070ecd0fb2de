package l4proxy

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestHandOverAcrossRestart restarts the proxy process under load the way
// the agent restarts: the old process passes its listening sockets to its
// successor, stops accepting and drains. No connection may be refused or
// cut, and a connection established before the restart keeps working on the
// old process until it ends.
func TestHandOverAcrossRestart(t *testing.T) {
	t.Parallel()
	a, b := newBackend(t, "a"), newBackend(t, "b")
	bind := freePort(t)
	h := startHelper(t, Config{Services: []Service{{
		Name: "web", Binds: []netip.AddrPort{bind}, Servers: []Server{srvCfg(a, 1), srvCfg(b, 1)},
	}}})
	var successors []int
	_, held, err := dialName(bind)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	stop := make(chan struct{})
	res, wg := runLoad(bind, 4, stop)
	pid := h.cmd.Process.Pid
	t.Cleanup(func() {
		// Successors are not our children: stop them by PID.
		for _, p := range successors {
			_ = syscall.Kill(p, syscall.SIGTERM)
		}
		deadline := time.Now().Add(40 * time.Second)
		for _, p := range successors {
			for syscall.Kill(p, 0) == nil && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	})
	for round := 0; round < 3; round++ {
		eventually(t, 20*time.Second, "load running", func() bool { return res.ok.Load() > int64(100*(round+1)) })
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		line, err := h.readLine(30 * time.Second)
		if err != nil || !strings.HasPrefix(line, "handover ") {
			t.Fatalf("round %d: no hand-over: %q %v", round, line, err)
		}
		f := strings.Fields(line)
		pid, _ = strconv.Atoi(f[1])
		successors = append(successors, pid)
	}
	eventually(t, 20*time.Second, "load after the last restart", func() bool { return res.ok.Load() > 500 })
	close(stop)
	wg.Wait()
	if n := res.failed.Load(); n != 0 {
		t.Errorf("%d connections failed across 3 restarts (%d ok): %v", n, res.ok.Load(), res.errs)
	}
	// The connection from before the first restart is still served.
	held.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(held, "still here")
	buf := make([]byte, len("still here"))
	if _, err := io.ReadFull(held, buf); err != nil || string(buf) != "still here" {
		t.Errorf("pre-restart connection: %q %v", buf, err)
	}
	t.Logf("%d connections across 3 restarts, 0 failed", res.ok.Load())
}

// TestHandOverConnections restarts the proxy process the way the agent
// restarts under systemd: listeners and established connections go to the
// successor (Pool.HandOver, Options.Inherited) and the old process exits
// at once. Long-lived connections stream data both ways across three
// restarts, each restart while data flows; half of them have a client that
// stops reading until after the last restart, so that the proxy holds data
// it could not write yet when it hands over. Every byte must come back
// intact and in order, from the same server, and short connections running
// meanwhile must see no failure.
func TestHandOverConnections(t *testing.T) {
	t.Parallel()
	a, b := newBackend(t, "a"), newBackend(t, "b")
	bind := freePort(t)
	h := startHelper(t, Config{Services: []Service{{
		Name: "web", Binds: []netip.AddrPort{bind}, Servers: []Server{srvCfg(a, 1), srvCfg(b, 1)},
	}}}, "L4HELPER_HANDOVER=conns")
	var streams []*echoStream
	for i := range 8 {
		paused := i%2 == 1
		s, err := dialStream(bind, i, paused)
		if err != nil {
			t.Fatal(err)
		}
		if paused {
			// More than the sockets on the way hold: the writer blocks,
			// and the proxy with data it read and could not write.
			s.allow(64 << 20)
		}
		streams = append(streams, s)
	}
	stop := make(chan struct{})
	res, wg := runLoad(bind, 2, stop)
	pid := h.cmd.Process.Pid
	var successors []int
	t.Cleanup(func() {
		for _, p := range successors {
			_ = syscall.Kill(p, syscall.SIGTERM)
		}
	})
	echoed := func(min int64) func() bool {
		return func() bool {
			for _, s := range streams {
				if s.err() == nil && s.resume == nil && s.recv.Load() < min {
					return false
				}
			}
			return true
		}
	}
	var handed, pending int
	const step = 16 << 20
	for round := range 3 {
		for _, s := range streams {
			if s.resume == nil {
				s.allow(int64(round+1) * step)
			}
		}
		// Restart mid-stream.
		eventuallyLog(t, streams, "streams flowing", echoed(int64(round)*step+1<<20))
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		line, err := h.readLine(30 * time.Second)
		var n, pb, cut int
		if _, serr := fmt.Sscanf(line, "handed conns=%d pending=%d cut=%d", &n, &pb, &cut); err != nil || serr != nil {
			t.Fatalf("round %d: %q %v", round, line, err)
		}
		if cut != 0 {
			t.Errorf("round %d: %d connections could not be handed over", round, cut)
		}
		handed, pending = handed+n, pending+pb
		line, err = h.readLine(30 * time.Second)
		if err != nil || !strings.HasPrefix(line, "handover ") {
			t.Fatalf("round %d: no hand-over: %q %v", round, line, err)
		}
		old := pid
		pid, _ = strconv.Atoi(strings.Fields(line)[1])
		successors = append(successors, pid)
		// The old process ends at once: the connections left with it.
		eventually(t, 20*time.Second, "the old process gone", func() bool { return !processAlive(old) })
		eventuallyLog(t, streams, "streams echoed after the restart", echoed(int64(round+1)*step))
	}
	for _, s := range streams {
		if s.resume != nil {
			close(s.resume)
		}
	}
	eventuallyLog(t, streams, "every stream echoed in full", func() bool {
		for _, s := range streams {
			if s.err() == nil && s.recv.Load() < s.limit() {
				return false
			}
		}
		return true
	})
	for _, s := range streams {
		s.finish()
	}
	close(stop)
	wg.Wait()
	for i, s := range streams {
		if err := s.err(); err != nil {
			t.Errorf("stream %d (server %s): %v", i, s.server, err)
		} else if s.recv.Load() != s.sent.Load() || s.sent.Load() != s.limit() {
			t.Errorf("stream %d: allowed %d bytes, sent %d, got %d back", i, s.limit(), s.sent.Load(), s.recv.Load())
		}
	}
	if n := res.failed.Load(); n != 0 {
		t.Errorf("%d short connections failed across 3 restarts (%d ok): %v", n, res.ok.Load(), res.errs)
	}
	if handed < 3*len(streams) {
		t.Errorf("%d connections handed over in 3 restarts, want at least %d", handed, 3*len(streams))
	}
	var total int64
	for _, s := range streams {
		total += s.recv.Load()
	}
	t.Logf("%d streams, %d MiB echoed intact across 3 restarts; %d connections handed over, %d bytes pending in them; %d short connections ok",
		len(streams), total>>20, handed, pending, res.ok.Load())
}

// processAlive reports whether pid runs (a zombie does not).
func processAlive(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(raw), ')')
	return i > 0 && i+2 < len(raw) && raw[i+2] != 'Z'
}

// echoStream is a long-lived connection through the proxy to an echo
// backend: a writer sends a position-dependent byte pattern, a reader
// checks what comes back.
type echoStream struct {
	c          *net.TCPConn
	id         int
	server     string
	sent, recv atomic.Int64
	resume     chan struct{} // non-nil: the reader waits for it first
	stopping   bool          // the writer half-closes once its budget is sent
	wdone      chan struct{}
	rdone      chan struct{}
	mu         sync.Mutex
	e          error
	budget     int64 // the writer sends this many bytes in all
	more       *sync.Cond
}

// allow lets the writer send up to n bytes in all.
func (s *echoStream) allow(n int64) {
	s.mu.Lock()
	s.budget = max(s.budget, n)
	s.mu.Unlock()
	s.more.Broadcast()
}

func (s *echoStream) limit() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.budget
}

func streamByte(id int, off int64) byte { return byte(off*31 + off>>9 + int64(id)*17) }

func dialStream(addr netip.AddrPort, id int, paused bool) (*echoStream, error) {
	c, err := net.DialTimeout("tcp", addr.String(), 10*time.Second)
	if err != nil {
		return nil, err
	}
	s := &echoStream{c: c.(*net.TCPConn), id: id, wdone: make(chan struct{}), rdone: make(chan struct{})}
	s.more = sync.NewCond(&s.mu)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var name []byte
	one := make([]byte, 1)
	for {
		if _, err := io.ReadFull(c, one); err != nil {
			c.Close()
			return nil, fmt.Errorf("greeting: %w", err)
		}
		if one[0] == '\n' {
			break
		}
		name = append(name, one[0])
	}
	_ = c.SetDeadline(time.Now().Add(3 * time.Minute))
	s.server = string(name)
	if paused {
		s.resume = make(chan struct{})
	}
	go s.write()
	go s.read()
	return s, nil
}

func (s *echoStream) fail(err error) {
	s.mu.Lock()
	if s.e == nil {
		s.e = err
	}
	s.mu.Unlock()
}

func (s *echoStream) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.e
}

func (s *echoStream) write() {
	defer close(s.wdone)
	buf := make([]byte, 32<<10)
	for {
		off := s.sent.Load()
		s.mu.Lock()
		for s.budget <= off && !s.stopping {
			s.more.Wait()
		}
		room, stopping := s.budget-off, s.stopping
		s.mu.Unlock()
		if room <= 0 && stopping {
			if err := s.c.CloseWrite(); err != nil {
				s.fail(fmt.Errorf("close write: %w", err))
			}
			return
		}
		buf := buf[:min(int64(len(buf)), room)]
		for k := range buf {
			buf[k] = streamByte(s.id, off+int64(k))
		}
		n, err := s.c.Write(buf)
		s.sent.Add(int64(n))
		if err != nil {
			s.fail(fmt.Errorf("write at %d: %w", off+int64(n), err))
			return
		}
	}
}

func (s *echoStream) read() {
	defer close(s.rdone)
	if s.resume != nil {
		<-s.resume
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := s.c.Read(buf)
		off := s.recv.Load()
		for k := 0; k < n; k++ {
			if buf[k] != streamByte(s.id, off+int64(k)) {
				s.fail(fmt.Errorf("byte %d differs", off+int64(k)))
				return
			}
		}
		s.recv.Add(int64(n))
		if err == io.EOF {
			return
		}
		if err != nil {
			s.fail(fmt.Errorf("read at %d: %w", off+int64(n), err))
			return
		}
	}
}

// finish has the writer half-close after its budget, waits for the echo to end, and
// closes the connection.
func (s *echoStream) finish() {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	s.more.Broadcast()
	<-s.wdone
	<-s.rdone
	s.c.Close()
}

func eventuallyLog(t *testing.T, streams []*echoStream, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			for i, s := range streams {
				t.Logf("stream %d: sent %d recv %d err %v", i, s.sent.Load(), s.recv.Load(), s.err())
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHandOverKeepsSourceLimits hands two connections from one pool to
// another in this process: they keep working, and they still count
// against their source's connection limit (2), so that a third one is
// refused by the new pool.
func TestHandOverKeepsSourceLimits(t *testing.T) {
	t.Parallel()
	a := newBackend(t, "a")
	bind := freePort(t)
	cfg := Config{Services: []Service{{
		Name: "web", Binds: []netip.AddrPort{bind}, Servers: []Server{srvCfg(a, 1)},
		Source: &SourceRules{MaxConnPerSource: 2},
	}}}
	old := New(testLogger(t), Options{})
	if err := old.Set(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	for range 2 {
		_, c, err := dialName(bind)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	lns, err := old.Listeners()
	if err != nil {
		t.Fatal(err)
	}
	ho, err := old.HandOver(-1)
	if err != nil {
		t.Fatal(err)
	}
	if ho.N != 2 {
		t.Fatalf("%d connections handed over, want 2", ho.N)
	}
	files := append(append(lns, ho.State), ho.Conns...)
	next := newTestPool(t, Options{Inherited: files}, cfg)
	ho.Close()
	if err := old.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i, c := range held {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		msg := fmt.Sprintf("still here %d", i)
		io.WriteString(c, msg)
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
			t.Errorf("connection %d after the hand-over: %q %v", i, buf, err)
		}
	}
	if _, c, err := dialName(bind); err == nil {
		c.Close()
		t.Errorf("a third connection from the source was admitted")
	}
	if st := next.Stats().Services[0]; st.Denied.ConnLimit != 1 || st.Current != 2 {
		t.Errorf("new pool: %d current, %d refused by the limit; want 2 and 1", st.Current, st.Denied.ConnLimit)
	}
}

// TestHandOverConnecting hands over a connection whose connect to its
// server is still in progress (the server's accept queue is full, its SYN
// goes unanswered): the client socket alone goes to the new pool, which
// picks a server of its own configuration and connects again. The client
// never notices.
func TestHandOverConnecting(t *testing.T) {
	t.Parallel()
	a := newBackend(t, "a")
	// A server that never completes a handshake: backlog 0, filled.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	stuck := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*syscall.SockaddrInet4).Port))
	for range 2 {
		if c, err := net.DialTimeout("tcp4", stuck.String(), 200*time.Millisecond); err == nil {
			defer c.Close()
		}
	}
	bind := freePort(t)
	svc := Service{Name: "web", Binds: []netip.AddrPort{bind}, Servers: []Server{{Name: "stuck", Addr: stuck, Weight: 1}},
		Timeouts: Timeouts{Connect: time.Minute}}
	old := New(testLogger(t), Options{})
	if err := old.Set(t.Context(), Config{Services: []Service{svc}}); err != nil {
		t.Fatal(err)
	}
	type res struct {
		name string
		err  error
		c    net.Conn
	}
	got := make(chan res, 1)
	go func() {
		name, c, err := dialName(bind)
		got <- res{name, err, c}
	}()
	eventually(t, 10*time.Second, "a connect in progress", func() bool { return serverStats(old, "web", "stuck").Current == 1 })
	lns, err := old.Listeners()
	if err != nil {
		t.Fatal(err)
	}
	ho, err := old.HandOver(-1)
	if err != nil {
		t.Fatal(err)
	}
	if ho.N != 1 || len(ho.Conns) != 1 {
		t.Fatalf("handed over %d connections in %d sockets, want 1 in 1 (the client's)", ho.N, len(ho.Conns))
	}
	svc.Servers = []Server{srvCfg(a, 1)}
	newTestPool(t, Options{Inherited: append(append(lns, ho.State), ho.Conns...)}, Config{Services: []Service{svc}})
	ho.Close()
	if err := old.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil {
		t.Fatalf("the client: %v", r.err)
	}
	defer r.c.Close()
	if r.name != "a" {
		t.Errorf("the client was served by %q, want a", r.name)
	}
}
