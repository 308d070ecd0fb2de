package httpproxy

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"
)

// HTTP is what a proxy service in HTTP mode adds to its TCP settings
// (HAProxy's `mode http` frontend): TLS termination, rules evaluated in
// order for each request, a monitor URI and X-Forwarded-For.
type HTTP struct {
	// TLS terminates TLS on every bind of the service (HAProxy's
	// `bind … ssl crt FILE`); nil: plain HTTP.
	TLS *TLS `json:"tls,omitempty"`
	// Rules are evaluated in order for each request; the first whose
	// conditions all hold acts. A request that matches none goes to the
	// service's own servers (HAProxy's default_backend).
	Rules []Rule `json:"rules,omitempty"`
	// MonitorURI answers 200 to a request for this path before any rule
	// (HAProxy's monitor-uri), without asking a server.
	MonitorURI string `json:"monitor_uri,omitempty"`
	// ForwardFor appends the client's address to X-Forwarded-For
	// (HAProxy's `option forwardfor`).
	ForwardFor bool `json:"forward_for,omitempty"`
	// ForwardForExcept: no X-Forwarded-For for a client in one of these
	// networks (option forwardfor except NET).
	ForwardForExcept []netip.Prefix `json:"forward_for_except,omitempty"`
	// ForwardForIfNone: none either for a request that has one already
	// (option forwardfor if-none).
	ForwardForIfNone bool `json:"forward_for_if_none,omitempty"`
	// RequestHeaders rewrite the headers of each request a server gets,
	// ResponseHeaders those of each response it sends, in order
	// (headers.go).
	RequestHeaders  []HeaderAction `json:"request_headers,omitempty"`
	ResponseHeaders []HeaderAction `json:"response_headers,omitempty"`
	// AfterResponseHeaders rewrite every response, the proxy's own too
	// (deny, redirect, errors, the monitor URI: HAProxy's
	// http-after-response); fields only, no line actions.
	AfterResponseHeaders []HeaderAction `json:"after_response_headers,omitempty"`
	// Userlists are the user lists the rules' auth conditions name, by
	// name (auth.go).
	Userlists map[string]Userlist `json:"userlists,omitempty"`
}

// TLS is the server side of TLS termination.
type TLS struct {
	// CertFiles are PEM files, each holding a certificate (chain) and its
	// private key, or directories of them, as HAProxy's crt. The client's
	// SNI picks the one whose names match; without a match, the first.
	CertFiles []string `json:"cert_files"`
	// Binds limits TLS to these of the service's binds (HAProxy's ssl on
	// one bind line of a frontend that also listens in clear, which is
	// what a redirect to https needs); empty: every bind.
	Binds []netip.AddrPort `json:"binds,omitempty"`
}

// covers reports whether TLS applies to a connection that arrived on
// local: a bind on a wildcard address covers its port on every address.
func (t *TLS) covers(local netip.AddrPort) bool {
	if len(t.Binds) == 0 {
		return true
	}
	for _, b := range t.Binds {
		if b.Port() == local.Port() && (b.Addr().IsUnspecified() || b.Addr() == local.Addr().Unmap()) {
			return true
		}
	}
	return false
}

// Rule is a condition list and one action.
type Rule struct {
	// When holds conditions that must all hold (HAProxy's ACLs in one
	// `if`); empty: always.
	When []Cond `json:"when,omitempty"`
	// Exactly one action:
	// Use sends the request to another service's servers (a pool: a
	// service of the site, typically one without binds).
	Use string `json:"use,omitempty"`
	// Deny answers this status (HAProxy's http-request deny: 403).
	Deny int `json:"deny,omitempty"`
	// Redirect answers a redirection.
	Redirect *Redirect `json:"redirect,omitempty"`
	// Tarpit holds the request this long, sending nothing to any server,
	// then answers 500 and closes (HAProxy's reqtarpit and http-request
	// tarpit, held for the proxy's timeout tarpit): it slows down a
	// client that probes for what it should not (tarpit.go). The hold is
	// the rule's own so that each rule says what it does; HAProxy's
	// tarpit of 0 is a deny 500.
	Tarpit time.Duration `json:"tarpit,omitempty"`
	// Auth answers 401, asking for credentials (auth.go).
	Auth *Auth `json:"auth,omitempty"`
}

// Redirect is HAProxy's `redirect scheme|location|prefix … [code N]`:
// exactly one of Scheme, Location and Prefix.
type Redirect struct {
	Scheme   string `json:"scheme,omitempty"`   // "https": same host and URI
	Location string `json:"location,omitempty"` // the whole target
	Prefix   string `json:"prefix,omitempty"`   // prepended to the URI
	Code     int    `json:"code,omitempty"`     // 301, 302 (default), 303, 307, 308
}

// Subject is what a condition looks at.
type Subject string

// The subjects (HAProxy's fetches).
const (
	SubjHost   Subject = "host"   // hdr(host): the Host header as sent, port included, split at commas
	SubjPath   Subject = "path"   // the path, query excluded, as sent
	SubjURL    Subject = "url"    // the request target, query included
	SubjMethod Subject = "method" // the method
	SubjHeader Subject = "header" // hdr(Header): each comma-separated value of each Header line
	SubjSource Subject = "source" // src: the client's address, against CIDRs
	SubjTLS    Subject = "tls"    // ssl_fc: the request came over TLS (no values)
	// SubjLine is the request as HAProxy 1.x's req* filters saw it, a
	// line at a time: the request line "METHOD URI PROTO" and each header
	// line "Name: value" (reqlines.go). It holds when any line matches.
	SubjLine Subject = "line"
	// SubjAuth: valid credentials of the userlist (http_auth(L)), of a
	// user in any of the values, groups, when there are values
	// (http_auth_group(L) G…).
	SubjAuth Subject = "auth"
)

// Match is how a condition compares its subject with its values.
type Match string

// The matches (HAProxy's -m methods and their fetch suffixes).
const (
	MatchExact    Match = "exact"    // hdr, path
	MatchPrefix   Match = "prefix"   // _beg
	MatchSuffix   Match = "suffix"   // _end
	MatchContains Match = "contains" // _sub
	MatchRegex    Match = "regex"    // _reg
	MatchPresent  Match = "present"  // -m found (header only)
)

// Cond is one condition: the subject compared with any of the values
// (HAProxy's several patterns of one ACL are alternatives).
type Cond struct {
	Subject Subject `json:"subject"`
	// Header names the header of SubjHeader.
	Header string `json:"header,omitempty"`
	// Userlist names the list of SubjAuth.
	Userlist string `json:"userlist,omitempty"`
	// Match defaults to exact; ignored for source and tls.
	Match      Match    `json:"match,omitempty"`
	Values     []string `json:"values,omitempty"`
	IgnoreCase bool     `json:"ignore_case,omitempty"` // HAProxy's -i
	// Not negates the condition (HAProxy's `!acl`).
	Not bool `json:"not,omitempty"`
}

// Validate reports every problem of h; pools names the services a rule
// may use.
func (h *HTTP) Validate(pools func(string) bool) []error {
	var errs []error
	if h.TLS != nil && len(h.TLS.CertFiles) == 0 {
		errs = append(errs, errors.New("http: tls without cert_files"))
	}
	if h.MonitorURI != "" && !strings.HasPrefix(h.MonitorURI, "/") {
		errs = append(errs, fmt.Errorf("http: monitor_uri %q: want a path starting with /", h.MonitorURI))
	}
	for i, r := range h.Rules {
		where := fmt.Sprintf("http: rule #%d", i+1)
		n := 0
		if r.Use != "" {
			n++
			if pools != nil && !pools(r.Use) {
				errs = append(errs, fmt.Errorf("%s: use %q: no such TCP proxy service", where, r.Use))
			}
		}
		if r.Deny != 0 {
			n++
			if r.Deny < 200 || r.Deny > 599 {
				errs = append(errs, fmt.Errorf("%s: deny status %d out of 200..599", where, r.Deny))
			}
		}
		if r.Tarpit != 0 {
			n++
			if r.Tarpit < 0 {
				errs = append(errs, fmt.Errorf("%s: tarpit %v: want a positive hold", where, r.Tarpit))
			}
		}
		if rd := r.Redirect; rd != nil {
			n++
			k := 0
			for _, s := range []string{rd.Scheme, rd.Location, rd.Prefix} {
				if s != "" {
					k++
				}
			}
			if k != 1 {
				errs = append(errs, fmt.Errorf("%s: redirect: want exactly one of scheme, location, prefix", where))
			}
			switch rd.Code {
			case 0, 301, 302, 303, 307, 308:
			default:
				errs = append(errs, fmt.Errorf("%s: redirect code %d (want 301, 302, 303, 307 or 308)", where, rd.Code))
			}
		}
		if r.Auth != nil {
			n++
			if err := validateRealm(r.Auth.Realm); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			}
		}
		if n != 1 {
			errs = append(errs, fmt.Errorf("%s: want exactly one action of use, deny, redirect, tarpit, auth (found %d)", where, n))
		}
		for j, c := range r.When {
			if _, err := compileCond(c, nil); err != nil {
				errs = append(errs, fmt.Errorf("%s: condition #%d: %w", where, j+1, err))
			}
			if c.Subject == SubjAuth {
				if err := h.validateAuthCond(c); err != nil {
					errs = append(errs, fmt.Errorf("%s: condition #%d: %w", where, j+1, err))
				}
			}
		}
	}
	errs = append(errs, validateHeaders("request_headers", h.RequestHeaders, false)...)
	errs = append(errs, validateHeaders("response_headers", h.ResponseHeaders, true)...)
	errs = append(errs, validateHeaders("after_response_headers", h.AfterResponseHeaders, true)...)
	for _, l := range []struct {
		where string
		as    []HeaderAction
	}{{"request_headers", h.RequestHeaders}, {"response_headers", h.ResponseHeaders}, {"after_response_headers", h.AfterResponseHeaders}} {
		for i, a := range l.as {
			if a.Pool != "" && pools != nil && !pools(a.Pool) {
				errs = append(errs, fmt.Errorf("http: %s #%d: pool %q: no such TCP proxy service", l.where, i+1, a.Pool))
			}
		}
	}
	for i, a := range h.AfterResponseHeaders {
		if a.Op == HdrDelLine || a.Op == HdrReplaceLine {
			errs = append(errs, fmt.Errorf("http: after_response_headers #%d: %s: fields only", i+1, a.Op))
		}
	}
	return append(errs, h.validateUserlists()...)
}

// String is a rule in HAProxy-like words, for plans.
func (r Rule) String() string {
	var b strings.Builder
	switch {
	case r.Use != "":
		b.WriteString("use " + r.Use)
	case r.Deny != 0:
		fmt.Fprintf(&b, "deny %d", r.Deny)
	case r.Tarpit != 0:
		fmt.Fprintf(&b, "tarpit %v", r.Tarpit)
	case r.Auth != nil:
		b.WriteString("auth")
		if r.Auth.Realm != "" {
			b.WriteString(" realm " + r.Auth.Realm)
		}
	case r.Redirect != nil:
		rd := r.Redirect
		switch {
		case rd.Scheme != "":
			b.WriteString("redirect scheme " + rd.Scheme)
		case rd.Location != "":
			b.WriteString("redirect location " + rd.Location)
		default:
			b.WriteString("redirect prefix " + rd.Prefix)
		}
		if rd.Code != 0 {
			fmt.Fprintf(&b, " code %d", rd.Code)
		}
	}
	for i, c := range r.When {
		if i == 0 {
			b.WriteString(" if")
		}
		b.WriteString(" ")
		if c.Not {
			b.WriteString("!")
		}
		b.WriteString("{ " + string(c.Subject))
		if c.Header != "" {
			b.WriteString("(" + c.Header + ")")
		}
		if c.Userlist != "" {
			b.WriteString("(" + c.Userlist + ")")
		}
		if c.Match != "" && c.Match != MatchExact {
			b.WriteString(" -m " + string(c.Match))
		}
		if c.IgnoreCase {
			b.WriteString(" -i")
		}
		for _, v := range c.Values {
			b.WriteString(" " + v)
		}
		b.WriteString(" }")
	}
	return b.String()
}

// cond is a compiled Cond.
type cond struct {
	Cond
	values []string // lowered when IgnoreCase
	res    []*regexp.Regexp
	nets   []netip.Prefix
	auth   *authList  // SubjAuth
	ranges []intRange // the numeric subjects (fetch.go)
}

// compileCond compiles c; lists holds the compiled userlists an auth
// condition names (nil when only validating).
func compileCond(c Cond, lists map[string]*authList) (*cond, error) {
	cc := &cond{Cond: c}
	if cc.Match == "" {
		cc.Match = MatchExact
	}
	switch c.Subject {
	case SubjHost, SubjPath, SubjURL, SubjMethod, SubjLine, SubjVersion:
	case SubjHeader:
		if c.Header == "" {
			return nil, errors.New("header: no header name")
		}
	case SubjSource:
		for _, v := range c.Values {
			p, err := netip.ParsePrefix(v)
			if err != nil {
				a, aerr := netip.ParseAddr(v)
				if aerr != nil {
					return nil, fmt.Errorf("source %q: %w", v, err)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			cc.nets = append(cc.nets, p.Masked())
		}
		if len(cc.nets) == 0 {
			return nil, errors.New("source: no CIDR")
		}
		return cc, nil
	case SubjSourcePort, SubjHeaderCount, SubjHeaderValue:
		return compileNumeric(cc) // fetch.go
	case SubjTLS:
		if len(c.Values) > 0 {
			return nil, errors.New("tls: takes no values")
		}
		return cc, nil
	case SubjAuth:
		if c.Userlist == "" {
			return nil, errors.New("auth: no userlist")
		}
		if lists != nil {
			if cc.auth = lists[c.Userlist]; cc.auth == nil {
				return nil, fmt.Errorf("auth: no userlist %q", c.Userlist)
			}
		}
		return cc, nil
	default:
		return nil, fmt.Errorf("unknown subject %q", c.Subject)
	}
	switch cc.Match {
	case MatchExact, MatchPrefix, MatchSuffix, MatchContains, MatchDir:
	case MatchRegex:
		for _, v := range c.Values {
			expr := v
			if c.IgnoreCase {
				expr = "(?i)" + v
			}
			re, err := regexp.Compile(expr)
			if err != nil {
				return nil, fmt.Errorf("regex %q: %w", v, err)
			}
			cc.res = append(cc.res, re)
		}
	case MatchPresent:
		if c.Subject != SubjHeader {
			return nil, fmt.Errorf("match present: for a header only")
		}
		return cc, nil
	default:
		return nil, fmt.Errorf("unknown match %q", c.Match)
	}
	if len(c.Values) == 0 {
		return nil, fmt.Errorf("%s: no value to match", c.Subject)
	}
	for _, v := range c.Values {
		if c.IgnoreCase {
			v = strings.ToLower(v)
		}
		cc.values = append(cc.values, v)
	}
	return cc, nil
}
