package importer

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"time"
)

// HAProxy 1.x's request filters in HTTP mode: reqsetbe, reqdeny,
// reqtarpit, reqallow, reqpass (and their case-insensitive -i forms),
// block, http-request tarpit, and the stats page a proxy answers itself.
//
// Each filter becomes a rule on the request's lines (the site's line
// subject: the request line and each header line, any matching), placed
// where HAProxy 1.3.8 to 2.0 apply it in a proxy: block (moved before
// every http-request rule), http-request rules, then the filters in order
// (a reqdeny or reqtarpit that matches stops the request; a reqsetbe that
// matches switches the backend once and the filters after it still run),
// the stats page, redirect rules, and use_backend (skipped once a
// reqsetbe switched). In the site's first-match list that is: blocks,
// http-request rules, the deny and tarpit filters, the stats page,
// redirects, the reqsetbe uses, the use_backend uses. A reqallow that
// matches turns off the deny and tarpit filters after it: each of those
// gets the allow's line condition negated. reqpass sets no verdict in
// those versions (the filters after it see every line), so it is imported
// as nothing, said at its line. HAProxy 1.2 to 1.3.7 applied the filters
// a line at a time instead; the importer follows the later versions.
// Not kept exactly: a tarpit filter after a reqsetbe that matched holds
// for this proxy's tarpit timeout where HAProxy takes the new backend's;
// a reqrep or reqdel before the filters is warned (gitgw's filters see
// the lines as sent).

// reqFilterAction is what a request filter keyword does, its "i" form
// included.
var reqFilterAction = map[string]string{
	"reqsetbe": "setbe", "reqisetbe": "setbe", "reqdeny": "deny", "reqideny": "deny",
	"reqtarpit": "tarpit", "reqitarpit": "tarpit", "reqallow": "allow", "reqiallow": "allow",
	"reqpass": "pass", "reqipass": "pass",
}

// isReqFilter says whether a line is a request filter or block: mapped
// with the section's HTTP rules.
func isReqFilter(kw string) bool {
	_, ok := reqFilterAction[kw]
	return ok || kw == "block"
}

// reqFilter records a request filter or block line of a frontend, listen
// or backend section, in order with its other routing lines.
func (p *hapProxy) reqFilter(l hapLine, w *warnings) {
	if p.kind == "defaults" {
		w.add(l.Pos, "%q: not mapped (HAProxy refuses it in a defaults section)", strings.Join(l.Words, " "))
		return
	}
	if reqFilterAction[l.Words[0]] == "pass" {
		w.add(l.Pos, "%q: imported as nothing: in HAProxy 1.3.8 to 2.0 a reqpass sets no verdict and the filters after it see every line (HAProxy 1.2 spared its lines from the later filters)", strings.Join(l.Words, " "))
		return
	}
	h := p.httpState()
	h.routes = append(h.routes, l)
}

// reqFilterSet is what a section's filters make, by place in the
// first-match list.
type reqFilterSet struct {
	blocks   []httpRule // block: before every http-request rule
	verdicts []httpRule // reqdeny, reqtarpit: after the http-request rules
	setbes   []httpRule // reqsetbe: after the redirects, before use_backend
	allows   []httpCond // the reqallow lines read so far, negated
}

// reqFilterRule maps one filter or block line into set; the reason is
// why it cannot be (the line is then refused).
func (p *hapProxy) reqFilterRule(l hapLine, set *reqFilterSet, w *warnings) string {
	ws := l.Words
	if ws[0] == "block" {
		if len(ws) < 2 {
			return "block without if|unless COND (HAProxy refuses it)"
		}
		rs, why := p.httpCondRules(ws[1:])
		if why != "" {
			return why
		}
		for _, r := range rs {
			r.deny, r.pos = 403, l.Pos
			set.blocks = append(set.blocks, r)
		}
		return ""
	}
	act := reqFilterAction[ws[0]]
	icase := strings.HasPrefix(ws[0], "reqi")
	if len(ws) < 2 {
		return "no regex"
	}
	rest := ws[2:]
	var backend string
	if act == "setbe" {
		if len(ws) < 3 {
			return "no backend"
		}
		backend, rest = ws[2], ws[3:]
		if p.kind == "backend" {
			w.add(l.Pos, "%q: not mapped (HAProxy ignores reqsetbe in a backend: a request switches backend once, in its frontend)", strings.Join(ws, " "))
			return ""
		}
	}
	expr := ws[1]
	if icase {
		expr = "(?i)" + expr
	}
	if _, err := regexp.Compile(expr); err != nil {
		return fmt.Sprintf("a regex Go cannot compile (%v)", err)
	}
	line := httpCond{subject: "line", match: "regex", values: []string{ws[1]}, ignoreCase: icase}
	if !icase && namesHeader(ws[1]) {
		w.add(l.Pos, "%s %s: gitgw matches header names in their canonical spelling (User-Agent, X-Forwarded-For) whatever the client sent; HAProxy matches them as sent, case included", ws[0], ws[1])
	}
	rs, why := p.httpCondRules(rest)
	if why != "" {
		return why
	}
	if act == "allow" {
		if len(rest) > 0 {
			return "reqallow with a condition (the deny and tarpit filters after it would need its negation, an alternative)"
		}
		neg := line
		neg.not = true
		set.allows = append(set.allows, neg)
		return ""
	}
	for _, r := range rs {
		r.when = append([]httpCond{line}, r.when...)
		r.pos = l.Pos
		switch act {
		case "setbe":
			r.use = backend
			set.setbes = append(set.setbes, r)
			continue
		case "deny":
			r.deny = 403
		case "tarpit":
			hold := p.tarpitHold()
			if hold == 0 {
				// HAProxy's tarpit without a timeout answers at once.
				r.deny = 500
				w.add(l.Pos, "%s: no timeout tarpit nor connect: HAProxy answers 500 at once, imported as deny 500", ws[0])
			} else {
				r.tarpit = hold
			}
		}
		r.when = append(r.when, set.allows...)
		set.verdicts = append(set.verdicts, r)
	}
	return ""
}

// namesHeader says whether a regex names a header: a literal ':' outside
// a character class ("^User-Agent: "), where the case of the name as
// sent would count for HAProxy.
func namesHeader(expr string) bool {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return false
	}
	var walk func(*syntax.Regexp) bool
	walk = func(r *syntax.Regexp) bool {
		if r.Op == syntax.OpLiteral && strings.ContainsRune(string(r.Rune), ':') {
			return true
		}
		for _, sub := range r.Sub {
			if walk(sub) {
				return true
			}
		}
		return false
	}
	return walk(re)
}

// tarpitOpt is a timeout tarpit line; used: a tarpit rule took it (else
// it is named as not mapped once the services are built).
type tarpitOpt struct {
	line hapLine
	hold time.Duration
	used bool
}

// tarpitHold is how long HAProxy holds a tarpitted request in p: timeout
// tarpit, else timeout connect (its own or its defaults'), else 0.
func (p *hapProxy) tarpitHold() time.Duration {
	switch {
	case p.tarpitTO != nil:
		p.tarpitTO.used = true
		return p.tarpitTO.hold
	case p.timeouts[toConnect].ok:
		return p.timeouts[toConnect].v
	}
	return 0
}

// unusedTarpitTimeouts names the timeout tarpit lines no tarpit rule
// took.
func (c *hapConfig) unusedTarpitTimeouts(w *warnings) {
	for _, p := range c.proxies {
		if t := p.tarpitTO; t != nil && !t.used {
			w.add(t.line.Pos, "timeout tarpit: not mapped (no request of the proxy is tarpitted)")
		}
	}
}

// httpTarpit maps `http-request tarpit [deny_status 500] [if|unless
// COND]`: HAProxy's tarpit answers 500 after its hold.
func (p *hapProxy) httpTarpit(l hapLine, w *warnings) ([]httpRule, string) {
	args := l.Words[2:]
	if len(args) >= 2 && args[0] == "deny_status" {
		if args[1] != "500" {
			return nil, "tarpit deny_status " + args[1] + " (gitgw's tarpit answers 500)"
		}
		args = args[2:]
	}
	rs, why := p.httpCondRules(args)
	if why != "" {
		return nil, why
	}
	hold := p.tarpitHold()
	for i := range rs {
		rs[i].pos = l.Pos
		if hold == 0 {
			rs[i].deny = 500
			w.add(l.Pos, "http-request tarpit: no timeout tarpit nor connect: HAProxy answers 500 at once, imported as deny 500")
			continue
		}
		rs[i].tarpit = hold
	}
	return rs, ""
}

// statsDefaultURI is the page a `stats enable` without `stats uri` serves.
const statsDefaultURI = "/haproxy?stats"

// statsLine records a stats line of a proxy section: in mode http, a
// proxy with any stats setting serves HAProxy's stats page on the
// requests whose URI starts with its stats uri (GET, HEAD and POST).
func (p *hapProxy) statsLine(l hapLine) {
	if len(l.Words) >= 3 && l.Words[1] == "uri" {
		p.statsURI = l.Words[2]
	}
	if p.statsPos == (Pos{}) {
		p.statsPos = l.Pos
	}
}

// statsRoute adds the stats page to the section's routing lines once it
// is read, when it serves one (its own stats lines or its defaults'), in
// mode http: gitgw has no stats page, and must not forward those
// requests to the servers either.
func (p *hapProxy) statsRoute() {
	if !p.stats || p.mode != "http" || p.kind == "defaults" {
		return
	}
	h := p.httpState()
	h.routes = append(h.routes, hapLine{Words: []string{"stats", "uri", p.statsPageURI()}, Pos: p.statsPos})
}

func (p *hapProxy) statsPageURI() string {
	if p.statsURI != "" {
		return p.statsURI
	}
	return statsDefaultURI
}

// statsOnly says whether p is only a stats page: it serves one and has
// no server to send any request to (a frontend sends to its backend).
func (p *hapProxy) statsOnly() bool {
	return p.stats && p.mode == "http" && p.kind != "frontend" && len(p.servers) == 0 && p.dispatch == ""
}

// statsWarning names the stats page that gitgw answers 503.
func statsWarning(p *hapProxy, w *warnings) {
	w.add(p.statsPos, "HAProxy's stats page (%s %s, %s): answered 503 by gitgw; its status is `gitgw status`, /metrics, 127.0.0.1:9142", p.kind, p.name, p.statsPageURI())
}

// statsRule is the stats page of a proxy that also forwards requests:
// those HAProxy would answer with its page are answered 503.
func statsRule(p *hapProxy, l hapLine, w *warnings) httpRule {
	statsWarning(p, w)
	return httpRule{pos: l.Pos, deny: 503, when: []httpCond{
		{subject: "url", match: "prefix", values: []string{l.Words[2]}},
		{subject: "method", match: "exact", values: []string{"GET", "HEAD", "POST"}},
	}}
}

// statsUse turns the rules that send requests to a backend that is only
// a stats page into deny 503: HAProxy answers each with its page, or 503
// when it has no server for it.
func (c *hapConfig) statsUse(rules []httpRule, used map[string]bool, w *warnings) {
	for i := range rules {
		be := c.backends[rules[i].use]
		if rules[i].use == "" || be == nil || !be.statsOnly() {
			continue
		}
		statsWarning(be, w)
		w.add(be.pos, "backend %s is only a stats page: not imported; the rules that send requests to it answer 503", be.name)
		used[be.name] = true
		rules[i].use, rules[i].deny = "", 503
	}
}

// rewriteBeforeFilters names a request rewrite (reqrep, reqirep, reqdel,
// reqidel) that comes before request filters of its section: HAProxy's
// later filters see the rewritten lines, gitgw's see them as the client
// sent them.
func (p *hapProxy) rewriteBeforeFilters(w *warnings) {
	h := p.http
	if h == nil || len(p.rewrites) == 0 {
		return
	}
	for _, rw := range p.rewrites {
		for _, l := range h.routes {
			if act, ok := reqFilterAction[l.Words[0]]; ok && act != "pass" && l.Pos.Line > rw.Pos.Line && l.Pos.File == rw.Pos.File {
				w.add(rw.Pos, "%q: the request filters after it (from line %d) see the lines as the client sent them, not rewritten", strings.Join(rw.Words, " "), l.Pos.Line)
				break
			}
		}
	}
}

// isStatsRoute says whether a routing line is a stats page (statsRoute).
func isStatsRoute(l hapLine) bool { return l.Words[0] == "stats" }

// reqFilterNeed is the feature a filter line needs where HTTP mode cannot
// carry it: a turned-away request as in TCP terms, else routing.
func reqFilterNeed(kw string) (Feature, bool) {
	switch reqFilterAction[kw] {
	case "setbe":
		return FeatContentSwitching, true
	case "deny", "tarpit", "allow":
		return FeatSourceRules, true
	}
	if kw == "block" {
		return FeatSourceRules, true
	}
	return "", false
}
