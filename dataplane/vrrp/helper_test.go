package vrrp

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
	"golang.org/x/sys/unix"
)

// The test binary doubles as a tiny VRRP daemon: with GITGW_VRRP_HELPER set
// it runs an Engine from a JSON Config inside whatever network namespace it
// was started in (ip netns exec), prints every transition on stdout as
// "EVENT {json}", answers "status" on stdin with "STATUS {json}" and "set
// PATH" by loading a new config, and stops cleanly on SIGTERM. Tests kill it
// with SIGKILL to simulate a crashed agent.
func TestMain(m *testing.M) {
	switch os.Getenv("GITGW_VRRP_HELPER") {
	case "":
		os.Exit(m.Run())
	case "engine":
		os.Exit(helperEngine())
	case "guard":
		if err := Guard(context.Background(), os.Getenv("GITGW_VRRP_STATE"), LifeLine(), slog.New(slog.NewTextHandler(os.Stderr, nil))); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	case "release":
		if p := os.Getenv("GITGW_VRRP_NETNS"); p != "" {
			if err := enterNetns(p); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
		if err := Release(context.Background(), os.Getenv("GITGW_VRRP_STATE"), slog.New(slog.NewTextHandler(os.Stderr, nil))); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

func helperEngine() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg, err := readConfig(os.Getenv("GITGW_VRRP_CONFIG"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if os.Getenv("GITGW_VRRP_GUARDIAN") != "" {
		exe, _ := os.Executable()
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), "GITGW_VRRP_HELPER=guard")
		cmd.Stderr = os.Stderr
		g, err := StartGuardian(cmd)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		defer g.Close()
	}
	opts, closeFn, err := KernelOptions(os.Getenv("GITGW_VRRP_STATE"), log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer closeFn()
	e := New(log, opts)
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	var out sync.Mutex
	println := func(kind string, v any) {
		b, _ := json.Marshal(v)
		out.Lock()
		fmt.Printf("%s %s\n", kind, b)
		out.Unlock()
	}
	go func() {
		for t := range e.Events() {
			println("EVENT", t)
		}
	}()
	go func() {
		for d := range e.Drifts() {
			println("DRIFT", d)
		}
	}()
	runErr := make(chan error, 1)
	go func() { runErr <- e.Run(ctx) }()
	if err := e.Set(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	println("READY", e.Status())
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 1 && f[0] == "status":
				println("STATUS", e.Status())
			case len(f) == 2 && f[0] == "set":
				c, err := readConfig(f[1])
				if err == nil {
					err = e.Set(ctx, c)
				}
				println("SET", fmt.Sprint(err))
			}
		}
	}()
	if err := <-runErr; err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	println("STOPPED", e.Status())
	return 0
}

func readConfig(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	return c, json.Unmarshal(b, &c)
}

// daemon is a helper engine process running in a namespace.
type daemon struct {
	t        testing.TB
	name     string
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	stateDir string
	dir      string

	mu      sync.Mutex
	events  []Transition
	drifts  []DriftEvent
	replies map[string]chan string
	exited  chan struct{}
}

// startDaemon runs the engine with cfg in ns.
func startDaemon(t testing.TB, ns *lab.Netns, name string, cfg Config) *daemon {
	t.Helper()
	return startDaemonEnv(t, ns, name, cfg)
}

// startDaemonEnv is startDaemon with extra environment for the helper
// (GITGW_VRRP_GUARDIAN=1: start a guardian).
func startDaemonEnv(t testing.TB, ns *lab.Netns, name string, cfg Config, env ...string) *daemon {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	d := &daemon{t: t, name: name, dir: dir, stateDir: filepath.Join(dir, "state"), replies: map[string]chan string{}, exited: make(chan struct{})}
	for _, k := range []string{"READY", "STATUS", "SET", "STOPPED"} {
		d.replies[k] = make(chan string, 16)
	}
	path := d.writeConfig(cfg)
	d.cmd = exec.Command("ip", "netns", "exec", ns.Name, exe, "-test.run=^$")
	d.cmd.Env = append(os.Environ(), "GITGW_VRRP_HELPER=engine", "GITGW_VRRP_CONFIG="+path, "GITGW_VRRP_STATE="+d.stateDir)
	d.cmd.Env = append(d.cmd.Env, env...)
	logf, err := os.Create(filepath.Join(dir, "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Stderr = logf
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if d.stdin, err = d.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			kind, rest, _ := strings.Cut(sc.Text(), " ")
			if kind == "DRIFT" {
				var de DriftEvent
				if json.Unmarshal([]byte(rest), &de) == nil {
					d.mu.Lock()
					d.drifts = append(d.drifts, de)
					d.mu.Unlock()
				}
				continue
			}
			if kind == "EVENT" {
				var tr Transition
				if json.Unmarshal([]byte(rest), &tr) == nil {
					d.mu.Lock()
					d.events = append(d.events, tr)
					d.mu.Unlock()
				}
				continue
			}
			if ch, ok := d.replies[kind]; ok {
				ch <- rest
			}
		}
		_ = d.cmd.Wait()
		logf.Close()
		close(d.exited)
	}()
	t.Cleanup(func() {
		d.kill()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "stderr.log"))
			t.Logf("%s stderr:\n%s", name, lastLines(string(b), 40))
		}
	})
	select {
	case <-d.replies["READY"]:
	case <-d.exited:
		b, _ := os.ReadFile(filepath.Join(dir, "stderr.log"))
		t.Fatalf("%s exited at start: %s", name, b)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: not ready", name)
	}
	return d
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func (d *daemon) writeConfig(cfg Config) string {
	b, err := json.Marshal(cfg)
	if err != nil {
		d.t.Fatal(err)
	}
	f, err := os.CreateTemp(d.dir, "config-*.json")
	if err != nil {
		d.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		d.t.Fatal(err)
	}
	return f.Name()
}

// pid is the helper's own PID (ip netns exec execs in place).
func (d *daemon) pid() int { return d.cmd.Process.Pid }

func (d *daemon) signal(sig syscall.Signal) { _ = d.cmd.Process.Signal(sig) }

// kill SIGKILLs the helper (a crashed agent) and waits for it.
func (d *daemon) kill() {
	d.signal(syscall.SIGKILL)
	<-d.exited
}

// term stops the helper cleanly and waits for it.
func (d *daemon) term() {
	d.t.Helper()
	d.signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		d.t.Fatalf("%s did not stop on SIGTERM", d.name)
	}
}

func (d *daemon) status() []InstanceStatus {
	d.t.Helper()
	fmt.Fprintln(d.stdin, "status")
	select {
	case s := <-d.replies["STATUS"]:
		var st []InstanceStatus
		if err := json.Unmarshal([]byte(s), &st); err != nil {
			d.t.Fatal(err)
		}
		return st
	case <-time.After(10 * time.Second):
		d.t.Fatalf("%s: no status", d.name)
	}
	return nil
}

func (d *daemon) set(cfg Config) {
	d.t.Helper()
	fmt.Fprintf(d.stdin, "set %s\n", d.writeConfig(cfg))
	select {
	case s := <-d.replies["SET"]:
		if s != `"\u003cnil\u003e"` && s != `"<nil>"` {
			d.t.Fatalf("%s: set: %s", d.name, s)
		}
	case <-time.After(10 * time.Second):
		d.t.Fatalf("%s: set not answered", d.name)
	}
}

// driftEvents returns a copy of the drift events seen so far.
func (d *daemon) driftEvents() []DriftEvent {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]DriftEvent(nil), d.drifts...)
}

// transitions returns a copy of the events seen so far.
func (d *daemon) transitions() []Transition {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Transition(nil), d.events...)
}

// instance returns the status of one instance.
func (d *daemon) instance(name string) InstanceStatus {
	d.t.Helper()
	for _, s := range d.status() {
		if s.Name == name {
			return s
		}
	}
	d.t.Fatalf("%s: no instance %q", d.name, name)
	return InstanceStatus{}
}

// waitState polls until the instance is in state s and its transition
// to s has been recorded: the engine's status shows the new state before
// the transition event (emitted last, after the VIPs and the notify) has
// come through Events and stdout, so a test that checks transitions()
// after waitState would otherwise race the EVENT line.
func (d *daemon) waitState(name string, s State, within time.Duration) {
	d.t.Helper()
	waitFor(d.t, within, fmt.Sprintf("%s %s to be %v", d.name, name, s), func() bool {
		return d.instance(name).State == s && d.lastTransition(name) == s
	})
}

// lastTransition is the state of the last transition recorded for the
// instance (StateInit before any).
func (d *daemon) lastTransition(name string) State {
	tr := d.transitions()
	for i := len(tr) - 1; i >= 0; i-- {
		if tr[i].Instance == name {
			return tr[i].To
		}
	}
	return StateInit
}

// waitFor polls cond every 10 ms until it holds or the deadline passes.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func osExecutable() (string, error) { return os.Executable() }

// enterNetns moves the calling (locked) thread into the namespace at path;
// the release helper then opens every socket from that thread.
func enterNetns(path string) error {
	runtime.LockOSThread()
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
}
