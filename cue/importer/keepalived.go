package importer

import (
	"strings"
)

// kaDirective is one keepalived statement: a keyword, the words after it on
// its line, and the block that follows it, if any.
type kaDirective struct {
	Name     string
	Args     []string
	Pos      Pos
	HasBlock bool
	Block    []kaDirective
}

// kaToken is a word of a keepalived file with its line.
type kaToken struct {
	text   string
	line   int
	quoted bool
}

// lexKeepalived splits a keepalived.conf into words. Comments start with
// '#' or '!' at the start of a word and run to the end of the line; double
// quotes group words; braces are words of their own even when attached.
func lexKeepalived(src string) []kaToken {
	var toks []kaToken
	for i, line := range strings.Split(src, "\n") {
		ln := i + 1
		rs := []rune(line)
		for j := 0; j < len(rs); {
			r := rs[j]
			switch {
			case r == ' ' || r == '\t' || r == '\r':
				j++
			case r == '#' || r == '!':
				j = len(rs)
			case r == '{' || r == '}':
				toks = append(toks, kaToken{text: string(r), line: ln})
				j++
			case r == '"':
				k := j + 1
				for k < len(rs) && rs[k] != '"' {
					k++
				}
				toks = append(toks, kaToken{text: string(rs[j+1 : min(k, len(rs))]), line: ln, quoted: true})
				j = k + 1
			default:
				k := j
				for k < len(rs) && !strings.ContainsRune(" \t\r{}\"", rs[k]) {
					k++
				}
				toks = append(toks, kaToken{text: string(rs[j:k]), line: ln})
				j = k
			}
		}
	}
	return toks
}

// parseKeepalived parses a keepalived.conf into its directives. Syntax
// errors (unbalanced braces, as in a truncated file) are recorded in w and
// fail the import: keepalived would not read the file as it stands.
func parseKeepalived(file, src string, w *warnings) []kaDirective {
	p := kaParser{file: file, toks: lexKeepalived(src), w: w}
	p.placeholders()
	return p.block(0)
}

type kaParser struct {
	file string
	toks []kaToken
	i    int
	w    *warnings
}

func (p *kaParser) pos(line int) Pos { return Pos{File: p.file, Line: line} }

// placeholders records a syntax error for each unexpanded placeholder: a
// template's ($VAR, ${VAR} of a shell or envsubst; {{ VAR }} of Jinja, Go
// or Mustache) or keepalived's own $NAME substitution, which the import
// does not expand. Such a file is a template, not a configuration: read
// as it stands, its instances would be dropped (no interface, no router
// id) and the site would hold nothing, which would pass for a successful
// import.
func (p *kaParser) placeholders() {
	for i, t := range p.toks {
		if t.quoted {
			continue
		}
		if strings.HasPrefix(t.text, "$") ||
			(p.isBrace(i, "{") && p.isBrace(i+1, "{") && p.toks[i+1].line == t.line) {
			text := t.text
			if text == "{" {
				text = "{{"
			} else if text == "$" && p.isBrace(i+1, "{") {
				text = "${"
			}
			p.w.syntax(p.pos(t.line), "unexpanded placeholder %q: expand the template (or keepalived's $NAME substitution), then import the configuration", text)
		}
	}
}

func (p *kaParser) isBrace(i int, b string) bool {
	return i < len(p.toks) && !p.toks[i].quoted && p.toks[i].text == b
}

// block parses statements until the closing brace of a block opened on
// line open (0: the top level, closed by the end of the file).
func (p *kaParser) block(open int) []kaDirective {
	var out []kaDirective
	for p.i < len(p.toks) {
		t := p.toks[p.i]
		switch {
		case p.isBrace(p.i, "}"):
			p.i++
			if open > 0 {
				return out
			}
			p.w.syntax(p.pos(t.line), "'}' without an open block")
			continue
		case p.isBrace(p.i, "{"):
			p.i++
			p.w.syntax(p.pos(t.line), "block without a keyword")
			p.block(t.line)
			continue
		}
		d := kaDirective{Name: t.text, Pos: p.pos(t.line)}
		p.i++
		for p.i < len(p.toks) && p.toks[p.i].line == t.line && !p.isBrace(p.i, "{") && !p.isBrace(p.i, "}") {
			d.Args = append(d.Args, p.toks[p.i].text)
			p.i++
		}
		// The opening brace may sit on the keyword's line or the next one.
		if p.isBrace(p.i, "{") && p.toks[p.i].line <= t.line+1 {
			open := p.toks[p.i].line
			p.i++
			d.HasBlock = true
			d.Block = p.block(open)
		}
		out = append(out, d)
	}
	if open > 0 {
		p.w.syntax(p.pos(open), "block opened here is never closed ('}' missing: is the file truncated?)")
	}
	return out
}
