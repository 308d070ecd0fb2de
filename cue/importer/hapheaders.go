package importer

import (
	"cmp"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// Header rewrites: http-request and http-response set-header,
// add-header, del-header, replace-header, replace-value;
// http-after-response set-header, add-header, del-header; HAProxy 1.x's
// reqadd, reqdel, reqidel, reqrep, reqirep and rspadd, rspdel, rspidel,
// rsprep, rspirep. They become the service's request_headers,
// response_headers and after_response_headers, in HAProxy's order: for a
// request, the frontend's http-request rewrites, then its req* filters,
// then the backend's the same way (a backend's only for the requests
// that reach it: the action's pool); for a response, the backend's
// http-response rewrites and rsp* filters, then the frontend's.
// http-after-response runs on every response, the proxy's own included.
//
// Refused, with the line: a value made by a log-format expression other
// than %[src], %[dst], %[ssl_fc]; a replacement with one; a condition
// of a response rewrite that reads anything but the client's address and
// TLS (HAProxy evaluates it on the response); a rewrite whose conditions
// are alternatives and that is not idempotent; a header the service's
// rules read, since gitgw's rules see the request as sent and HAProxy's
// later ones the rewritten request; a regex Go does not compile; the
// Cookie header (it picks a server: cookieRewriteNeeds). Named as not
// mapped: a rewrite of Connection and the other fields the proxy writes
// itself.

// hdrAction is one rewrite as the site writes it.
type hdrAction struct {
	op, name, value, regex string
	ignoreCase             bool
	when                   []httpCond
	// pool: only for requests sent to this backend (a name, made a
	// service's in pools); "" for every request.
	pool string
	pos  Pos
	// from is the section of the line, kw its keyword
	// (headerRuleConflicts).
	from *hapProxy
	kw   string
}

// hdrLines are a section's rewrite lines, by kind, in order.
type hdrLines struct {
	req, reqOld, rsp, rspOld, after []hapLine
}

func (h *hdrLines) empty() bool {
	return h == nil || len(h.req)+len(h.reqOld)+len(h.rsp)+len(h.rspOld)+len(h.after) == 0
}

// headerOps are the http-request/-response actions that rewrite a header.
var headerOps = map[string]string{
	"set-header": "set", "add-header": "add", "del-header": "del",
	"replace-header": "replace-header", "replace-value": "replace-value",
}

// headerLine records a rewrite line of any proxy section; false: not one.
func (p *hapProxy) headerLine(l hapLine) bool {
	ws := l.Words
	if p.kind == "defaults" {
		// Not inherited by the sections after it (HAProxy 2.6 applies a
		// named defaults' rules only to a proxy naming it with from):
		// named as not mapped.
		return false
	}
	h := p.httpState()
	if h.hdr == nil {
		h.hdr = &hdrLines{}
	}
	switch ws[0] {
	case "http-request", "http-response", "http-after-response":
		if len(ws) < 3 || headerOps[ws[1]] == "" {
			return false
		}
		switch ws[0] {
		case "http-request":
			h.hdr.req = append(h.hdr.req, l)
		case "http-response":
			h.hdr.rsp = append(h.hdr.rsp, l)
		default:
			h.hdr.after = append(h.hdr.after, l)
		}
	case "reqadd", "reqdel", "reqidel", "reqrep", "reqirep":
		h.hdr.reqOld = append(h.hdr.reqOld, l)
	case "rspadd", "rspdel", "rspidel", "rsprep", "rspirep":
		h.hdr.rspOld = append(h.hdr.rspOld, l)
	default:
		return false
	}
	return true
}

// ignoredRewrites names the rewrite lines of a service kept in mode tcp:
// HAProxy ignores HTTP rules there ("rules ignored … as they require HTTP
// mode").
func ignoredRewrites(fe, be *hapProxy, w *warnings) {
	for _, p := range []*hapProxy{fe, be} {
		if p.http != nil && !p.http.hdr.empty() && p.mode != "http" {
			h := p.http.hdr
			for _, l := range slices.Concat(h.req, h.reqOld, h.rsp, h.rspOld, h.after) {
				w.add(l.Pos, "%q: ignored in mode %s, as HAProxy ignores it", strings.Join(l.Words, " "), cmp.Or(p.mode, "tcp"))
			}
		}
		if fe == be {
			break
		}
	}
}

// mapHeaders adds the rewrites of the frontend and of its default
// backend (for the requests that go to it) to m.
func (fe *hapProxy) mapHeaders(be *hapProxy, m *httpMode, w *warnings) []need {
	req, rsp, after, ns := fe.headerActions("", w)
	if be != fe {
		breq, brsp, bafter, bns := be.headerActions(be.name, w)
		req = append(req, breq...)
		rsp = append(brsp, rsp...)
		after = append(bafter, after...)
		ns = append(ns, bns...)
	}
	m.reqHeaders, m.rspHeaders, m.afterHeaders = req, rsp, after
	return ns
}

// poolHeaders adds the rewrites of the backends the service's rules send
// requests to, each for those requests only; a backend's default-backend
// rewrites need no pool when no rule sends requests elsewhere.
func (c *hapConfig) poolHeaders(s *service, w *warnings) []need {
	var ns []need
	done := map[string]bool{}
	uses := false
	for _, r := range s.http.rules {
		if r.use == "" {
			continue
		}
		uses = true
		be := c.backends[r.use]
		if be == nil || done[be.name] || be.http == nil || be.http.hdr.empty() {
			continue
		}
		done[be.name] = true
		mine := func(a hdrAction) bool { return a.pool == be.name }
		if slices.ContainsFunc(s.http.reqHeaders, mine) || slices.ContainsFunc(s.http.rspHeaders, mine) || slices.ContainsFunc(s.http.afterHeaders, mine) {
			continue // the default backend's, mapped already
		}
		req, rsp, after, bns := be.headerActions(be.name, w)
		s.http.reqHeaders = append(s.http.reqHeaders, req...)
		s.http.rspHeaders = append(rsp, s.http.rspHeaders...)
		s.http.afterHeaders = append(after, s.http.afterHeaders...)
		ns = append(ns, bns...)
	}
	if !uses {
		for _, as := range [][]hdrAction{s.http.reqHeaders, s.http.rspHeaders, s.http.afterHeaders} {
			for i := range as {
				as[i].pool = ""
			}
		}
	}
	return ns
}

// fwdOptions reads option forwardfor's options: except NET and if-none
// are kept; header NAME is not (warned).
func (m *httpMode) fwdOptions(f *fwdOption, w *warnings, warn bool) {
	if !warn {
		w = &warnings{}
	}
	ws := f.line.Words[2:]
	for i := 0; i < len(ws); i++ {
		switch ws[i] {
		case "except":
			if i+1 < len(ws) {
				i++
				_, perr := netip.ParsePrefix(ws[i])
				_, aerr := netip.ParseAddr(ws[i])
				if (perr == nil || aerr == nil) && !slices.Contains(m.fwdExcept, ws[i]) {
					m.fwdExcept = append(m.fwdExcept, ws[i])
				}
				if perr == nil || aerr == nil {
					continue
				}
			}
			w.add(f.line.Pos, "%q: except %s: not an address or network: not kept, X-Forwarded-For is added for every client", strings.Join(f.line.Words, " "), ws[i])
		case "if-none":
			m.fwdIfNone = true
		default:
			w.add(f.line.Pos, "%q: %s not mapped: the client's address goes in X-Forwarded-For", strings.Join(f.line.Words, " "), strings.Join(ws[i:], " "))
			return
		}
	}
}

// hdrValueRE finds the log-format expressions of a value.
var hdrValueRE = regexp.MustCompile(`%(\[[^]]*\]|.)`)

// hdrValue checks a log-format value: only %[src], %[dst], %[ssl_fc] and
// %% are evaluated by the proxy.
func hdrValue(v string) string {
	if strings.HasSuffix(strings.ReplaceAll(v, "%%", ""), "%") {
		return fmt.Sprintf("the value %q (a %% that starts no expression)", v)
	}
	for _, m := range hdrValueRE.FindAllString(v, -1) {
		switch m {
		case "%%", "%[src]", "%[dst]", "%[ssl_fc]":
		default:
			return fmt.Sprintf("the value %q (the log-format expression %s: gitgw's values are text with %%[src], %%[dst], %%[ssl_fc])", v, m)
		}
	}
	if strings.ContainsAny(v, "\r\n\x00") {
		return fmt.Sprintf("the value %q holds a control character", v)
	}
	return ""
}

// ownHeaders are the fields gitgw's proxy writes itself.
var ownHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Te", "Trailer", "Upgrade", "Content-Length"}

// headerActions maps the rewrite lines of one section; pool is the
// backend the request ones apply to ("" for every request). Each line
// is mapped or refused (the needs) or, for a header the proxy writes
// itself, named as not mapped.
func (p *hapProxy) headerActions(pool string, w *warnings) (req, rsp, after []hdrAction, ns []need) {
	if p.http == nil || p.http.hdr.empty() {
		return nil, nil, nil, nil
	}
	h := p.http.hdr
	do := func(ls []hapLine, response bool, out *[]hdrAction) {
		for _, l := range ls {
			as, why := p.headerAction(l, response)
			if why == "own" {
				w.add(l.Pos, "%q: not mapped (gitgw's proxy writes Connection, Content-Length, Transfer-Encoding and the other hop-by-hop fields itself; its connections to the servers and clients are kept alive as HTTP/1.1 allows)", strings.Join(l.Words, " "))
				continue
			}
			if why != "" {
				ns = append(ns, needs(l.Pos, FeatHeaderRewrite, "%s (%s)", strings.Join(l.Words, " "), why))
				continue
			}
			for i := range as {
				as[i].pool = pool
			}
			*out = append(*out, as...)
		}
	}
	do(h.req, false, &req)
	do(h.reqOld, false, &req)
	do(h.rsp, true, &rsp)
	do(h.rspOld, true, &rsp)
	do(h.after, true, &after)
	return req, rsp, after, ns
}

// headerAction maps one rewrite line: one action, or one per
// alternative of its condition for an idempotent one; why "own": a
// header the proxy writes itself.
func (p *hapProxy) headerAction(l hapLine, response bool) ([]hdrAction, string) {
	ws := l.Words
	a := hdrAction{pos: l.Pos, from: p, kw: ws[0]}
	var rest []string
	if op := headerOps[ws[1]]; op != "" && (ws[0] == "http-request" || ws[0] == "http-response" || ws[0] == "http-after-response") {
		a.op, a.name = op, ws[2]
		args := ws[3:]
		n := map[string]int{"set": 1, "add": 1, "del": 0, "replace-header": 2, "replace-value": 2}[op]
		if op == "del" && len(args) >= 2 && args[0] == "-m" {
			if args[1] != "str" {
				return nil, "del-header -m " + args[1]
			}
			args = args[2:]
		}
		if len(args) < n {
			return nil, "missing arguments"
		}
		switch op {
		case "set", "add":
			a.value = args[0]
			if why := hdrValue(a.value); why != "" {
				return nil, why
			}
		case "replace-header", "replace-value":
			a.regex, a.value = args[0], args[1]
			if strings.Contains(a.value, "%") {
				return nil, fmt.Sprintf("the replacement %q (a log-format expression)", a.value)
			}
		}
		rest = args[n:]
	} else {
		old := strings.TrimPrefix(strings.TrimPrefix(ws[0], "req"), "rsp")
		if len(ws) < 2 {
			return nil, "missing arguments"
		}
		switch old {
		case "add":
			name, value, ok := strings.Cut(ws[1], ":")
			if !ok || !headerNameRE.MatchString(name) {
				return nil, fmt.Sprintf("%q is no header line", ws[1])
			}
			// 1.x's line is text: a % is a %.
			a.op, a.name, a.value = "add", name, strings.ReplaceAll(strings.TrimLeft(value, " \t"), "%", "%%")
			rest = ws[2:]
		case "del", "idel":
			a.op, a.regex, a.ignoreCase = "del-line", ws[1], old == "idel"
			rest = ws[2:]
		case "rep", "irep":
			if len(ws) < 3 {
				return nil, "missing arguments"
			}
			a.op, a.regex, a.value, a.ignoreCase = "replace-line", ws[1], ws[2], old == "irep"
			rest = ws[3:]
		}
	}
	if a.name != "" {
		if !headerNameRE.MatchString(a.name) {
			return nil, fmt.Sprintf("the header name %q", a.name)
		}
		canon := http.CanonicalHeaderKey(a.name)
		if slices.Contains(ownHeaders, canon) {
			return nil, "own"
		}
		if canon == "Host" && (a.op == "add" || a.op == "del" || response) {
			return nil, "a Host header added, deleted or in a response (gitgw sends a request's one Host)"
		}
	}
	if a.regex != "" {
		expr := a.regex
		if a.ignoreCase {
			expr = "(?i)" + expr
		}
		if _, err := regexp.Compile(expr); err != nil {
			return nil, fmt.Sprintf("a regex Go cannot compile (%v)", err)
		}
	}
	if strings.ContainsAny(a.value, "\r\x00") || a.op != "replace-line" && strings.Contains(a.value, "\n") {
		return nil, fmt.Sprintf("the value %q holds a control character", a.value)
	}
	rs, why := p.httpCondRules(rest)
	if why == "" {
		why = sniInHTTP(rs)
	}
	if why != "" {
		return nil, why
	}
	if len(rs) > 1 && a.op != "set" && a.op != "del" && a.op != "del-line" {
		return nil, "a condition of alternatives (||) on a rewrite that is not the same applied twice"
	}
	var out []hdrAction
	for _, r := range rs {
		if response {
			for _, c := range r.when {
				if c.subject != "source" && c.subject != "tls" {
					return nil, fmt.Sprintf("a condition on %s in a response rewrite (HAProxy reads it from the response; gitgw's response conditions are src and ssl_fc)", c.subject)
				}
			}
		}
		b := a
		b.when = r.when
		out = append(out, b)
	}
	return out, ""
}

// headerRuleConflicts names the rewrites whose header a rule of the
// service reads: gitgw's rules see the request as the client sent it,
// HAProxy's later ones the rewritten request.
func headerRuleConflicts(reqs []hdrAction, rules []httpRule) []need {
	var ns []need
	for _, a := range reqs {
		for _, r := range rules {
			if !a.before(r) {
				continue
			}
			if c, ok := readsRewritten(a, r.when); ok {
				ns = append(ns, needs(a.pos, FeatHeaderRewrite, "%s rewrites what the rule at line %d reads (%s): gitgw's rules see the request as sent", a.describe(), r.pos.Line, c))
				break
			}
		}
	}
	return ns
}

// before reports whether HAProxy may evaluate rule r after the rewrite
// a: a backend's rewrite runs once the frontend's rules have picked the
// backend, before the backend's own rules; a rewrite by http-request
// runs after the http-request rules above it in its section.
func (a hdrAction) before(r httpRule) bool {
	var l *hapLine
	if h := a.from.http; h != nil {
		for i := range h.routes {
			if h.routes[i].Pos == r.pos {
				l = &h.routes[i]
			}
		}
	}
	if a.from.kind == "backend" && l == nil {
		return false // a frontend's rule, or another backend's
	}
	if l != nil && l.Words[0] == "http-request" && a.pos.File == l.Pos.File && l.Pos.Line < a.pos.Line && a.kw == "http-request" {
		return false
	}
	if l != nil && (l.Words[0] == "block" || l.Words[0] == "http-request") && reqRewrite1x[a.kw] && a.from == ownerOf(a.from, l) {
		// HAProxy 1.x runs a section's block and http-request rules
		// before its req* filters, wherever the lines stand.
		return false
	}
	return true
}

// reqRewrite1x are HAProxy 1.x's request rewrite filters.
var reqRewrite1x = map[string]bool{"reqrep": true, "reqirep": true, "reqadd": true, "reqdel": true, "reqidel": true}

// ownerOf is p when l is one of p's routing lines, else nil.
func ownerOf(p *hapProxy, l *hapLine) *hapProxy {
	if p.http == nil {
		return nil
	}
	for i := range p.http.routes {
		if &p.http.routes[i] == l {
			return p
		}
	}
	return nil
}

// readsRewritten reports whether a condition of cs reads what a may
// change, and names it.
func readsRewritten(a hdrAction, cs []httpCond) (string, bool) {
	if ns := lineHeaderNames(a); len(ns) > 0 {
		for _, n := range ns {
			b := a
			b.op, b.name = "line of "+n, n
			if what, ok := readsRewritten(b, cs); ok {
				return what, true
			}
		}
		return "", false
	}
	for _, c := range cs {
		switch {
		case c.subject == "source" || c.subject == "source_port" || c.subject == "tls":
			// Of the connection, not of the request's lines.
		case c.subject == "line" && (a.op == "del-line" || a.op == "replace-line" || strings.HasPrefix(a.op, "line of ")):
			// A 1.x filter and a 1.x rewrite: a filter after the rewrite
			// is warned about (rewriteBeforeFilters), one before it sees
			// the lines as sent in HAProxy too.
		case (a.op == "del-line" || a.op == "replace-line") && requestLineOnly(a.regex) &&
			c.subject != "method" && c.subject != "url" && c.subject != "path" && c.subject != "version":
			// A regex that only the request line can match leaves the
			// header fields as sent.
		case a.op == "del-line" || a.op == "replace-line":
			return c.subject, true // any line, the request line too
		case (c.subject == "header" || c.subject == "header_count" || c.subject == "header_value") && strings.EqualFold(c.header, a.name):
			return "hdr(" + c.header + ")", true
		case c.subject == "host" && strings.EqualFold(a.name, "host"):
			return "the host", true
		case c.subject == "line":
			return "the request's lines", true
		case c.subject == "auth" && strings.EqualFold(a.name, "authorization"):
			return "the credentials", true
		}
	}
	return "", false
}

// requestLineRE is a line regex anchored on a method and the space after
// it: a header line ("Name: value") has no space before its colon, so
// only the request line can match.
var requestLineRE = regexp.MustCompile(`^\^\(?[A-Z]+(\\ | |\\s|\[ \])`)

func requestLineOnly(re string) bool { return requestLineRE.MatchString(re) }

// lineHeaderRE is a line regex anchored on a header name: it matches no
// request line (a method has no colon) and no other header's line.
var lineHeaderRE = regexp.MustCompile(`^\^\(?([A-Za-z0-9-]+)(\\)?:`)

// lineHeaderNames are the headers a line action touches when its regex
// is anchored on a header name and, for a replacement, the result starts
// with one; nil when it may touch any line.
func lineHeaderNames(a hdrAction) []string {
	if a.op != "del-line" && a.op != "replace-line" {
		return nil
	}
	m := lineHeaderRE.FindStringSubmatch(a.regex)
	if m == nil {
		return nil
	}
	if a.op == "del-line" {
		return []string{m[1]}
	}
	n, _, ok := strings.Cut(a.value, ":")
	if !ok || !headerNameRE.MatchString(n) || strings.Contains(a.value, "\n") {
		return nil
	}
	return []string{m[1], n}
}

func (a hdrAction) describe() string {
	if a.name != "" {
		return fmt.Sprintf("line %d (%s %s)", a.pos.Line, a.op, a.name)
	}
	return fmt.Sprintf("line %d (%s)", a.pos.Line, a.op)
}

// headersField writes a list of header actions.
func headersField(as []hdrAction) *clist {
	l := &clist{block: true}
	for _, a := range as {
		s := inline(fld("op", cstr(a.op)))
		if a.name != "" {
			s.fields = append(s.fields, fld("name", cstr(a.name)))
		}
		if a.regex != "" {
			s.fields = append(s.fields, fld("regex", cstr(a.regex)))
		}
		if a.op != "del" && a.op != "del-line" {
			s.fields = append(s.fields, fld("value", cstr(a.value)))
		}
		if a.ignoreCase {
			s.fields = append(s.fields, fld("ignore_case", cbool(true)))
		}
		if a.pool != "" {
			s.fields = append(s.fields, fld("pool", cstr(a.pool)))
		}
		if len(a.when) > 0 {
			s.fields = append(s.fields, fld("when", condsField(a.when)))
		}
		l.elems = append(l.elems, s)
	}
	return l
}
