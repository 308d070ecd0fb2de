// Package control is the agent's local control plane: what an operator on
// the gateway uses instead of editing configuration by hand.
//
// It exists because some actions cannot wait for a commit (drain a server
// before a reboot, move a VIP off a node under maintenance) and some
// questions need an answer from the running process (which VRRP role, which
// servers are up, what the last pass did). It offers:
//
//   - a unix socket (default /run/gitgw/gitgw.sock, mode 0600) speaking JSON
//     over HTTP: status, a pass now, suspend and resume (stop applying, keep
//     reporting), and runtime overrides — drain or enable a proxy server, set
//     its weight, make a VRRP instance give up mastership;
//   - on a loopback TCP listener (default 127.0.0.1:9142), read-only:
//     Prometheus metrics at /metrics and a self-refreshing status page at /.
//     It answers only requests whose Host header is a loopback name or its
//     listen address (421 otherwise), so that no web page can read it
//     through DNS rebinding.
//
// Overrides are temporary by design. They are an overlay on the desired
// state that the proxy and VRRP drivers see (Controller.Overlay), so a pass
// plans and applies them like the site itself and never mistakes them for
// drift. They are shown in status and in the status branch (the "overrides"
// section), and they end with `gitgw resume`, `gitgw override clear`, or the
// first pass that applies a different commit. They are kept in the state
// directory, so a restarted agent keeps them; a suspension is not kept,
// since a restarted agent must rebuild its in-process data plane.
//
// control does not import reconcile, which runs the passes: it declares
// what it consumes (Options.LastGood, Result, Driver, the engines' status
// interfaces), and the agent's wiring (reconcile.WithOverrides,
// reconcile.Result.Control) adapts reconcile's values to them.
package control
