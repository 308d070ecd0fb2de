package importer

import (
	"strconv"
	"strings"
)

// hapLine is one configuration line of haproxy.cfg, split into words.
type hapLine struct {
	Words []string
	Pos   Pos
}

// hapSection is a section of haproxy.cfg: its keyword (global, defaults,
// frontend, backend, listen, …), its arguments and its lines.
type hapSection struct {
	Kind  string
	Args  []string
	Pos   Pos
	Lines []hapLine
}

// Name is the section's name (its first argument), "" if none.
func (s *hapSection) Name() string {
	if len(s.Args) > 0 {
		return s.Args[0]
	}
	return ""
}

// hapSectionKinds are the keywords that open a section.
var hapSectionKinds = map[string]bool{
	"global": true, "defaults": true, "frontend": true, "backend": true, "listen": true,
	"userlist": true, "peers": true, "resolvers": true, "mailers": true, "program": true,
	"http-errors": true, "ring": true, "cache": true, "fcgi-app": true, "log-forward": true,
	"crt-store": true, "traces": true,
}

// splitHAProxyLine splits one line into words as HAProxy does: '#' starts a
// comment outside quotes, double quotes group words and take escapes,
// single quotes group words literally, and a backslash escapes a space, a
// quote, '#' or '\', or writes \r \n \t \xHH.
func splitHAProxyLine(line string) []string {
	words, _ := splitHAProxyLineQ(line)
	return words
}

// splitHAProxyLineQ is splitHAProxyLine that also says whether a quote was
// left open (HAProxy refuses such a line).
func splitHAProxyLineQ(line string) ([]string, bool) {
	var words []string
	var cur strings.Builder
	inWord := false
	quote := byte(0)
	flush := func() {
		if inWord {
			words = append(words, cur.String())
		}
		cur.Reset()
		inWord = false
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote == '\'' && c != '\'':
			cur.WriteByte(c)
		case c == '\\' && i+1 < len(line) && quote != '\'':
			i++
			inWord = true
			switch n := line[i]; n {
			case 'r':
				cur.WriteByte('\r')
			case 'n':
				cur.WriteByte('\n')
			case 't':
				cur.WriteByte('\t')
			case 'x':
				if i+2 < len(line) {
					if v, err := strconv.ParseUint(line[i+1:i+3], 16, 8); err == nil {
						cur.WriteByte(byte(v))
						i += 2
						break
					}
				}
				cur.WriteString(`\x`)
			case ' ', '\\', '#', '"', '\'', '$':
				cur.WriteByte(n)
			default:
				// HAProxy leaves other combinations as they are (a
				// regexp's "\+", "\1").
				cur.WriteByte('\\')
				cur.WriteByte(n)
			}
		case c == '"' || c == '\'':
			inWord = true
			if quote == 0 {
				quote = c
			} else if quote == c {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case quote != 0:
			cur.WriteByte(c)
		case c == '#':
			flush()
			return words, false
		case c == ' ' || c == '\t' || c == '\r':
			flush()
		default:
			inWord = true
			cur.WriteByte(c)
		}
	}
	flush()
	return words, quote != 0
}

// parseHAProxy splits an haproxy.cfg into sections. Lines before the first
// section and unterminated quotes are syntax errors, as HAProxy has them.
func parseHAProxy(file, src string, w *warnings) []*hapSection {
	var out []*hapSection
	var cur *hapSection
	var conds hapConds
	for i, raw := range strings.Split(src, "\n") {
		words, open := splitHAProxyLineQ(raw)
		pos := Pos{File: file, Line: i + 1}
		if open {
			w.syntax(pos, "unterminated quote")
		}
		if len(words) == 0 {
			continue
		}
		if strings.HasPrefix(words[0], ".") && conds.line(words, pos, w) {
			continue
		}
		if !conds.reading() {
			continue
		}
		if hapSectionKinds[words[0]] {
			cur = &hapSection{Kind: words[0], Args: words[1:], Pos: pos}
			out = append(out, cur)
			continue
		}
		if cur == nil {
			w.syntax(pos, "%q outside of any section", words[0])
			continue
		}
		cur.Lines = append(cur.Lines, hapLine{Words: words, Pos: pos})
	}
	conds.end(w)
	if lines := strings.Split(src, "\n"); lines[len(lines)-1] != "" {
		// HAProxy 2.6 refuses it ("Missing LF on last line, file might
		// have been truncated"): a cut file must not import as a short one.
		w.syntax(Pos{File: file, Line: len(lines)}, "no newline at the end of the last line: HAProxy refuses the file as possibly truncated")
	}
	return out
}
