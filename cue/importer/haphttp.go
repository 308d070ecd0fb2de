package importer

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// HTTP mode: a `mode http` frontend (or listen) whose rules pick a
// backend per request, answer requests themselves or terminate TLS is
// imported as a service with an http block. Each backend a use_backend
// names becomes a pool: a service of its own, without binds unless it is
// some frontend's default too. What the site's rules cannot say is
// refused with its line, never dropped: a lost deny or use_backend sends
// traffic where the original does not.

// hapHTTP is what a frontend or listen section says in HTTP terms.
type hapHTTP struct {
	// routes are the lines that route or answer requests, in order:
	// http-request deny|redirect, redirect, use_backend, monitor-uri.
	routes []hapLine
	// tls: the binds with ssl and their certificates.
	tlsBinds []string
	certs    []string
	tlsPos   Pos
	// inspect: tcp-request inspect-delay, at inspectLine; inspectMapped:
	// SNI routing took it (else it is named as not mapped).
	inspect       opt[time.Duration]
	inspectLine   hapLine
	inspectMapped bool
	// forwardFor: option forwardfor (except …: the exception is lost),
	// at fwd (shared with the sections that inherit it).
	forwardFor bool
	fwd        *fwdOption
	// hdr: the header rewrite lines (hapheaders.go).
	hdr *hdrLines
}

// fwdOption is an option forwardfor line, and whether an HTTP service
// maps it (else it is named as not mapped, once the services are known).
type fwdOption struct {
	line   hapLine
	mapped bool
}

// httpMode is a service's http block, as written to the site.
type httpMode struct {
	certFiles  []string
	tlsBinds   []string // empty: every bind
	rules      []httpRule
	monitorURI string
	forwardFor bool
	// fwdExcept, fwdIfNone: option forwardfor's except and if-none.
	fwdExcept []string
	fwdIfNone bool
	// The header rewrites, in HAProxy's order (hapheaders.go).
	reqHeaders, rspHeaders, afterHeaders []hdrAction
}

type httpRule struct {
	when     []httpCond
	use      string // a backend's name, made a service's once pools are known
	deny     int
	redirect *httpRedirect
	tarpit   time.Duration // hold, then 500 (hapreqfilter.go)
	auth     *httpAuth     // hapauth.go
	pos      Pos
}

type httpRedirect struct {
	kind, to string // scheme|location|prefix, its value
	code     int
}

// sniMode is a service's sni block, as written to the site.
type sniMode struct {
	delay opt[time.Duration]
	rules []sniRule
}

type sniRule struct {
	names []string
	match string // "" (exact) or "suffix"
	use   string
	pos   Pos
}

type httpCond struct {
	subject, header, match string
	userlist               string // subject auth (hapauth.go)
	values                 []string
	ignoreCase, not        bool
}

func (p *hapProxy) httpState() *hapHTTP {
	if p.http == nil {
		p.http = &hapHTTP{}
	}
	return p.http
}

// httpRoute records a routing line of a frontend or listen section; it
// is mapped once the section's mode is known (httpRules).
func (p *hapProxy) httpRoute(l hapLine) bool {
	switch {
	case p.kind == "frontend" || p.kind == "listen":
	case p.kind == "backend" && (l.Words[0] == "redirect" || l.Words[0] == "http-request"):
		// Applies to the requests that reach the backend: after its
		// frontend's rules (httpMode, pools).
	default:
		return false
	}
	if l.Words[0] == "http-request" && (len(l.Words) < 2 || l.Words[1] != "deny" && l.Words[1] != "redirect" && l.Words[1] != "tarpit" && l.Words[1] != "auth") {
		return false
	}
	h := p.httpState()
	h.routes = append(h.routes, l)
	return true
}

// httpBind reads the TLS of a bind line with ssl: the crt files; the
// options HTTP mode cannot keep are needs.
func (p *hapProxy) httpBind(l hapLine, w *warnings) {
	h := p.httpState()
	if h.tlsPos == (Pos{}) {
		h.tlsPos = l.Pos
	}
	var certs, other []string
	ws := l.Words[2:]
	for i := 0; i < len(ws); i++ {
		switch o := ws[i]; o {
		case "ssl":
		case "crt":
			if i+1 < len(ws) {
				certs = append(certs, ws[i+1])
				i++
			}
		case "alpn", "npn":
			if i+1 < len(ws) {
				i++
				w.add(l.Pos, "bind %s %s %s: gitgw's TLS offers http/1.1 only", l.Words[1], o, ws[i])
			}
		case "name", "ciphers", "ciphersuites", "ssl-min-ver", "ssl-max-ver", "curves", "ecdhe", "process", "thread":
			if i+1 < len(ws) {
				other = append(other, o+" "+ws[i+1])
				i++
			}
		case "no-sslv3", "no-tlsv10", "no-tlsv11", "force-tlsv12", "no-tls-tickets", "prefer-client-ciphers", "strict-sni", "transparent", "v4v6":
			if o == "strict-sni" || o == "transparent" {
				p.needs = append(p.needs, needs(l.Pos, FeatTLSTermination, "bind %s ssl … %s", l.Words[1], o))
				return
			}
			other = append(other, o)
		default:
			// ca-file, verify (client certificates), crt-list, …
			p.needs = append(p.needs, needs(l.Pos, FeatTLSTermination, "bind %s ssl … %s", l.Words[1], o))
			return
		}
	}
	if len(certs) == 0 {
		p.needs = append(p.needs, needs(l.Pos, FeatTLSTermination, "bind %s ssl without crt", l.Words[1]))
		return
	}
	for i, c := range certs {
		abs, ok := p.paths.resolve("crt", c)
		if !ok {
			p.needs = append(p.needs, needs(l.Pos, FeatTLSTermination, "bind %s ssl crt %s (%s)", l.Words[1], c, p.paths.relativeWhy()))
			return
		}
		if abs != c {
			w.add(l.Pos, "bind %s ssl crt %s", l.Words[1], joinedBy(c, abs))
			certs[i] = abs
		}
	}
	if len(other) > 0 {
		w.add(l.Pos, "bind options %q: not mapped (gitgw's TLS is TLS 1.2 and 1.3 with Go's defaults)", strings.Join(other, " "))
	}
	w.add(l.Pos, "bind %s ssl crt %s: each crt file (each file of a crt directory) must hold the certificate and its key, PEM; separate .key files are not read", l.Words[1], strings.Join(certs, " "))
	h.tlsBinds = append(h.tlsBinds, p.addBinds(l, w)...)
	for _, c := range certs {
		if !slices.Contains(h.certs, c) {
			h.certs = append(h.certs, c)
		}
	}
}

// httpRules maps the routing lines of an http frontend: rules in
// HAProxy's order (http-request rules, then redirect rules, then
// use_backend; monitor-uri before all), or the needs that refuse it.
func (p *hapProxy) httpRules(w *warnings) (*httpMode, []need) {
	h := p.http
	if h == nil {
		return nil, nil
	}
	m := &httpMode{forwardFor: h.forwardFor}
	if len(h.certs) > 0 {
		m.certFiles = h.certs
		if len(h.tlsBinds) < len(p.binds) {
			m.tlsBinds = h.tlsBinds
		}
	}
	var ns []need
	var reqRules, redirects, uses, stats []httpRule
	var filters reqFilterSet
	for _, l := range h.routes {
		ws := l.Words
		if isReqFilter(ws[0]) {
			if why := p.reqFilterRule(l, &filters, w); why != "" {
				ns = append(ns, needs(l.Pos, FeatContentSwitching, "%s (%s)", strings.Join(ws, " "), why))
			}
			continue
		}
		if ws[0] == "http-request" && ws[1] == "tarpit" {
			rs, why := p.httpTarpit(l, w)
			if why != "" {
				ns = append(ns, needs(l.Pos, FeatContentSwitching, "%s (%s)", strings.Join(ws, " "), why))
			}
			reqRules = append(reqRules, rs...)
			continue
		}
		switch ws[0] {
		case "stats":
			if !p.statsOnly() {
				stats = append(stats, statsRule(p, l, w))
			}
		case "monitor-uri":
			if len(ws) != 2 || !strings.HasPrefix(ws[1], "/") {
				ns = append(ns, needs(l.Pos, FeatContentSwitching, "%s", strings.Join(ws, " ")))
				continue
			}
			m.monitorURI = ws[1]
		case "use_backend":
			if len(ws) < 2 || strings.Contains(ws[1], "%[") {
				ns = append(ns, needs(l.Pos, FeatContentSwitching, "%s (a backend named by an expression)", strings.Join(ws, " ")))
				continue
			}
			rs, why := p.httpCondRules(ws[2:])
			if why == "" {
				why = sniInHTTP(rs)
			}
			if why != "" {
				ns = append(ns, needs(l.Pos, FeatContentSwitching, "%s (%s)", strings.Join(ws, " "), why))
				continue
			}
			for _, r := range rs {
				r.use, r.pos = ws[1], l.Pos
				uses = append(uses, r)
			}
		case "redirect", "http-request":
			args := ws[1:]
			if ws[0] == "http-request" {
				args = ws[2:]
			}
			act, rest, why := httpAction(ws[0], ws[1], args)
			if ws[0] == "http-request" && ws[1] == "auth" {
				act, rest, why = p.authAction(args)
			}
			if why == "" {
				var rs []httpRule
				rs, why = p.httpCondRules(rest)
				if why == "" {
					why = sniInHTTP(rs)
				}
				for _, r := range rs {
					r.deny, r.redirect, r.auth, r.pos = act.deny, act.redirect, act.auth, l.Pos
					if ws[0] == "redirect" {
						redirects = append(redirects, r)
					} else {
						reqRules = append(reqRules, r)
					}
				}
			}
			if why != "" {
				ns = append(ns, needs(l.Pos, FeatContentSwitching, "%s (%s)", strings.Join(ws, " "), why))
			}
		}
	}
	m.rules = slices.Concat(filters.blocks, reqRules, filters.verdicts, stats, redirects, filters.setbes, uses)
	return m, ns
}

// httpAction reads the action of an http-request deny|redirect line or a
// redirect line; rest is the condition.
func httpAction(kw, act string, args []string) (httpRule, []string, string) {
	var r httpRule
	cond := func(i int) []string { return args[i:] }
	if kw == "http-request" && act == "deny" {
		r.deny = 403
		i := 0
		for i < len(args) && args[i] != "if" && args[i] != "unless" {
			if args[i] == "deny_status" && i+1 < len(args) {
				n, err := strconv.Atoi(args[i+1])
				if err != nil || n < 200 || n > 599 {
					return r, nil, "deny_status " + args[i+1]
				}
				r.deny = n
				i += 2
				continue
			}
			return r, nil, "deny option " + args[i]
		}
		return r, cond(i), ""
	}
	if len(args) < 2 {
		return r, nil, "redirect without a target"
	}
	rd := &httpRedirect{kind: args[0], to: args[1]}
	switch rd.kind {
	case "scheme":
		if rd.to != "https" && rd.to != "http" {
			return r, nil, "redirect scheme " + rd.to
		}
	case "location":
		if strings.Contains(rd.to, "%[") {
			return r, nil, "a location made by an expression"
		}
	case "prefix":
		if strings.Contains(rd.to, "%[") || !(strings.HasPrefix(rd.to, "/") || strings.HasPrefix(rd.to, "http://") || strings.HasPrefix(rd.to, "https://")) {
			return r, nil, "redirect prefix " + rd.to
		}
	default:
		return r, nil, "redirect " + rd.kind
	}
	i := 2
	for i < len(args) && args[i] != "if" && args[i] != "unless" {
		if args[i] == "code" && i+1 < len(args) {
			n, err := strconv.Atoi(args[i+1])
			if err != nil || !slices.Contains([]int{301, 302, 303, 307, 308}, n) {
				return r, nil, "redirect code " + args[i+1]
			}
			rd.code = n
			i += 2
			continue
		}
		return r, nil, "redirect option " + args[i]
	}
	r.redirect = rd
	return r, cond(i), ""
}

// httpFetches maps HAProxy's fetches to a subject and a default match.
var httpFetches = map[string][2]string{
	"path": {"path", "exact"}, "path_beg": {"path", "prefix"}, "path_end": {"path", "suffix"},
	"path_sub": {"path", "contains"}, "path_reg": {"path", "regex"},
	"url": {"url", "exact"}, "url_beg": {"url", "prefix"}, "url_end": {"url", "suffix"},
	"url_sub": {"url", "contains"}, "url_reg": {"url", "regex"},
	"path_dir": {"path", "dir"}, "url_dir": {"url", "dir"}, "hdr_dir": {"header", "dir"},
	"hdr": {"header", "exact"}, "hdr_beg": {"header", "prefix"}, "hdr_end": {"header", "suffix"},
	"hdr_sub": {"header", "contains"}, "hdr_reg": {"header", "regex"},
	"req.hdr": {"header", "exact"},
	"method":  {"method", "exact"}, "src": {"source", ""}, "ssl_fc": {"tls", ""},
	// The TLS server name of a mode tcp frontend's ClientHello (sniRules).
	"req_ssl_sni": {"sni", "exact"}, "req.ssl_sni": {"sni", "exact"},
}

// httpCriterion reads `FETCH [FLAGS] PATTERNS` as a condition.
func httpCriterion(ws []string) (httpCond, string) {
	if len(ws) == 0 {
		return httpCond{}, "an empty criterion"
	}
	fetch, arg := ws[0], ""
	if i := strings.IndexByte(fetch, '('); i > 0 && strings.HasSuffix(fetch, ")") {
		fetch, arg = fetch[:i], fetch[i+1:len(fetch)-1]
	}
	f, ok := httpFetches[fetch]
	if !ok {
		if c, why, ok := numericCriterion(fetch, arg, ws[1:]); ok { // hapfetch.go
			return c, why
		}
		return httpCond{}, "the fetch " + ws[0]
	}
	c := httpCond{subject: f[0], match: f[1]}
	switch {
	case c.subject == "header":
		if arg == "" || strings.Contains(arg, ",") || !headerNameRE.MatchString(arg) {
			return httpCond{}, "the fetch " + ws[0]
		}
		if strings.EqualFold(arg, "host") {
			c.subject = "host"
		} else {
			c.header = arg
		}
	case arg != "":
		return httpCond{}, "the fetch " + ws[0]
	}
	rest := ws[1:]
	for len(rest) > 0 && strings.HasPrefix(rest[0], "-") {
		switch rest[0] {
		case "-i":
			c.ignoreCase = true
		case "--":
			rest = rest[1:]
			goto patterns
		case "-m":
			if len(rest) < 2 {
				return httpCond{}, "-m without a method"
			}
			m, ok := map[string]string{"str": "exact", "beg": "prefix", "end": "suffix", "sub": "contains", "reg": "regex", "found": "present", "dir": "dir"}[rest[1]]
			if !ok || c.subject == "source" || c.subject == "tls" || m == "present" && c.subject != "header" {
				return httpCond{}, "-m " + rest[1]
			}
			c.match = m
			rest = rest[1:]
		default:
			return httpCond{}, "the flag " + rest[0]
		}
		rest = rest[1:]
	}
patterns:
	switch c.subject {
	case "tls":
		if len(rest) > 0 {
			return httpCond{}, "ssl_fc with a pattern"
		}
		return httpCond{subject: "tls"}, ""
	case "source":
		for _, v := range rest {
			if _, err := netip.ParsePrefix(v); err != nil {
				if _, err := netip.ParseAddr(v); err != nil {
					return httpCond{}, "src " + v
				}
			}
		}
		if c.ignoreCase {
			return httpCond{}, "src -i"
		}
	}
	if c.match == "present" {
		if len(rest) > 0 {
			return httpCond{}, "-m found with patterns"
		}
		return c, ""
	}
	if len(rest) == 0 {
		return httpCond{}, "no pattern"
	}
	if c.match == "regex" {
		for _, v := range rest {
			if _, err := regexp.Compile(v); err != nil {
				return httpCond{}, fmt.Sprintf("a regex Go cannot compile (%v)", err)
			}
		}
	}
	c.values = rest
	return c, ""
}

// routeNeeds are the routing lines and TLS binds as needs: what refuses
// a section that HTTP mode cannot carry (mode tcp, no default_backend).
func (h *hapHTTP) routeNeeds() []need {
	if h == nil {
		return nil
	}
	var ns []need
	for _, l := range h.routes {
		f := FeatContentSwitching
		if l.Words[0] == "http-request" && (l.Words[1] == "deny" || l.Words[1] == "tarpit") {
			f = FeatSourceRules // a request turned away, as in TCP terms
		}
		if isStatsRoute(l) {
			continue // a stats page is HTTP's only
		}
		if rf, ok := reqFilterNeed(l.Words[0]); ok {
			f = rf
		}
		ns = append(ns, needs(l.Pos, f, "%s", strings.Join(l.Words, " ")))
	}
	return ns
}

// httpMode is the service's http block when the frontend needs one (it
// routes or answers requests, or terminates TLS) and is in mode http;
// else the needs that refuse it. A frontend that needs none keeps its
// import as before (mode tcp, with a warning), and option forwardfor is
// named as not mapped.
func (fe *hapProxy) httpMode(be *hapProxy, w *warnings) (*httpMode, *sniMode, []need) {
	hm, sm, ns := fe.httpOrSNI(be, w)
	if sm != nil {
		fe.http.inspectMapped = true
	}
	return hm, sm, ns
}

func (fe *hapProxy) httpOrSNI(be *hapProxy, w *warnings) (*httpMode, *sniMode, []need) {
	h := fe.http
	beRoutes := be != fe && be.http != nil && len(be.http.routes) > 0
	// A persistence cookie is read and set per request: HTTP mode too.
	cookie := fe.mode == "http" && be.mode == "http" && be.cookiePos != (Pos{})
	rewrites := fe.mode == "http" && be.mode == "http" && (h != nil && !h.hdr.empty() || be.http != nil && !be.http.hdr.empty())
	wanted := (h != nil && (len(h.routes) > 0 || len(h.certs) > 0) || beRoutes || cookie || rewrites) && !fe.asPool
	if !wanted {
		ignoredRewrites(fe, be, w) // those of a section in mode tcp
		for _, p := range []*hapProxy{fe, be} {
			if p.http != nil && p.http.fwd != nil && !fe.asPool {
				hapNotMapped(p.http.fwd.line, w)
			}
		}
		return nil, nil, nil
	}
	if h == nil {
		h = fe.httpState()
	}
	if fe.mode != "http" {
		ignoredRewrites(fe, be, w)
		if sm, ok := fe.sniRules(w); ok && cmp.Or(be.mode, "tcp") == "tcp" {
			return nil, sm, nil
		}
		ns := h.routeNeeds()
		if len(h.certs) > 0 {
			ns = append(ns, needs(h.tlsPos, FeatTLSTermination, "bind %s ssl in mode %s", strings.Join(h.tlsBinds, ","), cmp.Or(fe.mode, "tcp")))
		}
		return nil, nil, ns
	}
	m, ns := fe.httpRules(w)
	if beRoutes {
		// The default backend's rules take the requests no use_backend
		// took: after every rule of the frontend.
		bm, bns := be.httpRules(w)
		m.rules = append(m.rules, bm.rules...)
		ns = append(ns, bns...)
	}
	if be.mode != "http" {
		// HAProxy refuses a mode http frontend with a mode tcp backend.
		ns = append(ns, needs(be.pos, FeatContentSwitching, "default_backend %s in mode %s behind a mode http frontend", be.name, cmp.Or(be.mode, "tcp")))
	}
	for _, p := range []*hapProxy{fe, be} {
		if p.http != nil && p.http.forwardFor {
			m.forwardFor = true
			if f := p.http.fwd; f != nil {
				m.fwdOptions(f, w, !f.mapped) // warned once for the sections sharing a defaults' line
				f.mapped = true
			}
		}
	}
	ns = append(ns, fe.mapHeaders(be, m, w)...)
	return m, nil, ns
}

// pools resolves the backends HTTP rules name: a backend some service
// carries already is that service; another becomes a pool, a service
// without binds. A frontend whose rule names a backend that is missing
// or refused is refused too.
func (c *hapConfig) pools(out []*service, beSvc map[string]string, used map[string]bool, w *warnings) []*service {
	names := map[string]bool{}
	for _, s := range out {
		names[s.name] = true
	}
	var kept []*service
	var made []*service
	for _, s := range out {
		if s.http == nil && s.sni == nil {
			kept = append(kept, s)
			continue
		}
		var ns []need
		type useRef struct {
			use  *string
			pos  Pos
			mode string // the mode HAProxy accepts for the backend
		}
		var refs []useRef
		if s.sni != nil {
			for i := range s.sni.rules {
				refs = append(refs, useRef{&s.sni.rules[i].use, s.sni.rules[i].pos, "tcp"})
			}
		}
		if s.http == nil {
			s.http = &httpMode{} // the loop below needs none of it
			defer func(s *service) { s.http = nil }(s)
		}
		// A pool backend's own rules apply to the requests a use_backend
		// sends it: each becomes a rule before that use_backend, with its
		// conditions ANDed to the use_backend's.
		var rules []httpRule
		ns = append(ns, c.poolHeaders(s, w)...)
		for _, r := range s.http.rules {
			if be := c.backends[r.use]; r.use != "" && be != nil && be.http != nil && len(be.http.routes) > 0 {
				bm, bns := be.httpRules(w)
				ns = append(ns, bns...)
				for _, br := range bm.rules {
					br.when = append(slices.Clone(r.when), br.when...)
					rules = append(rules, br)
				}
			}
			rules = append(rules, r)
		}
		s.http.rules = rules
		for _, as := range [][]hdrAction{s.http.reqHeaders, s.http.rspHeaders, s.http.afterHeaders} {
			for i := range as {
				if as[i].pool != "" {
					refs = append(refs, useRef{&as[i].pool, as[i].pos, "http"})
				}
			}
		}
		c.statsUse(s.http.rules, used, w)
		for i := range s.http.rules {
			if s.http.rules[i].use != "" {
				refs = append(refs, useRef{&s.http.rules[i].use, s.http.rules[i].pos, "http"})
			}
		}
		for _, ref := range refs {
			r := struct {
				use string
				pos Pos
			}{*ref.use, ref.pos}
			be := c.backends[r.use]
			if name, ok := beSvc[r.use]; ok {
				used[r.use] = true
				if name == "" {
					ns = append(ns, needs(r.pos, FeatContentSwitching, "use_backend %s (backend %s is not imported)", r.use, r.use))
				}
				*ref.use = name
				continue
			}
			if be == nil {
				ns = append(ns, needs(r.pos, FeatContentSwitching, "use_backend %s (no such backend)", r.use))
				continue
			}
			if cmp.Or(be.mode, "tcp") != ref.mode {
				ns = append(ns, needs(r.pos, FeatContentSwitching, "use_backend %s (backend %s is in mode %s behind a mode %s frontend)", r.use, r.use, cmp.Or(be.mode, "tcp"), ref.mode))
				continue
			}
			be.asPool = true
			ps := c.service(be, be, w)
			used[be.name] = true
			if ps == nil {
				ns = append(ns, needs(r.pos, FeatContentSwitching, "use_backend %s (backend %s is not imported)", r.use, r.use))
				beSvc[be.name] = ""
				continue
			}
			for names[ps.name] {
				ps.name += "_pool"
			}
			if ref.mode == "http" && be.http != nil && be.http.fwd != nil && !s.http.forwardFor {
				w.add(be.http.fwd.line.Pos, "option forwardfor (backend %s): gitgw adds X-Forwarded-For per frontend, and service %s does not: its requests to %s go without it", be.name, s.name, be.name)
			}
			names[ps.name] = true
			beSvc[be.name] = ps.name
			made = append(made, ps)
			*ref.use = ps.name
		}
		ns = append(ns, headerRuleConflicts(s.http.reqHeaders, s.http.rules)...)
		if len(ns) > 0 {
			what := "frontend " + s.name
			for _, be := range slices.Sorted(maps.Keys(beSvc)) {
				if beSvc[be] == s.name && be != s.name {
					what += " (backend " + be + ")" // its default backend goes with it
				}
			}
			w.refuse(what, ns)
			continue
		}
		kept = append(kept, s)
	}
	// Pools only the refused frontends used are left out with them.
	reached := map[string]bool{}
	for _, s := range kept {
		if s.http != nil {
			for _, r := range s.http.rules {
				reached[r.use] = true
			}
		}
		if s.sni != nil {
			for _, r := range s.sni.rules {
				reached[r.use] = true
			}
		}
	}
	for _, ps := range made {
		if reached[ps.name] {
			kept = append(kept, ps)
		}
	}
	return kept
}

// unmappedForwardFor names the option forwardfor lines no HTTP service
// mapped (a defaults section's that only TCP services, or none, use).
func (c *hapConfig) unmappedForwardFor(w *warnings) {
	for _, f := range c.fwds {
		if !f.mapped {
			hapNotMapped(f.line, w)
		}
	}
	for _, p := range c.proxies {
		if h := p.http; h != nil && h.inspect.ok && !h.inspectMapped {
			hapNotMapped(h.inspectLine, w)
		}
	}
}

// noteForwardFor records the option forwardfor line of a section.
func (c *hapConfig) noteForwardFor(p *hapProxy) {
	if p.http != nil && p.http.fwd != nil && !slices.Contains(c.fwds, p.http.fwd) {
		c.fwds = append(c.fwds, p.http.fwd)
	}
}

// sniRules maps a mode tcp frontend whose only routing is use_backend on
// the ClientHello's server name (req_ssl_sni, one term or alternatives,
// -i, -m str|end) and that terminates no TLS; ok false leaves it to be
// refused. Without tcp-request inspect-delay, HAProxy decides before the
// hello has arrived, on most connections: refused too, as gitgw would
// route what the original does not.
func (fe *hapProxy) sniRules(w *warnings) (*sniMode, bool) {
	h := fe.http
	if h == nil || len(h.routes) == 0 || len(h.certs) > 0 || !h.inspect.ok {
		return nil, false
	}
	sm := &sniMode{delay: h.inspect}
	for _, l := range h.routes {
		if l.Words[0] != "use_backend" || len(l.Words) < 4 || strings.Contains(l.Words[1], "%[") {
			return nil, false
		}
		rs, why := fe.httpCondRules(l.Words[2:])
		if why != "" {
			return nil, false
		}
		for _, r := range rs {
			if len(r.when) != 1 || r.when[0].subject != "sni" || r.when[0].not || (r.when[0].match != "exact" && r.when[0].match != "suffix") {
				return nil, false
			}
			c := r.when[0]
			if !c.ignoreCase {
				w.add(l.Pos, "%s: gitgw compares server names without case (HAProxy without -i does not)", strings.Join(l.Words, " "))
			}
			sr := sniRule{names: c.values, use: l.Words[1], pos: l.Pos}
			if c.match == "suffix" {
				sr.match = "suffix"
			}
			sm.rules = append(sm.rules, sr)
		}
	}
	return sm, true
}

// sniInHTTP names a server-name condition in HTTP mode (gitgw's HTTP
// rules see requests, not the hello; HAProxy's req_ssl_sni is for mode
// tcp).
func sniInHTTP(rs []httpRule) string {
	for _, r := range rs {
		for _, c := range r.when {
			if c.subject == "sni" {
				return "req_ssl_sni in mode http"
			}
		}
	}
	return ""
}
