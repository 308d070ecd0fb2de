package reconcile

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/httpproxy"
	"github.com/gitgw/gitgw/dataplane/l4proxy"
)

// proxyHTTP translates a service's HTTP mode (the schema has validated
// its shape; errors here are for hand-built specs), with the site's user
// lists its rules name.
func proxyHTTP(h *spec.ServiceHTTP, lists map[string]spec.Userlist) (*httpproxy.HTTP, error) {
	out := &httpproxy.HTTP{MonitorURI: h.MonitorURI, ForwardFor: h.ForwardFor}
	var errs []error
	if t := h.TLS; t != nil {
		out.TLS = &httpproxy.TLS{CertFiles: append([]string(nil), t.CertFiles...)}
		for i, b := range t.Binds {
			ap, err := netip.ParseAddrPort(b)
			if err != nil {
				errs = append(errs, fmt.Errorf("http: tls: binds[%d]: %w", i, err))
				continue
			}
			out.TLS.Binds = append(out.TLS.Binds, ap)
		}
	}
	out.ForwardForIfNone = h.ForwardForIfNone
	for i, n := range h.ForwardForExcept {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			a, aerr := netip.ParseAddr(n)
			if aerr != nil {
				errs = append(errs, fmt.Errorf("http: forward_for_except[%d]: %w", i, err))
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out.ForwardForExcept = append(out.ForwardForExcept, p.Masked())
	}
	out.RequestHeaders = proxyHeaders(h.RequestHeaders, lists, out)
	out.ResponseHeaders = proxyHeaders(h.ResponseHeaders, lists, out)
	out.AfterResponseHeaders = proxyHeaders(h.AfterResponseHeaders, lists, out)
	for _, r := range h.Rules {
		rule := httpproxy.Rule{Use: r.Use, Deny: r.Deny, Tarpit: r.Tarpit.D()}
		if r.Auth != nil {
			rule.Auth = &httpproxy.Auth{Realm: r.Auth.Realm}
		}
		if rd := r.Redirect; rd != nil {
			rule.Redirect = &httpproxy.Redirect{Scheme: rd.Scheme, Location: rd.Location, Prefix: rd.Prefix, Code: rd.Code}
		}
		rule.When = proxyConds(r.When, lists, out)
		out.Rules = append(out.Rules, rule)
	}
	return out, errors.Join(errs...)
}

// proxyConds translates conditions, adding the user lists they name to
// out.
func proxyConds(cs []spec.HTTPCond, lists map[string]spec.Userlist, out *httpproxy.HTTP) []httpproxy.Cond {
	var when []httpproxy.Cond
	for _, c := range cs {
		when = append(when, httpproxy.Cond{Subject: httpproxy.Subject(c.Subject), Header: c.Header, Userlist: c.Userlist,
			Match: httpproxy.Match(c.Match), Values: append([]string(nil), c.Values...), IgnoreCase: c.IgnoreCase, Not: c.Not})
		if ul, ok := lists[c.Userlist]; ok && c.Userlist != "" {
			if out.Userlists == nil {
				out.Userlists = map[string]httpproxy.Userlist{}
			}
			out.Userlists[c.Userlist] = proxyUserlist(ul)
		}
	}
	return when
}

// proxyHeaders translates header rewrites.
func proxyHeaders(as []spec.HTTPHeaderAction, lists map[string]spec.Userlist, out *httpproxy.HTTP) []httpproxy.HeaderAction {
	var hs []httpproxy.HeaderAction
	for _, a := range as {
		hs = append(hs, httpproxy.HeaderAction{Op: httpproxy.HeaderOp(a.Op), Name: a.Name, Value: a.Value, Regex: a.Regex,
			IgnoreCase: a.IgnoreCase, When: proxyConds(a.When, lists, out), Pool: a.Pool})
	}
	return hs
}

// proxyCookie translates a service's persistence cookie and its
// servers' values onto svc (built from s, servers included).
func proxyCookie(s spec.Service, svc *l4proxy.Service) {
	if c := s.Cookie; c != nil {
		svc.Cookie = &httpproxy.Cookie{Name: c.Name, Mode: httpproxy.CookieMode(c.Mode), Indirect: c.Indirect,
			NoCache: c.NoCache, HTTPOnly: c.HTTPOnly, Secure: c.Secure, Domain: c.Domain}
	}
	for i, sv := range svc.Servers {
		svc.Servers[i].Cookie = s.Servers[sv.Name].Cookie
	}
}

// proxySNI translates a service's SNI routing.
func proxySNI(s *spec.ServiceSNI) *httpproxy.SNI {
	out := &httpproxy.SNI{InspectDelay: s.InspectDelay.D()}
	for _, r := range s.Rules {
		out.Rules = append(out.Rules, httpproxy.SNIRule{Names: append([]string(nil), r.Names...), Match: httpproxy.Match(r.Match), Use: r.Use})
	}
	return out
}

// proxyUserlist translates a user list.
func proxyUserlist(ul spec.Userlist) httpproxy.Userlist {
	out := httpproxy.Userlist{Groups: append([]string(nil), ul.Groups...), Users: map[string]httpproxy.User{}}
	for name, u := range ul.Users {
		out.Users[name] = httpproxy.User{Hash: u.PasswordHash, Groups: append([]string(nil), u.Groups...)}
	}
	return out
}
