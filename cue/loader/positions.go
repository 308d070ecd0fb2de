package loader

import (
	"strconv"
	"strings"

	"cuelang.org/go/cue"

	"github.com/gitgw/gitgw/cue/spec"
)

// positions indexes where each field of a node's view is written in the
// site's files: path (the loader's dotted form, as errors carry it) →
// "file:line:col". A sandboxed load returns it with the view, so that the
// parent places policy findings from the commit's one evaluation instead
// of evaluating the site again (Site.Locate).
type positions map[string]string

// maxPositions bounds the index a child sends: past it, Locate evaluates
// again, as without an index.
const maxPositions = 200_000

// indexPositions walks the parts of the site a node's view is made of:
// the site settings, the node, and its VRRP instances, services and unit
// templates. ok is false when the index would pass maxPositions.
func indexPositions(abs string, root cue.Value, node string, sel selection) (positions, bool) {
	idx := positions{}
	var walk func(v cue.Value, path string) bool
	walk = func(v cue.Value, path string) bool {
		if len(idx) >= maxPositions {
			return false
		}
		e := Error{Path: path}
		e.locateParent(abs, root)
		if e.File != "" && !strings.HasPrefix(e.File, "(schema)") {
			idx[path] = e.File + ":" + strconv.Itoa(e.Line) + ":" + strconv.Itoa(e.Col)
		}
		switch v.IncompleteKind() {
		case cue.StructKind:
			it, err := v.Fields()
			if err != nil {
				return true
			}
			for it.Next() {
				if !walk(it.Value(), path+"."+spec.Label(it.Selector().Unquoted())) {
					return false
				}
			}
		case cue.ListKind:
			it, err := v.List()
			if err != nil {
				return true
			}
			for i := 0; it.Next(); i++ {
				if !walk(it.Value(), path+"."+strconv.Itoa(i)) {
					return false
				}
			}
		}
		return true
	}
	roots := []string{"site", "nodes." + spec.Label(node)}
	for kind, names := range map[string][]string{"vrrp": sel.vrrp, "services": sel.services, "units": sel.units} {
		for _, n := range names {
			roots = append(roots, kind+"."+spec.Label(n))
		}
	}
	for _, r := range roots {
		v := root.LookupPath(cue.MakePath(selectors(r)...))
		if v.Exists() && !walk(v, r) {
			return nil, false
		}
	}
	return idx, true
}

// locateFrom places e by the index: at its path, else at the nearest
// ancestor written in the site's files, as locateParent does.
func (idx positions) locateFrom(e *Error) bool {
	for p := e.Path; p != ""; {
		if at, ok := idx[p]; ok {
			file, rest, _ := strings.Cut(at, ":")
			ls, cs, _ := strings.Cut(rest, ":")
			e.File = file
			e.Line, _ = strconv.Atoi(ls)
			e.Col, _ = strconv.Atoi(cs)
			return true
		}
		i := strings.LastIndex(p, ".")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return false
}
