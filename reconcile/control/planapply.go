package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// PlanApply serves `gitgw plan` and `gitgw apply` on a node where the
// agent runs. A one-shot process cannot see what the agent's in-process
// drivers run (the VRRP engine's roles and VIPs, the proxy's binds,
// servers and health), so it would plan every VIP and listener as new; and
// what it applied to them would die with it, or fight the agent. Through
// these endpoints the plan is made by the agent's own drivers, and the
// approved plan is applied by the agent's loop, which keeps running it.
type PlanApply struct {
	// Plan plans desired (the site at commit, as the CLI evaluated it)
	// with the agent's drivers, overrides included (Runner.PlanFor). An
	// error with a plan is a partial plan: the failing driver's part is
	// listed as pending.
	Plan func(ctx context.Context, desired *spec.Node, commit string) (*plan.Plan, error)
	// Apply asks the agent's loop for a pass of commit that applies only
	// if it makes the same changes as expect (a PassRequest), and waits
	// for its result.
	Apply func(ctx context.Context, commit string, expect *plan.Plan) (ApplyResult, error)
	// Source describes what the agent follows (its --repo or --site), for
	// the message that tells an operator why their commit is not the
	// agent's.
	Source string
}

// PlanRequest is the body of POST /v1/plan.
type PlanRequest struct {
	Node   string `json:"node"`
	Commit string `json:"commit"`
	// Desired is the node's desired state as the CLI evaluated it.
	Desired *spec.Node `json:"desired"`
}

// AgentInfo names the agent that answered, for "observed: the running
// agent (pid …)" and a saved plan's header.
type AgentInfo struct {
	Node    string `json:"node"`
	PID     int    `json:"pid"`
	Version string `json:"version"`
	Source  string `json:"source,omitempty"`
	// Desired and Applied are the commit of the agent's last pass and the
	// commit it runs.
	Desired   string `json:"desired_commit,omitempty"`
	Applied   string `json:"applied_commit,omitempty"`
	Suspended bool   `json:"suspended,omitempty"`
}

// PlanReply is the answer to POST /v1/plan.
type PlanReply struct {
	Agent AgentInfo  `json:"agent"`
	Plan  *plan.Plan `json:"plan"`
	// Warning is set when a driver could not plan: its resources are in
	// the plan as pending, with the reason.
	Warning string `json:"warning,omitempty"`
}

// ApplyRequest is the body of POST /v1/apply: the plan the operator
// approved, for the commit it was made at.
type ApplyRequest struct {
	Commit string     `json:"commit"`
	Plan   *plan.Plan `json:"plan"`
}

// Why an apply through the agent applied nothing.
const (
	// MovedHead: the agent's source is at another commit than the one
	// planned (not pushed yet, pushed again since, or the agent follows
	// another repository or branch).
	MovedHead = "head"
	// MovedPlan: the agent plans other changes now (the node changed, or
	// an override was set or cleared).
	MovedPlan = "plan"
)

// ApplyResult is what the agent's pass did with an approved plan.
type ApplyResult struct {
	// Commit is the commit the pass was for; for a MovedHead refusal,
	// the agent's head.
	Commit    string        `json:"commit"`
	Outcome   string        `json:"outcome"`
	Summary   string        `json:"summary"`
	Applied   []plan.Change `json:"applied,omitempty"`
	Remaining []plan.Change `json:"remaining,omitempty"`
	Error     string        `json:"error,omitempty"`
	// Moved is MovedHead or MovedPlan when the pass refused the plan.
	Moved string `json:"moved,omitempty"`
}

// ApplyReply is the answer to POST /v1/apply.
type ApplyReply struct {
	Agent AgentInfo `json:"agent"`
	ApplyResult
}

// SetPlanApply serves plan and apply through pa. Call it before
// SocketHandler: the agent builds its runner after the controller.
func (c *Controller) SetPlanApply(pa *PlanApply) { c.o.PlanApply = pa }

// agentInfo is the answering agent.
func (c *Controller) agentInfo(pa *PlanApply) AgentInfo {
	st := c.Status()
	return AgentInfo{Node: st.Node, PID: os.Getpid(), Version: st.AgentVersion, Source: pa.Source,
		Desired: st.Desired, Applied: st.Applied, Suspended: st.Suspended}
}

// ErrWrongNode is returned when the CLI plans another node than the one
// the agent runs: the agent's drivers observe only their own node.
var ErrWrongNode = errors.New("the agent on this socket runs another node")

// planApplyRoutes adds POST /v1/plan and POST /v1/apply to mux. Without
// PlanApply (an agent built without it) both answer 501, which the client
// treats as "plan without the agent".
func (c *Controller) planApplyRoutes(mux *http.ServeMux, pa *PlanApply) {
	mux.HandleFunc("POST /v1/plan", func(w http.ResponseWriter, r *http.Request) {
		if pa == nil || pa.Plan == nil {
			reply(w, http.StatusNotImplemented, errorReply{"this agent does not plan for the CLI"})
			return
		}
		var req PlanRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxReply)).Decode(&req); err != nil {
			reply(w, http.StatusBadRequest, errorReply{"plan request: " + err.Error()})
			return
		}
		if req.Desired == nil {
			reply(w, http.StatusBadRequest, errorReply{"plan request: no desired state"})
			return
		}
		info := c.agentInfo(pa)
		if req.Node != info.Node {
			reply(w, http.StatusConflict, errorReply{fmt.Sprintf("%v: it runs %q, not %q: plan %s on its own node, or against its status branch (--observed status)",
				ErrWrongNode, info.Node, req.Node, req.Node)})
			return
		}
		p, err := pa.Plan(r.Context(), req.Desired, req.Commit)
		if p == nil {
			if err == nil {
				err = errors.New("no plan")
			}
			reply(w, http.StatusInternalServerError, errorReply{"plan: " + err.Error()})
			return
		}
		out := PlanReply{Agent: info, Plan: p}
		if err != nil {
			out.Warning = err.Error()
		}
		reply(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST /v1/apply", func(w http.ResponseWriter, r *http.Request) {
		if pa == nil || pa.Apply == nil {
			reply(w, http.StatusNotImplemented, errorReply{"this agent does not apply for the CLI"})
			return
		}
		var req ApplyRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxReply)).Decode(&req); err != nil {
			reply(w, http.StatusBadRequest, errorReply{"apply request: " + err.Error()})
			return
		}
		if req.Plan == nil || req.Commit == "" {
			reply(w, http.StatusBadRequest, errorReply{"apply request: a plan and its commit are required"})
			return
		}
		if req.Plan.Node != c.o.Node {
			reply(w, http.StatusConflict, errorReply{fmt.Sprintf("%v: it runs %q, not %q", ErrWrongNode, c.o.Node, req.Plan.Node)})
			return
		}
		res, err := pa.Apply(r.Context(), req.Commit, req.Plan)
		if err != nil {
			// The pass did not run (the agent stopping, the client gone).
			reply(w, http.StatusServiceUnavailable, errorReply{"apply: " + err.Error()})
			return
		}
		reply(w, http.StatusOK, ApplyReply{Agent: c.agentInfo(pa), ApplyResult: res})
	})
}

// ErrNotServed is returned when the agent answers but does not serve the
// request (an older agent, or one without PlanApply): `gitgw plan` then
// plans as a one-shot process.
var ErrNotServed = errors.New("the agent does not serve this request (an older gitgw?)")

// Plan asks the agent to plan desired (the site at commit) for node with
// its own drivers.
func (c *Client) Plan(ctx context.Context, node, commit string, desired *spec.Node) (PlanReply, error) {
	var out PlanReply
	err := c.do(ctx, http.MethodPost, "/v1/plan", PlanRequest{Node: node, Commit: commit, Desired: desired}, &out)
	if err == nil && out.Plan == nil {
		err = fmt.Errorf("control socket %s: the agent sent no plan", c.path)
	}
	return out, err
}

// Apply hands the agent an approved plan for commit and waits for the
// pass that applies it (or refuses it: ApplyResult.Moved).
func (c *Client) Apply(ctx context.Context, commit string, p *plan.Plan) (ApplyReply, error) {
	var out ApplyReply
	err := c.do(ctx, http.MethodPost, "/v1/apply", ApplyRequest{Commit: commit, Plan: p}, &out)
	return out, err
}
