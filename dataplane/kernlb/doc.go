// Package kernlb is gitgw's kernel load balancer: LVS's job (virtual
// services forwarded to real servers in NAT or direct-routing mode, TCP and
// UDP) done by nftables, since the gateways' kernel has no IPVS. No process
// sits in the data path.
//
// The agent owns two tables, `inet gitgw` (NAT: DNAT with conntrack in a
// prerouting nat chain) and `netdev gitgw` (DR: an ingress chain on the
// segment's interface that rewrites the Ethernet destination to the chosen
// server's MAC and the source to the gateway's own, and sends the frame back
// out on the same interface). It never touches another table. Each Set is
// one netlink batch, which the kernel applies as one transaction: no packet
// sees half a configuration.
//
// Schedulers are kernel maps filled from pure tables (table.go): rr and wrr
// through numgen over a smooth weighted sequence, sh and maglev through
// jhash into a slot table. The Maglev table and the jhash seed derive from
// the service's identity (protocol, VIP, port) and the servers' addresses
// only, so two gateways given the same site build the same tables and
// either can carry a DR flow: a failover loses no connection.
//
// Like every driver it owns Observe (the tables read back into a comparable
// form), a pure Diff that says in words what would change, and an
// idempotent Set that restores what was changed by hand.
package kernlb
