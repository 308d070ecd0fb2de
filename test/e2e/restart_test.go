package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitgw/gitgw/reconcile/control"
	"github.com/gitgw/gitgw/test/gitremote"
	"github.com/gitgw/gitgw/test/lab"
	"github.com/gitgw/gitgw/test/systemd"
)

// restartSite is a proxy-only site on gw1's own address: two echo servers
// behind 203.0.113.11:80, and the same two for datagrams behind
// 203.0.113.11:53/udp.
func restartSite() map[string]string {
	return map[string]string{
		"cue.mod/module.cue": "module: \"example.net/restart-e2e@v0\"\nlanguage: version: \"v0.17.0\"\n",
		"site.cue": `package site

site: {
	name: "restart-e2e"
	rollout: pairs: false
	bake: window: "0s"
}

nodes: gw1: interfaces: eth0: addresses: ["203.0.113.11/24"]

services: web: {
	binds: ["203.0.113.11:80"]
	servers: {
		s1: address: "198.51.100.11:8080"
		s2: address: "198.51.100.12:8080"
	}
	check: {kind: "tcp", interval: "500ms", rise: 1, fall: 2}
}

// The same servers answer datagrams on their port too.
services: dns: {
	protocol: "udp"
	binds: ["203.0.113.11:53"]
	servers: {
		s1: address: "198.51.100.11:8080"
		s2: address: "198.51.100.12:8080"
	}
	check: {kind: "tcp", interval: "500ms", rise: 1, fall: 2}
}
`,
	}
}

// unitAgent is the agent running as packaging/gitgw.service under the
// namespaced systemd.
type unitAgent struct {
	h   *systemd.Systemd
	bin string
}

// startUnitAgent installs packaging/gitgw.service (only its paths
// adapted, as TestServiceUnit does) in a harness running in ns, with site
// in a local repository, and starts it.
func startUnitAgent(t *testing.T, ctx context.Context, ns *lab.Netns, site map[string]string) *unitAgent {
	t.Helper()
	h := systemd.New(t, systemd.Options{Name: "rst", Netns: ns.Path()})
	repo := &gitremote.Repo{Dir: filepath.Join(h.StateDir, "site.git")}
	if _, err := gitremote.Git("", "init", "-q", "--bare", "-b", "main", repo.Dir); err != nil {
		t.Fatal(err)
	}
	repo.Commit(t, "main", site, "site")
	bin, err := h.Install(gitgwBin, "gitgw")
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(h.StateDir, "var-lib-gitgw")
	siteUnits := filepath.Join(h.StateDir, "site-units")
	for _, d := range []string{state, siteUnits} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	env := filepath.Join(h.StateDir, "agent.env")
	if err := os.WriteFile(env, []byte("GITGW_REPO="+repo.FileURL()+"\n"+
		"GITGW_OPTS=--node gw1 --interval 1s --resync 1h --status-coalesce 0 --unit-dir "+siteUnits+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile(filepath.Join(repoRoot(t), "packaging", "gitgw.service"))
	if err != nil {
		t.Fatal(err)
	}
	u := strings.NewReplacer(
		"/usr/local/bin/gitgw", bin,
		"/etc/gitgw/agent.env", env,
		"/var/lib/gitgw", state,
		"StateDirectory=gitgw\n", "",
		"StateDirectoryMode=0750\n", "",
		"ReadWritePaths=/etc/systemd/system", "ReadWritePaths="+siteUnits+" "+state+" "+repo.Dir,
	).Replace(string(unit))
	if err := h.WriteUnit(ctx, "gitgw.service", u); err != nil {
		t.Fatal(err)
	}
	if out, err := h.Systemctl(ctx, "start", "gitgw.service"); err != nil {
		st, _ := h.Systemctl(ctx, "status", "--no-pager", "gitgw.service")
		t.Fatalf("start: %v\n%s\n%s", err, out, st)
	}
	return &unitAgent{h: h, bin: bin}
}

func (a *unitAgent) mainPID(ctx context.Context) string {
	pid, _ := a.h.Systemctl(ctx, "show", "-p", "MainPID", "--value", "gitgw.service")
	return strings.TrimSpace(pid)
}

// serversUp waits until the agent reports n servers UP.
func (a *unitAgent) serversUp(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	nicEventually(t, 90*time.Second, fmt.Sprintf("%d servers up", n), func() (bool, string) {
		out, err := a.h.Try(ctx, a.bin, "status", "--json")
		if err != nil {
			return false, err.Error() + out
		}
		var st control.Status
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return false, out
		}
		up := 0
		for _, s := range st.Services {
			for _, sv := range s.Servers {
				if sv.Status == "UP" {
					up++
				}
			}
		}
		return up == n, out
	})
}

// echoServers listens on addrs inside ns and echoes every connection
// until EOF, then half-closes.
func echoServers(t *testing.T, ns *lab.Netns, addrs ...string) {
	t.Helper()
	for _, addr := range addrs {
		var l net.Listener
		if err := ns.Do(func() error {
			var err error
			l, err = net.Listen("tcp", addr)
			return err
		}); err != nil {
			t.Fatalf("echo server %s: %v", addr, err)
		}
		var wg sync.WaitGroup
		t.Cleanup(func() { l.Close(); wg.Wait() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer c.Close()
					if _, err := io.Copy(c, c); err == nil {
						_ = c.(*net.TCPConn).CloseWrite()
						_, _ = io.Copy(io.Discard, c)
					}
				}()
			}
		}()
	}
}

// TestRestartCutsNothing restarts packaging/gitgw.service with `systemctl
// restart` under the namespaced systemd while long-lived connections
// stream through the proxy both ways and short ones keep coming: the
// stopping agent stores its connections in systemd's fd store, the next
// one adopts them. No connection may fail and every byte must come back
// intact, in order.
func TestRestartCutsNothing(t *testing.T) {
	systemd.Require(t)
	lab.RequireCommand(t, "ip", "git")
	gitremote.RequireGit(t)
	ns := gw1Host(t, "rs")
	echoServers(t, ns, "198.51.100.11:8080", "198.51.100.12:8080")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	udpEchoServers(t, ns, "198.51.100.11:8080", "198.51.100.12:8080")
	a := startUnitAgent(t, ctx, ns, restartSite())
	a.serversUp(t, ctx, 4)
	udpBoth := func(when string) {
		t.Helper()
		seen := map[string]bool{}
		for i := range 8 {
			from, err := udpAsk(ns, "203.0.113.11:53", fmt.Sprintf("%s %d", when, i))
			if err != nil {
				t.Fatalf("udp %s: %v", when, err)
			}
			seen[from] = true
		}
		if len(seen) != 2 {
			t.Errorf("udp flows %s went to %v, want both servers", when, seen)
		}
	}
	udpBoth("before the restarts")

	const vip = "203.0.113.11:80"
	var streams []*e2eStream
	for i := range 16 {
		s, err := dialE2EStream(ns, vip, i)
		if err != nil {
			t.Fatal(err)
		}
		defer s.c.Close()
		streams = append(streams, s)
	}
	short := runShortLoad(ns, vip, 2)
	echoed := func(min int64) func() (bool, string) {
		return func() (bool, string) {
			var lag []string
			for i, s := range streams {
				if err := s.err(); err != nil {
					return true, "" // reported below
				}
				if s.recv.Load() < min {
					lag = append(lag, fmt.Sprintf("%d:%d/%d", i, s.recv.Load(), s.sent.Load()))
				}
			}
			return len(lag) == 0, strings.Join(lag, " ")
		}
	}
	storeSize := func() string {
		out, _ := a.h.Systemctl(ctx, "show", "-p", "NFileDescriptorStore", "--value", "gitgw.service")
		return strings.TrimSpace(out)
	}
	listeners := storeSize() // the listeners only
	const rounds, step = 3, 8 << 20
	for round := range rounds {
		for _, s := range streams {
			s.allow(int64(round+1) * step)
		}
		nicEventually(t, 60*time.Second, "streams flowing", echoed(int64(round)*step+1<<20))
		before := a.mainPID(ctx)
		// Returns once the new agent is READY (Type=notify): after its
		// first pass, which adopted the connections.
		if out, err := a.h.Systemctl(ctx, "restart", "gitgw.service"); err != nil {
			t.Fatalf("round %d: restart: %v %s\n%s", round, err, out, nicLastLines(a.h.Log(), 40))
		}
		if after := a.mainPID(ctx); after == before || after == "0" {
			t.Fatalf("round %d: main PID %s before the restart, %s after", round, before, after)
		}
		nicEventually(t, 60*time.Second, "streams echoed after the restart", echoed(int64(round+1)*step))
	}
	for _, s := range streams {
		s.finish()
	}
	ok, failed, errs := short.stop()
	udpBoth("after the restarts")
	// The next agent took the connections out of the store once adopted:
	// only the listeners are left there.
	if n := storeSize(); n != listeners {
		t.Errorf("%s fds in the store after the restarts, %s (the listeners) before", n, listeners)
	}
	// A stop that is not a restart ends the connections (systemd closes
	// the store): a client must not hang.
	held, err := dialE2EStream(ns, vip, 99)
	if err != nil {
		t.Fatal(err)
	}
	held.allow(1 << 10)
	nicEventually(t, 30*time.Second, "the held connection echoed", func() (bool, string) {
		return held.recv.Load() == 1<<10 || held.err() != nil, ""
	})
	if out, err := a.h.Systemctl(ctx, "stop", "gitgw.service"); err != nil {
		t.Fatalf("stop: %v %s", err, out)
	}
	select {
	case <-held.rdone:
	case <-time.After(20 * time.Second):
		t.Errorf("a connection still open 20 s after systemctl stop: the store kept it")
	}
	for i, s := range streams {
		if err := s.err(); err != nil {
			t.Errorf("stream %d: %v", i, err)
		} else if s.recv.Load() != s.sent.Load() || s.sent.Load() != rounds*step {
			t.Errorf("stream %d: sent %d bytes of %d, got %d back", i, s.sent.Load(), rounds*step, s.recv.Load())
		}
	}
	if failed != 0 {
		t.Errorf("%d short connections failed across %d restarts (%d ok): %v", failed, rounds, ok, errs)
	}
	log := a.h.Log()
	// One per restart, and the stop's (whose connections systemd closed).
	if n := strings.Count(log, `msg="connections handed over to the next agent"`); n != rounds+1 {
		t.Errorf("%d hand-overs logged, want %d:\n%s", n, rounds+1, nicLastLines(log, 60))
	}
	if strings.Contains(log, "lost=") && !strings.Contains(log, "lost=0") || strings.Contains(log, "connections not handed over") {
		t.Errorf("connections lost in a hand-over:\n%s", nicLastLines(log, 60))
	}
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "handed over to the next") || strings.Contains(l, "adopted from") {
			t.Log(l)
		}
	}
	t.Logf("%d streams, %d MiB each echoed intact across %d `systemctl restart`; %d short connections ok, %d failed",
		len(streams), rounds*step>>20, rounds, ok, failed)
}

// e2eStream is a long-lived connection through the proxy to an echo
// server: a writer sends a position-dependent byte pattern up to its
// budget, a reader checks what comes back.
type e2eStream struct {
	c          *net.TCPConn
	id         int
	sent, recv atomic.Int64
	mu         sync.Mutex
	more       *sync.Cond
	budget     int64
	stopping   bool
	e          error
	wdone      chan struct{}
	rdone      chan struct{}
}

func e2eStreamByte(id int, off int64) byte { return byte(off*31 + off>>9 + int64(id)*17) }

func dialE2EStream(ns *lab.Netns, addr string, id int) (*e2eStream, error) {
	var c net.Conn
	if err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, 10*time.Second)
		return err
	}); err != nil {
		return nil, err
	}
	s := &e2eStream{c: c.(*net.TCPConn), id: id, wdone: make(chan struct{}), rdone: make(chan struct{})}
	s.more = sync.NewCond(&s.mu)
	_ = c.SetDeadline(time.Now().Add(4 * time.Minute))
	go s.write()
	go s.read()
	return s, nil
}

func (s *e2eStream) allow(n int64) {
	s.mu.Lock()
	s.budget = max(s.budget, n)
	s.mu.Unlock()
	s.more.Broadcast()
}

func (s *e2eStream) fail(err error) {
	s.mu.Lock()
	if s.e == nil {
		s.e = err
	}
	s.mu.Unlock()
}

func (s *e2eStream) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.e
}

func (s *e2eStream) write() {
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
		b := buf[:min(int64(len(buf)), room)]
		for k := range b {
			b[k] = e2eStreamByte(s.id, off+int64(k))
		}
		n, err := s.c.Write(b)
		s.sent.Add(int64(n))
		if err != nil {
			s.fail(fmt.Errorf("write at %d: %w", off+int64(n), err))
			return
		}
	}
}

func (s *e2eStream) read() {
	defer close(s.rdone)
	buf := make([]byte, 64<<10)
	for {
		n, err := s.c.Read(buf)
		off := s.recv.Load()
		for k := 0; k < n; k++ {
			if buf[k] != e2eStreamByte(s.id, off+int64(k)) {
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

// finish has the writer half-close once its budget is sent and waits for
// the echo to end.
func (s *e2eStream) finish() {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	s.more.Broadcast()
	<-s.wdone
	<-s.rdone
}

// shortLoad runs workers doing one echo round trip per connection.
type shortLoad struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []error
	done       chan struct{}
	wg         sync.WaitGroup
}

func runShortLoad(ns *lab.Netns, addr string, workers int) *shortLoad {
	l := &shortLoad{done: make(chan struct{})}
	msg := []byte("ping through the restart\n")
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.done:
					return
				default:
				}
				err := ns.Do(func() error {
					c, err := net.DialTimeout("tcp", addr, 20*time.Second)
					if err != nil {
						return err
					}
					defer c.Close()
					_ = c.SetDeadline(time.Now().Add(30 * time.Second))
					if _, err := c.Write(msg); err != nil {
						return err
					}
					_ = c.(*net.TCPConn).CloseWrite()
					got, err := io.ReadAll(c)
					if err != nil {
						return err
					}
					if string(got) != string(msg) {
						return fmt.Errorf("echo: %d bytes of %d", len(got), len(msg))
					}
					return nil
				})
				if err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.errs) < 10 {
						l.errs = append(l.errs, err)
					}
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
			}
		}()
	}
	return l
}

func (l *shortLoad) stop() (ok, failed int64, errs []error) {
	close(l.done)
	l.wg.Wait()
	return l.ok.Load(), l.failed.Load(), l.errs
}

// udpEchoServers answer each datagram inside ns with their address, a
// space and the datagram.
func udpEchoServers(t *testing.T, ns *lab.Netns, addrs ...string) {
	t.Helper()
	for _, addr := range addrs {
		var c net.PacketConn
		if err := ns.Do(func() error {
			var err error
			c, err = net.ListenPacket("udp4", addr)
			return err
		}); err != nil {
			t.Fatalf("udp echo %s: %v", addr, err)
		}
		t.Cleanup(func() { c.Close() })
		go func() {
			buf := make([]byte, 65535)
			for {
				n, from, err := c.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = c.WriteTo(append([]byte(addr+" "), buf[:n]...), from)
			}
		}()
	}
}

// udpAsk sends msg from a new socket (a new flow) inside ns and returns
// the server that answered; a datagram lost is sent again.
func udpAsk(ns *lab.Netns, addr, msg string) (string, error) {
	var from string
	err := ns.Do(func() error {
		c, err := net.Dial("udp4", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 65535)
		for range 20 {
			if _, err = c.Write([]byte(msg)); err != nil {
				return err
			}
			_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			var n int
			if n, err = c.Read(buf); err != nil {
				continue
			}
			server, body, _ := strings.Cut(string(buf[:n]), " ")
			if body != msg {
				return fmt.Errorf("reply %q to %q", buf[:n], msg)
			}
			from = server
			return nil
		}
		return err
	})
	return from, err
}
