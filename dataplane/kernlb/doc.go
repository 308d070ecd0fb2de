// Package kernlb is gitgw's kernel load balancer: LVS's job (virtual
// services forwarded to real servers in NAT or direct-routing mode, TCP and
// UDP) done by nftables, since the gateways' kernel has no IPVS. No process
// sits in the data path.
//
// The agent owns two tables, `inet gitgw` (NAT: DNAT with conntrack in a
// prerouting nat chain) and `netdev gitgw` (DR: an ingress chain on the
// segment's interface that rewrites the Ethernet destination to the chosen
// server's MAC and the source to the gateway's own, and sends the frame back
// out on the same interface). It never touches another table.
//
// FNAT (DPVS's full NAT) is NAT plus a source rewrite in a postrouting nat
// chain: the flows that a service's chain DNATed (conntrack: original
// destination the VIP and port, DNAT done) get one of the service's local
// addresses as their source, in turn (numgen over a map). The servers
// answer the gateway's address whatever their routes; conntrack undoes
// both rewrites on the replies. Each Set is
// one netlink batch, which the kernel applies as one transaction: no packet
// sees half a configuration.
//
// IPv4 and IPv6: a service's VIP, servers, sources and local addresses
// are of one family (the kernel's NAT keeps a flow in its family: no
// NAT64). Every mode carries IPv6: in nat and fnat the dispatch rule
// matches nfproto ipv6 and ip6 daddr and the maps hold ipv6_addr .
// inet_service; in dr it matches the Ethernet type IPv6, and Resolve
// learns the servers' MACs by neighbour discovery. A service by mark is
// IPv4 only.
//
// A service is a VIP:port, or a firewall mark (LVS's fwmark service: every
// packet of its protocol that something else, the operator's firewall,
// marked, whatever its address and port; its dispatch rule comes before
// those by address, as IPVS looks fwmark services up first). A server
// without a port keeps the client's destination port.
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
// idempotent Set that restores what was changed by hand. Set edits the
// tables in place (chains whose rules differ, the elements of maps that
// differ) and skips reading them back when the ruleset's generation shows
// that nobody changed anything since the last Observe or Set.
//
// Quiescent drain (weight 0: existing flows stay, new ones go elsewhere):
// in NAT the server leaves the scheduling map and conntrack carries its
// flows; persistence entries that point at it are dropped. In DR, which
// keeps no state, a TCP packet without SYN follows the table as it was
// with the draining servers ("hold"), a SYN follows the live table, and a
// SYN that lands on a held slot pins its flow to its new server in a
// kernel map (refreshed by its packets, 10 minutes idle). A draining UDP
// server leaves the table at once.
//
// NAT failover keeps its flows only if the peer has their conntrack
// entries: package ctsync replicates them. FNAT flows are not replicated:
// their servers answer the local address of the gateway that chose it,
// which the peer does not hold (as in DPVS, a failover cuts them).
package kernlb
