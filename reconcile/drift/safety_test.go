package drift

import (
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/reconcile/plan"
)

// TestHeldAndRolledBack: the outcomes of the rollout, the health gate, a
// suspension and pending resources keep their names in status.json and show in the commit subject, STATUS.md
// and the fleet view.
func TestHeldAndRolledBack(t *testing.T) {
	const c1, c2 = "1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222"
	for _, tc := range []struct {
		outcome, err                 string
		wantOutcome, subject, headln string
		sync, alert                  string
	}{
		{"rolled-back", "health gate: service web: 0 healthy servers, want at least 2; rolled back to 111111111111, 222222222222 pinned",
			RolledBack, "rollback(gw1): 2222222 health gate: service web: 0 healthy servers", "2222222 rolled back (health gate), running 1111111",
			"rolled-back", "rolled-back"},
		{"held", "rollout: 222222222222 waits for gw2 (backup of VI_1) to report it applied and healthy (timeout 5m0s)",
			Held, "held(gw1): 2222222 rollout: 222222222222 waits for gw2", "2222222 held (rollout), running 1111111",
			"held", ""},
		{"suspended", "", Suspended, "suspended(gw1): 2222222 not applied, 1 change waiting for gitgw resume",
			"2222222 suspended (gitgw resume applies it), running 1111111", "suspended", "suspended"},
		// Applied, but a unit instance is pending: never "converged".
		{"applied", "", Incomplete, "apply(gw1): 2222222, 0 changes (1 pending)", "2222222 not converged (1 pending)", "current", "pending"},
	} {
		t.Run(tc.outcome, func(t *testing.T) {
			in := Input{Node: "gw1", Commit: c2, Outcome: tc.outcome, AppliedCommit: c1, Err: tc.err}
			switch tc.outcome {
			case "suspended":
				in.Plan = []plan.Change{{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_forward", Action: plan.Update, Before: "0", After: "1"}}
				in.Remaining = in.Plan
			case "applied":
				in.AppliedCommit = c2
				in.Plan = []plan.Change{{Driver: "units", Kind: "unit_instance", ID: "app@8080.service", Action: plan.Pending, After: "active", Reason: "no systemd"}}
			}
			st := Build(in)
			if st.LastPass.Outcome != tc.wantOutcome {
				t.Errorf("outcome = %q, want %q", st.LastPass.Outcome, tc.wantOutcome)
			}
			m := Compose(st, in, nil, time.Unix(0, 0), time.Second)
			if !strings.HasPrefix(m.Subject, tc.subject) {
				t.Errorf("subject = %q, want prefix %q", m.Subject, tc.subject)
			}
			if md := string(Markdown(st)); !strings.Contains(md, tc.headln) {
				t.Errorf("STATUS.md lacks %q:\n%s", tc.headln, md)
			}
			f := BuildFleet(c2, []NodeReport{{Node: "gw1", Status: &st, Time: time.Unix(0, 0)}})
			if f.Nodes[0].Sync != tc.sync {
				t.Errorf("fleet sync = %q, want %q", f.Nodes[0].Sync, tc.sync)
			}
			var kinds []string
			for _, a := range f.Alerts {
				kinds = append(kinds, a.Kind)
			}
			if got := strings.Join(kinds, ","); got != tc.alert {
				t.Errorf("fleet alerts = %q, want %q", got, tc.alert)
			}
		})
	}
}
