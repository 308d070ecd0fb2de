// Package l4proxy is gitgw's L4 (TCP) proxy pool: the job HAProxy does in
// `mode tcp` on a gateway — frontends bound on VIPs, balanced to backend
// servers that are health-checked — driven by a plain Config and changed in
// place by an idempotent Set, without refusing or cutting a connection.
//
// Why it looks the way it does (measured on the target boxes, see
// reference/l4-anchors.md):
//
//   - one SO_REUSEPORT listener per core for every bind, opened with
//     IP_FREEBIND so that a VIP that VRRP has not brought here yet can be bound;
//   - a connection owns no buffer and no pipe while it is idle: each direction
//     waits for readability through the runtime poller, then borrows a pooled
//     buffer for small reads, or a pooled pipe and switches to splice(2) once it
//     moves bulk data (HAProxy's splice-auto idea), and gives either back as
//     soon as the socket would block;
//   - no lock is shared by all connections: counters are atomics, balancing
//     state lives per listener shard, the queue is touched only when full;
//   - listening sockets can be handed to a successor process (Listeners, and
//     Options.Inherited), so that an agent restart refuses no connection.
//
// The package knows nothing of CUE, Git or plans; reconcile translates the
// site into a Config.
package l4proxy
