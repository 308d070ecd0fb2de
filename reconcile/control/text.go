package control

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/gitgw/gitgw/reconcile/plan"
)

// RenderText writes the status as `gitgw status` prints it: the commits
// and the last pass first, then VRRP, services, units, tuning, drift.
func RenderText(out io.Writer, st Status) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	short := func(c string) string {
		if c == "" {
			return "none"
		}
		if len(c) > 12 {
			return c[:12]
		}
		return c
	}
	fmt.Fprintf(w, "node %s (gitgw %s)\n", st.Node, st.AgentVersion)
	if st.Suspended {
		fmt.Fprintln(w, "SUSPENDED: passes plan and report; nothing is applied until `gitgw resume`")
	}
	for _, o := range st.Overrides {
		fmt.Fprintf(w, "OVERRIDE: %s (set on %s; until resume or a new commit)\n", o, short(o.Commit))
	}
	fmt.Fprintf(w, "applied\t%s\n", short(st.Applied))
	desired := short(st.Desired)
	if st.Subject != "" {
		desired += "  " + st.Subject
	}
	fmt.Fprintf(w, "desired\t%s\n", desired)
	if st.Outcome != "" {
		fmt.Fprintf(w, "outcome\t%s\n", outcomeLine(st))
	}
	if p := st.LastPass; p != nil {
		fmt.Fprintf(w, "last pass\t%s (%d ms)\n", p.Summary, p.Duration.Milliseconds())
		for _, e := range p.Errors {
			fmt.Fprintf(w, "  error\t%s\n", e)
		}
		if p.Error != "" {
			fmt.Fprintf(w, "  error\t%s\n", p.Error)
		}
	} else {
		fmt.Fprintln(w, "last pass\tnone yet")
	}
	if f := st.Fetches; f.LastError != "" {
		last := "never since the agent started"
		if !f.LastSuccess.IsZero() {
			last = "last at " + f.LastSuccess.Format("2006-01-02 15:04:05Z")
		}
		fmt.Fprintf(w, "fetch\tFAILING (%d failures; %s): %s\n", f.Failures, last, f.LastError)
	}
	if r := st.Reporting; r.LastError != "" {
		last := "never since the agent started"
		if !r.LastPush.IsZero() {
			last = "last at " + r.LastPush.Format("2006-01-02 15:04:05Z")
		}
		fmt.Fprintf(w, "reporting\tFAILING (%d failed pushes of the status branch; %s): %s\n", r.Failures, last, r.LastError)
	}
	fmt.Fprintf(w, "drift\t%d in the last pass, %d corrected since start\n", len(st.Drift), st.DriftCorrected)

	fmt.Fprintln(w, "\nVRRP\tSTATE\tPRIORITY\tVIPS")
	for _, in := range st.VRRP {
		fmt.Fprintf(w, "%s\t%s\t%d (%s)\t%s\n", in.Name, in.State, in.Priority, in.Arithmetic, strings.Join(in.VIPs, " "))
	}
	fmt.Fprintln(w, "\nSERVICE/SERVER\tSTATUS\tWEIGHT\tADDRESS\tCONN\tQUEUE\tCHECK")
	for _, s := range st.Services {
		name := s.Name
		if s.Mode != "" {
			name += " (" + s.Mode + ", kernel)"
		}
		risk := ""
		if s.Unchecked {
			risk = UncheckedRisk
		}
		fmt.Fprintf(w, "%s\t%s\t\t%s\t%d\t%d\t%s\n", name, s.Status, strings.Join(s.Binds, " "), s.Current, s.Queue, risk)
		for _, sv := range s.Servers {
			fmt.Fprintf(w, "  %s/%s\t%s\t%d\t%s\t%d\t%d\t%s\n", s.Name, sv.Name, sv.Status, sv.Weight, sv.Address(), sv.Current, sv.Queue, sv.Check)
		}
	}
	fmt.Fprintln(w, "\nUNIT\tSTATE\tPLAN")
	for _, u := range st.Units {
		if u.Kind == plan.KindUnitInstance {
			fmt.Fprintf(w, "%s\t%s\t%s\n", u.ID, u.State, u.Action)
		}
	}
	fmt.Fprintln(w, "\nTUNING\tPLAN\tDETAILS")
	for _, t := range st.Tuning {
		fmt.Fprintf(w, "%s\t%s\t%s\n", t.ID, t.Action, strings.Join(t.Details, "; "))
	}
	if len(st.RealServer) > 0 {
		fmt.Fprintln(w, "\nREAL SERVER (DR)\tPLAN\tDETAILS")
		for _, r := range st.RealServer {
			fmt.Fprintf(w, "%s\t%s\t%s\n", r.ID, r.Action, strings.Join(r.Details, "; "))
		}
	}
	if len(st.Drift)+len(st.Pending) > 0 {
		fmt.Fprintln(w, "\nDRIFT/PENDING\tSTATE\tREASON")
		for _, d := range st.Drift {
			fmt.Fprintf(w, "%s %s %s\t%s\t%s\n", d.Driver, d.Kind, d.ID, d.State, d.Reason)
		}
		for _, d := range st.Pending {
			state := "pending"
			if d.Action != "pending" {
				state = "not applied"
			}
			fmt.Fprintf(w, "%s %s %s\t%s\t%s\n", d.Driver, d.Kind, d.ID, state, d.Reason)
		}
	}
	return w.Flush()
}

// outcomeLine is the node's outcome with what keeps it from converged:
// "pending (3 pending, 1 not applied)".
func outcomeLine(st Status) string {
	pending, other := 0, 0
	for _, r := range st.Pending {
		if r.Action == "pending" {
			pending++
		} else {
			other++
		}
	}
	var why []string
	if pending > 0 {
		why = append(why, fmt.Sprintf("%d pending", pending))
	}
	if other > 0 {
		why = append(why, fmt.Sprintf("%d not applied", other))
	}
	if st.Outcome == "converged" || len(why) == 0 {
		return st.Outcome
	}
	return st.Outcome + " (" + strings.Join(why, ", ") + ")"
}
