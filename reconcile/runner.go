package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/internal/statefile"
	"github.com/gitgw/gitgw/internal/words"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// Revision is one version of the site: a Git commit checked out into Dir, or
// a plain directory identified by a hash of its files.
type Revision struct {
	// Commit identifies the revision: a Git hash, or "dir:" + content hash.
	Commit string
	// Dir holds the site's files for this revision.
	Dir string
	// Subject is the commit's first line, when there is one.
	Subject string
	// Trailers are the commit message's trailers (Gitgw-Allow-Empty, …).
	Trailers map[string]string
	// Refused, when set, is why the source would not check the commit out
	// (its signature, its trust, its tree): Dir is empty, and the pass
	// rejects the revision without loading anything of it.
	Refused error
}

// Outcome summarizes a pass.
type Outcome string

// The outcomes of a pass.
const (
	// Applied: the node was changed and now matches the revision.
	Applied Outcome = "applied"
	// Unchanged: the node already matched; nothing was done.
	Unchanged Outcome = "unchanged"
	// Rejected: the revision is invalid (positioned errors); nothing of it
	// was applied and the last good state keeps running. Stalled until a
	// new revision arrives.
	Rejected Outcome = "rejected"
	// Failed: applying failed part-way; transient, retried with backoff.
	Failed Outcome = "failed"
	// Held: the revision is valid but waits for its turn (pair-aware
	// rollout: a peer or an earlier wave first); nothing of it was applied;
	// retried with backoff.
	Held Outcome = "held"
	// RolledBack: the revision was applied, failed its health gate, and the
	// last good state was applied again (see HealthGate).
	RolledBack Outcome = "rolled-back"
	// Suspended: the operator suspended applying (`gitgw suspend`); the
	// pass planned and reports, and changed nothing.
	Suspended Outcome = "suspended"
)

// Result is what one pass found and did.
type Result struct {
	Commit  string
	Subject string
	Outcome Outcome
	// Plan is every change the pass planned against the state it applied
	// (the revision's, or the last good one when the revision is rejected).
	Plan *plan.Plan
	// Applied are the changes carried out; Drift the subset that undid a
	// change made outside gitgw; Reported the drift left in place (drift
	// mode "report"); Remaining what still differs after apply.
	Applied, Drift, Reported, Remaining []plan.Change
	// Errors are the revision's positioned errors (CUE and policies).
	Errors loader.Errors
	// Err is any other failure (driver errors, I/O).
	Err error
	// AppliedCommit is the commit running on the node after the pass.
	AppliedCommit string
	Started       time.Time
	Duration      time.Duration
}

// ErrorCount is how many errors rejected the revision: the positioned
// errors, or 1 for an error that is not positioned (a refused commit, a
// node not in the site). The log line and the summary both count so.
func (r Result) ErrorCount() int {
	if len(r.Errors) > 0 {
		return len(r.Errors)
	}
	if r.Err != nil || r.Outcome == Rejected {
		return 1
	}
	return 0
}

// Summary is one line for logs, sd_notify STATUS= and status commits.
func (r Result) Summary() string {
	short := r.Commit
	if len(short) > 12 {
		short = short[:12]
	}
	switch r.Outcome {
	case Rejected:
		first := ""
		if len(r.Errors) > 0 {
			first = ": " + r.Errors[0].Error()
		} else if r.Err != nil {
			first = ": " + r.Err.Error()
		}
		return fmt.Sprintf("%s rejected, %s%s", short, words.Plural(r.ErrorCount(), "error"), first)
	case Failed:
		return fmt.Sprintf("%s apply failed: %v", short, r.Err)
	case Held, RolledBack:
		return fmt.Sprintf("%s %s: %v", short, r.Outcome, r.Err)
	case Suspended:
		return fmt.Sprintf("%s suspended, %s held", short, words.Plural(len(r.Remaining), "change"))
	case Applied:
		s := fmt.Sprintf("%s applied, %s", short, words.Plural(len(r.Applied), "change"))
		if len(r.Drift) > 0 {
			s += fmt.Sprintf(", %d drift corrected", len(r.Drift))
		}
		return s
	default:
		s := fmt.Sprintf("%s unchanged", short)
		if len(r.Reported) > 0 {
			s += fmt.Sprintf(", %d drift reported", len(r.Reported))
		}
		return s
	}
}

// CheckFunc vets a new desired state against the last applied one before
// anything is applied (guardrails, change policies). It returns positioned
// errors to reject the revision.
type CheckFunc func(ctx context.Context, rev Revision, prev, next *spec.Node) loader.Errors

// RunnerOptions configure a Runner.
type RunnerOptions struct {
	Node     string
	StateDir string
	Drivers  []Driver
	Logger   *slog.Logger
	// Check runs after a revision loads and before it is planned.
	Check CheckFunc
	// Admit runs before a revision is loaded (pinned commits); prev is
	// the last good state (nil before the first apply). An error rejects
	// the revision like a site error; the last good state keeps running.
	// Signatures are not checked here: the source decides them before it
	// writes the commit's tree (Revision.Refused).
	Admit func(ctx context.Context, rev Revision, prev *LastGood) error
	// Hold runs before a revision's own changes are applied (pair-aware
	// rollout); it may block while it waits. An error holds the revision:
	// nothing of it is applied and the pass ends Held.
	Hold func(ctx context.Context, rev Revision, prev *LastGood, desired *spec.Node, p *plan.Plan) error
	// Scope is how much of the site the schema is applied to (default
	// auto: the whole site up to loader.AutoScopeNodes nodes).
	Scope loader.Scope
	// Suspend, when it returns true, makes a pass plan without applying,
	// drift corrections included (outcome Suspended, the planned changes
	// as Remaining): `gitgw suspend`.
	Suspend func() bool
	// Rollout, when set, is the pair-aware rollout: the hold step asks it
	// whether this node's turn has come (after Hold).
	Rollout *Rollout
	// Health, when set, gives the Runner a health gate (its Runner and,
	// when empty, StateDir and Logger are the Runner's): the admit step
	// refuses the commit it pinned, the hold step takes the health before
	// an apply, and Bake watches the node after one.
	Health *HealthGateOptions
	// Load evaluates the site (default loader.LoadWith); a Runner calls it
	// once per commit.
	Load LoadFunc
}

// Runner runs passes for one node. Passes are serialized.
type Runner struct {
	opts RunnerOptions
	log  *slog.Logger
	// passMu serializes passes and rollbacks; mu guards lastGood alone, so
	// that status readers never wait for a pass (a hold, a bake).
	passMu   sync.Mutex
	mu       sync.Mutex
	lastGood *LastGood
	// passes counts the passes of this process that left the node as
	// desired.
	passes int
	evals  evalCache
	gate   *HealthGate
}

// NewRunner returns a Runner, reading the last good state from the state
// dir when there is one.
func NewRunner(opts RunnerOptions) (*Runner, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Load == nil {
		opts.Load = loader.LoadWith
	}
	r := &Runner{opts: opts, log: opts.Logger.With("component", "reconcile")}
	if opts.StateDir != "" {
		lg, err := LoadLastGood(opts.StateDir)
		switch {
		case errors.Is(err, statefile.ErrCorrupt):
			// Nothing applied can be trusted: the first pass treats the
			// head like a first apply (verified, checked, held as usual),
			// and an invalid head leaves nothing running (no VRRP
			// instance claims mastership).
			logCorrupt(r.log, lastGoodFile, "starting without a last good state", err)
		case err != nil:
			return nil, err
		}
		r.lastGood = lg
	}
	slices.SortStableFunc(r.opts.Drivers, func(a, b Driver) int {
		return plan.DriverRank(a.Name()) - plan.DriverRank(b.Name())
	})
	if opts.Health != nil {
		ho := *opts.Health
		ho.Runner = r
		if ho.StateDir == "" {
			ho.StateDir = opts.StateDir
		}
		if ho.Logger == nil {
			ho.Logger = opts.Logger
		}
		g, err := NewHealthGate(ho)
		if err != nil {
			return nil, err
		}
		if p := g.Pinned(); p != nil {
			r.log.Warn("a commit is pinned (rolled back by the health gate); it is not applied again", "commit", p.Commit, "reason", p.Reason)
		}
		r.gate = g
	}
	return r, nil
}

// HealthGate is the Runner's health gate (RunnerOptions.Health), or nil.
func (r *Runner) HealthGate() *HealthGate { return r.gate }

// LastGood returns the last applied state (nil before the first apply).
func (r *Runner) LastGood() *LastGood {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastGood
}

// Drivers returns the runner's drivers in apply order.
func (r *Runner) Drivers() []Driver { return r.opts.Drivers }

// PlanFor asks every driver what it would change to reach desired.
func (r *Runner) PlanFor(ctx context.Context, desired *spec.Node, commit string) (*plan.Plan, error) {
	p := &plan.Plan{Node: r.opts.Node, Commit: commit}
	var errs []error
	for _, d := range r.opts.Drivers {
		changes, err := d.Plan(ctx, desired)
		if err != nil {
			// One driver that cannot plan (a secret file missing, systemd
			// gone) does not hide the others: its resources are listed as
			// pending with the reason, and the error is returned.
			errs = append(errs, fmt.Errorf("%s: plan: %w", d.Name(), err))
			changes, _ = Pending{Family: plan.Family(d.Name()), Why: "cannot plan: " + err.Error()}.Plan(ctx, desired)
		}
		for i := range changes {
			if changes[i].Driver == "" {
				changes[i].Driver = d.Name()
			}
		}
		p.Changes = append(p.Changes, changes...)
	}
	p.Sort()
	p.Notes = append(p.Notes, Notes(desired)...)
	return p, errors.Join(errs...)
}

// PassOptions tune one pass.
type PassOptions struct {
	// DryRun plans without applying.
	DryRun bool
	// Expect, when set, is the plan the operator approved (gitgw apply, a
	// saved plan). The pass applies only if the plan it makes now has the
	// same actionable changes (plan.SameChanges); otherwise it applies
	// nothing and ends Rejected, its Err wrapping ErrPlanMoved and naming
	// the first difference.
	Expect *plan.Plan
}

// ErrPlanMoved matches the error of a pass that did not apply the plan it
// was given (PassOptions.Expect) because the plan it made differs.
var ErrPlanMoved = errors.New("the node or the site changed since the plan was made")

func (r *Runner) remember(commit string, desired *spec.Node) {
	lg := &LastGood{Commit: commit, AppliedAt: time.Now().UTC(), Desired: desired}
	r.mu.Lock()
	r.lastGood = lg
	r.mu.Unlock()
	if r.opts.StateDir == "" {
		return
	}
	if err := lg.Save(r.opts.StateDir); err != nil {
		r.log.Error("cannot persist last good state", "err", err)
	}
}

// applyOrder is tuning → units → proxy → VRRP on the way up. A plan that
// removes something runs the reverse, so that a VIP leaves before the
// service behind it, and a service before its backends.
func (r *Runner) applyOrder(p *plan.Plan) []Driver {
	ds := slices.Clone(r.opts.Drivers)
	for _, ch := range p.Actionable() {
		if ch.Action == plan.Delete {
			slices.Reverse(ds)
			break
		}
	}
	return ds
}

// triage sorts p's actionable changes. As drift, each is marked and, by its
// driver's drift mode, ignored, reported (added to res.Reported) or kept
// (added to res.Drift). It returns the changes to apply and their drivers.
func triage(p *plan.Plan, modes spec.DriftByKind, isDrift bool, res *Result) ([]plan.Change, map[string]bool) {
	var kept []plan.Change
	apply := map[string]bool{}
	for _, ch := range p.Actionable() {
		if isDrift {
			ch.Drift = true
			switch driftMode(modes, ch.Driver) {
			case spec.DriftIgnore:
				continue
			case spec.DriftReport:
				res.Reported = append(res.Reported, ch)
				continue
			}
			res.Drift = append(res.Drift, ch)
		}
		kept = append(kept, ch)
		apply[ch.Driver] = true
	}
	return kept, apply
}

func driftMode(m spec.DriftByKind, driver string) spec.DriftMode {
	var mode spec.DriftMode
	switch plan.Family(driver) {
	case plan.FamilyTuning:
		mode = m.Tuning
	case plan.FamilyUnits:
		mode = m.Units
	case plan.FamilyProxy, plan.FamilyKernLB, plan.FamilyRealServer: // services, whichever data plane carries them, and a DR server's side of them
		mode = m.Proxy
	case plan.FamilyVRRP:
		mode = m.VRRP
	}
	if mode == "" {
		return spec.DriftCorrect
	}
	return mode
}

func sameDesired(a, b *spec.Node) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}
