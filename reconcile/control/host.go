package control

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// hostGuard serves h only to requests whose Host header names this
// listener: a loopback name (localhost, 127.0.0.1, [::1], with any port, as
// an `ssh -L` forward makes it) or the host of listen. Anything else gets
// 421. Without it a web page the operator opens in a browser could read the
// status and the metrics through DNS rebinding: a name of the attacker's
// that first resolves to the attacker and then to 127.0.0.1 makes the
// browser treat the listener (or the operator's local end of a forward to
// it) as the attacker's own origin. The Host header is what such a page
// cannot choose.
func hostGuard(listen string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowedHost(listen, r.Host) {
			http.Error(w, "421 misdirected request: this agent answers only to localhost, 127.0.0.1, [::1] and its listen address", http.StatusMisdirectedRequest)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// allowedHost reports whether a request's Host header (host[:port]) names
// a listener on listen (host:port as given to --listen). When listen's host
// is a wildcard (":9142", "0.0.0.0:9142", "[::]:9142") every address of the
// node is the listen address, so any IP literal is accepted: rebinding
// needs a name, and a literal cannot be re-pointed.
func allowedHost(listen, hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else if strings.HasPrefix(hostport, "[") && strings.HasSuffix(hostport, "]") {
		host = hostport[1 : len(hostport)-1]
	}
	if host == "" {
		return false // HTTP/1.0 without Host: no browser sends that
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	if err == nil && ip.Zone() == "" && ip.Unmap().IsLoopback() {
		return true
	}
	lhost, _, lerr := net.SplitHostPort(listen)
	if lerr != nil {
		lhost = listen
	}
	lhost = strings.TrimSuffix(strings.TrimPrefix(lhost, "["), "]")
	if lip, err := netip.ParseAddr(lhost); lhost == "" || (err == nil && lip.IsUnspecified()) {
		return ip.IsValid()
	} else if err == nil {
		return ip.IsValid() && ip.Unmap() == lip.Unmap()
	}
	return strings.EqualFold(host, lhost)
}
