package control

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// TestPlanEndpoint: POST /v1/plan plans the desired state the CLI sent,
// as it arrives over the socket, with the agent's own (wrapped) drivers,
// so an override in force is planned as the agent runs it; the reply names
// the agent. Another node's plan and a request without a desired state
// are refused.
func TestPlanEndpoint(t *testing.T) {
	h := newHarness(t)
	var gotCommit string
	// As Runner.PlanFor does (control does not import reconcile): every
	// wrapped driver plans the desired state it was sent.
	h.c.SetPlanApply(&PlanApply{Source: "file:///srv/site.git",
		Plan: func(ctx context.Context, desired *spec.Node, commit string) (*plan.Plan, error) {
			gotCommit = commit
			p := &plan.Plan{Node: "gw1", Commit: commit}
			for _, d := range h.wrapped {
				changes, err := d.Plan(ctx, desired)
				if err != nil {
					return nil, err
				}
				p.Changes = append(p.Changes, changes...)
			}
			return p, nil
		}})
	cl, _ := serveSocket(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := h.c.Set(ctx, Override{Action: ActionDrain, Target: "web/s2"}); err != nil {
		t.Fatal(err)
	}

	r, err := cl.Plan(ctx, "gw1", "c2", labNode())
	if err != nil {
		t.Fatal(err)
	}
	if gotCommit != "c2" || r.Plan.Commit != "c2" || r.Plan.Node != "gw1" {
		t.Errorf("plan for commit %q: %+v", gotCommit, r.Plan)
	}
	if r.Agent.PID != os.Getpid() || r.Agent.Node != "gw1" || r.Agent.Version != "test" || r.Agent.Source != "file:///srv/site.git" || r.Agent.Applied != "c1" {
		t.Errorf("agent info: %+v", r.Agent)
	}
	var drained int
	for _, ch := range r.Plan.Changes {
		if ch.Driver == "proxy" && ch.ID == "web/s2" {
			if m, ok := ch.After.(map[string]any); ok && m["drain"] == true {
				drained++
			}
		}
	}
	if drained != 1 {
		t.Errorf("the proxy driver did not plan through the drain override: %+v", r.Plan.Changes)
	}

	if _, err := cl.Plan(ctx, "gw2", "c2", labNode()); err == nil || !strings.Contains(err.Error(), `runs "gw1", not "gw2"`) {
		t.Errorf("another node's plan: %v", err)
	}
	if _, err := cl.Plan(ctx, "gw1", "c2", nil); err == nil || !strings.Contains(err.Error(), "no desired state") {
		t.Errorf("no desired state: %v", err)
	}
}

// TestApplyEndpoint: POST /v1/apply hands the approved plan and its commit
// to the agent's loop and answers with the pass's result, the refusal
// reason included.
func TestApplyEndpoint(t *testing.T) {
	h := newHarness(t)
	type call struct {
		commit string
		expect *plan.Plan
	}
	calls := make(chan call, 2)
	h.c.SetPlanApply(&PlanApply{
		Apply: func(_ context.Context, commit string, expect *plan.Plan) (ApplyResult, error) {
			calls <- call{commit, expect}
			if commit == "old" {
				return ApplyResult{Commit: "new", Outcome: "rejected", Moved: MovedHead, Error: "the agent's source is at another commit"}, nil
			}
			return ApplyResult{Commit: commit, Outcome: "applied", Summary: commit + " applied, 1 change", Applied: expect.Actionable()}, nil
		}})
	cl, _ := serveSocket(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	p := &plan.Plan{Node: "gw1", Commit: "c2", Changes: []plan.Change{
		{Driver: "proxy", Kind: "proxy_server", ID: "web/s3", Action: plan.Create, After: map[string]any{"address": "198.51.100.13:8080"}},
		{Driver: "vrrp", Kind: "vip", ID: "VI_1/203.0.113.100/24", Action: plan.NoOp},
	}}
	r, err := cl.Apply(ctx, "c2", p)
	if err != nil {
		t.Fatal(err)
	}
	got := <-calls
	if got.commit != "c2" || got.expect.Node != "gw1" || len(got.expect.Changes) != 2 || plan.Fingerprint(got.expect) != plan.Fingerprint(p) {
		t.Errorf("the agent got %+v", got)
	}
	if r.Outcome != "applied" || len(r.Applied) != 1 || r.Applied[0].ID != "web/s3" || r.Agent.Node != "gw1" || r.Moved != "" {
		t.Errorf("reply: %+v", r)
	}

	r, err = cl.Apply(ctx, "old", p)
	if err != nil || r.Moved != MovedHead || r.Commit != "new" || r.Outcome != "rejected" {
		t.Errorf("a commit the agent is not at: %+v %v", r, err)
	}
	<-calls

	if _, err := cl.Apply(ctx, "c2", &plan.Plan{Node: "gw2"}); err == nil || !strings.Contains(err.Error(), `runs "gw1", not "gw2"`) {
		t.Errorf("another node's plan: %v", err)
	}
	if _, err := cl.Apply(ctx, "", p); err == nil || !strings.Contains(err.Error(), "a plan and its commit are required") {
		t.Errorf("no commit: %v", err)
	}
	select {
	case c := <-calls:
		t.Errorf("a refused request reached the agent: %+v", c)
	default:
	}
}

// TestPlanApplyNotServed: an agent without PlanApply (or an older one,
// which has no such route) answers so that the CLI knows to plan as a
// one-shot process: ErrNotServed.
func TestPlanApplyNotServed(t *testing.T) {
	h := newHarness(t)
	cl, _ := serveSocket(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cl.Plan(ctx, "gw1", "c2", labNode()); !errors.Is(err, ErrNotServed) {
		t.Errorf("plan: %v, want ErrNotServed", err)
	}
	if _, err := cl.Apply(ctx, "c2", &plan.Plan{Node: "gw1"}); !errors.Is(err, ErrNotServed) {
		t.Errorf("apply: %v, want ErrNotServed", err)
	}
}
