package reconcile_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/drift"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
	"github.com/gitgw/gitgw/reconcile/plan"
	"github.com/gitgw/gitgw/test/gitremote"
)

const (
	reportC1 = "3a9c1e2b6f0d4c8e9a1b2c3d4e5f60718293a4b5"
	reportC2 = "7f00d1e2c3b4a5968778695a4b3c2d1e0f1a2b3c"
)

func reportCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func reportWait(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func reportWriter(t testing.TB, url string, coalesce time.Duration) *gitrepo.StatusWriter {
	t.Helper()
	w, err := gitrepo.NewStatusWriter(reportCtx(t), gitrepo.StatusOptions{
		Node: "gw1", URL: url, Dir: filepath.Join(t.TempDir(), "status.git"), Coalesce: coalesce,
		RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func reportPlan(actions ...plan.Action) *plan.Plan {
	p := &plan.Plan{Node: "gw1"}
	ids := []string{"net.ipv4.ip_forward", "net.ipv4.ip_nonlocal_bind"}
	for i, a := range actions {
		c := plan.Change{Driver: "tuning", Kind: "sysctl", ID: ids[i], Action: a, After: "1"}
		if a != plan.Create {
			c.Before = "1"
			if a == plan.Update {
				c.Before = "0"
			}
		}
		p.Changes = append(p.Changes, c)
	}
	return p
}

func TestReporterCommitsOnlyChanges(t *testing.T) {
	t.Parallel()
	ctx := reportCtx(t)
	remote := gitremote.NewBare(t)
	w := reportWriter(t, remote.Dir, 0)
	rep, err := reconcile.NewReporter(reconcile.ReporterOptions{Node: "gw1", AgentVersion: "test", Sink: w})
	if err != nil {
		t.Fatal(err)
	}
	report := func(res reconcile.Result) {
		t.Helper()
		if err := rep.Report(ctx, res); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// An apply, then quiet resyncs: one commit.
	p := reportPlan(plan.Update, plan.Update)
	report(reconcile.Result{Commit: reportC1, Subject: "lab", Outcome: reconcile.Applied, AppliedCommit: reportC1, Plan: p, Applied: p.Actionable()})
	quiet := reconcile.Result{Commit: reportC1, Subject: "lab", Outcome: reconcile.Unchanged, AppliedCommit: reportC1, Plan: reportPlan(plan.NoOp, plan.NoOp)}
	report(quiet)
	report(quiet)
	// Drift found and corrected: a drift commit, then quiet again.
	dp := reportPlan(plan.Update, plan.NoOp)
	dp.Changes[0].Drift = true
	report(reconcile.Result{Commit: reportC1, Subject: "lab", Outcome: reconcile.Applied, AppliedCommit: reportC1, Plan: dp, Applied: dp.Actionable(), Drift: dp.Actionable()})
	report(quiet)
	// A broken revision: an error commit with the position.
	report(reconcile.Result{Commit: reportC2, Subject: "vrid 300", Outcome: reconcile.Rejected, AppliedCommit: reportC1, Plan: reportPlan(plan.NoOp, plan.NoOp),
		Errors: loader.Errors{{File: "site.cue", Line: 7, Col: 13, Path: "vrrp.VI_1.vrid", Msg: "invalid value 300 (out of bound <=255)"}}})
	// The same broken revision again: nothing new.
	rejected := reconcile.Result{Commit: reportC2, Subject: "vrid 300", Outcome: reconcile.Rejected, AppliedCommit: reportC1, Plan: reportPlan(plan.NoOp, plan.NoOp),
		Errors: loader.Errors{{File: "site.cue", Line: 7, Col: 13, Path: "vrrp.VI_1.vrid", Msg: "invalid value 300 (out of bound <=255)"}}}
	report(rejected)
	// A failover event, then a fixed revision.
	rep.Event(reconcile.Event{Driver: "vrrp", Kind: "transition", Message: "VI_1 BACKUP -> MASTER (peer silent 360 ms)"})
	report(quiet)

	log := remote.Log(t, "gitgw/status/gw1")
	var got []string
	for _, e := range log {
		got = append(got, e.Subject)
	}
	want := []string{
		"apply(gw1): 3a9c1e2, 2 changes",
		"drift(gw1): sysctl net.ipv4.ip_forward changed outside gitgw (0, site says 1); corrected",
		"error(gw1): 7f00d1e rejected: site.cue:7:13: vrrp.VI_1.vrid: invalid value 300 (out of bound <=255)",
		"failover(gw1): VI_1 BACKUP -> MASTER (peer silent 360 ms)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("status commits:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	tr := gitrepo.CommitTrailers(log[2].Message)
	if tr.Get(gitrepo.TrailerDesired) != reportC2 {
		t.Errorf("trailers of the error commit: %v", tr)
	}
	tr = gitrepo.CommitTrailers(log[3].Message)
	if tr.Get(gitrepo.TrailerNode) != "gw1" || tr.Get(gitrepo.TrailerDesired) != reportC1 || tr.Get(gitrepo.TrailerApplied) != reportC1 || tr.Get(gitrepo.TrailerDrift) != "none" {
		t.Errorf("trailers of the failover commit: %v", tr)
	}
	st, err := drift.Parse([]byte(remote.Show(t, "gitgw/status/gw1", "status.json")))
	if err != nil {
		t.Fatal(err)
	}
	if st.LastPass.Outcome != drift.Converged || st.Applied != reportC1 || st.Corrected != 1 || len(st.Events) != 1 {
		t.Errorf("status.json: %+v", st)
	}
	st, err = drift.Parse([]byte(remote.Show(t, log[2].Hash, "status.json")))
	if err != nil {
		t.Fatal(err)
	}
	if st.LastPass.Outcome != drift.Rejected || len(st.LastPass.Errors) != 1 || st.LastPass.Errors[0].Line != 7 ||
		st.Applied != reportC1 || st.Desired.Commit != reportC2 {
		t.Errorf("status.json of the error commit: %+v", st)
	}
	if md := remote.Show(t, log[2].Hash, "STATUS.md"); !strings.HasPrefix(md, "# gw1: 7f00d1e rejected, running 3a9c1e2") {
		t.Errorf("STATUS.md:\n%s", md)
	}
}

func TestReporterCoalescesBursts(t *testing.T) {
	t.Parallel()
	ctx := reportCtx(t)
	remote := gitremote.NewBare(t)
	w := reportWriter(t, remote.Dir, 400*time.Millisecond)
	rep, err := reconcile.NewReporter(reconcile.ReporterOptions{Node: "gw1", Sink: w})
	if err != nil {
		t.Fatal(err)
	}
	// A flapping link: 30 transitions, each followed by a pass.
	res := reconcile.Result{Commit: reportC1, Outcome: reconcile.Unchanged, AppliedCommit: reportC1, Plan: reportPlan(plan.NoOp)}
	for i := range 30 {
		state := []string{"BACKUP -> MASTER", "MASTER -> BACKUP"}[i%2]
		rep.Event(reconcile.Event{Driver: "vrrp", Kind: "transition", Message: "VI_1 " + state})
		if err := rep.Report(ctx, res); err != nil {
			t.Fatal(err)
		}
	}
	reportWait(t, "the coalesce window to close", func() bool { return !w.Pending() })
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	log := remote.Log(t, "gitgw/status/gw1")
	if len(log) >= 30 || len(log) < 1 {
		t.Fatalf("%d commits for a burst of 30 changes", len(log))
	}
	st, err := drift.Parse([]byte(remote.Show(t, "gitgw/status/gw1", "status.json")))
	if err != nil {
		t.Fatal(err)
	}
	if last := st.Events[len(st.Events)-1]; last.Seq != 30 || len(st.Events) != drift.MaxEvents {
		t.Errorf("last event %+v, %d kept", last, len(st.Events))
	}
	if !strings.Contains(log[len(log)-1].Message, "changes in this commit") && len(log) > 1 {
		t.Errorf("the coalesced commit does not list its changes:\n%s", log[len(log)-1].Message)
	}
	t.Logf("30 changes in %d commits", len(log))
}

func TestReporterAdoptProposal(t *testing.T) {
	t.Parallel()
	ctx := reportCtx(t)
	remote := gitremote.NewBare(t)
	site := `package site

nodes: gw1: tuning: sysctls: {
	"net.ipv4.ip_forward": 1 // routing
}
`
	head := remote.Commit(t, "main", map[string]string{"site.cue": site, "cue.mod/module.cue": "module: \"example.com/site\"\n"}, "site")
	src, err := gitrepo.Open(ctx, gitrepo.Options{URL: remote.Dir, Dir: filepath.Join(t.TempDir(), "src"), Node: "gw1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	w := reportWriter(t, remote.Dir, 0)
	rep, err := reconcile.NewReporter(reconcile.ReporterOptions{Node: "gw1", Sink: w, Site: src})
	if err != nil {
		t.Fatal(err)
	}
	p := &plan.Plan{Changes: []plan.Change{
		{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_forward", Action: plan.Update, Before: "0", After: "1"},
		{Driver: "units", Kind: "unit_instance", ID: "app@8080.service", Action: plan.Update, Before: "inactive", After: "active"},
	}}
	res := reconcile.Result{Commit: head, Outcome: reconcile.Unchanged, AppliedCommit: head, Plan: p, Reported: p.Actionable()}
	if err := rep.Report(ctx, res); err != nil {
		t.Fatal(err)
	}
	rep.FlushProposals(ctx)
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := remote.Show(t, "gitgw/adopt/gw1", "site.cue")
	if want := strings.Replace(site, `"net.ipv4.ip_forward": 1`, `"net.ipv4.ip_forward": 0`, 1); got != want {
		t.Errorf("proposed site.cue:\n%s\nwant:\n%s", got, want)
	}
	log := remote.Log(t, "gitgw/adopt/gw1")
	if last := log[len(log)-1]; !strings.HasPrefix(last.Subject, "adopt(gw1): 2 changes") || !strings.Contains(last.Message, "app@8080.service") {
		t.Errorf("proposal commit:\n%s", last.Message)
	}
	st, err := drift.Parse([]byte(remote.Show(t, "gitgw/status/gw1", "status.json")))
	if err != nil {
		t.Fatal(err)
	}
	adopt := map[string]string{}
	for _, it := range st.Drift {
		adopt[it.ID] = it.Adopt
	}
	if adopt["net.ipv4.ip_forward"] != "proposed" || adopt["app@8080.service"] != "manual" {
		t.Errorf("drift items: %+v", st.Drift)
	}
	// The same drift again: no new proposal, no new status commit.
	before := len(log)
	if err := rep.Report(ctx, res); err != nil {
		t.Fatal(err)
	}
	rep.FlushProposals(ctx)
	if n := len(remote.Log(t, "gitgw/adopt/gw1")); n != before {
		t.Errorf("proposal rewritten for the same drift: %d commits, want %d", n, before)
	}
	if n := len(remote.Log(t, "gitgw/status/gw1")); n != 1 {
		t.Errorf("%d status commits, want 1", n)
	}
}

func TestReporterDuplicateNodeIsLoud(t *testing.T) {
	t.Parallel()
	ctx := reportCtx(t)
	remote := gitremote.NewBare(t)
	res := reconcile.Result{Commit: reportC1, Outcome: reconcile.Unchanged, AppliedCommit: reportC1, Plan: reportPlan(plan.NoOp)}
	var reps []*reconcile.Reporter
	var ws []*gitrepo.StatusWriter
	for range 2 {
		w := reportWriter(t, remote.Dir, 0)
		rep, err := reconcile.NewReporter(reconcile.ReporterOptions{Node: "gw1", Sink: w})
		if err != nil {
			t.Fatal(err)
		}
		reps, ws = append(reps, rep), append(ws, w)
	}
	// Both report and push once (the second continues the first's history,
	// as a node that lost its state dir would), then both report again.
	for i := range 2 {
		reps[i].Event(reconcile.Event{Driver: "vrrp", Kind: "transition", Message: fmt.Sprintf("from node %d", i)})
		if err := reps[i].Report(ctx, res); err != nil {
			t.Fatal(err)
		}
		if err := ws[i].Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	reps[0].Event(reconcile.Event{Driver: "vrrp", Kind: "transition", Message: "from node A"})
	if err := reps[0].Report(ctx, res); err != nil {
		t.Fatal(err)
	}
	err := ws[0].Flush(ctx)
	if !errors.Is(err, gitrepo.ErrDiverged) {
		t.Fatalf("push of a branch another node moved: %v, want ErrDiverged", err)
	}
	if err := reps[0].Report(ctx, res); !errors.Is(err, gitrepo.ErrDiverged) {
		t.Errorf("Report after the clash: %v, want ErrDiverged", err)
	}
}
