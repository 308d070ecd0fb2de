package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// The steps of a pass, one table each. A step reads and fills the pass
// value; these tests build that value as the steps before would have,
// run the one step, and look at what it decided.

// nodeWith is gw1's view with n servers in service web (the valueDriver
// wants n) and the given drift modes.
func nodeWith(n int, modes spec.DriftByKind) *spec.Node {
	svc := spec.Service{Servers: map[string]spec.Server{}}
	for i := range n {
		svc.Servers[string(rune('a'+i))] = spec.Server{Address: "198.51.100.11:8080"}
	}
	return &spec.Node{Name: "gw1", Site: spec.SiteSettings{Drift: modes}, Services: map[string]spec.Service{"web": svc}}
}

func newStepRunner(t *testing.T, o RunnerOptions) (*Runner, *valueDriver) {
	t.Helper()
	drv := &valueDriver{have: "0"}
	o.Node, o.Drivers = "gw1", []Driver{drv}
	r, err := NewRunner(o)
	if err != nil {
		t.Fatal(err)
	}
	return r, drv
}

var errRefused = errors.New("gitrepo: verify c2: commit is not signed")

func TestVetSteps(t *testing.T) {
	ctx := context.Background()
	valid, invalid := filepath.Join(t.TempDir(), "valid"), filepath.Join(t.TempDir(), "invalid")
	writeSite(t, valid, labVRRP, labServices, "")
	writeSite(t, invalid, strings.Replace(labVRRP, "vrid: 51", `vrid: "x"`, 1), labServices, "")
	errAdmit := errors.New("not today")
	for _, tc := range []struct {
		name    string
		o       RunnerOptions
		rev     Revision
		step    func(r *Runner) func(context.Context, *pass)
		before  func(p *pass) // what earlier steps left
		reject  bool
		err     error  // matched with errors.Is
		errText string // in the first positioned error
	}{
		{name: "verify: a commit the source took", rev: Revision{Commit: "c1", Dir: valid},
			step: func(r *Runner) func(context.Context, *pass) { return r.verifyStep }},
		{name: "verify: a commit the source refused", rev: Revision{Commit: "c2", Refused: errRefused},
			step: func(r *Runner) func(context.Context, *pass) { return r.verifyStep }, reject: true, err: errRefused},
		{name: "admit: let through", o: RunnerOptions{Admit: func(context.Context, Revision, *LastGood) error { return nil }},
			rev: Revision{Commit: "c1"}, step: func(r *Runner) func(context.Context, *pass) { return r.admitStep }},
		{name: "admit: refused by the hook", o: RunnerOptions{Admit: func(context.Context, Revision, *LastGood) error { return errAdmit }},
			rev: Revision{Commit: "c1"}, step: func(r *Runner) func(context.Context, *pass) { return r.admitStep }, reject: true, err: errAdmit},
		{name: "admit: not asked about a refused commit",
			o:    RunnerOptions{Admit: func(context.Context, Revision, *LastGood) error { panic("admitted a refused commit") }},
			rev:  Revision{Commit: "c2", Refused: errRefused},
			step: func(r *Runner) func(context.Context, *pass) { return r.admitStep }, before: func(p *pass) { p.reject(nil, errRefused) },
			reject: true, err: errRefused},
		{name: "load: valid", rev: Revision{Commit: "c1", Dir: valid}, step: func(r *Runner) func(context.Context, *pass) { return r.loadStep }},
		{name: "load: positioned errors", rev: Revision{Commit: "c1", Dir: invalid},
			step: func(r *Runner) func(context.Context, *pass) { return r.loadStep }, reject: true, errText: "vrrp.VI_1.vrid: conflicting values"},
		{name: "load: a node the site does not declare", o: RunnerOptions{Load: func(ctx context.Context, dir, _ string, o loader.Options) (*loader.Site, *spec.Node, error) {
			return loader.LoadWith(ctx, dir, "gw9", o)
		}}, rev: Revision{Commit: "c1", Dir: valid}, step: func(r *Runner) func(context.Context, *pass) { return r.loadStep },
			reject: true, err: loader.ErrUnknownNode},
		{name: "policies: none", rev: Revision{Commit: "c1", Dir: valid}, step: func(r *Runner) func(context.Context, *pass) {
			return func(ctx context.Context, p *pass) { r.loadStep(ctx, p); r.policiesStep(ctx, p) }
		}},
		{name: "policies: a violation", o: RunnerOptions{Check: func(context.Context, Revision, *spec.Node, *spec.Node) loader.Errors {
			return loader.Errors{{Path: "vrrp.VI_1", Msg: "[no] not this one"}}
		}}, rev: Revision{Commit: "c1", Dir: valid}, step: func(r *Runner) func(context.Context, *pass) {
			return func(ctx context.Context, p *pass) { r.loadStep(ctx, p); r.policiesStep(ctx, p) }
		}, reject: true, errText: "[no] not this one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := newStepRunner(t, tc.o)
			p := r.newPass(tc.rev, PassOptions{})
			if tc.before != nil {
				tc.before(p)
			}
			tc.step(r)(ctx, p)
			if p.rejected != tc.reject || (tc.reject && p.res.Outcome != Rejected) {
				t.Fatalf("rejected %v (%s), want %v", p.rejected, p.res.Outcome, tc.reject)
			}
			if tc.err != nil && !errors.Is(p.res.Err, tc.err) {
				t.Errorf("err %v, want %v", p.res.Err, tc.err)
			}
			if tc.errText != "" && (len(p.res.Errors) == 0 || !strings.Contains(p.res.Errors[0].Error(), tc.errText)) {
				t.Errorf("errors %v, want %q first", p.res.Errors, tc.errText)
			}
			if !tc.reject && strings.HasPrefix(tc.name, "load") && (p.desired == nil || p.commit != "c1") {
				t.Errorf("a valid revision left desired %v, commit %q", p.desired, p.commit)
			}
		})
	}
}

func TestFallbackStep(t *testing.T) {
	good := &LastGood{Commit: "c0", Desired: nodeWith(2, spec.DriftByKind{})}
	for _, tc := range []struct {
		name       string
		prev       *LastGood
		rejected   bool
		wantCommit string
		done       bool
	}{
		{name: "valid revision", prev: good, wantCommit: "c1"},
		{name: "rejected, nothing applied yet", rejected: true, done: true},
		{name: "rejected, the last good state runs on", prev: good, rejected: true, wantCommit: "c0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := newStepRunner(t, RunnerOptions{})
			p := &pass{rev: Revision{Commit: "c1"}, prev: tc.prev, desired: nodeWith(3, spec.DriftByKind{}), commit: "c1"}
			if tc.rejected {
				p.reject(loader.Errors{{Msg: "bad"}}, nil)
			}
			r.fallbackStep(context.Background(), p)
			if p.done != tc.done || p.commit != tc.wantCommit {
				t.Errorf("done %v commit %q, want %v %q", p.done, p.commit, tc.done, tc.wantCommit)
			}
			if tc.wantCommit == "c0" && p.desired != good.Desired {
				t.Errorf("the rejected revision's state was kept")
			}
		})
	}
}

func TestDriftAndPlanSteps(t *testing.T) {
	same := nodeWith(2, spec.DriftByKind{})
	for _, tc := range []struct {
		name   string
		passes int
		prev   *LastGood
		drift  bool
	}{
		{name: "first pass of the process: rebuilt, not drift", prev: &LastGood{Commit: "c1", Desired: same}},
		{name: "same desired state again: drift", passes: 1, prev: &LastGood{Commit: "c1", Desired: nodeWith(2, spec.DriftByKind{})}, drift: true},
		{name: "a new desired state", passes: 1, prev: &LastGood{Commit: "c0", Desired: nodeWith(1, spec.DriftByKind{})}},
		{name: "nothing applied yet", passes: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := newStepRunner(t, RunnerOptions{})
			r.passes = tc.passes
			p := &pass{prev: tc.prev, desired: same, commit: "c1"}
			r.driftStep(context.Background(), p)
			r.planStep(context.Background(), p)
			if p.drift != tc.drift {
				t.Errorf("drift %v, want %v", p.drift, tc.drift)
			}
			if p.plan == nil || p.res.Plan != p.plan || len(p.plan.Actionable()) != 1 || p.plan.Commit != "c1" {
				t.Errorf("plan %+v", p.plan)
			}
		})
	}
}

func TestExpectAndStopSteps(t *testing.T) {
	planned := &plan.Plan{Changes: []plan.Change{{Driver: "tuning", Kind: "sysctl", ID: "web.servers", Action: plan.Update, Before: "0", After: "2"}}}
	moved := &plan.Plan{Changes: []plan.Change{{Driver: "tuning", Kind: "sysctl", ID: "web.servers", Action: plan.Update, Before: "5", After: "2"}}}
	for _, tc := range []struct {
		name      string
		opts      PassOptions
		suspended bool
		outcome   Outcome // before the step
		want      Outcome
		done      bool
		err       error
	}{
		{name: "no plan approved, applying"},
		{name: "the approved plan", opts: PassOptions{Expect: planned}},
		{name: "an approved plan that moved", opts: PassOptions{Expect: moved}, want: Rejected, done: true, err: ErrPlanMoved},
		{name: "dry run", opts: PassOptions{DryRun: true}, want: Unchanged, done: true},
		{name: "dry run of a rejected revision", opts: PassOptions{DryRun: true}, outcome: Rejected, want: Rejected, done: true},
		{name: "suspended", suspended: true, want: Suspended, done: true},
		{name: "suspended, rejected revision", suspended: true, outcome: Rejected, want: Rejected, done: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := newStepRunner(t, RunnerOptions{Suspend: func() bool { return tc.suspended }})
			p := &pass{opts: tc.opts, plan: planned, desired: nodeWith(2, spec.DriftByKind{}), commit: "c1", res: Result{Outcome: tc.outcome}}
			r.expectStep(context.Background(), p)
			if !p.done {
				r.stopStep(context.Background(), p)
			}
			if p.res.Outcome != tc.want || p.done != tc.done || (tc.err != nil && !errors.Is(p.res.Err, tc.err)) {
				t.Errorf("outcome %q done %v err %v; want %q %v %v", p.res.Outcome, p.done, p.res.Err, tc.want, tc.done, tc.err)
			}
			if tc.suspended && len(p.res.Remaining) != 1 {
				t.Errorf("suspended with %d changes held, want 1", len(p.res.Remaining))
			}
		})
	}
}

func TestTriageStep(t *testing.T) {
	upd := plan.Change{Driver: "tuning", Kind: "sysctl", ID: "x", Action: plan.Update}
	noop := plan.Change{Driver: "tuning", Kind: "sysctl", ID: "y", Action: plan.NoOp}
	for _, tc := range []struct {
		name                    string
		changes                 []plan.Change
		drift                   bool
		mode                    spec.DriftMode
		planErr                 error
		outcome                 Outcome
		apply, drifted, reports int
		want                    Outcome // "" while the pass goes on
		remembered              bool
	}{
		{name: "a change to apply", changes: []plan.Change{upd, noop}, apply: 1},
		{name: "drift corrected", changes: []plan.Change{upd}, drift: true, apply: 1, drifted: 1},
		{name: "drift reported", changes: []plan.Change{upd}, drift: true, mode: spec.DriftReport, reports: 1, want: Unchanged},
		{name: "drift ignored", changes: []plan.Change{upd}, drift: true, mode: spec.DriftIgnore, want: Unchanged},
		{name: "nothing to do: remembered", changes: []plan.Change{noop}, want: Unchanged, remembered: true},
		{name: "nothing planned, a driver failed", changes: []plan.Change{noop}, planErr: errors.New("systemd gone"), want: Failed},
		{name: "rejected revision, last good converged", changes: []plan.Change{noop}, outcome: Rejected, want: Rejected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := newStepRunner(t, RunnerOptions{})
			p := &pass{plan: &plan.Plan{Changes: tc.changes}, planErr: tc.planErr, drift: tc.drift,
				desired: nodeWith(2, spec.DriftByKind{Tuning: tc.mode}), commit: "c1", res: Result{Outcome: tc.outcome}}
			if tc.drift {
				// Drift is found against the state this process applied.
				p.prev = &LastGood{Commit: "c1", Desired: p.desired}
			}
			r.triageStep(context.Background(), p)
			if len(p.apply) != tc.apply || len(p.res.Drift) != tc.drifted || len(p.res.Reported) != tc.reports {
				t.Errorf("apply %v, drift %d, reported %d", p.apply, len(p.res.Drift), len(p.res.Reported))
			}
			if p.res.Outcome != tc.want || p.done != (tc.want != "") {
				t.Errorf("outcome %q done %v, want %q", p.res.Outcome, p.done, tc.want)
			}
			if lg := r.LastGood(); (lg != nil) != tc.remembered {
				t.Errorf("last good %+v, remembered want %v", lg, tc.remembered)
			}
		})
	}
}

func TestHoldAndReplanSteps(t *testing.T) {
	errWait := errors.New("waits for gw2")
	good := &LastGood{Commit: "c0", Desired: nodeWith(1, spec.DriftByKind{})}
	for _, tc := range []struct {
		name    string
		hold    func() error // nil: no hold configured
		drift   bool
		moveTo  string // the node's value when the hold returns ("": unchanged)
		expect  bool
		want    Outcome
		have    string // the node after the steps (and the re-assertion)
		planned string // the plan's Before after the steps
		note    bool
	}{
		{name: "no hold", have: "0", planned: "0"},
		{name: "turn has come", hold: func() error { return nil }, have: "0", planned: "0"},
		{name: "held: the last good state is re-asserted", hold: func() error { return errWait }, want: Held, have: "1", planned: "0"},
		{name: "drift never waits", hold: func() error { return errWait }, drift: true, have: "0", planned: "0"},
		{name: "the node moved during the hold: new plan", hold: func() error { return nil }, moveTo: "7", have: "7", planned: "7", note: true},
		{name: "moved during the hold, approved plan: nothing applied", hold: func() error { return nil }, moveTo: "7", expect: true,
			want: Rejected, have: "7", planned: "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var drv *valueDriver
			o := RunnerOptions{}
			if tc.hold != nil {
				o.Hold = func(context.Context, Revision, *LastGood, *spec.Node, *plan.Plan) error {
					if tc.moveTo != "" {
						drv.set(tc.moveTo)
					}
					return tc.hold()
				}
			}
			var r *Runner
			r, drv = newStepRunner(t, o)
			r.lastGood = good
			p := &pass{rev: Revision{Commit: "c1"}, prev: good, desired: nodeWith(2, spec.DriftByKind{}), commit: "c1", drift: tc.drift}
			r.planStep(context.Background(), p)
			if tc.expect {
				p.opts.Expect = p.plan
			}
			r.triageStep(context.Background(), p)
			r.holdStep(context.Background(), p)
			if !p.done {
				r.replanStep(context.Background(), p)
			}
			if p.res.Outcome != tc.want {
				t.Errorf("outcome %q (%v), want %q", p.res.Outcome, p.res.Err, tc.want)
			}
			if got := drv.get(); got != tc.have {
				t.Errorf("node holds %q, want %q", got, tc.have)
			}
			if got := p.plan.Actionable()[0].Before; got != tc.planned {
				t.Errorf("the plan to apply is from %v, want from %q", got, tc.planned)
			}
			hasNote := strings.Contains(strings.Join(p.plan.Notes, "\n"), "re-planned after the hold")
			if hasNote != tc.note {
				t.Errorf("notes %q", p.plan.Notes)
			}
			if tc.expect && tc.want == Rejected && !errors.Is(p.res.Err, ErrPlanMoved) {
				t.Errorf("err %v, want ErrPlanMoved", p.res.Err)
			}
		})
	}
}

// failDriver fails every apply.
type failDriver struct{ valueDriver }

func (d *failDriver) Apply(context.Context, *spec.Node) error {
	return errors.New("netlink: permission denied")
}

func TestApplyObserveSettleSteps(t *testing.T) {
	for _, tc := range []struct {
		name       string
		fail       bool
		outcome    Outcome
		want       Outcome
		remaining  int
		remembered bool
	}{
		{name: "applied and converged", want: Applied, remembered: true},
		{name: "a driver failed", fail: true, want: Failed, remaining: 1},
		{name: "rejected revision's fallback applied", outcome: Rejected, want: Rejected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d Driver = &valueDriver{have: "0"}
			if tc.fail {
				d = &failDriver{valueDriver{have: "0"}}
			}
			r, err := NewRunner(RunnerOptions{Node: "gw1", Drivers: []Driver{d}})
			if err != nil {
				t.Fatal(err)
			}
			p := &pass{desired: nodeWith(2, spec.DriftByKind{}), commit: "c1", res: Result{Outcome: tc.outcome}}
			r.run(context.Background(), p, []step{{"plan", r.planStep}, {"triage", r.triageStep},
				{"apply", r.applyStep}, {"observe", r.observeStep}, {"settle", r.settleStep}})
			if p.res.Outcome != tc.want || len(p.res.Remaining) != tc.remaining {
				t.Errorf("outcome %q, %d remaining (%v); want %q, %d", p.res.Outcome, len(p.res.Remaining), p.res.Err, tc.want, tc.remaining)
			}
			if tc.fail && !strings.Contains(p.res.Err.Error(), "tuning: apply: netlink: permission denied") {
				t.Errorf("err %v", p.res.Err)
			}
			if lg := r.LastGood(); (lg != nil && lg.Commit == "c1") != tc.remembered {
				t.Errorf("last good %+v", lg)
			}
		})
	}
}

// TestSettleStepDriftWarns: drift put back is a WARN line naming the
// changes (an operator's look: who changed the node?); a pass without
// drift logs no warning.
func TestSettleStepDriftWarns(t *testing.T) {
	upd := plan.Change{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_forward", Action: plan.Update}
	for _, tc := range []struct {
		name  string
		drift []plan.Change
		warn  bool
	}{
		{"drift corrected", []plan.Change{upd}, true},
		{"a new commit applied", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log strings.Builder
			r, _ := newStepRunner(t, RunnerOptions{Logger: slog.New(slog.NewTextHandler(&log, nil))})
			p := &pass{desired: nodeWith(2, spec.DriftByKind{}), commit: "c1", res: Result{Applied: []plan.Change{upd}, Drift: tc.drift}}
			r.settleStep(context.Background(), p)
			got := strings.Contains(log.String(), "level=WARN")
			if got != tc.warn || (tc.warn && !strings.Contains(log.String(), "tuning sysctl net.ipv4.ip_forward")) {
				t.Errorf("warn %v, want %v:\n%s", got, tc.warn, log.String())
			}
		})
	}
}
