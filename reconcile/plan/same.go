package plan

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
)

// SameChanges reports whether a and b carry the same actionable changes
// (driver, kind, id, action, from/to), in any order; why names the first
// difference when they do not. a is read as the earlier plan (the one an
// operator approved) and b as the later one, for the wording of why.
//
// Before and After are compared as canonical JSON, so that a plan read back
// from a file (generic maps) equals the plan a driver makes now (typed
// values). Reasons, details, notes and the drift mark are not compared:
// they explain a change, they do not make it.
func SameChanges(a, b *Plan) (same bool, why string) {
	ka, kb := changeKeys(a), changeKeys(b)
	ia, ib := 0, 0
	for ia < len(ka) || ib < len(kb) {
		var c int
		switch {
		case ia == len(ka):
			c = 1
		case ib == len(kb):
			c = -1
		default:
			c = compareKey(ka[ia], kb[ib])
		}
		switch {
		case c < 0:
			x := ka[ia]
			return false, fmt.Sprintf("%s %s: planned %s, now nothing to do", x.Kind, x.ID, x.Action)
		case c > 0:
			y := kb[ib]
			return false, fmt.Sprintf("%s %s: not planned, now %s", y.Kind, y.ID, y.Action)
		}
		x, y := ka[ia], kb[ib]
		switch {
		case x.Action != y.Action:
			return false, fmt.Sprintf("%s %s: planned %s, now %s", x.Kind, x.ID, x.Action, y.Action)
		case !bytes.Equal(x.before, y.before):
			return false, fmt.Sprintf("%s %s: planned from %s, now from %s", x.Kind, x.ID, x.before, y.before)
		case !bytes.Equal(x.after, y.after):
			return false, fmt.Sprintf("%s %s: planned to %s, now to %s", x.Kind, x.ID, x.after, y.after)
		}
		ia++
		ib++
	}
	return true, ""
}

// changeKey is one actionable change in the terms SameChanges compares.
type changeKey struct {
	Driver, Kind, ID string
	Action           Action
	before, after    []byte
}

func changeKeys(p *Plan) []changeKey {
	if p == nil {
		return nil
	}
	var out []changeKey
	for _, ch := range p.Actionable() {
		out = append(out, changeKey{Driver: ch.Driver, Kind: ch.Kind, ID: ch.ID, Action: ch.Action,
			before: canonical(ch.Before), after: canonical(ch.After)})
	}
	// By resource, then by what happens to it, so that two changes of one
	// resource (which no driver makes) still pair up in both plans.
	slices.SortFunc(out, func(a, b changeKey) int {
		return cmp.Or(compareKey(a, b), cmp.Compare(a.Action, b.Action),
			bytes.Compare(a.before, b.before), bytes.Compare(a.after, b.after))
	})
	return out
}

// compareKey orders changes by the resource they change.
func compareKey(a, b changeKey) int {
	return cmp.Or(
		cmp.Compare(a.Driver, b.Driver),
		cmp.Compare(a.Kind, b.Kind),
		cmp.Compare(a.ID, b.ID),
	)
}

// canonical is v as JSON with object keys sorted and numbers kept as
// written: a struct and the map it decodes to give the same bytes.
func canonical(v any) []byte {
	raw := JSON(v)
	if raw == nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return raw
	}
	out, err := json.Marshal(generic)
	if err != nil {
		return raw
	}
	return out
}
