package importer

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// HAProxy's `tcp-request connection` rules on the client's source map to the
// service's source block: `reject if !{ src … }` (or `accept if { src … }`
// then an unconditional `reject`) is allow, `reject if { src … }` is deny,
// and a reject on a tracked conn_cur or conn_rate is a per-source limit.
// Anything else that turns connections away stays refused (source-rules):
// a rule is mapped only when the site does exactly what HAProxy does.

// sourceRules is a service's source block.
type sourceRules struct {
	allow, deny []string // CIDRs
	maxConn     opt[int]
	rate        opt[string] // "N/PERIOD"
	// rateCounted: the rate's counter is tracked before the reject, so
	// HAProxy counts the refused connections too.
	rateCounted bool
}

// hapACL is a named ACL of a proxy: the union of its lines.
type hapACL struct {
	terms []hapTerm
	lines []hapLine
	used  bool
}

// hapTerm is one criterion: a source match or a limit on a stick counter.
type hapTerm struct {
	neg bool
	// kind: "src" (prefixes), "conn_cur" or "conn_rate" (op, n), else
	// "" with why: what the site cannot say.
	kind     string
	prefixes []string
	op       string
	n        int
	// slot: the sc slot of an scN_ or sc_…(N) fetch; -1 for src_…, which
	// looks the source up in the proxy's own table.
	slot int
	why  string
}

// hapTable is a proxy's stick-table as the limits need it.
type hapTable struct {
	typ      string
	connCur  bool
	ratePer  opt[time.Duration]
	pos      Pos
	parseErr string
}

// maxPatternFile bounds an `src -f` file read at import time.
const maxPatternFile = 4 << 20

var scFetchRE = regexp.MustCompile(`^(?:sc([0-2])_(conn_cur|conn_rate)|sc_(conn_cur|conn_rate)\(([0-2])\)|src_(conn_cur|conn_rate))$`)

// criterion reads an ACL's words after its name, or a brace term's words:
// a fetch, flags, patterns. dir is where `-f` files are relative to.
func criterion(ws []string, dir string) hapTerm {
	if len(ws) == 0 {
		return hapTerm{why: "an empty condition"}
	}
	fetch, rest := ws[0], ws[1:]
	if fetch == "src" {
		t := hapTerm{kind: "src"}
		for i := 0; i < len(rest); i++ {
			switch w := rest[i]; {
			case w == "-f" && i+1 < len(rest):
				i++
				ps, err := patternFile(rest[i], dir)
				if err != nil {
					return hapTerm{why: err.Error()}
				}
				t.prefixes = append(t.prefixes, ps...)
			case w == "--":
			case w == "-m" && i+1 < len(rest) && rest[i+1] == "ip":
				i++
			case w == "-n":
			case strings.HasPrefix(w, "-"):
				return hapTerm{why: fmt.Sprintf("src flag %s", w)}
			default:
				p, err := srcPattern(w)
				if err != nil {
					return hapTerm{why: err.Error()}
				}
				t.prefixes = append(t.prefixes, p)
			}
		}
		if len(t.prefixes) == 0 {
			// HAProxy's ACL without patterns matches nothing.
			return hapTerm{why: "src without patterns"}
		}
		return t
	}
	m := scFetchRE.FindStringSubmatch(fetch)
	if m == nil {
		return hapTerm{why: fmt.Sprintf("the fetch %s (only src, conn_cur and conn_rate are mapped)", fetch)}
	}
	t := hapTerm{slot: -1}
	switch {
	case m[1] != "":
		t.slot, _ = strconv.Atoi(m[1])
		t.kind = m[2]
	case m[3] != "":
		t.slot, _ = strconv.Atoi(m[4])
		t.kind = m[3]
	default:
		t.kind = m[5]
	}
	if len(rest) != 2 || !slices.Contains([]string{"gt", "ge"}, rest[0]) {
		return hapTerm{why: fmt.Sprintf("%s %s (only gt N and ge N are mapped)", fetch, strings.Join(rest, " "))}
	}
	n, err := integer(rest[1], 0, 1<<30)
	if err != nil {
		return hapTerm{why: fmt.Sprintf("%s %s: %v", fetch, rest[0], err)}
	}
	t.op, t.n = rest[0], n
	return t
}

// srcPattern is a src ACL pattern as a CIDR: an address, ADDR/LEN or
// ADDR/NETMASK. HAProxy resolves host names at start; the site cannot.
func srcPattern(s string) (string, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()).String(), nil
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked().String(), nil
	}
	if a, m, ok := strings.Cut(s, "/"); ok {
		addr, err1 := netip.ParseAddr(a)
		mask, err2 := netip.ParseAddr(m)
		if err1 == nil && err2 == nil && addr.Is4() && mask.Is4() {
			b := mask.As4()
			v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
			ones := 0
			for v&(1<<31) != 0 {
				ones, v = ones+1, v<<1
			}
			if v == 0 {
				return netip.PrefixFrom(addr, ones).Masked().String(), nil
			}
		}
	}
	return "", fmt.Errorf("src pattern %q is no address or network (host names are resolved by HAProxy at start)", s)
}

// patternFile reads an `src -f` file: one address or network a line,
// blank lines and lines starting with # skipped, as HAProxy reads it.
func patternFile(name, dir string) ([]string, error) {
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, name)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("src -f %s: %w", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPatternFile+1))
	if err != nil {
		return nil, fmt.Errorf("src -f %s: %w", name, err)
	}
	if len(b) > maxPatternFile {
		return nil, fmt.Errorf("src -f %s: larger than %d bytes", name, maxPatternFile)
	}
	var out []string
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p, err := srcPattern(line)
		if err != nil {
			return nil, fmt.Errorf("src -f %s:%d: %w", name, i+1, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// acl reads an `acl NAME criterion` line. Lines of one name are ORed: they
// stay mappable only while they are all src matches.
func (p *hapProxy) acl(l hapLine, w *warnings) {
	if len(l.Words) < 3 || p.kind == "defaults" {
		hapNotMapped(l, w)
		return
	}
	if p.acls == nil {
		p.acls = map[string]*hapACL{}
	}
	name := l.Words[1]
	t := criterion(l.Words[2:], filepath.Dir(l.Pos.File))
	a := p.acls[name]
	if a == nil {
		a = &hapACL{}
		p.acls[name] = a
	}
	a.terms, a.lines = append(a.terms, t), append(a.lines, l)
}

// term is an ACL or brace term as one criterion (several lines of a src
// ACL are one src term).
func (p *hapProxy) term(name string) hapTerm {
	a := p.acls[name]
	if a == nil {
		return hapTerm{why: fmt.Sprintf("the ACL %s (not defined in this section, or predefined)", name)}
	}
	a.used = true
	if len(a.terms) == 1 {
		return a.terms[0]
	}
	out := hapTerm{kind: "src"}
	for _, t := range a.terms {
		if t.kind != "src" {
			return hapTerm{why: fmt.Sprintf("the ACL %s of several lines that are not all src", name)}
		}
		out.prefixes = append(out.prefixes, t.prefixes...)
	}
	return out
}

// condition reads `if|unless TERM`: one term, no and/or.
func (p *hapProxy) condition(ws []string, dir string) hapTerm {
	if len(ws) == 0 || (ws[0] != "if" && ws[0] != "unless") {
		return hapTerm{why: "a condition that is neither if nor unless"}
	}
	neg := ws[0] == "unless"
	rest := ws[1:]
	if len(rest) > 0 && rest[0] == "!" {
		neg, rest = !neg, rest[1:]
	} else if len(rest) > 0 && strings.HasPrefix(rest[0], "!") {
		neg = !neg
		rest = append([]string{rest[0][1:]}, rest[1:]...)
	}
	var t hapTerm
	switch {
	case len(rest) >= 3 && rest[0] == "{" && rest[len(rest)-1] == "}":
		inner := rest[1 : len(rest)-1]
		if slices.ContainsFunc(inner, func(s string) bool { return s == "{" || s == "}" }) {
			return hapTerm{why: "a condition of several terms (and, or)"}
		}
		t = criterion(inner, dir)
	case len(rest) == 1 && !strings.ContainsAny(rest[0], "{}"):
		t = p.term(rest[0])
	default:
		return hapTerm{why: "a condition of several terms (and, or)"}
	}
	if neg {
		t.neg = !t.neg
	}
	return t
}

// stickTable reads a stick-table line's type and stored counters.
func (p *hapProxy) stickTable(l hapLine) {
	t := &hapTable{pos: l.Pos}
	ws := l.Words
	for i := 1; i+1 < len(ws); i++ {
		switch ws[i] {
		case "type":
			t.typ = ws[i+1]
		case "store":
			for _, s := range strings.Split(ws[i+1], ",") {
				switch {
				case s == "conn_cur":
					t.connCur = true
				case strings.HasPrefix(s, "conn_rate(") && strings.HasSuffix(s, ")"):
					d, err := hapTime(strings.TrimSuffix(strings.TrimPrefix(s, "conn_rate("), ")"))
					if err != nil || d <= 0 {
						t.parseErr = fmt.Sprintf("store %s: not a period", s)
					} else {
						t.ratePer = some(d)
					}
				}
			}
		}
	}
	p.table = t
}

// ratePeriod writes a period in the schema's single-unit form.
func ratePeriod(d time.Duration) (string, bool) {
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if d%u.d == 0 {
			switch n := d / u.d; {
			case n == 1 && u.name != "ms":
				return u.name, true
			default:
				return fmt.Sprintf("%d%s", n, u.name), true
			}
		}
	}
	return "", false
}

// sourceAction: a tcp-request connection action that turns connections
// away, counts them or decides (accept) which later rules apply; these are
// mapped together in order. Others (expect-proxy, set-var, …) are dropped
// by name, as before.
func sourceAction(a string) bool {
	return slices.Contains([]string{"reject", "accept", "silent-drop", "deny", "tarpit", "auth"}, a) ||
		strings.HasPrefix(a, "track-sc") || strings.HasPrefix(a, "sc-")
}

// sourceRules maps a frontend's (or listen's) tcp-request connection rules,
// in their order, to the service's source block; needs are what keeps
// them from mapping exactly.
func (p *hapProxy) sourceRules(w *warnings) (*sourceRules, []need) {
	if len(p.connRules) == 0 {
		return nil, nil
	}
	var ns []need
	refuse := func(l hapLine, format string, args ...any) {
		ns = append(ns, needs(l.Pos, FeatSourceRules, "%s (%s)", strings.Join(l.Words, " "), fmt.Sprintf(format, args...)))
	}
	src := &sourceRules{}
	tracked := map[int]bool{}
	var allowSet, accepted bool
	var accepts []string
	var acceptLines, trackLines []hapLine
	done := false
	for _, l := range p.connRules {
		ws := l.Words[2:]
		if done {
			w.add(l.Pos, "%s: never reached (an unconditional reject comes before it): not imported", strings.Join(l.Words, " "))
			continue
		}
		if len(ws) == 0 {
			refuse(l, "no action")
			continue
		}
		action, cond := ws[0], ws[1:]
		switch {
		case strings.HasPrefix(action, "track-sc"):
			slot, err := strconv.Atoi(strings.TrimPrefix(action, "track-sc"))
			switch {
			case err != nil || slot < 0 || slot > 2:
				refuse(l, "the tracker %s", action)
			case len(cond) != 1 || cond[0] != "src":
				refuse(l, "tracking by something else than src, a condition or another table")
			case accepted:
				refuse(l, "after an accept: the accepted connections are not counted")
			case p.table == nil:
				refuse(l, "no stick-table in %s %s", p.kind, p.name)
			case p.table.typ != "ip" && p.table.typ != "ipv6":
				refuse(l, "a stick-table of type %s", p.table.typ)
			default:
				tracked[slot] = true
				trackLines = append(trackLines, l)
			}
			continue
		case action == "accept":
			t := p.condition(cond, filepath.Dir(l.Pos.File))
			if t.why != "" || t.kind != "src" || t.neg {
				refuse(l, "an accept on something else than a source match: %s", termWhy(t))
				continue
			}
			accepted = true
			accepts = append(accepts, t.prefixes...)
			acceptLines = append(acceptLines, l)
			continue
		case action != "reject":
			refuse(l, "the action %s", action)
			continue
		}
		if len(cond) == 0 {
			if !accepted {
				refuse(l, "rejects every connection")
				continue
			}
			if allowSet {
				refuse(l, "an allow list from a reject and another from accepts: HAProxy admits their intersection")
				continue
			}
			src.allow, allowSet, done = accepts, true, true
			continue
		}
		if accepted {
			refuse(l, "a reject after an accept applies only to the sources not accepted")
			continue
		}
		t := p.condition(cond, filepath.Dir(l.Pos.File))
		switch {
		case t.why != "":
			refuse(l, "%s", t.why)
		case t.kind == "src" && !t.neg:
			src.deny = append(src.deny, t.prefixes...)
		case t.kind == "src":
			if allowSet {
				refuse(l, "a second allow list: HAProxy admits the intersection")
				continue
			}
			src.allow, allowSet = t.prefixes, true
		case t.neg:
			refuse(l, "a negated limit")
		default:
			if why := p.limit(t, tracked, src); why != "" {
				refuse(l, "%s", why)
			}
		}
	}
	if len(ns) > 0 {
		return nil, ns
	}
	if accepted && !done {
		for _, l := range acceptLines {
			w.add(l.Pos, "%s: not mapped (no reject follows it, so it changes nothing gitgw does)", strings.Join(l.Words, " "))
		}
	}
	if !src.maxConn.ok && !src.rate.ok {
		for _, l := range trackLines {
			w.add(l.Pos, "%s: not mapped (no rule gitgw maps uses its counters)", strings.Join(l.Words, " "))
		}
	}
	if src.maxConn.ok || src.rate.ok {
		for _, b := range p.binds {
			if p.table.typ == "ip" && strings.HasPrefix(b, "[") {
				w.add(p.table.pos, "stick-table type ip: HAProxy tracks IPv4 sources only, so IPv6 clients of %s were not limited; gitgw limits every source", b)
				break
			}
		}
	}
	if src.rate.ok && src.rateCounted {
		// HAProxy: "Whether connections are accepted or rejected has no
		// effect on their measurement" (conn_rate); tracked before the
		// reject, refused connections count.
		w.add(p.table.pos, "conn_rate: tracked before the reject, HAProxy counts refused connections too, so a source that keeps above the rate stays refused; gitgw counts admitted connections (a token bucket), so %s still passes", src.rate.v)
	}
	return src, nil
}

func termWhy(t hapTerm) string {
	if t.why != "" {
		return t.why
	}
	if t.neg {
		return "a negation"
	}
	return t.kind
}

// limit maps a reject on conn_cur or conn_rate. HAProxy's counters include
// the current connection once it is tracked (track-sc before the rule);
// src_ fetches before any tracking see only the other connections.
func (p *hapProxy) limit(t hapTerm, tracked map[int]bool, src *sourceRules) string {
	if p.table == nil {
		return "no stick-table in this section"
	}
	if p.table.parseErr != "" {
		return p.table.parseErr
	}
	var counted bool // the counter includes this connection
	if t.slot >= 0 {
		if !tracked[t.slot] {
			return fmt.Sprintf("sc%d is not tracked before this rule, so HAProxy never matches it", t.slot)
		}
		counted = true
	} else {
		counted = len(tracked) > 0
		if !counted && !slices.ContainsFunc(p.connRules, func(l hapLine) bool {
			return len(l.Words) > 2 && strings.HasPrefix(l.Words[2], "track-sc")
		}) {
			return "nothing tracks sources into the table, so HAProxy never matches it"
		}
	}
	// Admitted: count (with the current connection when counted) <= n for
	// gt, < n for ge.
	lim := t.n
	if t.op == "ge" {
		lim--
	}
	if !counted {
		lim++
	}
	if lim < 1 {
		return "admits no connection"
	}
	switch t.kind {
	case "conn_cur":
		if !p.table.connCur {
			return "the stick-table stores no conn_cur"
		}
		if !src.maxConn.ok || lim < src.maxConn.v {
			src.maxConn = some(lim)
		}
	case "conn_rate":
		if !p.table.ratePer.ok {
			return "the stick-table stores no conn_rate"
		}
		per, ok := ratePeriod(p.table.ratePer.v)
		if !ok || lim > 999999 {
			return fmt.Sprintf("a rate of %d per %v the schema cannot say", lim, p.table.ratePer.v)
		}
		// One table, one period: of two rules the lower count applies.
		if prev, _, _ := strings.Cut(src.rate.v, "/"); src.rate.ok {
			if n, _ := strconv.Atoi(prev); n < lim {
				lim = n
			}
		}
		src.rate = some(fmt.Sprintf("%d/%s", lim, per))
		src.rateCounted = src.rateCounted || counted
	}
	return ""
}

// unusedACLs warns about each line of the ACLs no mapped rule used.
func (p *hapProxy) unusedACLs(w *warnings) {
	for _, a := range p.acls {
		if !a.used {
			for _, l := range a.lines {
				hapNotMapped(l, w)
			}
		}
	}
}
