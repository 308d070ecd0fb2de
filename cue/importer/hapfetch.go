package importer

import (
	"fmt"
	"strconv"
	"strings"
)

// HAProxy's conditions as the site's rules: a rule's when is terms that
// must all hold, and alternatives are rules of their own (a deny, a use
// or a redirect repeated per alternative, next to each other, acts as the
// original: the first that holds acts, and they all do the same). A
// condition is thus brought to that form, a disjunction of conjunctions:
//
//   - a named ACL is the OR of its lines; lines that test the same thing
//     the same way are one term whose patterns are alternatives, lines
//     that test different things are alternatives of their own;
//   - !ACL is the AND of its lines negated;
//   - terms next to each other are ANDed (alternatives multiply out);
//   - `unless C` is `if !C`, negated the same way;
//   - the predefined ACLs (TRUE, METH_GET, HTTP_URL_SLASH, …) are the
//     criteria HAProxy's configuration manual gives for them, looked up
//     only when the section has no ACL of that name, as HAProxy does.
//
// maxAlternatives bounds how many rules one line may become: a condition
// whose expansion is larger is refused rather than written out.
const maxAlternatives = 64

// dnf is a condition as alternatives of ANDed terms: nil (no
// alternative) never holds; one empty alternative always does.
type dnf [][]httpCond

// and is the conjunction of d and e.
func (d dnf) and(e dnf) (dnf, string) {
	if len(d)*len(e) > maxAlternatives {
		return nil, fmt.Sprintf("a condition of more than %d alternatives once its ACLs are expanded", maxAlternatives)
	}
	var out dnf
	for _, a := range d {
		for _, b := range e {
			out = append(out, append(append([]httpCond(nil), a...), b...))
		}
	}
	return out, ""
}

// not is the negation of d: each alternative negated is the OR of its
// terms negated, and those are ANDed.
func (d dnf) not() (dnf, string) {
	out := dnf{{}}
	for _, a := range d {
		var na dnf
		for _, c := range a {
			c.not = !c.not
			na = append(na, []httpCond{c})
		}
		var why string
		if out, why = out.and(na); why != "" {
			return nil, why
		}
	}
	return out, ""
}

// httpCondRules reads `[if|unless COND]`: one rule per alternative, each
// with its terms ANDed. Empty: the action never applies (FALSE).
func (p *hapProxy) httpCondRules(ws []string) ([]httpRule, string) {
	if len(ws) == 0 {
		return []httpRule{{}}, ""
	}
	unless := ws[0] == "unless"
	if ws[0] != "if" && !unless {
		return nil, "unexpected " + ws[0]
	}
	var all dnf
	cur, terms := dnf{{}}, 0
	toks := ws[1:]
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t == "||" || t == "or" {
			if terms == 0 {
				return nil, "an empty alternative"
			}
			all, cur, terms = append(all, cur...), dnf{{}}, 0
			continue
		}
		neg := false
		if t == "!" {
			neg = true
			i++
			if i >= len(toks) {
				return nil, "a lone !"
			}
			t = toks[i]
		} else if strings.HasPrefix(t, "!") {
			neg, t = true, t[1:]
		}
		var d dnf
		var why string
		if t == "{" || strings.HasPrefix(t, "{") {
			j := i
			for j < len(toks) && !strings.HasSuffix(toks[j], "}") {
				j++
			}
			if j >= len(toks) {
				return nil, "an unclosed {"
			}
			text := strings.TrimPrefix(strings.Join(toks[i:j+1], " "), "!")
			words := strings.Fields(strings.TrimSuffix(strings.TrimPrefix(text, "{"), "}"))
			var c httpCond
			c, why = p.criterion(words)
			d = dnf{{c}}
			i = j
		} else {
			d, why = p.httpACL(t)
		}
		if why == "" && neg {
			d, why = d.not()
		}
		if why == "" {
			cur, why = cur.and(d)
		}
		if why != "" {
			return nil, why
		}
		terms++
	}
	if terms == 0 {
		return nil, "an empty alternative"
	}
	all = append(all, cur...)
	if len(all) > maxAlternatives {
		return nil, fmt.Sprintf("a condition of more than %d alternatives once its ACLs are expanded", maxAlternatives)
	}
	if unless {
		var why string
		if all, why = all.not(); why != "" {
			return nil, why
		}
	}
	out := make([]httpRule, 0, len(all))
	for _, a := range all {
		out = append(out, httpRule{when: a})
	}
	return out, ""
}

// httpACL is a named ACL as alternatives: its lines grouped by what they
// test (subject, header, match, case), each group one term whose patterns
// are alternatives; a name the section does not define may be a
// predefined ACL.
func (p *hapProxy) httpACL(name string) (dnf, string) {
	a := p.acls[name]
	if a == nil {
		return predefinedACL(name)
	}
	a.used = true
	var out dnf
	for _, l := range a.lines {
		c, why := p.criterion(l.Words[2:])
		if why != "" {
			return nil, fmt.Sprintf("ACL %s: %s", name, why)
		}
		merged := false
		for _, alt := range out {
			o := &alt[0]
			if c.subject == o.subject && c.header == o.header && c.userlist == o.userlist && c.match == o.match && c.ignoreCase == o.ignoreCase && c.not == o.not {
				o.values = append(o.values, c.values...)
				merged = true
				break
			}
		}
		if !merged {
			out = append(out, []httpCond{c})
		}
	}
	return out, ""
}

// hapPredefined are HAProxy 2.6's predefined ACLs (configuration manual,
// 7.4) as the criteria it defines them by; TRUE and FALSE are nil
// (handled by name). HTTP (req.proto_http) holds for every request gitgw's
// HTTP mode evaluates, which it reads as HTTP; HTTP_2.0 never holds, as
// gitgw speaks HTTP/1.x to clients (TLS offers http/1.1 only).
var hapPredefined = map[string][]string{
	"HTTP_1.0": {"req.ver", "1.0"}, "HTTP_1.1": {"req.ver", "1.1"},
	"HTTP_CONTENT":   {"req.hdr_val(content-length)", "gt", "0"},
	"HTTP_URL_ABS":   {"url_reg", "^[^/:]*://"},
	"HTTP_URL_SLASH": {"url_beg", "/"},
	"HTTP_URL_STAR":  {"url", "*"},
	"LOCALHOST":      {"src", "127.0.0.1/8", "::1"},
	"METH_CONNECT":   {"method", "CONNECT"}, "METH_DELETE": {"method", "DELETE"},
	"METH_GET": {"method", "GET", "HEAD"}, "METH_HEAD": {"method", "HEAD"},
	"METH_OPTIONS": {"method", "OPTIONS"}, "METH_POST": {"method", "POST"},
	"METH_PUT": {"method", "PUT"}, "METH_TRACE": {"method", "TRACE"},
}

// predefinedACL is a predefined ACL as alternatives.
func predefinedACL(name string) (dnf, string) {
	switch name {
	case "TRUE", "HTTP":
		return dnf{{}}, ""
	case "FALSE", "HTTP_2.0":
		return nil, ""
	}
	ws, ok := hapPredefined[name]
	if !ok {
		return nil, fmt.Sprintf("the ACL %s (not defined in this section, or predefined)", name)
	}
	c, why := httpCriterion(ws)
	if why != "" {
		return nil, fmt.Sprintf("the predefined ACL %s: %s", name, why)
	}
	return dnf{{c}}, ""
}

// hapNumericFetches are the integer fetches HTTP mode maps, by subject.
var hapNumericFetches = map[string]string{
	"src_port": "source_port",
	"hdr_cnt":  "header_count", "req.hdr_cnt": "header_count",
	"hdr_val": "header_value", "req.hdr_val": "header_value",
}

// numericCriterion reads an integer fetch's criterion: `FETCH [-m int]
// [-i] [--] PATTERNS`, the patterns HAProxy's integers, ranges and operators
// (numericPatterns). ok false: not such a fetch.
func numericCriterion(fetch, arg string, rest []string) (c httpCond, why string, ok bool) {
	subj, ok := hapNumericFetches[fetch]
	if !ok {
		if fetch == "req.ver" && arg == "" {
			// As the predefined HTTP_1.x name it: exact strings, no flag.
			for _, w := range rest {
				if strings.HasPrefix(w, "-") {
					return c, "req.ver " + w, true
				}
			}
			if len(rest) == 0 {
				return c, "req.ver without a pattern", true
			}
			return httpCond{subject: "version", match: "exact", values: rest}, "", true
		}
		return c, "", false
	}
	full := fetch
	if arg != "" {
		full += "(" + arg + ")"
	}
	c = httpCond{subject: subj}
	if subj == "source_port" {
		if arg != "" {
			return c, "the fetch " + full, true
		}
	} else {
		if arg == "" || strings.Contains(arg, ",") || !headerNameRE.MatchString(arg) {
			return c, "the fetch " + full, true
		}
		c.header = arg
	}
	for len(rest) > 0 && strings.HasPrefix(rest[0], "-") && !isIntPattern(rest[0]) {
		switch {
		case rest[0] == "--":
			rest = rest[1:]
		case rest[0] == "-m" && len(rest) > 1 && rest[1] == "int":
			rest = rest[2:]
			continue
		case rest[0] == "-i": // accepted, and meaningless, on integers
			rest = rest[1:]
			continue
		default:
			return c, full + " " + rest[0], true
		}
		break
	}
	vals, why := numericPatterns(rest)
	if why != "" {
		return c, full + " " + why, true
	}
	c.values = vals
	return c, "", true
}

// isIntPattern says whether a word starting with '-' is a pattern (HAProxy
// reads "-5" as the range up to 5) rather than a flag.
func isIntPattern(s string) bool {
	return len(s) > 1 && s[1] >= '0' && s[1] <= '9'
}

// numericPatterns reads HAProxy's integer patterns (acl.c, pat_parse_int)
// as the site's ranges: an operator (eq, ge, gt, le, lt) applies to the
// numbers after it; a word with ':' or '-' is a range as written, split
// at the first of them, whatever the operator ("-5" is up to 5, as
// HAProxy reads it); gt N is "N+1:", lt N ":N-1".
func numericPatterns(ws []string) ([]string, string) {
	op := "eq"
	var out []string
	num := func(s string) (int64, bool) {
		if s == "" || strings.TrimLeft(s, "0123456789") != "" {
			if strings.HasPrefix(s, "-") && len(s) > 1 && strings.TrimLeft(s[1:], "0123456789") == "" {
				n, err := strconv.ParseInt(s, 10, 64)
				return n, err == nil
			}
			return 0, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil
	}
	for _, w := range ws {
		switch w {
		case "eq", "ge", "gt", "le", "lt":
			op = w
			continue
		}
		if k := strings.IndexAny(w, ":-"); k >= 0 {
			lo, hi := w[:k], w[k+1:]
			switch {
			case k == 0 && hi != "":
				n, ok := num(hi)
				if !ok {
					return nil, "pattern " + w
				}
				out = append(out, ":"+strconv.FormatInt(n, 10))
			case hi == "":
				n, ok := num(lo)
				if !ok {
					return nil, "pattern " + w
				}
				out = append(out, strconv.FormatInt(n, 10)+":")
			default:
				l, ok1 := num(lo)
				h, ok2 := num(hi)
				if !ok1 || !ok2 || l > h {
					return nil, "pattern " + w
				}
				out = append(out, strconv.FormatInt(l, 10)+":"+strconv.FormatInt(h, 10))
			}
			continue
		}
		n, ok := num(w)
		if !ok {
			return nil, "pattern " + w
		}
		s := strconv.FormatInt(n, 10)
		switch op {
		case "eq":
			out = append(out, s)
		case "ge":
			out = append(out, s+":")
		case "gt":
			out = append(out, strconv.FormatInt(n+1, 10)+":")
		case "le":
			out = append(out, ":"+s)
		case "lt":
			out = append(out, ":"+strconv.FormatInt(n-1, 10))
		}
	}
	if len(out) == 0 {
		return nil, "without a pattern"
	}
	return out, ""
}
