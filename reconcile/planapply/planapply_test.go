package planapply

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/control"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// serversDriver stands for the in-process proxy: it holds the servers of
// service web, which only this process knows.
type serversDriver struct {
	mu   sync.Mutex
	have []string
}

func (d *serversDriver) Name() string { return "proxy" }

func (d *serversDriver) Plan(_ context.Context, n *spec.Node) ([]plan.Change, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []plan.Change
	for name, s := range n.Services["web"].Servers {
		ch := plan.Change{Kind: "proxy_server", ID: "web/" + name, After: map[string]any{"address": s.Address}, Action: plan.NoOp}
		if !slices.Contains(d.have, name) {
			ch.Action = plan.Create
		}
		out = append(out, ch)
	}
	return out, nil
}

func (d *serversDriver) Apply(_ context.Context, n *spec.Node) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.have = nil
	for name := range n.Services["web"].Servers {
		d.have = append(d.have, name)
	}
	return nil
}

func (d *serversDriver) set(names ...string) {
	d.mu.Lock()
	d.have = names
	d.mu.Unlock()
}

// source serves one revision at a time; the test moves it (a push).
type source struct {
	mu  sync.Mutex
	rev reconcile.Revision
}

func (s *source) Sync(context.Context) (reconcile.Revision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev, nil
}
func (s *source) Changes() <-chan struct{} { return nil }
func (s *source) Describe() string         { return "git file:///srv/site.git" }
func (s *source) set(rev reconcile.Revision) {
	s.mu.Lock()
	s.rev = rev
	s.mu.Unlock()
}

// labAt copies the lab example's site, with edit applied to site.cue.
func labAt(t *testing.T, edit func(string) string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join("..", "..", "examples", "lab")
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "site.cue"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "site.cue"), []byte(edit(string(b))), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func addS3(s string) string {
	return strings.Replace(s, `s2: address: "198.51.100.12:8080"`, "s2: address: \"198.51.100.12:8080\"\n\t\ts3: address: \"198.51.100.13:8080\"", 1)
}

// TestThroughAgent runs the real agent loop and runner behind the real
// control socket, with Serve wired as `gitgw agent` wires it, and plays
// `gitgw plan` and `gitgw apply`: a converged node plans no changes, a
// pushed commit plans exactly its change, the approved plan is applied by
// the agent (which keeps it), and a plan that moved, or was made at
// another commit, is refused with a message that says what to do.
func TestThroughAgent(t *testing.T) {
	c1 := reconcile.Revision{Commit: "1111111111111111111111111111111111111111", Dir: labAt(t, func(s string) string { return s })}
	c2 := reconcile.Revision{Commit: "2222222222222222222222222222222222222222", Dir: labAt(t, addS3)}
	src := &source{rev: c1}
	drv := &serversDriver{}
	runner, err := reconcile.NewRunner(reconcile.RunnerOptions{Node: "gw1", Drivers: []reconcile.Driver{drv}})
	if err != nil {
		t.Fatal(err)
	}
	ctl := control.New(control.Options{Node: "gw1", Version: "test"})
	requests := make(chan reconcile.PassRequest)
	ctl.SetPlanApply(Serve(func() *reconcile.Runner { return runner }, requests, src.Describe()))
	passes := make(chan reconcile.Result, 16)
	ctx, cancel := context.WithCancel(context.Background())
	agent := reconcile.NewAgent(reconcile.AgentOptions{Source: src, Runner: runner, Requests: requests,
		Debounce: time.Millisecond, Poll: time.Hour, Resync: time.Hour,
		OnResult: func(r reconcile.Result) { ctl.Observe(ctx, r.Control()); passes <- r }})
	sock := filepath.Join(t.TempDir(), "gitgw.sock")
	l, err := control.ListenSocket(sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = control.Serve(ctx, l, ctl.SocketHandler()) }()
	go func() { defer wg.Done(); _ = agent.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	select {
	case r := <-passes:
		if r.Outcome != reconcile.Applied {
			t.Fatalf("first pass: %s %v", r.Outcome, r.Err)
		}
	case <-time.After(time.Minute):
		t.Fatal("no first pass")
	}

	cl := control.NewClient(sock)
	// planAt is `gitgw plan`: the CLI evaluates the site, the agent plans.
	planAt := func(rev reconcile.Revision) control.PlanReply {
		t.Helper()
		desired, perrs, err := runner.Evaluate(ctx, rev)
		if err != nil || len(perrs) > 0 {
			t.Fatalf("evaluate: %v %v", err, perrs)
		}
		r, found, err := Ask(ctx, cl, sock, "gw1", rev.Commit, desired)
		if err != nil || !found {
			t.Fatalf("ask the agent: found %v, %v", found, err)
		}
		return r
	}
	r := planAt(c1)
	if r.Plan.HasChanges() || r.Agent.PID != os.Getpid() || r.Agent.Applied != c1.Commit {
		t.Fatalf("converged node: %+v, agent %+v", r.Plan.Actionable(), r.Agent)
	}
	if note := AgentNote(sock, r.Agent); !strings.Contains(note, "running 111111111111") || !strings.Contains(note, "the running agent (pid ") {
		t.Errorf("note: %s", note)
	}

	// A push: exactly its change.
	src.set(c2)
	r = planAt(c2)
	if a := r.Plan.Actionable(); len(a) != 1 || a[0].ID != "web/s3" || a[0].Action != plan.Create {
		t.Fatalf("plan after the push: %+v", a)
	}
	approved := r.Plan
	// Someone else converges s3 meanwhile: the approved plan moved.
	drv.set("s1", "s2", "s3")
	rep, err := cl.Apply(ctx, c2.Commit, approved)
	if err != nil {
		t.Fatal(err)
	}
	if err := Refusal(rep, c2.Commit); rep.Moved != control.MovedPlan || err == nil ||
		!strings.Contains(err.Error(), "proxy_server web/s3: planned create, now nothing to do") || !strings.Contains(err.Error(), "plan again") {
		t.Errorf("moved plan: %+v: %v", rep, err)
	}
	<-passes
	drv.set("s1", "s2")
	// Planned at c1, the agent's head is c2: refused, saying what to do.
	rep, err = cl.Apply(ctx, c1.Commit, approved)
	if err != nil {
		t.Fatal(err)
	}
	if err := Refusal(rep, c1.Commit); rep.Moved != control.MovedHead || err == nil ||
		!strings.Contains(err.Error(), "the agent follows git file:///srv/site.git, whose head is 222222222222") {
		t.Errorf("head moved: %+v: %v", rep, err)
	}
	// The refused request ran nothing at c1. The head it saw, c2, is
	// still to be passed (the moved plan above applied nothing), so the
	// agent passes it as it passes any new commit: the agent follows its
	// source, an approval only makes it happen now.
	if r := <-passes; r.Commit != c2.Commit || r.Outcome != reconcile.Applied {
		t.Fatalf("after the refusal: %s %s %v, want the head %s applied", r.Commit, r.Outcome, r.Err, c2.Commit)
	}
	select {
	case r := <-passes:
		t.Fatalf("a second pass: %s %s", r.Commit, r.Outcome)
	default:
	}
	drv.set("s1", "s2") // s3 removed by hand: the approved plan is current again

	// The approved plan, as planned: applied by the agent, which keeps it.
	rep, err = cl.Apply(ctx, c2.Commit, approved)
	if err != nil {
		t.Fatal(err)
	}
	if err := Refusal(rep, c2.Commit); err != nil || rep.Outcome != string(reconcile.Applied) || len(rep.Applied) != 1 || rep.Applied[0].ID != "web/s3" {
		t.Fatalf("apply: %+v: %v", rep, err)
	}
	<-passes
	if r := planAt(c2); r.Plan.HasChanges() || r.Agent.Applied != c2.Commit {
		t.Errorf("after apply: %+v, agent %+v", r.Plan.Actionable(), r.Agent)
	}
}

// TestAskNoAgent: no socket, a stale socket of a dead agent, and --socket
// "" all mean "plan as a one-shot process"; an agent that does not plan
// (an older one) too.
func TestAskNoAgent(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	older := filepath.Join(dir, "older.sock")
	ol, err := control.ListenSocket(older)
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = control.Serve(sctx, ol, control.New(control.Options{Node: "gw1"}).SocketHandler())
	}()
	defer func() { cancel(); <-done }()
	for _, sock := range []string{filepath.Join(dir, "none.sock"), stale, older, ""} {
		_, found, err := Ask(ctx, control.NewClient(sock), sock, "gw1", "c1", &spec.Node{Name: "gw1"})
		if found || err != nil {
			t.Errorf("%q: found %v, err %v; want no agent", sock, found, err)
		}
	}
}

// TestOneShot: a one-shot apply is refused when its plan changes VRRP or
// the proxy, unless the kinds are limited, and the kinds cannot name them.
func TestOneShot(t *testing.T) {
	p := &plan.Plan{Node: "gw1", Changes: []plan.Change{
		{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_forward", Action: plan.Update},
		{Driver: "proxy", Kind: "proxy_bind", ID: "web/203.0.113.100:80", Action: plan.NoOp},
	}}
	if err := CheckOneShot(p, nil, "/run/gitgw/gitgw.sock"); err != nil {
		t.Errorf("tuning only: %v", err)
	}
	p.Changes = append(p.Changes, plan.Change{Driver: "vrrp", Kind: "vip", ID: "VI_1/203.0.113.100/24", Action: plan.Create})
	err := CheckOneShot(p, nil, "/run/gitgw/gitgw.sock")
	if !errors.Is(err, ErrNeedsAgent) || !strings.Contains(err.Error(), "no agent answers on /run/gitgw/gitgw.sock") ||
		!strings.Contains(err.Error(), "create vip VI_1/203.0.113.100/24") || !strings.Contains(err.Error(), "--kinds tuning,units") ||
		!strings.Contains(err.Error(), "Nothing was applied") {
		t.Errorf("vrrp in the plan: %v", err)
	}
	kinds, err := ParseKinds("tuning, units")
	if err != nil || !kinds["tuning"] || !kinds["units"] || len(kinds) != 2 {
		t.Fatalf("kinds: %v %v", kinds, err)
	}
	if err := CheckOneShot(p, kinds, "/run/gitgw/gitgw.sock"); err != nil {
		t.Errorf("limited kinds: %v", err)
	}
	if o := Only(p, map[string]bool{"tuning": true}); len(o.Changes) != 1 || o.Changes[0].Driver != "tuning" || len(p.Changes) != 3 {
		t.Errorf("only tuning: %+v (from %d)", o.Changes, len(p.Changes))
	}
	if _, err := ParseKinds("tuning,vrrp"); !errors.Is(err, ErrNeedsAgent) {
		t.Errorf("--kinds vrrp: %v", err)
	}
	if _, err := ParseKinds("nic"); err == nil || !strings.Contains(err.Error(), `unknown kind "nic"`) {
		t.Errorf("--kinds nic: %v", err)
	}
	if k, err := ParseKinds(""); k != nil || err != nil {
		t.Errorf("no --kinds: %v %v", k, err)
	}
}

// TestRefusalDirectory: a plan of a directory cannot be what an agent
// following a repository runs: the message says to commit and push.
func TestRefusalDirectory(t *testing.T) {
	err := Refusal(control.ApplyReply{ApplyResult: control.ApplyResult{Commit: "2222222222222222222222222222222222222222", Moved: control.MovedHead}},
		"dir:08729ef2e3ad")
	if err == nil || !strings.Contains(err.Error(), "you planned a directory, and the agent follows a repository: commit and push") {
		t.Errorf("%v", err)
	}
	if err := Refusal(control.ApplyReply{ApplyResult: control.ApplyResult{Outcome: "unchanged"}}, "c"); err != nil {
		t.Errorf("unchanged: %v", err)
	}
	if err := Refusal(control.ApplyReply{ApplyResult: control.ApplyResult{Outcome: "suspended", Summary: "c suspended, 1 change held"}}, "c"); err == nil {
		t.Error("a suspended agent applied nothing: no error")
	}
}
