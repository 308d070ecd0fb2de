package importer

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// A small tree of CUE text, rendered the way `cue fmt` lays it out: tabs,
// values of consecutive scalar fields aligned, one-field structs collapsed
// into label chains ("gw1: priority: 150"), short structs of scalars inline.

type cfield struct {
	label string
	val   cval
	doc   []string // comment lines above the field
	trail string   // comment after the value
}

// cval is a clit, a *cstruct or a *clist.
type cval any

// clit is a rendered scalar.
type clit string

type cstruct struct {
	fields []cfield
	inline bool
}

// clist is a list; a block list puts each element on its own line.
type clist struct {
	elems []cval
	block bool
}

func (s *cstruct) add(label string, v cval) *cfield {
	s.fields = append(s.fields, cfield{label: label, val: v})
	return &s.fields[len(s.fields)-1]
}

func (s *cstruct) addDoc(label string, v cval, doc ...string) {
	s.fields = append(s.fields, cfield{label: label, val: v, doc: doc})
}

// lit helpers.
// addOpt adds label to s only when the sources set the value.
func addOpt[T comparable](s *cstruct, label string, o opt[T], lit func(T) clit) {
	if o.ok {
		s.add(label, lit(o.v))
	}
}

func cstr(s string) clit        { return clit(quoteCUE(s)) }
func cint(i int) clit           { return clit(strconv.Itoa(i)) }
func cbool(b bool) clit         { return clit(strconv.FormatBool(b)) }
func cdur(d time.Duration) clit { return cstr(formatDuration(d)) }
func cstrs(ss []string) *clist {
	l := &clist{}
	for _, s := range ss {
		l.elems = append(l.elems, cstr(s))
	}
	return l
}
func cints(is []int) *clist {
	l := &clist{}
	for _, i := range is {
		l.elems = append(l.elems, cint(i))
	}
	return l
}
func inline(fields ...cfield) *cstruct { return &cstruct{fields: fields, inline: true} }
func fld(label string, v cval) cfield  { return cfield{label: label, val: v} }

// formatDuration writes a duration as Go does, without the zero units Go
// leaves in ("1m0s" → "1m", "1h0m0s" → "1h").
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// quoteCUE writes s as a CUE string literal. CUE's escapes are Go's except
// that \x is for bytes only, so other control characters become \u escapes.
func quoteCUE(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

var identRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)

var cueKeywords = map[string]bool{
	"package": true, "import": true, "for": true, "in": true, "if": true, "let": true,
	"true": true, "false": true, "null": true, "func": true,
}

// label writes a field name, quoted unless it is a plain identifier.
func label(s string) string {
	if identRE.MatchString(s) && !cueKeywords[s] {
		return s
	}
	return quoteCUE(s)
}

// render writes the fields of a file's top level.
func render(fields []cfield) string {
	var b strings.Builder
	writeFields(&b, fields, 0)
	return b.String()
}

// chain follows one-field structs: "a: b: c: value".
func chain(f cfield) (labels []string, v cval, trail string) {
	labels = []string{label(f.label)}
	v, trail = f.val, f.trail
	for {
		s, ok := v.(*cstruct)
		if !ok || len(s.fields) != 1 || len(s.fields[0].doc) > 0 || trail != "" {
			return labels, v, trail
		}
		inner := s.fields[0]
		labels = append(labels, label(inner.label))
		v, trail = inner.val, inner.trail
	}
}

func writeFields(b *strings.Builder, fields []cfield, depth int) {
	ind := strings.Repeat("\t", depth)
	type row struct {
		key, val, trail string
		doc             []string
		align           bool // a scalar value: aligned with its neighbours
		depth           int  // labels in the chain
	}
	rows := make([]row, len(fields))
	for i, f := range fields {
		labels, v, trail := chain(f)
		_, scalar := v.(clit)
		rows[i] = row{
			key:   strings.Join(labels, ": ") + ":",
			val:   renderValue(v, depth),
			trail: trail,
			doc:   f.doc,
			align: scalar,
			depth: len(labels),
		}
	}
	for i := 0; i < len(rows); {
		// A section: consecutive scalar rows with label chains of one
		// length, broken by a comment above, as `cue fmt` aligns them.
		j := i + 1
		if rows[i].align {
			for j < len(rows) && rows[j].align && rows[j].depth == rows[i].depth && len(rows[j].doc) == 0 {
				j++
			}
		}
		width := 0
		for _, r := range rows[i:j] {
			width = max(width, utf8.RuneCountInString(r.key))
		}
		bases := make([]string, j-i)
		twidth := 0
		for k, r := range rows[i:j] {
			bases[k] = r.key + " " + r.val
			if r.align {
				bases[k] = r.key + strings.Repeat(" ", width-utf8.RuneCountInString(r.key)+1) + r.val
			}
			if r.trail != "" && !strings.Contains(bases[k], "\n") {
				twidth = max(twidth, utf8.RuneCountInString(bases[k]))
			}
		}
		for k, r := range rows[i:j] {
			for _, d := range r.doc {
				if d == "" {
					b.WriteString(ind + "//\n")
					continue
				}
				b.WriteString(ind + "// " + d + "\n")
			}
			line := bases[k]
			if r.trail != "" {
				if !strings.Contains(line, "\n") {
					line += strings.Repeat(" ", twidth-utf8.RuneCountInString(line))
				}
				line += " // " + r.trail
			}
			b.WriteString(ind + line + "\n")
		}
		i = j
	}
}

func renderValue(v cval, depth int) string {
	switch v := v.(type) {
	case clit:
		return string(v)
	case *clist:
		// Block structs open and close on the list's own lines: [{ … }, { … }].
		parts := make([]string, len(v.elems))
		for i, e := range v.elems {
			parts[i] = renderValue(e, depth+btoi(v.block))
		}
		if v.block && len(parts) > 0 {
			ind := strings.Repeat("\t", depth+1)
			return "[\n" + ind + strings.Join(parts, ",\n"+ind) + ",\n" + strings.Repeat("\t", depth) + "]"
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case *cstruct:
		if v.inline {
			parts := make([]string, len(v.fields))
			for i, f := range v.fields {
				labels, fv, _ := chain(f)
				parts[i] = strings.Join(labels, ": ") + ": " + renderValue(fv, depth)
			}
			return "{" + strings.Join(parts, ", ") + "}"
		}
		var b strings.Builder
		b.WriteString("{\n")
		writeFields(&b, v.fields, depth+1)
		b.WriteString(strings.Repeat("\t", depth) + "}")
		return b.String()
	}
	panic(fmt.Sprintf("importer: unknown CUE value %T", v))
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
