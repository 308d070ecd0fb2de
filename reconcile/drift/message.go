package drift

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/gitgw/gitgw/internal/words"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// Message is a status commit's message before the writer formats it: the
// subject says what happened; Desired, Applied and Drift fill the
// Gitgw-Desired, Gitgw-Applied and Gitgw-Drift trailers (the writer adds
// Gitgw-Node).
type Message struct {
	Subject, Body           string
	Desired, Applied, Drift string
}

// maxListed bounds each list in a commit body.
const maxListed = 30

// Compose writes the commit message for a status. in is the pass, events
// the driver events new since the last commit, at and took when the pass
// ran and how long it took: the only place a time appears.
//
// Subjects, by precedence:
//
//	error(NODE): 3a9c1e2 rejected: site.cue:14:5: vrid: invalid value 300
//	error(NODE): 3a9c1e2 apply failed: units: …
//	drift(NODE): app@8082.service stopped outside gitgw; restarted
//	failover(NODE): VI_1 BACKUP -> MASTER (peer silent 360 ms)
//	held(NODE): 3a9c1e2 waits for gw2 (pair-aware rollout)
//	suspended(NODE): 3a9c1e2 not applied, 4 changes waiting for gitgw resume
//	apply(NODE): 3a9c1e2, 4 changes (2 pending)
//	drift(NODE): sysctl net.ipv4.ip_forward changed outside gitgw (0, site says 1); left in place
//	status(NODE): 3a9c1e2 converged, 12 resources
//	status(NODE): 3a9c1e2 pending, 16 resources (3 pending)
func Compose(st Status, in Input, events []Event, at time.Time, took time.Duration) Message {
	node := st.Node
	short := Short(in.Commit)
	m := Message{Desired: in.Commit, Applied: in.AppliedCommit, Drift: driftTrailer(len(in.Drift), len(st.Drift))}
	switch {
	case in.Outcome == "rejected":
		first := in.Err
		if len(in.Errors) > 0 {
			first = in.Errors[0].String()
			if n := len(in.Errors) - 1; n > 0 {
				first += fmt.Sprintf(" (+%d more)", n)
			}
		}
		m.Subject = fmt.Sprintf("error(%s): %s rejected: %s", node, short, firstLine(first))
	case in.Outcome == "failed":
		m.Subject = fmt.Sprintf("error(%s): %s apply failed: %s", node, short, firstLine(in.Err))
	case in.Outcome == "rolled-back":
		m.Subject = fmt.Sprintf("rollback(%s): %s %s", node, short, firstLine(in.Err))
	case in.Outcome == "held":
		m.Subject = fmt.Sprintf("held(%s): %s %s", node, short, firstLine(in.Err))
	case in.Outcome == "suspended":
		m.Subject = fmt.Sprintf("suspended(%s): %s not applied, %s waiting for gitgw resume", node, short, words.Plural(len(in.Remaining), "change"))
	case len(in.Drift) == 1:
		m.Subject = fmt.Sprintf("drift(%s): %s", node, describeDrift(in.Drift[0], true))
	case len(in.Drift) > 1:
		m.Subject = fmt.Sprintf("drift(%s): %d resources changed outside gitgw; corrected", node, len(in.Drift))
	case len(events) > 0:
		ev := events[len(events)-1]
		m.Subject = fmt.Sprintf("%s(%s): %s", eventTag(ev), node, ev.Message)
	case in.Outcome == "applied":
		m.Subject = fmt.Sprintf("apply(%s): %s, %s", node, short, words.Plural(len(in.Applied), "change")) + notDone(st)
	case len(in.Reported) == 1:
		m.Subject = fmt.Sprintf("drift(%s): %s", node, describeDrift(in.Reported[0], false))
	case len(in.Reported) > 1:
		m.Subject = fmt.Sprintf("drift(%s): %d resources changed outside gitgw; left in place", node, len(in.Reported))
	default:
		m.Subject = fmt.Sprintf("status(%s): %s %s, %s", node, short, st.LastPass.Outcome, words.Plural(len(st.Resources), "resource")) + notDone(st)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "Pass at %s (took %s) for %s", at.UTC().Format(time.RFC3339), took.Round(time.Millisecond), short)
	if in.Subject != "" {
		fmt.Fprintf(&b, " %q", in.Subject)
	}
	fmt.Fprintf(&b, ": %s; running %s.\n", in.Outcome, orNone(Short(in.AppliedCommit)))
	list := func(title string, lines []string) {
		if len(lines) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n%s:\n", title)
		for i, l := range lines {
			if i == maxListed {
				fmt.Fprintf(&b, "  … and %d more\n", len(lines)-maxListed)
				break
			}
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	var errs []string
	for _, e := range in.Errors {
		errs = append(errs, e.String())
	}
	if in.Err != "" {
		errs = append(errs, strings.Split(strings.TrimSpace(in.Err), "\n")...)
	}
	list("Errors", errs)
	list("Drift corrected", changeLines(in.Drift))
	var applied []plan.Change
	drifted := map[string]bool{}
	for _, c := range in.Drift {
		drifted[c.Driver+" "+c.Kind+" "+c.ID] = true
	}
	for _, c := range in.Applied {
		if !drifted[c.Driver+" "+c.Kind+" "+c.ID] {
			applied = append(applied, c)
		}
	}
	if in.Outcome == "failed" {
		list("Attempted", changeLines(applied))
	} else {
		list("Changes", changeLines(applied))
	}
	if in.Outcome == "suspended" {
		list("Not applied (suspended)", changeLines(in.Remaining))
	} else {
		list("Still differs", changeLines(in.Remaining))
	}
	var open []string
	for _, it := range st.Drift {
		l := fmt.Sprintf("%s %s %s: found %s, site says %s (%s)", it.Driver, it.Kind, it.ID, Value(it.Observed), Value(it.Desired), it.Mode)
		if it.Adopt == "proposed" {
			l += "; adopt proposal on gitgw/adopt/" + node
		}
		open = append(open, l)
	}
	list("Open drift", open)
	var evs []string
	for _, e := range events {
		evs = append(evs, fmt.Sprintf("%s %s: %s", e.Driver, e.Kind, e.Message))
	}
	list("Events", evs)
	m.Body = b.String()
	return m
}

// notDone says, for a subject, what keeps the node from converged:
// " (3 pending, 1 differs)", or "".
func notDone(st Status) string {
	var parts []string
	if n := st.Counts[Pending]; n > 0 {
		parts = append(parts, fmt.Sprintf("%d pending", n))
	}
	if n := st.Counts[Differs]; n > 0 {
		parts = append(parts, fmt.Sprintf("%d differs", n))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func eventTag(ev Event) string {
	switch {
	case ev.Kind == plan.EventTransition && plan.Family(ev.Driver) == plan.FamilyVRRP && strings.Contains(ev.Message, "INIT ->"):
		// An instance starting (agent start, instance added) is no failover.
		return plan.FamilyVRRP.String()
	case ev.Kind == plan.EventTransition && plan.Family(ev.Driver) == plan.FamilyVRRP:
		return "failover"
	case ev.Kind == plan.EventHealth:
		return plan.EventHealth
	case ev.Kind == plan.EventDrift:
		return plan.EventDrift
	}
	return "event"
}

// describeDrift says what changed outside gitgw in a few words.
func describeDrift(c plan.Change, corrected bool) string {
	if c.Kind == plan.KindUnitInstance && activeOf(c.After) == "active" && c.Before != nil && activeOf(c.Before) != "active" {
		what := c.ID + " stopped outside gitgw"
		if activeOf(c.Before) == "failed" {
			what = c.ID + " failed"
		}
		if corrected {
			return what + "; restarted"
		}
		return what + "; left stopped"
	}
	var what string
	switch c.Action {
	case plan.Create:
		what = fmt.Sprintf("%s %s removed outside gitgw", c.Kind, c.ID)
	case plan.Delete:
		what = fmt.Sprintf("%s %s added outside gitgw", c.Kind, c.ID)
	default:
		what = fmt.Sprintf("%s %s changed outside gitgw (%s, site says %s)", c.Kind, c.ID, plan.Value(c.Before), plan.Value(c.After))
	}
	if corrected {
		return what + "; corrected"
	}
	return what + "; left in place"
}

func changeLines(cs []plan.Change) []string {
	sym := map[plan.Action]string{plan.Create: "+", plan.Update: "~", plan.Delete: "-"}
	var out []string
	for _, c := range cs {
		l := fmt.Sprintf("%s %s %s %s", cmpOr(sym[c.Action], "?"), c.Driver, c.Kind, c.ID)
		switch c.Action {
		case plan.Create:
			l += ": " + plan.Value(c.After)
		case plan.Update:
			l += ": " + plan.Value(c.Before) + " → " + plan.Value(c.After)
		}
		out = append(out, l)
	}
	return out
}

func driftTrailer(corrected, open int) string {
	switch {
	case corrected == 0 && open == 0:
		return "none"
	case corrected == 0:
		return fmt.Sprintf("%d open", open)
	case open == 0:
		return fmt.Sprintf("%d corrected", corrected)
	}
	return fmt.Sprintf("%d corrected, %d open", corrected, open)
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func orNone(s string) string {
	if s == "" {
		return "nothing yet"
	}
	return s
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// activeOf is a unit's active state, from a plain string ("active") or a
// unit status object ({"active": "inactive", …}).
func activeOf(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	var st struct {
		Active string `json:"active"`
	}
	if b, err := json.Marshal(v); err == nil && json.Unmarshal(b, &st) == nil {
		return st.Active
	}
	return ""
}
