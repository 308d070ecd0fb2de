// Package planapply is `gitgw plan` and `gitgw apply` on a node, beside a
// running agent or without one.
//
// The VRRP engine and the L4 proxy live inside the agent's process: only
// the agent knows which instances it is master of, which VIPs it holds,
// which listeners are bound and which servers are up. A one-shot process
// sees none of that, so it planned every VIP and listener as new, and what
// it applied to them died with it (or fought the agent, which then
// "corrected" it as drift blamed on a person). So when an agent answers on
// the node's control socket, the plan is made by the agent's own drivers
// (control.PlanApply, POST /v1/plan) and the approved plan is applied by
// the agent's loop, which keeps running it (POST /v1/apply, a
// reconcile.PassRequest with the plan as PassOptions.Expect). With no
// agent, a one-shot apply changes only what outlives it — tuning and units
// — and says plainly that VRRP and the proxy need the agent.
package planapply

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/control"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// OneShot are the drivers whose work outlives the process that applied it
// (sysfs and sysctls, unit files and systemd's instances).
var OneShot = []string{"tuning", "units"}

// InAgent are the drivers whose state lives in the agent's process: a
// one-shot process that applied them would tear them down as it exits.
var InAgent = []string{"proxy", "vrrp"}

// ErrNeedsAgent is wrapped by the refusal of a one-shot apply whose plan
// changes what only the agent can keep.
var ErrNeedsAgent = errors.New("VRRP and the proxy run inside the agent")

// ParseKinds reads --kinds (comma-separated driver names). Empty means not
// limited (nil). A driver that runs inside the agent is refused: a one-shot
// process cannot keep it.
func ParseKinds(s string) (map[string]bool, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]bool{}
	for _, k := range strings.Split(s, ",") {
		k = strings.TrimSpace(k)
		switch {
		case slices.Contains(OneShot, k):
			out[k] = true
		case slices.Contains(InAgent, k):
			return nil, fmt.Errorf("--kinds %s: %w: a one-shot apply would lose %s when it exits; start the agent to apply it (gitgw apply then goes through it)", s, ErrNeedsAgent, k)
		default:
			return nil, fmt.Errorf("--kinds %s: unknown kind %q: want %s", s, k, strings.Join(OneShot, " or "))
		}
	}
	return out, nil
}

// Only returns p with only the changes of the drivers in kinds (all of
// them when kinds is nil).
func Only(p *plan.Plan, kinds map[string]bool) *plan.Plan {
	if kinds == nil {
		return p
	}
	out := *p
	out.Changes = nil
	for _, ch := range p.Changes {
		if kinds[ch.Driver] {
			out.Changes = append(out.Changes, ch)
		}
	}
	return &out
}

// CheckOneShot refuses a one-shot apply (no agent answered on socket) of a
// plan that changes VRRP or the proxy, unless the operator limited the
// kinds: it would bring VIPs and listeners up only until it exits, or take
// down what a stopped agent left.
func CheckOneShot(p *plan.Plan, kinds map[string]bool, socket string) error {
	if kinds != nil {
		return nil
	}
	var ids []string
	for _, ch := range p.Actionable() {
		if slices.Contains(InAgent, ch.Driver) {
			ids = append(ids, fmt.Sprintf("%s %s %s", ch.Action, ch.Kind, ch.ID))
		}
	}
	if len(ids) == 0 {
		return nil
	}
	n, more := len(ids), ""
	if n > 3 {
		more = fmt.Sprintf(" and %d more", len(ids)-3)
		ids = ids[:3]
	}
	return fmt.Errorf("%w, and no agent answers on %s: this one-shot apply would change %d of their resources (%s%s) only until it exits. "+
		"Nothing was applied. Start the agent to apply the whole plan (gitgw apply then hands it to the agent), "+
		"or apply the rest alone with --kinds %s",
		ErrNeedsAgent, socket, n, strings.Join(ids, ", "), more, strings.Join(OneShot, ","))
}

// NoAgent reports whether err says that no agent answers on the socket
// (none listens, a stale socket of a dead agent, or an older agent that
// does not plan): the CLI then plans and applies as a one-shot process.
// Any other error (permission denied, a hung agent) is not "no agent":
// planning without it would show the fiction this package exists to end.
func NoAgent(err error) bool {
	return errors.Is(err, control.ErrNoAgent) || errors.Is(err, control.ErrNotServed) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, os.ErrNotExist)
}

// Ask asks the agent on cl for the plan of desired (the site at commit)
// for node. found is false when no agent answers (NoAgent).
func Ask(ctx context.Context, cl *control.Client, socket, node, commit string, desired *spec.Node) (r control.PlanReply, found bool, err error) {
	if socket == "" {
		return r, false, nil
	}
	if _, serr := os.Stat(socket); errors.Is(serr, os.ErrPermission) {
		// The socket's directory is 0750 root: whether an agent runs is
		// not known, and "no agent" would be a guess.
		err = fmt.Errorf("control socket %s: %w", socket, syscall.EACCES)
	} else {
		r, err = cl.Plan(ctx, node, commit, desired)
	}
	switch {
	case err == nil:
		return r, true, nil
	case NoAgent(err):
		return r, false, nil
	case errors.Is(err, syscall.EACCES):
		return r, false, fmt.Errorf("%w: the agent's socket is root's (mode 0600 in a 0750 directory): run as root, or plan without the agent with --socket \"\" (VRRP and the proxy are then predicted)", err)
	}
	return r, false, fmt.Errorf("asking the agent for the plan: %w", err)
}

// AgentNote says whose view the plan was made against.
func AgentNote(socket string, a control.AgentInfo) string {
	s := fmt.Sprintf("observed: the running agent (pid %d", a.PID)
	if a.Applied != "" {
		s += ", running " + short(a.Applied)
	}
	if a.Version != "" {
		s += ", gitgw " + a.Version
	}
	s += ") over " + socket + ": VRRP roles and VIPs, proxy binds, servers and health as it runs them"
	if a.Suspended {
		s += "; the agent is suspended (gitgw resume): it applies nothing until then"
	}
	return s
}

// NoAgentNote says that the in-process state is predicted.
func NoAgentNote(socket string) string {
	if socket == "" {
		return "observed: this host only (--socket \"\"): the in-process state (VRRP roles and VIPs, proxy binds and servers) is predicted as if nothing ran"
	}
	return "observed: this host; no agent answers on " + socket + ": the in-process state (VRRP roles and VIPs, proxy binds and servers) is predicted as if nothing ran"
}

// Serve returns the agent's side of plan and apply: plans made by
// runner's drivers, and approved plans handed to the agent's loop through
// requests (AgentOptions.Requests). runner is read at each request: the
// controller is built before the runner.
func Serve(runner func() *reconcile.Runner, requests chan<- reconcile.PassRequest, source string) *control.PlanApply {
	return &control.PlanApply{
		Source: source,
		Plan: func(ctx context.Context, desired *spec.Node, commit string) (*plan.Plan, error) {
			r := runner()
			if r == nil {
				return nil, errors.New("the agent is starting")
			}
			return r.PlanFor(ctx, desired, commit)
		},
		Apply: func(ctx context.Context, commit string, expect *plan.Plan) (control.ApplyResult, error) {
			reply := make(chan reconcile.Result, 1)
			req := reconcile.PassRequest{Commit: commit, Options: reconcile.PassOptions{Expect: expect}, Reply: reply}
			select {
			case requests <- req:
			case <-ctx.Done():
				return control.ApplyResult{}, ctx.Err()
			}
			select {
			case res := <-reply:
				return Result(res), nil
			case <-ctx.Done():
				return control.ApplyResult{}, ctx.Err()
			}
		},
	}
}

// Result is a pass's result as the CLI receives it.
func Result(res reconcile.Result) control.ApplyResult {
	out := control.ApplyResult{Commit: res.Commit, Outcome: string(res.Outcome), Summary: res.Summary(),
		Applied: res.Applied, Remaining: res.Remaining}
	if res.Err != nil {
		out.Error = res.Err.Error()
	}
	for _, e := range res.Errors {
		out.Error = strings.TrimPrefix(out.Error+"\n"+e.Error(), "\n")
	}
	switch {
	case errors.Is(res.Err, reconcile.ErrHeadMoved):
		out.Moved = control.MovedHead
	case errors.Is(res.Err, reconcile.ErrPlanMoved):
		out.Moved = control.MovedPlan
	}
	return out
}

// Refusal is the CLI's error for an apply the agent did not carry out, or
// nil when it applied (or found nothing to do). planned is the commit the
// operator planned.
func Refusal(r control.ApplyReply, planned string) error {
	switch r.Moved {
	case control.MovedHead:
		hint := "push your commit first if you have not (the agent applies its repository's branch, not your checkout); " +
			"otherwise the site moved since the plan was made: plan again"
		if strings.HasPrefix(planned, "dir:") && !strings.HasPrefix(r.Commit, "dir:") {
			hint = "you planned a directory, and the agent follows a repository: commit and push, then plan with --repo"
		}
		return fmt.Errorf("nothing applied: you planned %s, and the agent follows %s, whose head is %s: %s",
			short(planned), orUnknown(r.Agent.Source), short(r.Commit), hint)
	case control.MovedPlan:
		return fmt.Errorf("nothing applied: the plan is not what the agent would do now (%s); plan again and review the new plan",
			strings.TrimPrefix(r.Error, reconcile.ErrPlanMoved.Error()+": "))
	}
	switch reconcile.Outcome(r.Outcome) {
	case reconcile.Rejected, reconcile.Failed, reconcile.Held, reconcile.RolledBack, reconcile.Suspended:
		msg := r.Summary
		if r.Error != "" && !strings.Contains(msg, r.Error) {
			msg += ": " + r.Error
		}
		return fmt.Errorf("the agent did not apply the plan: %s", msg)
	}
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "its repository"
	}
	return s
}

func short(c string) string {
	if len(c) > 12 && !strings.ContainsAny(c, " /") {
		return c[:12]
	}
	return c
}
