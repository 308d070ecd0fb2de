package httpproxy

import (
	"net/http"
	"net/netip"
	"strings"
)

// match reports whether every condition of the rule holds for r.
func (ru *rule) match(r *http.Request, client netip.Addr) bool {
	for _, c := range ru.when {
		if c.match(r, client) == c.Not {
			return false
		}
	}
	return true
}

// match reports whether the condition, not negated, holds.
func (c *cond) match(r *http.Request, client netip.Addr) bool {
	switch c.Subject {
	case SubjTLS:
		return r.TLS != nil
	case SubjAuth:
		return c.matchAuth(r)
	case SubjSource:
		for _, n := range c.nets {
			if n.Contains(client) {
				return true
			}
		}
		return false
	case SubjHost:
		return c.matchHeader(r, "Host")
	case SubjPath:
		return c.matchValue(r.URL.EscapedPath())
	case SubjURL:
		return c.matchValue(r.RequestURI)
	case SubjMethod:
		return c.matchValue(r.Method)
	case SubjLine:
		return anyRequestLine(r, c.matchValue)
	case SubjSourcePort, SubjHeaderCount, SubjHeaderValue:
		return c.matchNumeric(r)
	case SubjVersion:
		return c.matchValue(version(r))
	case SubjHeader:
		return c.matchHeader(r, c.Header)
	}
	return false
}

// matchHeader is hdr(name) in an ACL: each comma-separated value of each
// line of the header (fetch.go), until one matches; none when the header
// is absent.
func (c *cond) matchHeader(r *http.Request, name string) bool {
	vs := headerValues(r, name)
	if c.Match == MatchPresent {
		return len(vs) > 0
	}
	for _, v := range vs {
		for _, p := range headerParts(v) {
			if c.matchValue(p) {
				return true
			}
		}
	}
	return false
}

// matchValue compares one string with the condition's values.
func (c *cond) matchValue(s string) bool {
	if c.Match == MatchRegex {
		for _, re := range c.res {
			if re.MatchString(s) {
				return true
			}
		}
		return false
	}
	if c.IgnoreCase {
		s = strings.ToLower(s)
	}
	for _, v := range c.values {
		var ok bool
		switch c.Match {
		case MatchPrefix:
			ok = strings.HasPrefix(s, v)
		case MatchSuffix:
			ok = strings.HasSuffix(s, v)
		case MatchContains:
			ok = strings.Contains(s, v)
		case MatchDir:
			ok = matchDir(s, v)
		default:
			ok = s == v
		}
		if ok {
			return true
		}
	}
	return false
}
