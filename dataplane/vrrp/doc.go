// Package vrrp is gitgw's VRRP engine: a keepalived-compatible VRRPv3
// (RFC 5798/9568, IPv4 and IPv6) and VRRPv2 (RFC 3768, IPv4, PASS
// authentication) speaker that moves the node's virtual IP addresses.
//
// It exists so that a gateway's front door fails over as fast as the RFC
// allows, avoids keepalived's known failure modes (split brain that never
// re-announces, VIPs lost to other network managers, crashed daemons that
// leave a duplicate VIP behind) and is driven by a plain Go Config handed
// over by the reconciler.
//
// The package is layered so that the protocol is testable without root:
// codec.go encodes and verifies packets; fsm.go is a pure state machine
// with an injected clock; conn_linux.go is the raw socket; engine.go wires
// machines, sockets, VIPs (package vip), tracking and notify hooks; state.go
// persists what the node is master of so that Release can hand over after a
// crash.
package vrrp
