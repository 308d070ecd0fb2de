package httpproxy

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// Cookie is persistence by an HTTP cookie (HAProxy's backend `cookie
// NAME [insert] [indirect] [nocache] [httponly] [secure] [domain D]`
// with each server's `cookie VALUE`): a request that carries NAME=VALUE
// of a server that can take it (up and not in maintenance, a backup or a
// draining server included, as HAProxy) goes to that server, whatever
// the balance says; any other request is balanced. It belongs to a pool:
// the same cookie holds whichever HTTP frontend's rule sent the request.
type Cookie struct {
	Name string `json:"name"`
	// Mode is CookieInsert (the default), CookieRewrite or CookiePassive.
	Mode CookieMode `json:"mode,omitempty"`
	// Indirect, in insert mode, removes the cookie from the request sent
	// to the server (the persistence is invisible to the application);
	// in both modes, a Set-Cookie of the name by the server is removed
	// from a response to a request the cookie directed.
	Indirect bool `json:"indirect,omitempty"`
	// NoCache adds `Cache-control: private` to a response that inserts
	// the cookie, so that a shared cache does not hand one client's
	// server to every client.
	NoCache  bool   `json:"nocache,omitempty"`
	HTTPOnly bool   `json:"httponly,omitempty"`
	Secure   bool   `json:"secure,omitempty"`
	Domain   string `json:"domain,omitempty"`
}

// CookieMode is who sets the cookie.
type CookieMode string

// The cookie modes.
const (
	// CookieInsert: the proxy sets NAME=VALUE of the server that answered
	// a request the cookie did not direct (HAProxy's insert); a server
	// with no value gets NAME cleared. The server's own NAME is removed.
	CookieInsert CookieMode = "insert"
	// CookiePassive: the servers set NAME themselves; the proxy only
	// reads it (HAProxy's cookie line without insert, rewrite or prefix).
	CookiePassive CookieMode = "passive"
	// CookieRewrite: the servers set NAME (to anything); the proxy
	// replaces its value with the server's (HAProxy's rewrite).
	CookieRewrite CookieMode = "rewrite"
)

// Validate reports every problem of c; values maps each server with a
// cookie value to it.
func (c *Cookie) Validate(values map[string]string) []error {
	var errs []error
	if !validToken(c.Name) {
		errs = append(errs, fmt.Errorf("cookie: name %q: want a cookie name (letters, digits, !#$%%&'*+.^_`|~-)", c.Name))
	}
	switch c.Mode {
	case "", CookieInsert, CookiePassive, CookieRewrite:
	default:
		errs = append(errs, fmt.Errorf("cookie: unknown mode %q (want insert, rewrite or passive)", c.Mode))
	}
	if c.Mode != "" && c.Mode != CookieInsert && (c.NoCache || c.HTTPOnly || c.Secure || c.Domain != "") {
		errs = append(errs, fmt.Errorf("cookie: nocache, httponly, secure and domain are for insert mode (in %s mode the servers set the cookie)", c.Mode))
	}
	if c.Domain != "" && strings.Trim(strings.ToLower(c.Domain), "abcdefghijklmnopqrstuvwxyz0123456789.-") != "" {
		errs = append(errs, fmt.Errorf("cookie: domain %q: want a host name", c.Domain))
	}
	seen := map[string]string{}
	for _, srv := range slices.Sorted(maps.Keys(values)) {
		v := values[srv]
		if !validCookieValue(v) {
			errs = append(errs, fmt.Errorf("server %q: cookie %q: want a cookie value (no space, quote, comma, semicolon or backslash)", srv, v))
		}
		if o, dup := seen[v]; dup {
			errs = append(errs, fmt.Errorf("server %q: cookie %q already names server %q", srv, v, o))
		}
		seen[v] = srv
	}
	return errs
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		case strings.IndexByte("!#$%&'*+.^_`|~-", b) >= 0:
		default:
			return false
		}
	}
	return true
}

// validCookieValue: RFC 6265's cookie-octet, unquoted.
func validCookieValue(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b <= 0x20 || b >= 0x7f || b == '"' || b == ',' || b == ';' || b == '\\' {
			return false
		}
	}
	return true
}

// String spells c as HAProxy would, for plans: "cookie SRV insert
// indirect nocache".
func (c *Cookie) String() string {
	parts := []string{"cookie", c.Name}
	switch c.Mode {
	case "", CookieInsert:
		parts = append(parts, "insert")
	case CookieRewrite:
		parts = append(parts, "rewrite")
	}
	for _, o := range []struct {
		on   bool
		word string
	}{{c.Indirect, "indirect"}, {c.NoCache, "nocache"}, {c.HTTPOnly, "httponly"}, {c.Secure, "secure"}} {
		if o.on {
			parts = append(parts, o.word)
		}
	}
	if c.Domain != "" {
		parts = append(parts, "domain", c.Domain)
	}
	return strings.Join(parts, " ")
}

// poolCookie is a pool's cookie with its values both ways.
type poolCookie struct {
	*Cookie
	server map[string]string // value → server name
	value  map[string]string // server name → value
}

func newPoolCookie(c *Cookie, values map[string]string) *poolCookie {
	if c == nil {
		return nil
	}
	pc := &poolCookie{Cookie: c, server: map[string]string{}, value: map[string]string{}}
	for srv, v := range values {
		pc.server[v], pc.value[srv] = srv, v
	}
	return pc
}

// preferred is the server the request's cookie names ("" when none), and
// strips the cookie from the request in insert mode with indirect. The
// first occurrence of the name counts, as HAProxy reads it.
func (pc *poolCookie) preferred(req *http.Request) string {
	prefer := ""
	found := false
	strip := pc.Indirect && (pc.Mode == "" || pc.Mode == CookieInsert)
	var kept []string
	for _, line := range req.Header.Values("Cookie") {
		var out []string
		for _, part := range strings.Split(line, ";") {
			name, val, _ := strings.Cut(strings.TrimSpace(part), "=")
			if strings.TrimSpace(name) == pc.Name {
				if !found {
					found = true
					prefer = pc.server[strings.TrimSpace(val)]
				}
				if strip {
					continue
				}
			}
			if strings.TrimSpace(part) != "" {
				out = append(out, strings.TrimSpace(part))
			}
		}
		if len(out) > 0 {
			kept = append(kept, strings.Join(out, "; "))
		}
	}
	if strip && found {
		req.Header.Del("Cookie")
		for _, l := range kept {
			req.Header.Add("Cookie", l)
		}
	}
	return prefer
}

// respond sets the cookie on a response from server; direct says the
// request's cookie sent it there.
func (pc *poolCookie) respond(resp *http.Response, server string, direct bool) {
	switch pc.Mode {
	case CookiePassive:
		if direct && pc.Indirect {
			pc.dropServerCookie(resp)
		}
		return
	case CookieRewrite:
		if direct && pc.Indirect {
			pc.dropServerCookie(resp)
		} else if v := pc.value[server]; v != "" {
			pc.rewriteServerCookie(resp, v)
		}
		return
	}
	pc.dropServerCookie(resp)
	if direct {
		return
	}
	var b strings.Builder
	if v := pc.value[server]; v != "" {
		b.WriteString(pc.Name + "=" + v + "; path=/")
	} else {
		// A server without a value (often a backup): the client's cookie,
		// if any, is cleared, as HAProxy does.
		b.WriteString(pc.Name + "=; Expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/")
	}
	if pc.Domain != "" {
		b.WriteString("; domain=" + pc.Domain)
	}
	if pc.HTTPOnly {
		b.WriteString("; HttpOnly")
	}
	if pc.Secure {
		b.WriteString("; Secure")
	}
	resp.Header.Add("Set-Cookie", b.String())
	if pc.NoCache {
		resp.Header.Add("Cache-Control", "private")
	}
}

// rewriteServerCookie sets the value of the server's own Set-Cookie of
// the name to v, its attributes kept.
func (pc *poolCookie) rewriteServerCookie(resp *http.Response, v string) {
	vals := resp.Header.Values("Set-Cookie")
	changed := false
	out := make([]string, len(vals))
	for i, sc := range vals {
		out[i] = sc
		name, rest, ok := strings.Cut(sc, "=")
		if !ok || strings.TrimSpace(name) != pc.Name {
			continue
		}
		attrs := ""
		if j := strings.IndexByte(rest, ';'); j >= 0 {
			attrs = rest[j:]
		}
		out[i], changed = pc.Name+"="+v+attrs, true
	}
	if !changed {
		return
	}
	resp.Header.Del("Set-Cookie")
	for _, sc := range out {
		resp.Header.Add("Set-Cookie", sc)
	}
}

// dropServerCookie removes the server's own Set-Cookie of the name.
func (pc *poolCookie) dropServerCookie(resp *http.Response) {
	vals := resp.Header.Values("Set-Cookie")
	var kept []string
	for _, v := range vals {
		name, _, _ := strings.Cut(v, "=")
		if strings.TrimSpace(name) != pc.Name {
			kept = append(kept, v)
		}
	}
	if len(kept) == len(vals) {
		return
	}
	resp.Header.Del("Set-Cookie")
	for _, v := range kept {
		resp.Header.Add("Set-Cookie", v)
	}
}
