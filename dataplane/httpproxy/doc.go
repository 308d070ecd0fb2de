// Package httpproxy is the HTTP mode of gitgw's proxy services: what
// HAProxy's `mode http` frontends do on a gateway — TLS termination with
// the certificate chosen by SNI, rules evaluated per request on the host,
// path, method, headers, source and TLS (use another pool, deny,
// redirect), a monitor URI and X-Forwarded-For — over the standard
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
package httpproxy
