package loader

import (
	"cmp"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/token"
)

// Error is one problem in a site, positioned in the site's own files.
type Error struct {
	File string `json:"file,omitempty"` // relative to the site directory
	Line int    `json:"line,omitempty"`
	Col  int    `json:"col,omitempty"`
	Path string `json:"path,omitempty"` // the field path, e.g. vrrp.VI_1.vrid
	Msg  string `json:"msg"`
	// Related is the other field a finding involves (the bind a port
	// clashes with), and RelatedAt its "file:line:col" once located: the
	// error is placed at one of the two, and names the other.
	Related   string `json:"related,omitempty"`
	RelatedAt string `json:"related_at,omitempty"`
}

// Error renders "file:line:col: path: message".
func (e Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		fmt.Fprintf(&b, "%s:%d:%d: ", e.File, e.Line, e.Col)
	}
	if e.Path != "" && !strings.HasPrefix(e.Msg, e.Path+":") {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	if e.Related != "" {
		fmt.Fprintf(&b, " (the other: %s", e.Related)
		if e.RelatedAt != "" {
			b.WriteString(" at " + e.RelatedAt)
		}
		b.WriteString(")")
	}
	return b.String()
}

// setPos records p if it lies in the site's own files (not in the mounted
// schema or the generated agent file) and reports whether it did. A schema
// position is kept only as a fallback.
func (e *Error) setPos(abs string, p token.Pos) bool {
	if !p.IsValid() || p.Filename() == "" {
		return false
	}
	rel, ok := strings.CutPrefix(p.Filename(), virtualRoot+"/")
	if !ok {
		r, err := filepath.Rel(abs, p.Filename())
		if err != nil {
			r = p.Filename()
		}
		rel = filepath.ToSlash(r)
	}
	inSchema := strings.HasPrefix(rel, "cue.mod/pkg/")
	if rel == agentFile {
		return false
	}
	if inSchema {
		if e.File == "" {
			e.File = "(schema)/" + filepath.Base(rel)
			e.Line, e.Col = p.Line(), p.Column()
		}
		return false
	}
	e.File, e.Line, e.Col = rel, p.Line(), p.Column()
	return true
}

// locate finds the position of e.Path in the evaluated site, for errors
// found by the Go checks after decoding.
func (e *Error) locate(abs string, root cue.Value) {
	if e.Path != "" {
		e.locateParent(abs, root)
	}
	if e.Related != "" && e.RelatedAt == "" {
		r := Error{Path: e.Related}
		r.locateParent(abs, root)
		if r.File != "" {
			e.RelatedAt = fmt.Sprintf("%s:%d:%d", r.File, r.Line, r.Col)
		}
	}
}

// selectors parses the dotted paths the loader writes (keys quoted when
// needed, list indexes as bare numbers), which cue.ParsePath does not
// accept because of the indexes.
func selectors(path string) []cue.Selector {
	var out []cue.Selector
	for len(path) > 0 {
		var part string
		if path[0] == '"' {
			end := 1
			for end < len(path) && (path[end] != '"' || path[end-1] == '\\') {
				end++
			}
			q, err := strconv.Unquote(path[:min(end+1, len(path))])
			if err != nil {
				q = path[1:end]
			}
			out = append(out, cue.Str(q))
			path = strings.TrimPrefix(path[min(end+1, len(path)):], ".")
			continue
		}
		part, path, _ = strings.Cut(path, ".")
		if n, err := strconv.Atoi(part); err == nil {
			out = append(out, cue.Index(n))
		} else if strings.HasPrefix(part, "#") {
			out = append(out, cue.Def(part))
		} else {
			out = append(out, cue.Str(part))
		}
	}
	return out
}

// locateParent positions e at the nearest ancestor of e.Path that is
// written in the site's files: a missing field is reported where its
// parent is.
func (e *Error) locateParent(abs string, root cue.Value) {
	sel := selectors(e.Path)
	for n := len(sel); n > 0; n-- {
		v := root.LookupPath(cue.MakePath(sel[:n]...))
		if !v.Exists() {
			continue
		}
		for _, p := range append([]token.Pos{v.Pos()}, posOf(v)...) {
			probe := *e
			probe.File = ""
			if probe.setPos(abs, p) {
				*e = probe
				return
			}
		}
	}
}

// posOf lists the positions of the conjuncts that make up v.
func posOf(v cue.Value) []token.Pos {
	var out []token.Pos
	if op, parts := v.Expr(); op == cue.AndOp {
		for _, p := range parts {
			out = append(out, p.Pos())
		}
	}
	return out
}

// Errors is every problem found in one evaluation, sorted by position.
type Errors []Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (es Errors) sorted() Errors {
	slices.SortStableFunc(es, func(a, b Error) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col), cmp.Compare(a.Msg, b.Msg))
	})
	return es
}

// maxMsg is the longest message kept whole. CUE quotes values in its
// messages, and a site can make a value of many megabytes: the error
// goes into logs, status commits and terminals.
const maxMsg = 1024

// clip shortens a message longer than maxMsg, keeping its start and its
// end (where CUE says what the constraint was).
func clip(msg string) string {
	if len(msg) <= maxMsg {
		return msg
	}
	head, tail := msg[:maxMsg*3/4], msg[len(msg)-maxMsg/4:]
	return strings.ToValidUTF8(fmt.Sprintf("%s …(%d bytes)… %s", head, len(msg)-len(head)-len(tail), tail), "")
}
