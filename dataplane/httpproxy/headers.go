package httpproxy

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Header rewrites: HAProxy's http-request and http-response set-header,
// add-header, del-header, replace-header and replace-value, and HAProxy
// 1.x's reqadd/reqdel/reqrep (and rsp…) filters, which work on whole
// header lines.
//
// Order. The request actions run, in order, once the rules have decided
// where the request goes (a request a rule denies, redirects, tarpits or
// asks credentials of reaches no server, so its headers do not matter),
// each seeing what the ones before it did; X-Forwarded-For is added
// after them, as HAProxy adds it when the request leaves for the backend,
// after every http-request rule. The rules' conditions see the request as
// the client sent it: the importer refuses a configuration whose rules
// read a header a rewrite changes (in HAProxy a use_backend after a
// set-header sees the new value). The response actions run, in order, on
// each response a server sent, before it is passed on.
//
// Values. A set or add value is static text but for %[src] (the client's
// address), %[dst] (the address it connected to), %[ssl_fc] (1 over TLS,
// else 0) and %% (a %): the few of HAProxy's log-format that are exact
// here. replace-header and replace-value replace a whole value that
// their regex matches (it need not match all of it, as HAProxy's) with
// the replacement, in which \0 to \9 are the match and its groups.

// HeaderOp is what a header action does.
type HeaderOp string

// The header operations.
const (
	// HdrSet replaces every field of Name with one of Value.
	HdrSet HeaderOp = "set"
	// HdrAdd adds a field Name: Value after those there are.
	HdrAdd HeaderOp = "add"
	// HdrDel removes every field of Name.
	HdrDel HeaderOp = "del"
	// HdrReplaceHeader replaces each field of Name whose whole value
	// Regex matches with Value (\N references).
	HdrReplaceHeader HeaderOp = "replace-header"
	// HdrReplaceValue does the same on each comma-separated value of
	// each field of Name.
	HdrReplaceValue HeaderOp = "replace-value"
	// HdrDelLine removes each header line "Name: value" Regex matches
	// (HAProxy 1.x's reqdel, reqidel, rspdel, rspidel).
	HdrDelLine HeaderOp = "del-line"
	// HdrReplaceLine replaces the request (or status) line and each
	// header line Regex matches with Value, \N references expanded
	// (reqrep, reqirep, rsprep, rspirep); a line the result no longer
	// makes a "Name: value" of is removed, a result with line feeds is
	// several lines.
	HdrReplaceLine HeaderOp = "replace-line"
)

// HeaderAction is one header rewrite, applied when its conditions hold.
type HeaderAction struct {
	Op    HeaderOp `json:"op"`
	Name  string   `json:"name,omitempty"`  // every op but the line ones
	Value string   `json:"value,omitempty"` // set, add: the value; replace-*: the replacement
	Regex string   `json:"regex,omitempty"` // replace-*, *-line
	// IgnoreCase matches Regex without case (reqidel, reqirep, …).
	IgnoreCase bool `json:"ignore_case,omitempty"`
	// When holds conditions that must all hold; a response action's are
	// evaluated on the request it answers.
	When []Cond `json:"when,omitempty"`
	// Pool limits the action to the requests the rules send to this pool
	// and their responses (HAProxy's backend rewrites); "": all.
	Pool string `json:"pool,omitempty"`
}

// connHeaders are the fields net/http writes itself for each connection
// and message: a rewrite of them could not be kept, so none is allowed.
var connHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Transfer-Encoding": true,
	"Te": true, "Trailer": true, "Upgrade": true, "Content-Length": true,
}

// headerNameRE is a header name (an RFC 9110 token).
var headerNameRE = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")

// validateHeaders reports the problems of a list of header actions;
// where names it (request_headers or response_headers).
func validateHeaders(where string, as []HeaderAction, response bool) []error {
	var errs []error
	for i, a := range as {
		if _, err := compileHeader(a, nil, response); err != nil {
			errs = append(errs, fmt.Errorf("http: %s #%d: %w", where, i+1, err))
		}
	}
	return errs
}

// header is a compiled HeaderAction.
type header struct {
	HeaderAction
	re   *regexp.Regexp
	when []*cond
}

func compileHeader(a HeaderAction, lists map[string]*authList, response bool) (*header, error) {
	h := &header{HeaderAction: a}
	switch a.Op {
	case HdrSet, HdrAdd, HdrDel, HdrReplaceHeader, HdrReplaceValue:
		if !headerNameRE.MatchString(a.Name) {
			return nil, fmt.Errorf("%s: header name %q", a.Op, a.Name)
		}
		h.Name = http.CanonicalHeaderKey(a.Name)
		if connHeaders[h.Name] {
			return nil, fmt.Errorf("%s %s: the proxy writes this header itself", a.Op, a.Name)
		}
		if h.Name == "Host" && (a.Op == HdrAdd || a.Op == HdrDel) {
			return nil, fmt.Errorf("%s Host: a request has one Host", a.Op)
		}
		if response && h.Name == "Host" {
			return nil, errors.New("a Host header in a response")
		}
	case HdrDelLine, HdrReplaceLine:
		if a.Name != "" {
			return nil, fmt.Errorf("%s: takes a regex, no name", a.Op)
		}
	default:
		return nil, fmt.Errorf("unknown op %q", a.Op)
	}
	switch a.Op {
	case HdrSet, HdrAdd:
		if err := checkValue(a.Value); err != nil {
			return nil, fmt.Errorf("%s %s: %w", a.Op, a.Name, err)
		}
		if a.Regex != "" {
			return nil, fmt.Errorf("%s: takes no regex", a.Op)
		}
	case HdrDel:
		if a.Value != "" || a.Regex != "" {
			return nil, errors.New("del: takes no value or regex")
		}
	default:
		expr := a.Regex
		if a.IgnoreCase {
			expr = "(?i)" + expr
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return nil, fmt.Errorf("%s: regex %q: %w", a.Op, a.Regex, err)
		}
		if a.Regex == "" {
			return nil, fmt.Errorf("%s: no regex", a.Op)
		}
		if a.Op == HdrDelLine && a.Value != "" {
			return nil, errors.New("del-line: takes no value")
		}
		if strings.ContainsAny(a.Value, "\r\x00") || a.Op != HdrReplaceLine && strings.Contains(a.Value, "\n") {
			return nil, fmt.Errorf("%s: replacement %q holds a control character", a.Op, a.Value)
		}
		h.re = re
	}
	for j, c := range a.When {
		cc, err := compileCond(c, lists)
		if err != nil {
			return nil, fmt.Errorf("condition #%d: %w", j+1, err)
		}
		h.when = append(h.when, cc)
	}
	return h, nil
}

// checkValue accepts the log-format expressions expandValue knows.
func checkValue(v string) error {
	if strings.ContainsAny(v, "\r\n\x00") {
		return fmt.Errorf("value %q holds a control character", v)
	}
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			continue
		}
		rest := v[i:]
		switch {
		case strings.HasPrefix(rest, "%%"):
			i++
		case strings.HasPrefix(rest, "%[src]"), strings.HasPrefix(rest, "%[dst]"):
			i += 5
		case strings.HasPrefix(rest, "%[ssl_fc]"):
			i += 8
		default:
			return fmt.Errorf("value %q: only %%[src], %%[dst], %%[ssl_fc] and %%%% are expanded", v)
		}
	}
	return nil
}

// reqInfo is what a value's expressions read.
type reqInfo struct {
	src, dst netip.Addr
	tls      bool
	pool     string // where the rules sent the request
}

func expandValue(v string, ri reqInfo) string {
	if !strings.Contains(v, "%") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		rest := v[i:]
		switch {
		case strings.HasPrefix(rest, "%%"):
			b.WriteByte('%')
			i++
		case strings.HasPrefix(rest, "%[src]"):
			b.WriteString(addrText(ri.src))
			i += 5
		case strings.HasPrefix(rest, "%[dst]"):
			b.WriteString(addrText(ri.dst))
			i += 5
		case strings.HasPrefix(rest, "%[ssl_fc]"):
			b.WriteString(map[bool]string{true: "1", false: "0"}[ri.tls])
			i += 8
		default:
			b.WriteByte(v[i])
		}
	}
	return b.String()
}

func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return "" // HAProxy writes nothing for a fetch that has no value
	}
	return a.Unmap().String()
}

// expandRefs is the replacement with \0…\9 replaced by the match and its
// groups (empty when a group did not take part), as HAProxy's exp_replace.
func expandRefs(repl, s string, m []int) string {
	if !strings.Contains(repl, `\`) {
		return repl
	}
	var b strings.Builder
	for i := 0; i < len(repl); i++ {
		c := repl[i]
		if c == '\\' && i+1 < len(repl) && repl[i+1] >= '0' && repl[i+1] <= '9' {
			n := int(repl[i+1] - '0')
			if 2*n+1 < len(m) && m[2*n] >= 0 {
				b.WriteString(s[m[2*n]:m[2*n+1]])
			}
			i++
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// replaceWhole is s replaced by the expanded replacement when re matches
// it, and whether it did.
func (h *header) replaceWhole(s string) (string, bool) {
	m := h.re.FindStringSubmatchIndex(s)
	if m == nil {
		return s, false
	}
	return expandRefs(h.Value, s, m), true
}

// replaceValues applies replace-value to one field: each comma-separated
// value (commas in double quotes do not separate) is matched without
// the spaces around it; a value replaced loses them, one left keeps them,
// as HAProxy 2.6 writes the field ("old, keep,old ,  old" is
// "new, keep,new,new" for ^old$ → new).
func (h *header) replaceValues(field string) string {
	var b strings.Builder
	start, quoted := 0, false
	part := func(p string) {
		out, ok := h.replaceWhole(strings.Trim(p, " \t"))
		if !ok {
			out = p
		}
		b.WriteString(out)
	}
	for i := 0; i < len(field); i++ {
		switch field[i] {
		case '"':
			quoted = !quoted
		case '\\':
			if quoted {
				i++
			}
		case ',':
			if !quoted {
				part(field[start:i])
				b.WriteByte(',')
				start = i + 1
			}
		}
	}
	part(field[start:])
	return b.String()
}

// applyFields runs one action on a header map (Host included in it for a
// request); the line actions are applied by applyLines.
func (h *header) applyFields(hd http.Header, ri reqInfo) {
	switch h.Op {
	case HdrSet:
		hd[h.Name] = []string{expandValue(h.Value, ri)}
	case HdrAdd:
		hd[h.Name] = append(hd[h.Name], expandValue(h.Value, ri))
	case HdrDel:
		delete(hd, h.Name)
	case HdrReplaceHeader, HdrReplaceValue:
		vs := hd[h.Name]
		for i, v := range vs {
			if h.Op == HdrReplaceHeader {
				vs[i], _ = h.replaceWhole(v)
			} else {
				vs[i] = h.replaceValues(v)
			}
		}
	}
}

// applyLines runs a line action on the first line (the request or status
// line, which only replace-line touches) and on each header line, names
// canonical as reqlines.go builds them. It returns the first line.
func (h *header) applyLines(first string, hd http.Header) string {
	if h.Op == HdrReplaceLine {
		first, _ = h.replaceWhole(first)
	}
	old := make(http.Header, len(hd))
	for k, v := range hd {
		old[k] = v
		delete(hd, k)
	}
	for _, name := range slices.Sorted(maps.Keys(old)) {
		for _, v := range old[name] {
			line := name + ": " + v
			if !h.re.MatchString(line) {
				hd[name] = append(hd[name], v)
				continue
			}
			if h.Op == HdrDelLine {
				continue
			}
			out, _ := h.replaceWhole(line)
			for _, l := range strings.Split(out, "\n") {
				n, val, ok := strings.Cut(l, ":")
				if !ok || !headerNameRE.MatchString(n) {
					continue // no longer a header line
				}
				n = http.CanonicalHeaderKey(n)
				hd[n] = append(hd[n], strings.Trim(val, " \t"))
			}
		}
	}
	return first
}

// holds reports whether the action's conditions all hold for r.
func (h *header) holds(r *http.Request, ri reqInfo) bool {
	return (h.Pool == "" || h.Pool == ri.pool) && (&rule{when: h.when}).match(r, ri.src)
}

// rewriteRequest applies the request actions to r, which the caller owns
// (a clone of what the server read); ok false: a rewritten request line
// is no longer one.
func rewriteRequest(hs []*header, r *http.Request, ri reqInfo) bool {
	if len(hs) == 0 {
		return true
	}
	for _, h := range hs {
		if !h.holds(r, ri) {
			continue
		}
		if r.Host != "" {
			r.Header["Host"] = []string{r.Host}
		}
		if h.Op == HdrDelLine || h.Op == HdrReplaceLine {
			first := h.applyLines(r.Method+" "+r.RequestURI+" "+r.Proto, r.Header)
			if !setRequestLine(r, first) {
				return false
			}
		} else {
			h.applyFields(r.Header, ri)
		}
		r.Host = ""
		if vs := r.Header["Host"]; len(vs) > 0 {
			r.Host = vs[len(vs)-1]
		}
		delete(r.Header, "Host")
	}
	return true
}

// setRequestLine makes r's method and target those of line "METHOD
// TARGET PROTO" (the protocol is the connection's).
func setRequestLine(r *http.Request, line string) bool {
	if line == r.Method+" "+r.RequestURI+" "+r.Proto {
		return true
	}
	f := strings.Split(line, " ")
	if len(f) != 3 || f[0] == "" || !strings.HasPrefix(f[2], "HTTP/") {
		return false
	}
	u, err := r.URL.Parse(f[1])
	if err != nil || !strings.HasPrefix(f[1], "/") && f[1] != "*" {
		return false
	}
	r.Method, r.RequestURI, r.URL = f[0], f[1], u
	return true
}

// rewriteResponse applies the response actions to resp, answering r;
// ok false: a rewritten status line is no longer one.
func rewriteResponse(hs []*header, resp *http.Response, r *http.Request, ri reqInfo) bool {
	for _, h := range hs {
		if !h.holds(r, ri) {
			continue
		}
		if h.Op != HdrDelLine && h.Op != HdrReplaceLine {
			h.applyFields(resp.Header, ri)
			continue
		}
		first := h.applyLines(resp.Proto+" "+resp.Status, resp.Header)
		if first == resp.Proto+" "+resp.Status {
			continue
		}
		f := strings.SplitN(first, " ", 3)
		code, err := strconv.Atoi(f[min(1, len(f)-1)])
		if len(f) < 2 || err != nil || code < 100 || code > 599 || !strings.HasPrefix(f[0], "HTTP/") {
			return false
		}
		resp.StatusCode, resp.Status = code, strings.Join(f[1:], " ")
	}
	return true
}

// forwardFor reports whether X-Forwarded-For gets the client's address:
// option forwardfor, but for a client of an except network, or, with
// if-none, a request that has the header (after the rewrites).
func (rt *routes) forwardFor(client netip.Addr, out http.Header) bool {
	if rt == nil || !rt.ForwardFor || !client.IsValid() {
		return false
	}
	for _, n := range rt.ForwardForExcept {
		if n.Contains(client) {
			return false
		}
	}
	return !rt.ForwardForIfNone || len(out["X-Forwarded-For"]) == 0
}

// modifyResponse applies the response actions of the rules the request
// was decided by; a status line they break is the server's error (502).
func (f *frontend) modifyResponse(resp *http.Response) error {
	st, _ := resp.Request.Context().Value(ctxKey{}).(*reqState)
	if st == nil || len(st.rt.rspHeaders) == 0 {
		return nil
	}
	if !rewriteResponse(st.rt.rspHeaders, resp, resp.Request, st.info) {
		return errors.New("httpproxy: a response rewrite left no status line")
	}
	return nil
}

// localAddr is the address the client connected to.
func localAddr(r *http.Request) netip.Addr {
	a, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// badRequest answers 400, as HAProxy does to a request it cannot parse.
func badRequest(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html")
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = fmt.Fprintf(w, "<html><body><h1>400 Bad request</h1>\nYour browser sent an invalid request.\n</body></html>\n")
}

// afterWriter applies the after-response actions to whatever response
// the frontend writes, its own or a server's, when its header goes out.
type afterWriter struct {
	http.ResponseWriter
	hs    []*header
	r     *http.Request
	info  *reqInfo
	wrote bool
}

func (a *afterWriter) WriteHeader(code int) {
	if !a.wrote && code >= 200 {
		a.wrote = true
		for _, h := range a.hs {
			if h.holds(a.r, *a.info) {
				h.applyFields(a.ResponseWriter.Header(), *a.info)
			}
		}
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a *afterWriter) Write(b []byte) (int, error) {
	if !a.wrote {
		a.WriteHeader(http.StatusOK)
	}
	return a.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController flush and hijack.
func (a *afterWriter) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// String is the action in HAProxy-like words, for plans:
// "set X-Real-IP %[src] if { source 10.0.0.0/8 }".
func (a HeaderAction) String() string {
	var b strings.Builder
	b.WriteString(string(a.Op))
	for _, w := range []string{a.Name, a.Regex} {
		if w != "" {
			b.WriteString(" " + strconv.Quote(w))
		}
	}
	if a.Op != HdrDel && a.Op != HdrDelLine {
		b.WriteString(" " + strconv.Quote(a.Value))
	}
	if a.IgnoreCase {
		b.WriteString(" -i")
	}
	if a.Pool != "" {
		b.WriteString(" for pool " + a.Pool)
	}
	if len(a.When) > 0 {
		b.WriteString(Rule{When: a.When}.String()) // " if { … }"
	}
	return b.String()
}

// DescribeHeaders spells the forwardfor options and the header rewrites
// of h for plans, one part each, so that a change of any shows.
func DescribeHeaders(h *HTTP) []string {
	var parts []string
	if len(h.ForwardForExcept) > 0 {
		var ns []string
		for _, n := range h.ForwardForExcept {
			ns = append(ns, n.String())
		}
		parts = append(parts, "forwardfor except "+strings.Join(ns, " "))
	}
	if h.ForwardForIfNone {
		parts = append(parts, "forwardfor if-none")
	}
	for _, l := range []struct {
		what string
		as   []HeaderAction
	}{{"request", h.RequestHeaders}, {"response", h.ResponseHeaders}, {"after-response", h.AfterResponseHeaders}} {
		for _, a := range l.as {
			parts = append(parts, l.what+" "+a.String())
		}
	}
	return parts
}

// CloneHeaders deep-copies the header rewrites and forwardfor options of
// h into c (a shallow copy of h).
func CloneHeaders(c *HTTP) {
	c.ForwardForExcept = slices.Clone(c.ForwardForExcept)
	for _, as := range []*[]HeaderAction{&c.RequestHeaders, &c.ResponseHeaders, &c.AfterResponseHeaders} {
		*as = slices.Clone(*as)
		for i := range *as {
			a := &(*as)[i]
			a.When = slices.Clone(a.When)
			for j := range a.When {
				a.When[j].Values = slices.Clone(a.When[j].Values)
			}
		}
	}
}
