package control

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/reconcile/plan"
)

// TestReportingFailure: failing pushes of the status branch show in
// status, the text status, the page and the metrics; a success clears the
// error but not the count.
func TestReportingFailure(t *testing.T) {
	c := fixture(t)
	t0 := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	c.ObservePush(t0, nil)
	clash := errors.New("gitrepo: push of gitgw/status/gw1 rejected: the remote holds 1234567, which node \"gw1\" never wrote; is another node reporting under the same name?")
	c.ObservePush(t0.Add(time.Minute), clash)
	c.ObservePush(t0.Add(2*time.Minute), clash)
	st := c.Status()
	if st.Reporting.Failures != 2 || !st.Reporting.LastPush.Equal(t0) || st.Reporting.LastError != clash.Error() {
		t.Fatalf("reporting = %+v", st.Reporting)
	}
	var text bytes.Buffer
	if err := RenderText(&text, st); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "reporting  FAILING (2 failed pushes of the status branch; last at 2026-12-06 03:00:00Z): gitrepo: push of gitgw/status/gw1 rejected") {
		t.Errorf("text status:\n%s", text.String())
	}
	srv := httptest.NewServer(c.WebHandler(DefaultListen))
	defer srv.Close()
	if page := get(t, srv.URL+"/"); !strings.Contains(page, `id="reporting-error">status push failing (2 failures): gitrepo: push of gitgw/status/gw1`) {
		t.Errorf("the page does not show the failing status push")
	}
	metrics := get(t, srv.URL+"/metrics")
	for _, want := range []string{"gitgw_status_push_failures_total 2", "gitgw_status_last_push_timestamp_seconds 1.796526e+09"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	c.ObservePush(t0.Add(3*time.Minute), nil)
	if st := c.Status(); st.Reporting.LastError != "" || st.Reporting.Failures != 2 || !st.Reporting.LastPush.Equal(t0.Add(3*time.Minute)) {
		t.Errorf("after a success: %+v", st.Reporting)
	}
}

// TestOutcomeNeverConvergedWhilePending: units that never started
// (pending in the plan) count as pending in status and metrics, and the
// node reads "pending", not "converged"; a suspended node reads
// "suspended", with what waits counted.
func TestOutcomeNeverConvergedWhilePending(t *testing.T) {
	c := fixture(t)
	var changes []plan.Change
	for _, u := range []string{"app@8080.service", "app@8081.service", "app@8082.service"} {
		changes = append(changes, plan.Change{Driver: "units", Kind: "unit_instance", ID: u, Action: plan.Pending, After: "active", Reason: "no systemd"})
	}
	changes = append(changes, plan.Change{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_forward", Action: plan.NoOp, After: "1"})
	c.Observe(t.Context(), Result{Commit: "c1", AppliedCommit: "c1", Outcome: "unchanged", OK: true, Plan: &plan.Plan{Changes: changes}, Started: fixedNow})
	srv := httptest.NewServer(c.WebHandler(DefaultListen))
	defer srv.Close()
	check := func(outcome string, pending int, page string) {
		t.Helper()
		st := c.Status()
		if st.Outcome != outcome || len(st.Pending) != pending {
			t.Errorf("outcome %q, %d pending; want %q, %d", st.Outcome, len(st.Pending), outcome, pending)
		}
		metrics := get(t, srv.URL+"/metrics")
		for _, want := range []string{
			"gitgw_pending_changes " + strconv.Itoa(pending),
			`gitgw_node_outcome{outcome="` + outcome + `"} 1`,
			`gitgw_node_outcome{outcome="converged"} 0`,
		} {
			if !strings.Contains(metrics, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		if got := get(t, srv.URL+"/"); !strings.Contains(got, page) {
			t.Errorf("the page lacks %s", page)
		}
	}
	check("pending", 3, `id="node-outcome">pending (3 pending)`)

	tuning := plan.Change{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_forward", Action: plan.Update, Before: "0", After: "1"}
	c.Observe(t.Context(), Result{Commit: "c2", AppliedCommit: "c1", Outcome: "suspended",
		Plan: &plan.Plan{Changes: []plan.Change{tuning}}, Remaining: []plan.Change{tuning}, Started: fixedNow})
	check("suspended", 1, `id="node-outcome">suspended (1 not applied)`)
}
