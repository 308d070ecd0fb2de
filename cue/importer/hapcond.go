package importer

import (
	"fmt"
	"strconv"
	"strings"
)

// HAProxy 2.4+ reads conditional blocks (.if/.elif/.else/.endif) while it
// parses, so the lines of a branch not taken do not exist for it. Before
// these were read, the importer took every branch's lines: both a
// ".if feature(QUIC)" listener and its ".else" fallback, say. The
// importer now evaluates each condition as HAProxy would and keeps the
// taken branch only, naming the lines it skips.
//
// A condition can ask about the HAProxy that reads the file (its
// version, its build's features): the importer answers as the HAProxy
// gitgw is compared with answers, 2.6 as Debian 12 builds it (the peer of
// the labs and benchmarks), and says so at the line. A condition on the
// environment HAProxy starts with (defined, streq of a "${VAR}") cannot be
// answered from the file: like a template's placeholders, it is a syntax
// error asking for the configuration as HAProxy reads it.

// hapCondBuild is the HAProxy the conditions are answered for.
var hapCondBuild = struct {
	name     string
	version  [3]int
	features map[string]bool // "haproxy -vv", Feature list: +X true, -X false
	ssllib   string
	openssl  [3]int
}{
	name:    "HAProxy 2.6.12 as Debian 12 builds it",
	version: [3]int{2, 6, 12},
	features: featureList("-51DEGREES +ACCEPT4 +BACKTRACE -CLOSEFROM +CPU_AFFINITY +CRYPT_H -DEVICEATLAS +DL -ENGINE " +
		"+EPOLL -EVPORTS +GETADDRINFO -KQUEUE +LIBCRYPT +LINUX_SPLICE +LINUX_TPROXY +LUA -MEMORY_PROFILING +NETFILTER +NS " +
		"-OBSOLETE_LINKER +OPENSSL +OT -PCRE +PCRE2 +PCRE2_JIT -PCRE_JIT +POLL +PRCTL -PROCCTL +PROMEX -QUIC +RT +SLZ " +
		"-STATIC_PCRE -STATIC_PCRE2 +SYSTEMD +TFO +THREAD +THREAD_DUMP +TPROXY -WURFL -ZLIB"),
	ssllib:  "OpenSSL",
	openssl: [3]int{3, 0, 0},
}

func featureList(s string) map[string]bool {
	m := map[string]bool{}
	for _, f := range strings.Fields(s) {
		m[f[1:]] = f[0] == '+'
	}
	return m
}

// hapCondFrame is one open .if block.
type hapCondFrame struct {
	pos    Pos
	outer  bool // the block itself is read (every enclosing branch taken)
	taken  bool // a branch of this block was taken already
	active bool // the current branch is read
	skip   int  // first line of the current skipped branch, 0 if none
}

// hapConds follows the conditional blocks of one file.
type hapConds struct {
	stack []*hapCondFrame
}

// reading says whether lines are read at this point of the file.
func (c *hapConds) reading() bool {
	return len(c.stack) == 0 || c.stack[len(c.stack)-1].active
}

// line handles a line starting with '.', reporting whether it was a
// conditional directive (consumed). Errors are syntax errors, as HAProxy
// refuses to start on them.
func (c *hapConds) line(words []string, pos Pos, w *warnings) bool {
	top := func() *hapCondFrame {
		if len(c.stack) == 0 {
			w.syntax(pos, "%s without .if", words[0])
			return nil
		}
		return c.stack[len(c.stack)-1]
	}
	endSkip := func(f *hapCondFrame) {
		if f.skip > 0 && f.outer {
			w.add(Pos{File: pos.File, Line: f.skip}, "lines %d-%d: a branch not taken: skipped, as HAProxy skips them", f.skip, pos.Line)
		}
		f.skip = 0
	}
	switch words[0] {
	case ".if":
		f := &hapCondFrame{pos: pos, outer: c.reading()}
		if f.outer {
			v := c.eval(words, pos, w)
			f.active, f.taken = v, v
		}
		if !f.active {
			f.skip = pos.Line
		}
		c.stack = append(c.stack, f)
	case ".elif":
		f := top()
		if f == nil {
			return true
		}
		endSkip(f)
		f.active = false
		if f.outer && !f.taken {
			v := c.eval(words, pos, w)
			f.active, f.taken = v, v
		}
		if !f.active {
			f.skip = pos.Line
		}
	case ".else":
		f := top()
		if f == nil {
			return true
		}
		endSkip(f)
		f.active = f.outer && !f.taken
		f.taken = true
		if !f.active {
			f.skip = pos.Line
		}
	case ".endif":
		f := top()
		if f == nil {
			return true
		}
		endSkip(f)
		c.stack = c.stack[:len(c.stack)-1]
	case ".diag", ".notice", ".warning":
		if c.reading() {
			w.add(pos, "%s: a message HAProxy prints at start: not carried", words[0])
		}
	case ".alert":
		if c.reading() {
			w.syntax(pos, ".alert: HAProxy refuses to start here (%s)", strings.Join(words[1:], " "))
		}
	default:
		return false
	}
	return true
}

// end reports blocks left open at the end of the file.
func (c *hapConds) end(w *warnings) {
	for _, f := range c.stack {
		w.syntax(f.pos, ".if without .endif")
	}
}

// eval evaluates the condition of an .if or .elif line, warning which
// answer it took; a condition it cannot answer is a syntax error (and
// false, so that neither branch is read twice).
func (c *hapConds) eval(words []string, pos Pos, w *warnings) bool {
	cond := strings.Join(words[1:], " ")
	p := &hapCondParser{s: cond}
	v, err := p.expr()
	if err == nil {
		p.space()
		if p.i < len(p.s) {
			err = fmt.Errorf("unexpected %q", p.s[p.i:])
		}
	}
	if err != nil {
		w.syntax(pos, "%s %s: %v", words[0], cond, err)
		return false
	}
	if p.asked {
		w.add(pos, "%s %s: %v, as %s answers it", words[0], cond, v, hapCondBuild.name)
	}
	return v
}

// hapCondParser reads HAProxy's condition expressions: terms joined by
// && and ||, "!" and parentheses (HAProxy 2.5+).
type hapCondParser struct {
	s     string
	i     int
	depth int  // of "!" and parentheses, bounded: the file is input
	asked bool // the answer depends on the build
}

// maxCondDepth bounds the nesting of a condition (HAProxy's own parser
// stops far lower); a deeper one is an error, not a deep recursion.
const maxCondDepth = 64

func (p *hapCondParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *hapCondParser) expr() (bool, error) {
	v, err := p.and()
	if err != nil {
		return false, err
	}
	for p.space(); strings.HasPrefix(p.s[p.i:], "||"); p.space() {
		p.i += 2
		r, err := p.and()
		if err != nil {
			return false, err
		}
		v = v || r
	}
	return v, nil
}

func (p *hapCondParser) and() (bool, error) {
	v, err := p.unary()
	if err != nil {
		return false, err
	}
	for p.space(); strings.HasPrefix(p.s[p.i:], "&&"); p.space() {
		p.i += 2
		r, err := p.unary()
		if err != nil {
			return false, err
		}
		v = v && r
	}
	return v, nil
}

func (p *hapCondParser) unary() (bool, error) {
	if p.depth++; p.depth > maxCondDepth {
		return false, fmt.Errorf("nested more than %d deep", maxCondDepth)
	}
	defer func() { p.depth-- }()
	p.space()
	if p.i >= len(p.s) {
		return false, fmt.Errorf("a condition is missing")
	}
	switch p.s[p.i] {
	case '!':
		p.i++
		v, err := p.unary()
		return !v, err
	case '(':
		p.i++
		v, err := p.expr()
		if err != nil {
			return false, err
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ')' {
			return false, fmt.Errorf("missing ')'")
		}
		p.i++
		return v, nil
	}
	return p.term()
}

// term is a number, a string, or a predicate with arguments.
func (p *hapCondParser) term() (bool, error) {
	start := p.i
	for p.i < len(p.s) && !strings.ContainsRune(" \t()&|!", rune(p.s[p.i])) {
		p.i++
	}
	name := p.s[start:p.i]
	if p.i >= len(p.s) || p.s[p.i] != '(' {
		// A word: true unless empty or a number that is zero, as
		// HAProxy reads "0", "1" or an expanded variable.
		if strings.Contains(name, "${") {
			return false, fmt.Errorf("%s depends on the environment HAProxy starts with: expand it, then import the configuration", name)
		}
		if n, err := strconv.ParseInt(name, 10, 64); err == nil {
			return n != 0, nil
		}
		return name != "", nil
	}
	end := strings.IndexByte(p.s[p.i:], ')')
	if end < 0 {
		return false, fmt.Errorf("%s(: missing ')'", name)
	}
	var args []string
	for _, a := range strings.Split(p.s[p.i+1:p.i+end], ",") {
		args = append(args, strings.TrimSpace(a))
	}
	p.i += end + 1
	arg := func(n int) (string, error) {
		if len(args) != n {
			return "", fmt.Errorf("%s takes %d argument(s)", name, n)
		}
		for _, a := range args {
			if strings.Contains(a, "${") {
				return "", fmt.Errorf("%s(%s) depends on the environment HAProxy starts with: expand it, then import the configuration", name, strings.Join(args, ","))
			}
		}
		return args[0], nil
	}
	switch name {
	case "defined":
		return false, fmt.Errorf("defined(%s) depends on the environment HAProxy starts with: expand it, then import the configuration", strings.Join(args, ","))
	case "feature":
		a, err := arg(1)
		if err != nil {
			return false, err
		}
		p.asked = true
		return hapCondBuild.features[strings.ToUpper(a)], nil
	case "streq", "strneq":
		if _, err := arg(2); err != nil {
			return false, err
		}
		return (args[0] == args[1]) == (name == "streq"), nil
	case "version_atleast", "version_before", "openssl_version_atleast", "openssl_version_before":
		a, err := arg(1)
		if err != nil {
			return false, err
		}
		v, err := versionOf(a)
		if err != nil {
			return false, err
		}
		p.asked = true
		have := hapCondBuild.version
		if strings.HasPrefix(name, "openssl_") {
			have = hapCondBuild.openssl
		}
		return versionLess(have, v) == strings.HasSuffix(name, "_before"), nil
	case "ssllib_name_startswith":
		a, err := arg(1)
		if err != nil {
			return false, err
		}
		p.asked = true
		return strings.HasPrefix(hapCondBuild.ssllib, a), nil
	}
	return false, fmt.Errorf("unknown predicate %s()", name)
}

// versionOf reads "2.6", "2.6.12" or "2.6-dev3" (the suffix is ignored).
func versionOf(s string) ([3]int, error) {
	var v [3]int
	core, _, _ := strings.Cut(s, "-")
	parts := strings.Split(core, ".")
	if len(parts) > 3 {
		return v, fmt.Errorf("version %q", s)
	}
	for i, part := range parts {
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 {
			return v, fmt.Errorf("version %q", s)
		}
		v[i] = n
	}
	return v, nil
}

func versionLess(a, b [3]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}
