package drift

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gitgw/gitgw/reconcile/plan"
	"github.com/gitgw/gitgw/test/goldenfile"
)

const (
	c1 = "3a9c1e2b6f0d4c8e9a1b2c3d4e5f60718293a4b5"
	c2 = "7f00d1e2c3b4a5968778695a4b3c2d1e0f1a2b3c"
)

var at = time.Date(2026, 11, 22, 1, 50, 0, 0, time.UTC)

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name), got)
}

func labPlan() []plan.Change {
	return []plan.Change{
		{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_forward", Action: plan.NoOp, Before: "1", After: "1"},
		{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_nonlocal_bind", Action: plan.Update, Before: "0", After: "1"},
		{Driver: "tuning", Kind: "rps_cpus", ID: "eth0/rx-0", Action: plan.Update, Before: "0", After: "3", Details: []string{"softirq NET_RX 1234 5678"}},
		{Driver: "units", Kind: "unit_instance", ID: "app@8080.service", Action: plan.Create, After: "active"},
		{Driver: "units", Kind: "unit_instance", ID: "app@8081.service", Action: plan.Create, After: "active"},
		{Driver: "proxy", Kind: "proxy_server", ID: "web/s1", Action: plan.Pending, After: "198.51.100.11:8080", Reason: "driver not built into this gitgw yet"},
		{Driver: "vrrp", Kind: "vrrp_instance", ID: "VI_1", Action: plan.Pending, After: "vrid 51 v3 100ms priority 150 on eth0", Reason: "driver not built into this gitgw yet"},
	}
}

func actionable(cs []plan.Change) []plan.Change {
	p := plan.Plan{Changes: cs}
	return p.Actionable()
}

type scenario struct {
	name   string
	in     Input
	events []Event
}

func scenarios() []scenario {
	base := Input{Node: "gw1", Site: "lab", AgentVersion: "v0.1.0", Commit: c1, Subject: "lab: first site", AppliedCommit: c1}
	apply := base
	apply.Outcome, apply.Plan = "applied", labPlan()
	apply.Applied = actionable(apply.Plan)

	rejected := base
	rejected.Commit, rejected.Subject, rejected.Outcome = c2, "vrid 300", "rejected"
	rejected.Errors = []Error{
		{File: "site.cue", Line: 14, Col: 5, Path: "vrrp.VI_1.vrid", Msg: "invalid value 300 (out of bound <=255)"},
		{File: "site.cue", Line: 20, Col: 3, Path: "services.web.balance", Msg: `invalid value "fastest"`},
	}
	rejected.Plan = inSync(labPlan())

	unit := base
	unit.Outcome = "applied"
	unit.Plan = inSync(labPlan())
	unit.Plan[4] = plan.Change{Driver: "units", Kind: "unit_instance", ID: "app@8081.service", Action: plan.Update, Before: "inactive", After: "active"}
	unit.Drift = []plan.Change{unit.Plan[4]}
	unit.Applied = unit.Drift
	unit.Corrected = 1

	report := base
	report.Outcome = "unchanged"
	report.Plan = inSync(labPlan())
	report.Plan[0] = plan.Change{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_forward", Action: plan.Update, Before: "0", After: "1"}
	report.Reported = []plan.Change{report.Plan[0]}
	report.Adoptable = map[string]bool{"tuning sysctl net.ipv4.ip_forward": true}

	failover := base
	failover.Outcome = "unchanged"
	failover.Plan = inSync(labPlan())
	failover.Events = []Event{{Seq: 1, Driver: "vrrp", Kind: "transition", Message: "VI_1 BACKUP -> MASTER (peer silent 360 ms)"}}
	failover.Sections = map[string]any{
		"vrrp":  VRRPSection{Instances: []VRRPInstance{{Name: "VI_1", VRID: 51, Interface: "eth0", State: "MASTER", Priority: 150}}},
		"proxy": ProxySection{Services: []ProxyService{{Name: "web", Servers: []ProxyServer{{"s1", "198.51.100.11:8080", "up"}, {"s2", "198.51.100.12:8080", "down"}}}}},
	}

	failed := base
	failed.Outcome, failed.Plan = "failed", labPlan()
	failed.AppliedCommit = ""
	failed.Err = "tuning: apply: nic: write /proc/sys/net/ipv4/ip_nonlocal_bind: permission denied\nunits: apply: no systemd"
	failed.Applied = actionable(failed.Plan)
	failed.Remaining = failed.Applied[:2]

	// Suspended by the operator: the plan waits for `gitgw resume`.
	suspended := base
	suspended.Outcome, suspended.Plan = "suspended", labPlan()
	suspended.Remaining = actionable(suspended.Plan)

	// Held for the pair-aware rollout: nothing of it applied.
	held := base
	held.Commit, held.Subject, held.Outcome, held.Plan = c2, "raise priority", "held", labPlan()
	held.Err = "waits for gw2 (pair-aware rollout: the peer applies first)"

	// Nothing to do, but the proxy and VRRP have no driver here, and a
	// unit instance is masked: pending, never converged.
	pending := base
	pending.Outcome, pending.Plan = "unchanged", inSync(labPlan())
	pending.Plan[4] = plan.Change{Driver: "units", Kind: "unit_instance", ID: "app@8081.service", Action: plan.Pending,
		Before: "inactive", After: "active", Reason: "masked: gitgw does not unmask"}

	// Everything as the site says.
	converged := base
	converged.Outcome, converged.Plan = "unchanged", inSync(labPlan()[:5])

	return []scenario{
		{"apply", apply, nil},
		{"suspended", suspended, nil},
		{"held", held, nil},
		{"pending", pending, nil},
		{"converged", converged, nil},
		{"rejected", rejected, nil},
		{"drift-corrected", unit, nil},
		{"drift-reported", report, nil},
		{"failover", failover, failover.Events},
		{"failed", failed, nil},
	}
}

// inSync turns the lab plan into what a converged node plans.
func inSync(cs []plan.Change) []plan.Change {
	for i := range cs {
		if cs[i].Action != plan.Pending {
			cs[i].Action, cs[i].Before = plan.NoOp, cs[i].After
		}
	}
	return cs
}

func TestGolden(t *testing.T) {
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			st := Build(sc.in)
			js, err := Marshal(st)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, sc.name+"/status.json", js)
			golden(t, sc.name+"/STATUS.md", Markdown(st))
			m := Compose(st, sc.in, sc.events, at, 12*time.Millisecond)
			var b bytes.Buffer
			b.WriteString(m.Subject + "\n\n" + m.Body + "\n")
			b.WriteString("Gitgw-Desired: " + m.Desired + "\nGitgw-Applied: " + m.Applied + "\nGitgw-Drift: " + m.Drift + "\n")
			golden(t, sc.name+"/message.txt", b.Bytes())

			// Deterministic: the same pass gives the same bytes, and they
			// read back to the same status.
			js2, _ := Marshal(Build(sc.in))
			if !bytes.Equal(js, js2) {
				t.Error("status.json differs between two builds of the same pass")
			}
			back, err := Parse(js)
			if err != nil {
				t.Fatal(err)
			}
			js3, _ := Marshal(back)
			if !bytes.Equal(js, js3) {
				t.Errorf("status.json does not survive a round trip:\n%s", cmp.Diff(string(js), string(js3)))
			}
		})
	}
}

func TestSubjects(t *testing.T) {
	want := map[string]string{
		"apply":           "apply(gw1): 3a9c1e2, 4 changes (2 pending)",
		"suspended":       "suspended(gw1): 3a9c1e2 not applied, 4 changes waiting for gitgw resume",
		"held":            "held(gw1): 7f00d1e waits for gw2 (pair-aware rollout: the peer applies first)",
		"pending":         "status(gw1): 3a9c1e2 pending, 7 resources (3 pending)",
		"converged":       "status(gw1): 3a9c1e2 converged, 5 resources",
		"rejected":        "error(gw1): 7f00d1e rejected: site.cue:14:5: vrrp.VI_1.vrid: invalid value 300 (out of bound <=255) (+1 more)",
		"drift-corrected": "drift(gw1): app@8081.service stopped outside gitgw; restarted",
		"drift-reported":  "drift(gw1): sysctl net.ipv4.ip_forward changed outside gitgw (0, site says 1); left in place",
		"failover":        "failover(gw1): VI_1 BACKUP -> MASTER (peer silent 360 ms)",
		"failed":          "error(gw1): 3a9c1e2 apply failed: tuning: apply: nic: write /proc/sys/net/ipv4/ip_nonlocal_bind: permission denied",
	}
	for _, sc := range scenarios() {
		m := Compose(Build(sc.in), sc.in, sc.events, at, 0)
		if m.Subject != want[sc.name] {
			t.Errorf("%s: subject\n got %q\nwant %q", sc.name, m.Subject, want[sc.name])
		}
	}
}

func TestQuietPassSameContent(t *testing.T) {
	// An apply, then the next resync that finds nothing to do: the node is
	// the same, so the files must be byte-identical (no commit).
	sc := scenarios()[0]
	first, err := Marshal(Build(sc.in))
	if err != nil {
		t.Fatalf("status after the apply: %v", err)
	}
	quiet := sc.in
	quiet.Outcome, quiet.Plan, quiet.Applied = "unchanged", inSync(labPlan()), nil
	second, err := Marshal(Build(quiet))
	if err != nil {
		t.Fatalf("status after the quiet pass: %v", err)
	}
	if st, err := Parse(first); err != nil || st.Node != sc.in.Node || len(st.Resources) == 0 {
		t.Fatalf("status after the apply does not read back with its node and resources: %v\n%s", err, first)
	}
	if d := cmp.Diff(string(first), string(second)); d != "" {
		t.Errorf("a quiet pass after an apply changes status.json:\n%s", d)
	}
}

func TestDescribeUnitDrift(t *testing.T) {
	type status struct {
		Enabled bool   `json:"enabled"`
		Active  string `json:"active"`
		Sub     string `json:"sub,omitempty"`
	}
	for _, tc := range []struct {
		before, after any
		corrected     bool
		want          string
	}{
		{"inactive", "active", true, "app@8082.service stopped outside gitgw; restarted"},
		{status{true, "inactive", "dead"}, status{Enabled: true, Active: "active"}, true, "app@8082.service stopped outside gitgw; restarted"},
		{status{true, "failed", "failed"}, status{Enabled: true, Active: "active"}, false, "app@8082.service failed; left stopped"},
		{status{false, "active", "running"}, status{Enabled: true, Active: "active"}, true,
			`unit_instance app@8082.service changed outside gitgw ({"enabled":false,"active":"active","sub":"running"}, site says {"enabled":true,"active":"active"}); corrected`},
	} {
		c := plan.Change{Driver: "units", Kind: "unit_instance", ID: "app@8082.service", Action: plan.Update, Before: tc.before, After: tc.after}
		if got := describeDrift(c, tc.corrected); got != tc.want {
			t.Errorf("describeDrift(%v → %v)\n got %q\nwant %q", tc.before, tc.after, got, tc.want)
		}
	}
}

func TestShort(t *testing.T) {
	for in, want := range map[string]string{c1: "3a9c1e2", "dir:abcdef123456": "dir:abcdef1", "": "", "abc": "abc"} {
		if got := Short(in); got != want {
			t.Errorf("Short(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseRefusesNewerSchema(t *testing.T) {
	if _, err := Parse([]byte(`{"schema_version": 99}`)); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("err = %v", err)
	}
}

// TestOutcomeTellsTheTruth: a node is "converged" only when every resource
// is as the site says; a suspended node, a held revision, a failed apply
// and pending resources are outcomes of their own, and the pending count
// comes from the plan's pending changes.
func TestOutcomeTellsTheTruth(t *testing.T) {
	want := map[string]struct {
		outcome string
		pending int
	}{
		"apply":           {Incomplete, 2},
		"suspended":       {Suspended, 2},
		"held":            {Held, 2},
		"pending":         {Incomplete, 3},
		"converged":       {Converged, 0},
		"failed":          {Failed, 2},
		"rejected":        {Rejected, 2},
		"drift-corrected": {Incomplete, 2},
	}
	for _, sc := range scenarios() {
		w, ok := want[sc.name]
		if !ok {
			continue
		}
		st := Build(sc.in)
		if st.LastPass.Outcome != w.outcome || st.Counts[Pending] != w.pending {
			t.Errorf("%s: outcome %q, %d pending; want %q, %d", sc.name, st.LastPass.Outcome, st.Counts[Pending], w.outcome, w.pending)
		}
	}
}
