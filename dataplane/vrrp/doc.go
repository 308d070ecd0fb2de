// Package vrrp is gitgw's VRRP engine: a keepalived-compatible VRRPv3
// (RFC 5798/9568, IPv4 and IPv6) and VRRPv2 (RFC 3768, IPv4, PASS
// authentication) speaker that moves the node's virtual IP addresses.
//
// It exists so that a gateway's front door fails over as fast as the RFC
// allows, avoids keepalived's known failure modes (a split brain that never
// re-announces, VIPs lost to other network managers, a crashed daemon that
// leaves a duplicate VIP behind) and is driven by a plain Go Config handed
// over by the reconciler.
//
// The package is layered so that the protocol is testable without root:
//
//   - codec.go encodes and verifies packets (both v3/IPv4 checksum forms);
//   - fsm.go is the pure state machine: every call takes the time and
//     returns the actions, Deadline says when to call Tick;
//   - conn_linux.go is the raw socket (the Conn seam);
//   - engine.go and instance.go run one goroutine per instance and wire
//     machine, sockets, VIPs (package vip), tracking (track.go), notify
//     hooks (notify.go) and sync groups; kernel.go builds the real seams;
//   - state.go persists what the node is master of so that Release (`gitgw
//     vrrp release`, ExecStopPost=) hands over after a crash; guard.go is
//     the guardian process that does the same the instant the agent dies.
//   - restart.go and restart_hold.go keep mastership across a restart of
//     the agent (StopForRestart, a restart record, the next engine resuming
//     it), so that the connections the proxy hands to the next agent are
//     still reached through the VIP.
//
// Typical use:
//
//	opts, closeFn, _ := vrrp.KernelOptions(stateDir, logger)
//	e := vrrp.New(logger, opts)
//	go e.Run(ctx)          // watchers; stops the engine when ctx ends
//	_ = e.Set(ctx, cfg)    // idempotent, hot
//	for t := range e.Events() { ... }
package vrrp
