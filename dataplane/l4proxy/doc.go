// Package l4proxy is gitgw's L4 (TCP and UDP) proxy pool: the job HAProxy does in
// `mode tcp` on a gateway — frontends bound on VIPs, balanced to backend
// servers that are health-checked — driven by a plain Config and changed in
// place by an idempotent Set, without refusing or cutting a connection.
//
// Why it looks the way it does (measured on the target boxes, see
// reference/l4-anchors.md):
//
//   - one SO_REUSEPORT listener per core for every bind, opened with
//     IP_FREEBIND so that a VIP that VRRP has not brought here yet can be bound;
//     each shard is a raw fd in one event loop, which accepts on it between
//     the events of its connections (up to 64 at a time, like HAProxy's
//     tune.maxaccept): no goroutine switch or hand-off per new connection, and a
//     service at its maxconn leaves clients in the kernel's backlog;
//   - connections live on event loops (loop.go), one per P, each an epoll
//     set of raw non-blocking sockets that the runtime poller never sees.
//     An idle connection costs its pooled conn struct and two fds: no
//     goroutine, no stack, no buffer, no pipe. Two goroutines per
//     connection (one per direction) cost ~7.5 kB each idle connection and
//     two scheduler wake-ups per request; HAProxy's ~3.4 kB was the bar;
//   - the loop parks in the runtime poller on its epoll fd instead of
//     blocking in epoll_wait, so that it shares the Ps with timers and
//     checks like any goroutine. A dedicated locked thread blocking in
//     epoll_wait was measured too: with one P, sysmon retakes the P of a
//     thread in a syscall after ~20 µs, and the handoffs (futex, a spinning
//     M, 20 µs sysmon ticks) cost more CPU per keep-alive request than the
//     runtime's extra epoll_wait per batch saves. For the same reason every
//     syscall the loop makes on its sockets — read, send, splice, accept,
//     but also socket, connect, epoll_ctl, shutdown and close, none of which
//     blocks on a non-blocking socket — is a raw syscall without the
//     scheduler's bookkeeping: through unix.Syscall, a connect or close
//     that ran the loopback peer's TCP processing inline for >20 µs lost
//     the P the same way (~0.3 nanosleep and 0.05 futex per short
//     connection, gone as raw syscalls). Sockets are registered once,
//     edge-triggered for input and output (no epoll_ctl per event), and a
//     short read means "drained" (one read and one write per small message;
//     when a connect completes, only a side that has signalled is read);
//   - busy polling (Config.BusyPoll, the agent's default 100 µs): most of
//     the latency a proxy adds on a virtual machine is the wake-up of an
//     idle vCPU (115 µs of 130 at one request in flight on the benchmark
//     box, for HAProxy as for gitgw). A loop that keeps polling for a
//     moment after traffic forwards a local backend's reply without that
//     wake-up; between polls it yields the P (Gosched) and the CPU
//     (sched_yield), and it parks as soon as the window passes quietly;
//   - data read is written out at once from the loop's own buffer; only a
//     partial write borrows a pooled buffer (and pauses reading the source
//     until the peer drains it), and a direction that moves bulk data
//     switches to splice(2) through a pooled pipe (HAProxy's splice-auto),
//     given back as soon as it is empty;
//   - connect is non-blocking on the loop too; only a connection that must
//     wait for a full server gets a goroutine, for the time it is queued
//     (queue.go: per-server and service queues, HAProxy's semantics);
//   - no timer per connection: a reaper applies the timeouts from activity
//     stamps, and other goroutines (reaper, drain, shutdown-sessions) never
//     touch a socket: they post to the connection's loop;
//   - no lock is shared by all connections: counters are atomics, balancing
//     state lives per listener shard, the queues are touched only when full;
//   - source rules (source.go, HAProxy's `tcp-request connection reject`
//     and stick tables on src_conn_cur / src_conn_rate) run right after
//     accept, before the connection takes anything: the allow and deny
//     lists are merged, sorted ranges searched by bisection (21 ns for
//     10,000 CIDRs), compiled once per Set and swapped with the service's
//     settings; the per-source limits keep one small entry per source in a
//     bounded table that evicts idle sources; a refused connection is reset;
//   - listening sockets can be handed to a successor process (Listeners, and
//     Options.Inherited), so that an agent restart refuses no connection;
//     and so can established connections (handover.go: HandOver takes each
//     off its loop between two events, with the bytes its buffer or pipe
//     holds, and the successor adopts both sockets on its first Set), so
//     that a restart cuts none either: a socket is a kernel object, only
//     what the proxy holds in userspace had to travel with it;
//   - UDP services (udp.go): a session per client flow (address and port),
//     balanced and checked like TCP connections, ended by idleness or a
//     reply count; off the TCP loops, each bind shard is a loop of its own
//     (an epoll set of the shard's socket and its sessions' sockets, parked
//     in the runtime poller) that takes the client datagrams with recvmmsg
//     and sends the replies with sendmmsg: about two syscalls per request
//     and no goroutine wake-up per reply, where a goroutine per session
//     made five and one (nginx's CPU per request over ours, on long
//     flows: 0.81-0.91 before, 1.24-1.53 after);
//   - transparent mode (transparent.go): the server-side socket connects
//     from the client's address (IP_TRANSPARENT), and the pool keeps the
//     policy routing the servers' replies need (a socket-match mark, an ip
//     rule and a local route table of its own) while such a service exists;
//     or from one fixed foreign address (Service.TransparentAddr, HAProxy's
//     `usesrc ADDR`), with the same routing.
//   - source addresses (sourceaddr.go): the connections to a server and its
//     checks leave from one of the node's own addresses (Service.SourceAddr,
//     Server.SourceAddr; HAProxy's `source ADDR`) for servers that accept
//     only it; with a transparent source only the checks use it.
//   - a server may be given by name (Server.Host, resolve.go): one resolver
//     goroutine per name, never on a loop, asks the system resolver every
//     ResolveInterval; a new address is swapped into the server's settings,
//     which a connection reads only when it connects, so that established
//     connections are not touched.
//   - a server may take TLS (Server.TLS, servertls.go, HAProxy's `server …
//     ssl`): once its TCP connect completes, the connection leaves its loop
//     for a handshake goroutine and, once established, two copying
//     goroutines (crypto/tls needs blocking sockets, and splice cannot reach
//     inside TLS records); a failed handshake is a failed connect. Plain
//     servers keep the loop's path untouched.
//   - a service in HTTP mode (Service.HTTP, http.go) leaves this design at
//     one point only: its accepted connections, past the source rules and
//     maxconn, go to package httpproxy (Go's HTTP server and reverse
//     proxy, rules per request), which picks each request's server
//     through PickServer, from the same balancing tables and health as a
//     connection's; the TCP fast path of other services is untouched.
//
// The package knows nothing of CUE, Git or plans; reconcile translates the
// site into a Config.
package l4proxy
