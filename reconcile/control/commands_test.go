package control

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestClientCommands: what gitgw status/reconcile/suspend/resume/override
// print, through a real socket, and which outcome makes reconcile fail.
func TestClientCommands(t *testing.T) {
	h := newHarness(t)
	cl, _ := serveSocket(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var b bytes.Buffer
	step := func(name string, err error, want string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := b.String(); !strings.Contains(got, want) {
			t.Fatalf("%s printed %q, want %q", name, got, want)
		}
		b.Reset()
	}
	step("reconcile", cl.WriteReconcile(ctx, &b, true), "c1 unchanged\n")
	step("suspend", cl.WriteSuspend(ctx, &b), "suspended: passes plan and report; nothing is applied until `gitgw resume`\n")
	req, err := ParseOverride(ActionWeight, []string{"web/s1", "50"})
	if err != nil || req.Weight != 50 || req.Target != "web/s1" {
		t.Fatalf("weight override: %+v %v", req, err)
	}
	if _, err := ParseOverride(ActionWeight, []string{"web/s1", "lots"}); err == nil || !strings.Contains(err.Error(), `weight "lots"`) {
		t.Fatalf("a weight that is no number: %v", err)
	}
	step("override", cl.WriteOverride(ctx, &b, req), ": in force until resume or a new commit\n")
	step("override list", cl.WriteOverrides(ctx, &b), "(set on c1 at ")
	step("status", cl.WriteStatus(ctx, &b, false), "OVERRIDE: weight web/s1 50")
	step("status --json", cl.WriteStatus(ctx, &b, true), `"version"`)
	step("clear", cl.WriteClear(ctx, &b, "web/s1"), "cleared ")
	if err := cl.WriteClear(ctx, &b, ""); err == nil || err.Error() != "no override to clear" {
		t.Fatalf("clearing nothing: %v", err)
	}
	step("resume", cl.WriteResume(ctx, &b), "resumed: applying again; overrides cleared\n")
}

// TestReconcileFailed: a pass that failed prints its summary and returns
// ErrPassFailed, for exit 1.
func TestReconcileFailed(t *testing.T) {
	h := newHarness(t)
	path := filepath.Join(t.TempDir(), "gitgw.sock")
	l, err := ListenSocket(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); _ = Serve(ctx, l, h.c.SocketHandler()) }()
	defer func() { cancel(); <-done }()
	go func() { // the agent: its pass fails
		select {
		case <-ctx.Done():
		case <-h.kicks:
			h.c.Observe(ctx, Result{Commit: "c2", Outcome: "failed", Summary: "c2 failed: boom", Started: time.Now()})
		}
	}()
	var b bytes.Buffer
	if err := NewClient(path).WriteReconcile(ctx, &b, true); !errors.Is(err, ErrPassFailed) || b.String() != "c2 failed: boom\n" {
		t.Fatalf("reconcile of a failed pass: %v, printed %q", err, b.String())
	}
}
