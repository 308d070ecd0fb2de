package reconcile

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitgw/gitgw/reconcile/gitrepo"
	"github.com/gitgw/gitgw/reconcile/plan"
	"github.com/gitgw/gitgw/test/gitremote"
)

// TestReporting runs an agent's status reporting against a real bare
// repository: a pass is committed and pushed, a driver event passes
// through to the agent and into the next commit, every push is told to
// OnPush, and Stop pushes what is pending.
func TestReporting(t *testing.T) {
	gitremote.RequireGit(t)
	bare := gitremote.NewBare(t)
	var mu sync.Mutex
	var pushes []error
	r, err := StartReporting(t.Context(), ReportingOptions{AgentVersion: "v-test",
		Status: gitrepo.StatusOptions{Node: "gw1", URL: bare.Dir, Dir: filepath.Join(t.TempDir(), "status.git"),
			OnPush: func(_ time.Time, err error) { mu.Lock(); pushes = append(pushes, err); mu.Unlock() }}})
	if err != nil {
		t.Fatal(err)
	}
	const c1 = "3a9c1e2b6f0d4c8e9a1b2c3d4e5f60718293a4b5"
	pass := Result{Commit: c1, AppliedCommit: c1, Outcome: Unchanged, Plan: &plan.Plan{Changes: []plan.Change{
		{Driver: "units", Kind: "unit_instance", ID: "app@8080.service", Action: plan.Pending, After: "active", Reason: "no systemd"}}}}
	r.Report(t.Context(), pass)

	in := make(chan Event, 1)
	out := r.Events(t.Context(), []<-chan Event{in})
	in <- Event{Driver: "vrrp", Kind: "transition", Message: "VI_1 BACKUP -> MASTER (peer silent 360 ms)"}
	if ev := <-out[0]; ev.Message != "VI_1 BACKUP -> MASTER (peer silent 360 ms)" {
		t.Fatalf("event passed on: %+v", ev)
	}
	r.Report(t.Context(), pass)
	close(in) // the driver stops: its forwarder ends, and Stop can wait for it
	r.Stop(10 * time.Second)

	var subjects []string
	for _, e := range bare.Log(t, "gitgw/status/gw1") {
		subjects = append(subjects, e.Subject)
	}
	want := []string{"status(gw1): 3a9c1e2 pending, 1 resource (1 pending)", "failover(gw1): VI_1 BACKUP -> MASTER (peer silent 360 ms)"}
	if strings.Join(subjects, "\n") != strings.Join(want, "\n") {
		t.Errorf("status branch:\n%s\nwant:\n%s", strings.Join(subjects, "\n"), strings.Join(want, "\n"))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(pushes) == 0 || pushes[len(pushes)-1] != nil {
		t.Errorf("OnPush heard %v, want the pushes, the last one a success", pushes)
	}
}

// stalledRemote is a Git remote that accepts connections and never
// answers (a host under load, a hung server): it returns the port and a
// channel told of each accepted connection, all closed at cleanup.
func stalledRemote(t *testing.T) (int, <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{}, 16)
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().(*net.TCPAddr).Port, accepted
}

// TestReportingStopStalledRemote: the status remote accepts the push's
// connection and never answers, over ssh (go-git's handshake heeds no
// context) and over https. Stop still returns within its bound, with the
// status committed locally, and says it gave up.
func TestReportingStopStalledRemote(t *testing.T) {
	for _, scheme := range []string{"ssh", "https"} {
		t.Run(scheme, func(t *testing.T) {
			port, accepted := stalledRemote(t)
			dir := t.TempDir()
			opts := gitrepo.StatusOptions{Node: "gw1", Dir: filepath.Join(dir, "status.git")}
			switch scheme {
			case "ssh":
				opts.URL = fmt.Sprintf("ssh://git@127.0.0.1:%d/status.git", port)
				opts.SSHKeyFile, _ = gitremote.SSHSigningKey(t, dir, "id_ed25519")
				opts.KnownHostsFile = filepath.Join(dir, "known_hosts")
				if err := os.WriteFile(opts.KnownHostsFile, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			case "https":
				opts.URL = fmt.Sprintf("https://127.0.0.1:%d/status.git", port)
			}
			var logs lockedLog
			r, err := StartReporting(t.Context(), ReportingOptions{AgentVersion: "v-test", Status: opts,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			const c1 = "3a9c1e2b6f0d4c8e9a1b2c3d4e5f60718293a4b5"
			r.Report(t.Context(), Result{Commit: c1, AppliedCommit: c1, Outcome: Unchanged, Plan: &plan.Plan{}})
			// The background push is under way, and stuck.
			select {
			case <-accepted:
			case <-time.After(30 * time.Second):
				t.Fatal("the status push never reached the remote")
			}
			const bound = time.Second
			stopped := make(chan time.Duration, 1)
			go func() {
				start := time.Now()
				r.Stop(bound)
				stopped <- time.Since(start)
			}()
			select {
			case took := <-stopped:
				t.Logf("Stop(%s) returned after %s", bound, took)
			case <-time.After(bound + 10*time.Second):
				t.Fatalf("Stop(%s) still waits on the stalled remote after %s", bound, bound+10*time.Second)
			}
			if !strings.Contains(logs.String(), "status push given up at stop") {
				t.Errorf("Stop did not say it gave up:\n%s", logs.String())
			}
		})
	}
}

type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
