package reconcile

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/httpproxy"
)

// proxyHTTP translates a service's HTTP mode (the schema has validated
// its shape; errors here are for hand-built specs).
func proxyHTTP(h *spec.ServiceHTTP) (*httpproxy.HTTP, error) {
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
	for _, r := range h.Rules {
		rule := httpproxy.Rule{Use: r.Use, Deny: r.Deny}
		if rd := r.Redirect; rd != nil {
			rule.Redirect = &httpproxy.Redirect{Scheme: rd.Scheme, Location: rd.Location, Prefix: rd.Prefix, Code: rd.Code}
		}
		for _, c := range r.When {
			rule.When = append(rule.When, httpproxy.Cond{Subject: httpproxy.Subject(c.Subject), Header: c.Header,
				Match: httpproxy.Match(c.Match), Values: append([]string(nil), c.Values...), IgnoreCase: c.IgnoreCase, Not: c.Not})
		}
		out.Rules = append(out.Rules, rule)
	}
	return out, errors.Join(errs...)
}

// proxySNI translates a service's SNI routing.
func proxySNI(s *spec.ServiceSNI) *httpproxy.SNI {
	out := &httpproxy.SNI{InspectDelay: s.InspectDelay.D()}
	for _, r := range s.Rules {
		out.Rules = append(out.Rules, httpproxy.SNIRule{Names: append([]string(nil), r.Names...), Match: httpproxy.Match(r.Match), Use: r.Use})
	}
	return out
}
