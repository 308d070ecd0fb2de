package reconcile

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// valueDriver manages one value: the site wants it to be the number of
// servers of the service web, and the node holds have. Its change carries
// both, so that a plan made earlier can be told from the plan now.
type valueDriver struct {
	mu   sync.Mutex
	have string
}

func (d *valueDriver) Name() string { return "tuning" }

func (d *valueDriver) want(n *spec.Node) string { return strconv.Itoa(len(n.Services["web"].Servers)) }

func (d *valueDriver) Plan(_ context.Context, n *spec.Node) ([]plan.Change, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ch := plan.Change{Kind: "sysctl", ID: "web.servers", Before: d.have, After: d.want(n), Action: plan.NoOp}
	if d.have != d.want(n) {
		ch.Action = plan.Update
	}
	return []plan.Change{ch}, nil
}

func (d *valueDriver) Apply(_ context.Context, n *spec.Node) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.have = d.want(n)
	return nil
}

func (d *valueDriver) set(v string) {
	d.mu.Lock()
	d.have = v
	d.mu.Unlock()
}

func (d *valueDriver) get() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.have
}

const threeServers = `services: web: {
	binds: ["203.0.113.100:80"]
	servers: {s1: address: "198.51.100.11:8080", s2: address: "198.51.100.12:8080", s3: address: "198.51.100.13:8080"}
	check: kind: "tcp"
}`

// TestPassExpect: a pass given the plan an operator approved applies only
// when the plan it makes now carries the same changes; when the node or the
// site moved since, it applies nothing and says what differs.
func TestPassExpect(t *testing.T) {
	ctx := context.Background()
	sites := map[string]string{"c1": filepath.Join(t.TempDir(), "c1"), "c2": filepath.Join(t.TempDir(), "c2")}
	writeSite(t, sites["c1"], labVRRP, labServices, "")
	writeSite(t, sites["c2"], labVRRP, threeServers, "")
	for _, tc := range []struct {
		name string
		// The plan approved: made at commit planAt with the node holding
		// planHave ("" passes no Expect).
		planAt, planHave string
		// The pass: at commit passAt with the node holding passHave.
		passAt, passHave string
		want             Outcome
		why              string // in the error, when the plan moved
		haveAfter        string
	}{
		{name: "no plan given", passAt: "c1", passHave: "0", want: Applied, haveAfter: "2"},
		{name: "nothing moved", planAt: "c1", planHave: "0", passAt: "c1", passHave: "0", want: Applied, haveAfter: "2"},
		{name: "the node moved", planAt: "c1", planHave: "0", passAt: "c1", passHave: "5", want: Rejected,
			why: `sysctl web.servers: planned from "0", now from "5"`, haveAfter: "5"},
		{name: "the site moved", planAt: "c1", planHave: "0", passAt: "c2", passHave: "0", want: Rejected,
			why: `sysctl web.servers: planned to "2", now to "3"`, haveAfter: "0"},
		{name: "someone else converged it", planAt: "c1", planHave: "0", passAt: "c1", passHave: "2", want: Rejected,
			why: "sysctl web.servers: planned update, now nothing to do", haveAfter: "2"},
		{name: "no changes approved, drift since", planAt: "c1", planHave: "2", passAt: "c1", passHave: "0", want: Rejected,
			why: "sysctl web.servers: not planned, now update", haveAfter: "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			drv := &valueDriver{}
			r, err := NewRunner(RunnerOptions{Node: "gw1", Drivers: []Driver{drv}})
			if err != nil {
				t.Fatal(err)
			}
			var o PassOptions
			if tc.planAt != "" {
				drv.set(tc.planHave)
				dry := r.Pass(ctx, Revision{Commit: tc.planAt, Dir: sites[tc.planAt]}, PassOptions{DryRun: true})
				if dry.Err != nil || dry.Plan == nil {
					t.Fatalf("plan: %v", dry.Err)
				}
				o.Expect = dry.Plan
			}
			drv.set(tc.passHave)
			res := r.Pass(ctx, Revision{Commit: tc.passAt, Dir: sites[tc.passAt]}, o)
			if res.Outcome != tc.want {
				t.Fatalf("outcome %s (%v), want %s", res.Outcome, res.Err, tc.want)
			}
			if tc.why != "" {
				if !errors.Is(res.Err, ErrPlanMoved) || !strings.Contains(res.Err.Error(), tc.why) {
					t.Errorf("err %v, want ErrPlanMoved naming %q", res.Err, tc.why)
				}
				if len(res.Applied) != 0 || r.LastGood() != nil {
					t.Errorf("a moved plan applied %d changes, last good %+v", len(res.Applied), r.LastGood())
				}
			}
			if got := drv.get(); got != tc.haveAfter {
				t.Errorf("node holds %q after the pass, want %q", got, tc.haveAfter)
			}
		})
	}
}

// signalSource is at the revision the test sets, and signals a change
// when the test asks.
type signalSource struct {
	mu      sync.Mutex
	rev     Revision
	changes chan struct{}
}

func (s *signalSource) set(rev Revision) {
	s.mu.Lock()
	s.rev = rev
	s.mu.Unlock()
}

func (s *signalSource) Sync(context.Context) (Revision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev, nil
}
func (s *signalSource) Changes() <-chan struct{} { return s.changes }
func (s *signalSource) Describe() string         { return "signal" }

// TestAgentPassRequests: the agent serves a pass request in its loop and
// replies with the result, which also goes to OnResult; a request for a
// commit that is not the head runs no pass; a dry run replies and is not
// reported; a commit whose approved plan moved is passed again when the
// source signals it.
func TestAgentPassRequests(t *testing.T) {
	dir, dir2 := t.TempDir(), t.TempDir()
	writeSite(t, dir, labVRRP, labServices, "")
	writeSite(t, dir2, labVRRP, threeServers, "")
	drv := &valueDriver{have: "0"}
	r, err := NewRunner(RunnerOptions{Node: "gw1", Drivers: []Driver{drv}})
	if err != nil {
		t.Fatal(err)
	}
	requests := make(chan PassRequest)
	reported := make(chan Result, 16)
	var hold atomic.Bool
	gate := make(chan struct{})
	src := &signalSource{rev: Revision{Commit: "c1", Dir: dir}, changes: make(chan struct{}, 1)}
	a := NewAgent(AgentOptions{Source: src, Runner: r,
		Requests: requests, Debounce: time.Millisecond, Resync: time.Hour, Poll: time.Hour,
		OnResult: func(res Result) {
			// Whether to hold is read before the report is sent: once
			// it is, the test may already have cleared hold (and be
			// sending on gate), or set it for its next request.
			held := hold.Load()
			reported <- res
			if held {
				<-gate // the test looks at the reply channel meanwhile
			}
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	wait := func(what string, ch <-chan Result) Result {
		t.Helper()
		select {
		case res := <-ch:
			return res
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no result", what)
		}
		return Result{}
	}
	if res := wait("first pass", reported); res.Outcome != Applied {
		t.Fatalf("first pass: %s %v", res.Outcome, res.Err)
	}

	var stale *plan.Plan
	for _, tc := range []struct {
		name     string
		before   func() // what happens on the node before the request
		req      PassRequest
		expect   func() *plan.Plan
		want     Outcome
		wantErr  error
		reported bool
		keep     bool // keep the reply's plan as the stale plan
		// passed: the source then signals its head again, which the
		// request did not pass: the agent passes it.
		passed bool
	}{
		{name: "head moved", req: PassRequest{Commit: "c0"}, want: Rejected, wantErr: ErrHeadMoved},
		{name: "dry run", before: func() { drv.set("7") }, req: PassRequest{Commit: "c1", Options: PassOptions{DryRun: true}},
			want: Unchanged, keep: true},
		{name: "approved plan", req: PassRequest{Commit: "c1"}, expect: func() *plan.Plan { return stale },
			want: Applied, reported: true},
		{name: "a new head, the approved plan moved", before: func() { src.set(Revision{Commit: "c2", Dir: dir2}) },
			req: PassRequest{Commit: "c2"}, expect: func() *plan.Plan { return stale },
			want: Rejected, wantErr: ErrPlanMoved, reported: true, passed: true},
		{name: "no commit named", before: func() { drv.set("9") }, req: PassRequest{}, want: Applied, reported: true},
	} {
		if tc.before != nil {
			tc.before()
		}
		reply := make(chan Result, 1)
		tc.req.Reply = reply
		if tc.expect != nil {
			tc.req.Options.Expect = tc.expect()
		}
		hold.Store(tc.reported)
		requests <- tc.req
		if tc.reported {
			// OnResult runs before the reply is sent: `gitgw apply &&
			// gitgw status` shows the pass.
			got := wait(tc.name+" reported", reported)
			select {
			case res := <-reply:
				t.Errorf("%s: the reply (%s) came before OnResult", tc.name, res.Outcome)
				reply <- res
			default:
			}
			hold.Store(false)
			gate <- struct{}{}
			res := wait(tc.name, reply)
			if got.Outcome != res.Outcome || got.Started != res.Started {
				t.Errorf("%s: OnResult saw %s, the reply %s", tc.name, got.Outcome, res.Outcome)
			}
			reply <- res
		}
		res := wait(tc.name, reply)
		if res.Outcome != tc.want || (tc.wantErr != nil && !errors.Is(res.Err, tc.wantErr)) {
			t.Fatalf("%s: %s %v, want %s %v", tc.name, res.Outcome, res.Err, tc.want, tc.wantErr)
		}
		if tc.keep {
			stale = res.Plan
		}
		if tc.passed {
			src.changes <- struct{}{}
			if got := wait(tc.name+": the head passed", reported); got.Outcome != Applied {
				t.Errorf("%s: the head's pass: %s %v", tc.name, got.Outcome, got.Err)
			}
		}
		select {
		case got := <-reported:
			t.Errorf("%s: unexpected report %s %v", tc.name, got.Outcome, got.Err)
		default:
		}
	}
	if got := drv.get(); got != "3" {
		t.Errorf("node holds %q, want 3", got)
	}
}
