package l4proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// The test binary doubles as a stand-alone proxy process (the "helper"),
// the way the agent runs the pool: TestMain runs it when L4HELPER_CONFIG
// names a JSON Config. It prints "ready <addr>" once serving, where addr
// serves the pool's Stats as JSON. On SIGHUP it hands its listening
// sockets to a fresh copy of itself (exec with ExtraFiles, as an agent
// restart through systemd's fd store would), waits for the copy's "ready",
// prints "handover <pid>", then stops accepting and drains its own
// connections before exiting. SIGTERM drains and exits.
func TestMain(m *testing.M) {
	if os.Getenv("L4HELPER_CONFIG") != "" {
		os.Exit(helperMain())
	}
	os.Exit(m.Run())
}

func helperMain() int {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	raw, err := os.ReadFile(os.Getenv("L4HELPER_CONFIG"))
	if err != nil {
		logger.Error("read config", "err", err)
		return 2
	}
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		logger.Error("parse config", "err", err)
		return 2
	}
	var inherited []*os.File
	n, _ := strconv.Atoi(os.Getenv("L4HELPER_FDS"))
	names := strings.Split(os.Getenv("L4HELPER_FDNAMES"), ":")
	for i := 0; i < n; i++ {
		name := "inherited"
		if i < len(names) && names[i] != "" {
			name = names[i]
		}
		inherited = append(inherited, os.NewFile(uintptr(3+i), name))
	}
	if path := os.Getenv("L4HELPER_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			_ = pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	// Signals are caught before "ready" is announced: the test (or the
	// predecessor, through the test) may send SIGHUP the moment it reads
	// it, and an uncaught SIGHUP would kill this process, silently.
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGUSR2)
	shards, _ := strconv.Atoi(os.Getenv("L4HELPER_SHARDS"))
	p := New(logger, Options{Inherited: inherited, Shards: shards})
	if err := p.Set(context.Background(), cfg); err != nil {
		logger.Error("set", "err", err)
		return 1
	}
	sl, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		logger.Error("stats listen", "err", err)
		return 1
	}
	go http.Serve(sl, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(p.Stats())
	}))
	if fd, _ := strconv.Atoi(os.Getenv("L4HELPER_READY_FD")); fd > 0 {
		// A successor tells its predecessor, which tells the test.
		rf := os.NewFile(uintptr(fd), "ready")
		fmt.Fprintf(rf, "ready %s\n", sl.Addr())
		rf.Close()
	} else {
		fmt.Printf("ready %s\n", sl.Addr())
	}
	s := <-sig
	for ; s == syscall.SIGUSR1 || s == syscall.SIGUSR2; s = <-sig {
		if s == syscall.SIGUSR2 {
			// Hot reconfiguration to the second config, L4HELPER_CONFIG2.
			var cfg2 Config
			raw, err := os.ReadFile(os.Getenv("L4HELPER_CONFIG2"))
			if err == nil {
				err = json.Unmarshal(raw, &cfg2)
			}
			if err == nil {
				err = p.Set(context.Background(), cfg2)
			}
			if err != nil {
				logger.Error("set", "err", err)
			}
			fmt.Println("reconfigured")
			continue
		}
		// Hot reconfiguration: flip every first server's weight.
		for i := range cfg.Services {
			if sv := cfg.Services[i].Servers; len(sv) > 0 {
				sv[0].Weight = map[bool]int{true: 1, false: 2}[sv[0].Weight == 2]
			}
		}
		if err := p.Set(context.Background(), cfg); err != nil {
			logger.Error("set", "err", err)
		}
		fmt.Println("reconfigured")
	}
	if s == syscall.SIGHUP && os.Getenv("L4HELPER_HANDOVER") == "conns" {
		// The agent's restart: connections go to the successor too, and
		// this process ends at once.
		if err := handOverConns(p); err != nil {
			logger.Error("hand-over", "err", err)
			return 1
		}
	} else if s == syscall.SIGHUP {
		if err := handOver(p); err != nil {
			logger.Error("hand-over", "err", err)
			return 1
		}
		p.StopAccepting()
	}
	drain := 30 * time.Second
	if d, err := time.ParseDuration(os.Getenv("L4HELPER_DRAIN")); err == nil {
		drain = d // 0: a plain restart, connections cut at once
	}
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := p.Close(ctx); err != nil && drain > 0 {
		logger.Error("close", "err", err)
		return 1
	}
	return 0
}

func handOver(p *Pool) error {
	files, err := p.Listeners()
	if err != nil {
		return err
	}
	return startSuccessor(files, "")
}

// handOverConns passes listeners and connections (Pool.HandOver) to the
// successor, named as systemd's LISTEN_FDNAMES would name them, and
// prints "handover <pid> <stats> conns=N pending=B".
func handOverConns(p *Pool) error {
	files, err := p.Listeners()
	if err != nil {
		return err
	}
	ho, err := p.HandOver(-1)
	if err != nil {
		return err
	}
	pending := 0
	if st, err := readHandOverState(ho.State); err == nil {
		for _, c := range st.Conns {
			pending += len(c.Up.Pending) + len(c.Down.Pending)
		}
	}
	names := make([]string, 0, len(files)+1+len(ho.Conns))
	for range files {
		names = append(names, "l4proxy")
	}
	files = append(files, ho.State)
	names = append(names, HandOverStateName)
	for _, f := range ho.Conns {
		files = append(files, f)
		names = append(names, HandOverConnName)
	}
	fmt.Printf("handed conns=%d pending=%d cut=%d\n", ho.N, pending, ho.Cut)
	return startSuccessor(files, strings.Join(names, ":"))
}

func readHandOverState(f *os.File) (*handOverState, error) {
	raw, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<40))
	if err != nil {
		return nil, err
	}
	var st handOverState
	return &st, json.Unmarshal(raw, &st)
}

// startSuccessor starts a copy of the helper with files (closed here
// once it runs) and prints "handover <pid> <stats>" once it is ready.
func startSuccessor(files []*os.File, names string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	rr, rw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer rr.Close()
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), "L4HELPER_FDS="+strconv.Itoa(len(files)),
		"L4HELPER_READY_FD="+strconv.Itoa(3+len(files)), "L4HELPER_FDNAMES="+names)
	cmd.ExtraFiles = append(files, rw)
	// The successor writes to the same stdout and stderr: it must not
	// depend on its predecessor staying alive.
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	rw.Close()
	for _, f := range files {
		f.Close()
	}
	line, err := bufio.NewReader(rr).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		_ = cmd.Process.Kill()
		return fmt.Errorf("successor not ready: %q %v", line, err)
	}
	fmt.Printf("handover %d %s", cmd.Process.Pid, strings.TrimPrefix(line, "ready "))
	go func() { _ = cmd.Wait() }() // reap it if it ends before us
	return nil
}

// helperProc is a running helper proxy process.
type helperProc struct {
	cmd   *exec.Cmd
	out   *bufio.Reader
	stats string
}

// startHelper runs the pool in a separate process with cfg.
func startHelper(t testing.TB, cfg Config, env ...string) *helperProc {
	t.Helper()
	return startHelperWith(t, exec.Command, cfg, env...)
}

// startHelperWith starts the helper through command (e.g. a namespace's
// `ip netns exec`, which execs the helper under the same PID).
func startHelperWith(t testing.TB, command func(string, ...string) *exec.Cmd, cfg Config, env ...string) *helperProc {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/cfg.json"
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := command(self)
	cmd.Env = append(append(os.Environ(), "L4HELPER_CONFIG="+path), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helperProc{cmd: cmd, out: bufio.NewReader(out)}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(40 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	line, err := h.readLine(30 * time.Second)
	if err != nil || !strings.HasPrefix(line, "ready ") {
		t.Fatalf("helper not ready: %q %v", line, err)
	}
	h.stats = strings.TrimPrefix(line, "ready ")
	return h
}

func (h *helperProc) readLine(timeout time.Duration) (string, error) {
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := h.out.ReadString('\n')
		ch <- res{strings.TrimSpace(s), err}
	}()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-time.After(timeout):
		return "", fmt.Errorf("no line from helper after %v", timeout)
	}
}

// snapshot fetches the helper's stats JSON.
func (h *helperProc) snapshot(addr string) (Snapshot, error) {
	var s Snapshot
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&s)
	return s, err
}

// rss returns a process's resident set size in bytes.
func rss(pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func fdCount(pid int) int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents)
}

// snapshotIn reads the helper's stats from inside ns, where its stats
// address is (a listener on the namespace's loopback): one HTTP/1.0
// request on a socket opened there.
func snapshotIn(ns *lab.Netns, addr string) (Snapshot, error) {
	var s Snapshot
	err := ns.Do(func() error {
		c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", addr); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(&s)
	})
	return s, err
}
