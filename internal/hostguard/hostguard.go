// Package hostguard keeps a local web listener (the status page, the fleet
// page) from being read through DNS rebinding: a name of the attacker's
// that first resolves to the attacker and then to 127.0.0.1 makes the
// operator's browser treat the listener (or the local end of an `ssh -L`
// forward to it) as the attacker's own origin. Such a page cannot choose
// the Host header its requests carry, so the listener answers only to
// Host headers that name it.
package hostguard

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Guard serves h only to requests whose Host names the listener on listen
// (Allowed); others get 421 with msg.
func Guard(listen, msg string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !Allowed(listen, r.Host) {
			http.Error(w, "421 misdirected request: "+msg, http.StatusMisdirectedRequest)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Allowed reports whether a request's Host header (host or host:port)
// names a listener on listen (host:port as given to --listen): a loopback
// name with any port (an `ssh -L` forward keeps the Host of its local end)
// or the host of listen. When listen's host is a wildcard (":9142",
// "0.0.0.0:9142", "[::]:9142") every address of the node is the listen
// address, so any IP literal is accepted: rebinding needs a name, and a
// literal cannot be re-pointed. A literal with a zone is no browser's and
// is refused.
func Allowed(listen, hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		return false // HTTP/1.0 without Host: no browser sends that
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, ipErr := netip.ParseAddr(host)
	if ipErr == nil && ip.Zone() != "" {
		return false
	}
	if ipErr == nil && ip.Unmap().IsLoopback() {
		return true
	}
	lhost, _, err := net.SplitHostPort(listen)
	if err != nil {
		lhost = listen
	}
	lhost = strings.TrimSuffix(strings.TrimPrefix(lhost, "["), "]")
	lip, lerr := netip.ParseAddr(lhost)
	switch {
	case lhost == "" || (lerr == nil && lip.IsUnspecified()):
		return ipErr == nil
	case lerr == nil:
		return ipErr == nil && ip.Unmap() == lip.Unmap()
	}
	return strings.EqualFold(host, lhost)
}
