package importer

import (
	"cmp"
	"fmt"
	"slices"
)

// Pos is a place in a source configuration.
type Pos struct {
	File string
	Line int
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Warning is something of a source configuration that the site does not
// carry over exactly: dropped, approximated, or needing the operator's eye.
type Warning struct {
	Pos Pos
	Msg string
}

func (w Warning) String() string { return w.Pos.String() + ": " + w.Msg }

// warnings collects Warnings, and the Refusals and parse errors found on
// the way; the zero value is ready to use.
type warnings struct {
	list    []Warning
	refused refusals
	errs    []Warning // syntax errors: the file is not what its tool would read
}

// refuse records that what is left out of the site for each of ns.
func (w *warnings) refuse(what string, ns []need) { w.refused.refuse(what, ns) }

// syntax records that a file does not parse.
func (w *warnings) syntax(p Pos, format string, args ...any) {
	w.errs = append(w.errs, Warning{Pos: p, Msg: fmt.Sprintf(format, args...)})
}

func (w *warnings) add(p Pos, format string, args ...any) {
	w.list = append(w.list, Warning{Pos: p, Msg: fmt.Sprintf(format, args...)})
}

// sorted returns the warnings by file (in the order files were given),
// then line, keeping the order of warnings on one line, each once (a file
// given for two nodes says the same things twice).
func (w *warnings) sorted(fileOrder []string) []Warning {
	rank := func(f string) int {
		if i := slices.Index(fileOrder, f); i >= 0 {
			return i
		}
		return len(fileOrder)
	}
	var out []Warning
	seen := map[Warning]bool{}
	for _, x := range w.list {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	slices.SortStableFunc(out, func(a, b Warning) int {
		return cmp.Or(cmp.Compare(rank(a.Pos.File), rank(b.Pos.File)), cmp.Compare(a.Pos.File, b.Pos.File), cmp.Compare(a.Pos.Line, b.Pos.Line))
	})
	return out
}
