package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// pass is one pass's value: the revision, its one evaluation, the state
// the pass converges to, its plan and its outcome. Each step reads it and
// fills in its part; a step that decides the pass sets done.
type pass struct {
	rev  Revision
	opts PassOptions
	// prev is the last good state when the pass began (nil before the
	// first apply).
	prev *LastGood
	// eval is the revision's evaluation (nil when refused or not admitted).
	eval *evaluated
	// desired is the state the pass converges to, of commit: the
	// revision's, or the last good one when the revision is rejected.
	desired *spec.Node
	commit  string
	// rejected: the revision is not applied; res says why.
	rejected bool
	// drift: desired is what this process already applied, so whatever
	// differs was changed by someone else.
	drift bool
	// held: a hold let the revision through after waiting or asking the
	// peers; the node is observed again before anything is applied.
	held    bool
	plan    *plan.Plan
	planErr error
	// apply names the drivers whose changes are carried out.
	apply    map[string]bool
	applyErr []error
	res      Result
	done     bool
}

// step is one stage of a pass.
type step struct {
	name string
	run  func(ctx context.Context, p *pass)
}

// steps are a pass, in order. The revision is vetted first (verify, admit,
// load, policies); a rejected one is swapped for the last good state
// (fallback), so that drift is still corrected. Then the one apply loop
// (plan, triage, apply, observe) runs, with the pass's own stops between
// its parts: an approved plan that moved, a dry run or a suspension, a
// hold and the plan made again after it. The bake and the report follow
// in the agent (Runner.Bake, AgentOptions.OnResult).
func (r *Runner) steps() []step {
	return []step{
		{"verify", r.verifyStep},
		{"admit", r.admitStep},
		{"load", r.loadStep},
		{"policies", r.policiesStep},
		{"fallback", r.fallbackStep},
		{"drift", r.driftStep},
		{"plan", r.planStep},
		{"expect", r.expectStep},
		{"stop", r.stopStep},
		{"triage", r.triageStep},
		{"hold", r.holdStep},
		{"replan", r.replanStep},
		{"apply", r.applyStep},
		{"observe", r.observeStep},
		{"settle", r.settleStep},
	}
}

// Pass runs one reconcile pass for rev (see steps). An invalid revision is
// never applied: the pass then re-asserts the last good state instead and
// reports the errors.
func (r *Runner) Pass(ctx context.Context, rev Revision, o PassOptions) Result {
	r.passMu.Lock()
	defer r.passMu.Unlock()
	p := r.newPass(rev, o)
	r.run(ctx, p, r.steps())
	if p.res.Outcome == Applied || p.res.Outcome == Unchanged {
		r.passes++
	}
	p.res.Duration = time.Since(p.res.Started)
	return p.res
}

func (r *Runner) newPass(rev Revision, o PassOptions) *pass {
	p := &pass{rev: rev, opts: o, prev: r.LastGood(),
		res: Result{Commit: rev.Commit, Subject: rev.Subject, Started: time.Now()}}
	if p.prev != nil {
		p.res.AppliedCommit = p.prev.Commit
	}
	return p
}

// run runs steps until one decides the pass.
func (r *Runner) run(ctx context.Context, p *pass, steps []step) {
	for _, s := range steps {
		s.run(ctx, p)
		if p.done {
			r.log.Debug("pass decided", "step", s.name, "commit", p.rev.Commit, "outcome", p.res.Outcome)
			return
		}
	}
}

// reject marks the revision rejected with its errors; the pass goes on
// with the last good state (fallback).
func (p *pass) reject(errs loader.Errors, err error) {
	p.rejected = true
	p.res.Outcome, p.res.Errors, p.res.Err = Rejected, errs, err
}

// verifyStep rejects a revision the source refused (its signature, its
// trust, its tree): there is nothing of it to load.
func (r *Runner) verifyStep(_ context.Context, p *pass) {
	if p.rev.Refused != nil {
		p.reject(nil, p.rev.Refused)
	}
}

// admitStep asks the hooks that vet a revision before it is loaded: the
// caller's (RunnerOptions.Admit), then the health gate's pin.
func (r *Runner) admitStep(ctx context.Context, p *pass) {
	if p.rejected {
		return
	}
	if r.opts.Admit != nil {
		if err := r.opts.Admit(ctx, p.rev, p.prev); err != nil {
			p.reject(nil, err)
			return
		}
	}
	if r.gate != nil {
		if err := r.gate.Admit(ctx, p.rev, p.prev); err != nil {
			p.reject(nil, err)
		}
	}
}

// loadStep takes the revision's evaluation, made once per commit.
func (r *Runner) loadStep(ctx context.Context, p *pass) {
	if p.rejected {
		return
	}
	p.eval = r.evaluate(ctx, p.rev)
	if p.eval.errs != nil || p.eval.err != nil {
		p.reject(p.eval.errs, p.eval.err)
		return
	}
	p.desired, p.commit = p.eval.desired, p.rev.Commit
}

// policiesStep vets the new desired state against the last good one.
func (r *Runner) policiesStep(ctx context.Context, p *pass) {
	if p.rejected {
		return
	}
	var prev *spec.Node
	if p.prev != nil {
		prev = p.prev.Desired
	}
	if errs := r.check(ctx, p.rev, p.eval, prev); len(errs) > 0 {
		p.reject(errs, nil)
	}
}

// fallbackStep swaps a rejected revision for the last good state, which
// keeps running (its drift corrected); with none, the pass ends.
func (r *Runner) fallbackStep(_ context.Context, p *pass) {
	if !p.rejected {
		return
	}
	p.desired, p.commit = nil, ""
	if p.prev == nil {
		r.log.Error("revision rejected; nothing applied yet", "commit", p.rev.Commit, "errors", p.res.ErrorCount(), "err", p.res.Err)
		p.done = true
		return
	}
	r.log.Error("revision rejected; keeping the last good state", "commit", p.rev.Commit,
		"last_good", p.prev.Commit, "errors", p.res.ErrorCount(), "err", p.res.Err)
	for _, e := range p.res.Errors {
		r.log.Error("site error", "commit", p.rev.Commit, "err", e.Error())
	}
	p.desired, p.commit = p.prev.Desired, p.prev.Commit
}

// driftStep says whether what differs is drift: the node's desired state
// did not change since this process applied it. The first pass of a
// process never finds drift: in-process drivers (the VRRP engine, the
// proxy pool) start empty and are rebuilt, not repaired.
func (r *Runner) driftStep(_ context.Context, p *pass) {
	p.drift = r.passes > 0 && p.prev != nil && sameDesired(p.prev.Desired, p.desired)
}

// planStep asks every driver what it would change to reach desired.
func (r *Runner) planStep(ctx context.Context, p *pass) {
	p.plan, p.planErr = r.PlanFor(ctx, p.desired, p.commit)
	p.res.Plan = p.plan
	if p.planErr != nil {
		// The drivers that could plan still apply; the pass counts as
		// failed and is retried.
		p.res.Err = errors.Join(p.res.Err, p.planErr)
		r.log.Error("plan failed", "commit", p.commit, "err", p.planErr)
	}
}

// expectStep ends the pass, applying nothing, when the operator approved
// another plan than the one made now (PassOptions.Expect).
func (r *Runner) expectStep(_ context.Context, p *pass) {
	if p.opts.Expect == nil {
		return
	}
	if same, why := plan.SameChanges(p.opts.Expect, p.plan); !same {
		r.planMoved(p, why)
	}
}

func (r *Runner) planMoved(p *pass, why string) {
	p.res.Outcome = Rejected
	p.res.Applied, p.res.Drift, p.res.Reported = nil, nil, nil
	p.res.Err = errors.Join(p.res.Err, fmt.Errorf("%w: %s", ErrPlanMoved, why))
	r.log.Warn("the approved plan is not the plan now; nothing applied", "commit", p.commit, "reason", why)
	p.done = true
}

// stopStep ends a dry run, and a pass while applying is suspended (the
// planned changes, drift corrections included, are held as Remaining).
func (r *Runner) stopStep(_ context.Context, p *pass) {
	switch {
	case p.opts.DryRun:
		if p.res.Outcome == "" {
			p.res.Outcome = Unchanged
		}
		p.done = true
	case r.opts.Suspend != nil && r.opts.Suspend():
		p.res.Remaining = p.plan.Actionable()
		if p.res.Outcome == "" {
			p.res.Outcome = Suspended
		}
		p.done = true
	}
}

// triageStep sorts out drift (by the site's drift modes) and picks the
// drivers to apply; with nothing to apply the pass ends here.
func (r *Runner) triageStep(_ context.Context, p *pass) {
	kept, apply := triage(p.plan, p.desired.Site.Drift, p.drift, &p.res)
	p.res.Applied = append(p.res.Applied, kept...)
	p.apply = apply
	if len(apply) > 0 {
		return
	}
	p.done = true
	switch {
	case p.res.Outcome != "":
	case p.planErr != nil:
		p.res.Outcome = Failed
	default:
		p.res.Outcome = Unchanged
		p.res.AppliedCommit = p.commit
		if p.prev == nil || p.prev.Commit != p.commit {
			r.remember(p.commit, p.desired)
		}
	}
}

// holdStep asks whether the revision's turn has come: the caller's hook
// (RunnerOptions.Hold), then the pair-aware rollout, with every node's
// labels from the commit's one evaluation. Once it has, the health gate
// records the health under the state about to be replaced. A held
// revision applies nothing of itself; the last good state is re-asserted.
// Drift corrections and a rejected revision's fallback never wait.
func (r *Runner) holdStep(ctx context.Context, p *pass) {
	if p.res.Outcome != "" || p.drift {
		return
	}
	err := r.hold(ctx, p)
	if err == nil {
		if r.gate != nil {
			r.gate.Before(ctx, p.prev)
		}
		return
	}
	p.res.Outcome, p.res.Err, p.res.Applied, p.res.Drift, p.res.Reported = Held, err, nil, nil, nil
	r.log.Debug("revision held", "commit", p.commit, "reason", err)
	r.reassertLastGood(ctx, &p.res)
	p.done = true
}

func (r *Runner) hold(ctx context.Context, p *pass) error {
	if r.opts.Hold != nil {
		p.held = true
		if err := r.opts.Hold(ctx, p.rev, p.prev, p.desired, p.plan); err != nil {
			return err
		}
	}
	if r.opts.Rollout != nil {
		asked, err := r.opts.Rollout.hold(ctx, p.rev, p.prev, p.desired, p.eval.nodeLabels)
		p.held = p.held || asked
		return err
	}
	return nil
}

// replanStep observes the node again after a hold (which may have waited
// for peers), so that what is applied is what the plan now says. A plan
// that moved is used instead, and said so; an approved plan that moved
// applies nothing (PassOptions.Expect).
func (r *Runner) replanStep(ctx context.Context, p *pass) {
	if !p.held {
		return
	}
	now, err := r.PlanFor(ctx, p.desired, p.commit)
	if err != nil {
		// Keep the plan made before the hold: the apply and the
		// observation after it say what still differs.
		r.log.Warn("plan after the hold failed; applying the plan made before it", "commit", p.commit, "err", err)
		return
	}
	same, why := plan.SameChanges(p.plan, now)
	if same {
		return
	}
	if p.opts.Expect != nil {
		r.planMoved(p, "after the hold: "+why)
		return
	}
	r.log.Info("the node moved while the revision was held; applying the new plan", "commit", p.commit, "reason", why)
	now.Notes = append(now.Notes, "re-planned after the hold: "+why)
	p.plan, p.planErr, p.res.Plan = now, nil, now
	p.res.Applied, p.res.Drift, p.res.Reported = nil, nil, nil
	r.triageStep(ctx, p)
}

// applyStep carries the plan out, driver by driver, in apply order.
func (r *Runner) applyStep(ctx context.Context, p *pass) {
	p.applyErr = r.applyDrivers(ctx, p.desired, p.plan, p.apply)
}

// observeStep observes the node again: what still differs did not
// converge.
func (r *Runner) observeStep(ctx context.Context, p *pass) {
	if after, err := r.PlanFor(ctx, p.desired, p.commit); err == nil {
		p.res.Remaining = after.Actionable()
	}
}

// settleStep decides the outcome and remembers a state applied as the
// last good one.
func (r *Runner) settleStep(_ context.Context, p *pass) {
	if len(p.applyErr) > 0 || p.planErr != nil {
		// A plan error is in res.Err already (planStep).
		p.res.Err = errors.Join(append([]error{p.res.Err}, p.applyErr...)...)
		if p.res.Outcome == "" {
			p.res.Outcome = Failed
		}
		r.log.Error("apply failed", "commit", p.commit, "err", errors.Join(append(p.applyErr, p.planErr)...))
		return
	}
	if p.res.Outcome == "" {
		p.res.Outcome = Applied
		p.res.AppliedCommit = p.commit
		r.remember(p.commit, p.desired)
	}
	if len(p.res.Drift) > 0 {
		// Someone or something changed the node behind gitgw's back: put
		// back, but the operator should know (logs.go: levels).
		ids := make([]string, 0, len(p.res.Drift))
		for _, ch := range p.res.Drift {
			ids = append(ids, ch.Driver+" "+ch.Kind+" "+ch.ID)
		}
		r.log.Warn("drift corrected: changed outside gitgw, put back", "commit", p.commit, "changes", ids)
	}
	r.log.Info("pass", "commit", p.commit, "outcome", p.res.Outcome, "applied", len(p.res.Applied),
		"drift", len(p.res.Drift), "remaining", len(p.res.Remaining))
}

// applyDrivers is the apply loop's core: each driver with a change, in
// apply order (see applyOrder), every failure joined.
func (r *Runner) applyDrivers(ctx context.Context, desired *spec.Node, p *plan.Plan, apply map[string]bool) []error {
	var errs []error
	for _, d := range r.applyOrder(p) {
		if !apply[d.Name()] {
			continue
		}
		if err := d.Apply(ctx, desired); err != nil {
			errs = append(errs, fmt.Errorf("%s: apply: %w", d.Name(), err))
		}
	}
	return errs
}

// converge runs the apply loop whole on desired (commit): plan, triage
// (drift says whether what differs is drift), apply, observe. The pass
// runs the same parts as steps, with its stops between them; the
// re-assertion of the last good state and the rollback run it whole.
func (r *Runner) converge(ctx context.Context, desired *spec.Node, commit string, drift bool) Result {
	p := &pass{prev: r.LastGood(), desired: desired, commit: commit, drift: drift, res: Result{Commit: commit, Started: time.Now()}}
	r.run(ctx, p, []step{{"plan", r.planStep}, {"triage", r.triageStep}, {"apply", r.applyStep}, {"observe", r.observeStep}})
	p.res.Err = errors.Join(append([]error{p.res.Err}, p.applyErr...)...)
	p.res.Duration = time.Since(p.res.Started)
	return p.res
}

// reassertLastGood keeps the last good state running while a new revision
// waits for its turn, as a rejected revision does: drift against it is
// corrected (per the drift modes), and an agent that restarted into a held
// revision rebuilds its in-process data plane (VRRP engine, proxy pool)
// from it instead of running nothing until its peer reports.
func (r *Runner) reassertLastGood(ctx context.Context, res *Result) {
	lg := r.LastGood()
	if lg == nil || lg.Desired == nil {
		return
	}
	drift := r.passes > 0 // a restarted process rebuilds, it does not repair
	got := r.converge(ctx, lg.Desired, lg.Commit, drift)
	res.Drift = append(res.Drift, got.Drift...)
	res.Reported = append(res.Reported, got.Reported...)
	if got.Err != nil {
		r.log.Error("re-asserting the last good state", "commit", lg.Commit, "err", got.Err)
	}
	if len(got.Applied) > 0 {
		r.log.Info("last good state re-asserted while a revision is held", "commit", lg.Commit, "drift", len(got.Drift), "rebuilt", !drift)
	}
}
