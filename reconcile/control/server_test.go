package control

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveSocket serves h's controller on a real unix socket and returns a
// client for it. A goroutine plays the agent: every kick is a pass.
func serveSocket(t *testing.T, h *harness) (*Client, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "gitgw.sock")
	l, err := ListenSocket(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = Serve(ctx, l, h.c.SocketHandler()) }()
	agentDone := make(chan struct{})
	go func() {
		defer close(agentDone)
		for {
			select {
			case <-ctx.Done():
				return
			case <-h.kicks:
				res := Result{Commit: "c1", AppliedCommit: "c1", Outcome: "unchanged", Summary: "c1 unchanged", OK: true, Started: time.Now(), Duration: time.Millisecond}
				if h.c.Suspended() {
					res.Outcome, res.Summary, res.OK = "suspended", "c1 suspended, 0 changes held", false
				}
				h.c.Observe(ctx, res)
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done; <-agentDone })
	return NewClient(path), path
}

func TestSocket(t *testing.T) {
	h := newHarness(t)
	cl, path := serveSocket(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || fi.Mode().Perm() != 0o750 {
		t.Fatalf("socket directory: %v %v", fi.Mode(), err)
	}

	r, err := cl.Reconcile(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if r.Outcome != "unchanged" || !strings.Contains(r.Summary, "c1 unchanged") {
		t.Fatalf("reconcile: %+v", r)
	}
	if _, err := cl.Suspend(ctx); err != nil {
		t.Fatal(err)
	}
	r, err = cl.Reconcile(ctx, true)
	if err != nil || r.Outcome != "suspended" {
		t.Fatalf("reconcile while suspended: %+v %v", r, err)
	}
	o, err := cl.Override(ctx, OverrideRequest{Action: ActionDrain, Target: "web/s2"})
	if err != nil || o.Commit != "c1" {
		t.Fatalf("override: %+v %v", o, err)
	}
	if _, err := cl.Override(ctx, OverrideRequest{Action: ActionDrain, Target: "web/s7"}); err == nil || !strings.Contains(err.Error(), "no server") {
		t.Fatalf("bad override: %v", err)
	}
	st, err := cl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Suspended || len(st.Overrides) != 1 || st.Overrides[0].Target != "web/s2" || st.Version != StatusVersion {
		t.Fatalf("status: suspended %v overrides %+v", st.Suspended, st.Overrides)
	}
	if st.LastPass == nil || st.LastPass.Outcome != "suspended" {
		t.Fatalf("last pass: %+v", st.LastPass)
	}
	gone, err := cl.Clear(ctx, "web/s2")
	if err != nil || len(gone) != 1 {
		t.Fatalf("clear: %v %v", gone, err)
	}
	if _, err := cl.Override(ctx, OverrideRequest{Action: ActionWeight, Target: "web/s1", Weight: 10}); err != nil {
		t.Fatal(err)
	}
	st, err = cl.Resume(ctx)
	if err != nil || st.Suspended || len(st.Overrides) != 0 {
		t.Fatalf("resume: %+v %v", st, err)
	}
}

func TestListenSocketStaleAndBusy(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gitgw.sock")
	// A socket file nobody listens on: a crashed agent's.
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	l, err = ListenSocket(path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if _, err := ListenSocket(path); err == nil || !strings.Contains(err.Error(), "another agent") {
		t.Fatalf("a live socket was replaced: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ListenSocket(filepath.Join(dir, "file")); err == nil {
		t.Fatal("a regular file was replaced")
	}
}

func TestClientNoAgent(t *testing.T) {
	cl := NewClient(filepath.Join(t.TempDir(), "none.sock"))
	_, err := cl.Status(context.Background())
	if err == nil || !strings.Contains(err.Error(), "is the agent running") {
		t.Fatalf("err = %v", err)
	}
}
