// Package httpproxy is the HTTP mode of gitgw's proxy services: what
// HAProxy's `mode http` frontends do on a gateway — TLS termination with
// the certificate chosen by SNI, rules evaluated per request on the host,
// path, method, headers, source, TLS and basic-auth credentials (use
// another pool, deny, redirect, ask for credentials: auth.go), a monitor
// URI and X-Forwarded-For — over the standard
// library's HTTP server and reverse proxy (keep-alive, chunked bodies,
// websocket upgrades).
//
// It owns no socket: the L4 pool (dataplane/l4proxy) keeps accepting on
// the service's binds, with its source rules, maxconn and listener
// hand-over across restarts, and gives each accepted connection of an HTTP
// service to ServeConn. Servers are picked per request through a Picker,
// the L4 pool's balancing over its health-checked servers, so that a pool
// here is simply another proxy service: its status, metrics, checks and
// guardrails need nothing new.
//
// The same seam carries SNI routing (sni.go): a TCP service's TLS
// connections, not terminated, are routed by the server name of their
// ClientHello, read with crypto/tls and replayed to the chosen server.
//
// HAProxy 1.x's request filters (reqsetbe, reqdeny, reqtarpit, …) are
// rules on the request's lines (reqlines.go): the request line and each
// header line, matched by a regex; a tarpit rule holds the request, then
// answers 500 (tarpit.go).
//
// Header rewrites (headers.go: HAProxy's http-request, http-response and
// http-after-response set-header, add-header, del-header, replace-header,
// replace-value, and 1.x's reqadd/reqdel/reqrep and rsp… on lines) run in
// order once the rules have routed a request, before X-Forwarded-For is
// added (option forwardfor, with except and if-none), and on each
// response; the after-response ones on the proxy's own answers too.
//
// A pool may persist clients on a server by an HTTP cookie (cookie.go,
// HAProxy's `cookie NAME insert|…` with each server's value): the Picker
// is asked for the server the request's cookie names first, and the
// response sets the cookie when the balance chose.
//
// What HAProxy does that this does not: queueing a request when every
// server is at its maxconn (it is answered 503), handing established HTTP
// connections to the next agent (a restart lets requests in flight finish
// and closes idle keep-alive connections, as HAProxy's reload does),
// shutdown-sessions, HTTP/2, cookie rewrite/prefix modes and dated
// cookies (maxidle, maxlife), per-request counters in the stats (the
// servers count requests, the service its connections), and log-format
// expressions in header values beyond %[src], %[dst] and %[ssl_fc].
package httpproxy
