package loader

import (
	"slices"
	"strings"

	"cuelang.org/go/cue"
)

// notAllowed is CUE's message for a field a closed struct does not define.
const notAllowed = "field not allowed"

// suggest adds "did you mean" to each misspelt-field error: the closest
// name the struct around it allows (the schema's fields, optional ones
// included, and the site's own valid ones), when one is close enough to be
// a typo. parent looks up the struct a field path points into.
func suggest(errs Errors, parent func(path []string) cue.Value) {
	for i := range errs {
		e := &errs[i]
		if !strings.HasPrefix(e.Msg, notAllowed) || strings.Contains(e.Msg, "did you mean") || e.Path == "" {
			continue
		}
		if strings.Contains(e.Path, `"`) {
			continue // a quoted label is a name of the site's own, not a field of the schema's
		}
		path := strings.Split(e.Path, ".")
		bad := path[len(path)-1]
		p := parent(path[:len(path)-1])
		// A struct with a pattern ([#IfName]: …) takes names the site
		// chooses: its other keys are no spelling to suggest.
		if !p.Exists() || p.LookupPath(cue.MakePath(cue.AnyString)).Exists() {
			continue
		}
		it, err := p.Fields(cue.Optional(true))
		if err != nil {
			continue
		}
		var names []string
		for it.Next() {
			if n := it.Selector().Unquoted(); n != bad {
				names = append(names, n)
			}
		}
		if best := closest(bad, names); best != "" {
			e.Msg += ": did you mean " + best + "?"
		}
	}
}

// closest returns the name nearest to bad within typo distance (one edit
// per three letters, at least one), "" when none is; ties go to the first
// in sort order, so the message is stable.
func closest(bad string, names []string) string {
	slices.Sort(names)
	best, bestD := "", max(1, len(bad)/3)+1
	for _, n := range names {
		if d := editDistance(bad, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and swaps of two neighbours ("premept") each
// count one.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// selectorPath turns a dotted error path into a CUE path of string labels.
func selectorPath(path []string) cue.Path {
	sels := make([]cue.Selector, len(path))
	for i, p := range path {
		sels[i] = cue.Str(p)
	}
	return cue.MakePath(sels...)
}
