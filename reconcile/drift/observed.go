package drift

import (
	"encoding/json"
	"reflect"

	"github.com/gitgw/gitgw/reconcile/plan"
)

// ObservedPlan plans a revision against a node's last reported state
// instead of the live host (`gitgw plan --observed status`), so that CI on
// the site repository can show what a merge would do to each gateway.
//
// prev and next enumerate the desired resources at the commit the node
// reported as applied and at the revision planned, the same way (each
// change's After is the desired value); prev is nil when the node has
// applied nothing the planner can load. Resources in both with the same
// value are no-ops, unless the node reported them as differing (open drift,
// not converged), in which case they are updates from what it found.
// Pending resources stay pending.
func ObservedPlan(prev, next []plan.Change, st Status) []plan.Change {
	key := func(d, k, id string) string { return d + " " + k + " " + id }
	was := map[string]plan.Change{}
	for _, c := range prev {
		was[key(c.Driver, c.Kind, c.ID)] = c
	}
	reported := map[string]Resource{}
	for _, r := range st.Resources {
		if r.State == Differs || r.State == Open || r.State == Ignored {
			reported[r.Key()] = r
		}
	}
	var out []plan.Change
	seen := map[string]bool{}
	for _, c := range next {
		k := key(c.Driver, c.Kind, c.ID)
		seen[k] = true
		ch := plan.Change{Driver: c.Driver, Kind: c.Kind, ID: c.ID, After: c.After}
		p, had := was[k]
		r, drifted := reported[k]
		switch {
		case drifted:
			ch.Action, ch.Before, ch.Reason, ch.Drift = plan.Update, decode(r.Observed), "the node reported "+r.State, r.State != Differs
		case prev == nil:
			ch.Action, ch.Reason = plan.Create, "the node has applied nothing known yet"
		case !had:
			ch.Action, ch.Reason = plan.Create, "new in the site"
		case !reflect.DeepEqual(normalize(p.After), normalize(c.After)):
			ch.Action, ch.Before, ch.Reason = plan.Update, p.After, "changed in the site"
		default:
			ch.Action, ch.Before = plan.NoOp, p.After
		}
		if c.Action == plan.Pending && ch.Action == plan.NoOp {
			ch.Reason = ""
		}
		out = append(out, ch)
	}
	for _, c := range prev {
		k := key(c.Driver, c.Kind, c.ID)
		if !seen[k] {
			out = append(out, plan.Change{Driver: c.Driver, Kind: c.Kind, ID: c.ID, Action: plan.Delete, Before: c.After, Reason: "removed from the site"})
		}
	}
	// Resources the node reported as differing under names the planner
	// does not enumerate (a driver's own finer-grained ids).
	for _, r := range st.Resources {
		if _, ok := reported[r.Key()]; ok && !seen[r.Key()] {
			if _, inPrev := was[r.Key()]; inPrev {
				continue
			}
			out = append(out, plan.Change{Driver: r.Driver, Kind: r.Kind, ID: r.ID, Action: plan.Update,
				Before: decode(r.Observed), After: decode(r.Desired), Reason: "the node reported " + r.State, Drift: r.State != Differs})
		}
	}
	p := plan.Plan{Changes: out}
	p.Sort()
	return p.Changes
}

func decode(r json.RawMessage) any {
	if len(r) == 0 {
		return nil
	}
	var v any
	if json.Unmarshal(r, &v) != nil {
		return string(r)
	}
	return v
}

// normalize makes values that marshal alike compare equal.
func normalize(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}
