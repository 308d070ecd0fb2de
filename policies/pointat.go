package policies

import (
	"encoding/json"
	"strconv"
	"strings"
)

// PointAtChange places each finding between two fields on the one the
// change from prev to next touched: a port clash caused by a new bind is
// reported at that bind, not at the unit that held the port all along.
// Findings whose fields both changed, or neither, stay where they are.
func PointAtChange(vs []Violation, prev, next Input) []Violation {
	if len(vs) == 0 {
		return vs
	}
	p, n := tree(prev), tree(next)
	out := make([]Violation, len(vs))
	for i, v := range vs {
		out[i] = v
		if v.Related == "" {
			continue
		}
		if !differs(p, n, v.Path) && differs(p, n, v.Related) {
			out[i].Path, out[i].Related = v.Related, v.Path
		}
	}
	return out
}

// tree is an input as the site's JSON tree, which the violations' dotted
// paths name (services.web.binds.0).
func tree(in Input) any {
	b, err := json.Marshal(map[string]any{"site": in.Settings, "nodes": in.Nodes, "vrrp": in.VRRP, "services": in.Services, "units": in.Units})
	if err != nil {
		return nil
	}
	var t any
	if json.Unmarshal(b, &t) != nil {
		return nil
	}
	return t
}

// differs reports whether the value at path differs between a and b (a
// value that appears or goes counts as a change).
func differs(a, b any, path string) bool {
	va, oka := at(a, path)
	vb, okb := at(b, path)
	if oka != okb {
		return true
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return string(ja) != string(jb)
}

// at follows a dotted path (map keys, list indexes) into a JSON tree.
// Quoted keys are taken as written: Label quotes only names the site's own
// keys need quoted, which the tree holds unquoted.
func at(t any, path string) (any, bool) {
	for _, part := range splitPath(path) {
		switch n := t.(type) {
		case map[string]any:
			v, ok := n[part]
			if !ok {
				return nil, false
			}
			t = v
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(n) {
				return nil, false
			}
			t = n[i]
		default:
			return nil, false
		}
	}
	return t, true
}

// splitPath splits a dotted path, unquoting "quoted" labels.
func splitPath(path string) []string {
	var out []string
	for path != "" {
		if path[0] == '"' {
			end := strings.Index(path[1:], `"`)
			if end < 0 {
				return append(out, path)
			}
			out = append(out, path[1:end+1])
			path = strings.TrimPrefix(path[end+2:], ".")
			continue
		}
		var part string
		part, path, _ = strings.Cut(path, ".")
		out = append(out, part)
	}
	return out
}
