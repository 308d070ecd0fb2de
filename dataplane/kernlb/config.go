package kernlb

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// Config is the whole desired state of the kernel load balancer on one node:
// every service it forwards. The zero Config removes everything.
type Config struct {
	Services []Service `json:"services"`
}

// Protocol is the transport protocol of a service.
type Protocol string

// The protocols.
const (
	TCP Protocol = "tcp"
	UDP Protocol = "udp"
)

// Mode is how packets reach the real servers.
type Mode string

// The forwarding modes (LVS's names).
const (
	// NAT rewrites the destination (DNAT with conntrack); replies must come
	// back through the gateway, which the servers use as their route back.
	NAT Mode = "nat"
	// DR (direct routing) rewrites only the Ethernet addresses and sends the
	// packet out on the same segment; the server holds the VIP on lo and
	// answers the client directly. Stateless: no conntrack on the gateway.
	DR Mode = "dr"
	// FNAT is full NAT (DPVS's FNAT): the destination is rewritten as in
	// NAT, and the source too, to one of the service's LocalAddresses (the
	// gateway's own, DPVS's local_address_group), so the servers answer the
	// gateway directly: they need no route back through it and see the
	// gateway's address, not the client's.
	FNAT Mode = "fnat"
)

// Scheduler chooses the server of a new flow.
type Scheduler string

// The schedulers.
const (
	// RoundRobin cycles over the live servers (numgen inc), ignoring weights.
	RoundRobin Scheduler = "rr"
	// WeightedRoundRobin cycles over a smooth weighted sequence of the live
	// servers (nginx's smooth WRR order, so a heavy server's turns are spread).
	WeightedRoundRobin Scheduler = "wrr"
	// SourceHash hashes the client address (jhash) into a weighted table:
	// a client stays on its server while the server set does not change.
	SourceHash Scheduler = "sh"
	// Maglev hashes the flow (client address and port, or only the address
	// with persistence) into a Maglev table: removing one server of N moves
	// about 1/N of the flows, and two gateways with the same servers build
	// the same table, so either can carry a flow (DR failover).
	Maglev Scheduler = "maglev"
)

// Server is one real server of a service.
type Server struct {
	Address netip.Addr `json:"address"`
	// Port is the server's port in NAT mode (0: the service port). In DR
	// the port cannot change (only Ethernet addresses are rewritten): it
	// must be 0 or the service port.
	Port uint16 `json:"port,omitempty"`
	// Weight is the server's share (1..MaxWeight); 0 is LVS's quiescent
	// drain: the server keeps its existing flows and takes no new ones.
	Weight int `json:"weight"`
	// Backup servers take flows only while no other server is live.
	Backup bool `json:"backup,omitempty"`
	// Down is the health checks' verdict: a down server is out of every
	// table at once (its flows move), unlike a drained one.
	Down bool `json:"down,omitempty"`
	// MAC is the server's Ethernet address for DR. Empty in a desired
	// config: Resolve fills it from the neighbour table (ARP if missing).
	MAC net.HardwareAddr `json:"mac,omitempty"`
}

// Limits are per-service admission limits, enforced in the kernel on the
// first packet of a flow (NAT) or on every packet (DR). Zero means none.
type Limits struct {
	// ConnPerSource caps the concurrent connections of one client address
	// (nftables ct count: NAT only, DR keeps no connection state).
	ConnPerSource int `json:"conn_per_source,omitempty"`
	// RatePerSource caps new flows (NAT) or packets (DR) per second per
	// client address, with Burst.
	RatePerSource int `json:"rate_per_source,omitempty"`
	// Rate caps new flows (NAT) or packets (DR) per second for the whole
	// service, with Burst.
	Rate  int `json:"rate,omitempty"`
	Burst int `json:"burst,omitempty"`
}

// Service is one virtual service: VIP:port/protocol, or every packet of
// the protocol with a firewall mark, forwarded to servers.
type Service struct {
	// Name identifies the service in plans and in the names of its chains
	// and sets: [a-z0-9_-], at most 32 bytes, unique.
	Name string     `json:"name"`
	VIP  netip.Addr `json:"vip"`
	Port uint16     `json:"port"`
	// Mark, when not 0, selects the service's packets by firewall mark
	// (LVS's fwmark service) in place of VIP and Port, which stay unset:
	// every IPv4 packet of Protocol whose mark (meta mark) is Mark when it
	// reaches the service's hook, whatever its destination. Something
	// else marks them (the operator's firewall): in nat, a prerouting
	// chain of priority below dstnat (-100, e.g. iptables' mangle table);
	// in dr, where the service's hook is the interface's ingress, tc or a
	// netdev ingress chain of priority below 0. A server without a port
	// keeps the client's destination port. A mark service is matched
	// before the services by address, as IPVS looks fwmark services up
	// first.
	Mark      uint32    `json:"mark,omitempty"`
	Protocol  Protocol  `json:"protocol"`
	Mode      Mode      `json:"mode"`
	Scheduler Scheduler `json:"scheduler"`
	// Interface is the segment's interface (DR: where packets for the VIP
	// arrive and leave again; required). Ignored in NAT.
	Interface string   `json:"interface,omitempty"`
	Servers   []Server `json:"servers"`
	// Persistence keeps a client address on its server: in NAT, for this
	// long after its last new flow (a kernel map with a timeout); in DR the
	// hash key becomes the client address alone (stateless, so the
	// duration only has to be positive: the mapping lasts as long as the
	// server set).
	Persistence time.Duration `json:"persistence,omitempty"`
	// TableSize is the number of slots of the sh and maglev tables (a prime,
	// at least 10 times the number of servers); 0: DefaultTableSize. Both
	// gateways must use the same size.
	TableSize int            `json:"table_size,omitempty"`
	Limits    Limits         `json:"limits,omitempty"`
	Allow     []netip.Prefix `json:"allow,omitempty"` // if not empty, only these sources
	Deny      []netip.Prefix `json:"deny,omitempty"`
	// LocalAddresses are the source addresses of an fnat service's flows
	// towards its servers (the gateway's own, on the servers' side): new
	// flows take them in turn (numgen), as DPVS takes its laddrs in turn.
	// Required in fnat, empty otherwise.
	LocalAddresses []netip.Addr `json:"local_addresses,omitempty"`

	// ifindex and ifMAC are the DR interface's index and address, filled
	// by Resolve; the rendered program needs them.
	ifindex int
	ifMAC   net.HardwareAddr
}

// Bounds of the configuration.
const (
	MaxWeight        = 256
	DefaultTableSize = 1021
	MaxTableSize     = 65537
	// maxWRRSlots bounds the weighted round-robin sequence (sum of the
	// weights after dividing by their gcd).
	maxWRRSlots = 4096
	maxNameLen  = 32
	maxLimit    = 1_000_000_000
	// MaxLocalAddresses bounds an fnat service's local addresses (DPVS
	// gives a few per core; each is a slot of the service's source map).
	MaxLocalAddresses = 256
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// Identity is what both gateways agree a service is, independent of its
// name and of the order of the configuration: the hash seeds derive from
// it, so the same site gives the same tables on every node.
func (s Service) Identity() string {
	if s.Mark != 0 {
		return fmt.Sprintf("%s/fwmark:%d", s.Protocol, s.Mark)
	}
	return fmt.Sprintf("%s/%s", s.Protocol, netip.AddrPortFrom(s.VIP, s.Port))
}

// Seed is the jhash seed of the service, shared by every gateway.
func (s Service) Seed() uint32 {
	h := fnv.New32a()
	h.Write([]byte("gitgw-kernlb/" + s.Identity()))
	return h.Sum32()
}

// tableSize is the effective size of the sh/maglev table.
func (s Service) tableSize() int {
	if s.TableSize == 0 {
		return DefaultTableSize
	}
	return s.TableSize
}

// serverPort is the port the server receives on: 0 in a mark service
// whose servers keep the client's destination port.
func (s Service) serverPort(srv Server) uint16 {
	if srv.Port == 0 {
		return s.Port
	}
	return srv.Port
}

// serverKey names a server within its service (address:port).
func (s Service) serverKey(srv Server) string {
	return netip.AddrPortFrom(srv.Address, s.serverPort(srv)).String()
}

// Validate reports every error of the configuration, each naming the
// service (by index and name) and the field.
func (c Config) Validate() error {
	var errs []error
	names := map[string]int{}
	ids := map[string]int{}
	for i, s := range c.Services {
		where := fmt.Sprintf("services[%d] (%s)", i, s.Name)
		if err := s.validate(); err != nil {
			errs = append(errs, fmt.Errorf("kernlb: %s: %w", where, err))
		}
		if j, ok := names[s.Name]; ok {
			errs = append(errs, fmt.Errorf("kernlb: %s: name: same as services[%d]", where, j))
		}
		names[s.Name] = i
		if j, ok := ids[s.Identity()]; ok {
			errs = append(errs, fmt.Errorf("kernlb: %s: %s is also services[%d]", where, s.Identity(), j))
		}
		ids[s.Identity()] = i
	}
	return errors.Join(errs...)
}

func (s Service) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(s.Name) == 0 || len(s.Name) > maxNameLen || !nameRE.MatchString(s.Name) {
		bad("name: %q must be 1-%d of [a-z0-9_-], starting with a letter or digit", s.Name, maxNameLen)
	}
	switch {
	case s.Mark != 0:
		if s.VIP.IsValid() || s.Port != 0 {
			bad("mark: %d: a service by mark has no vip and port (it takes the marked packets whatever their destination)", s.Mark)
		}
	case !s.VIP.IsValid() || s.VIP.Is4In6() || s.VIP.Zone() != "":
		bad("vip: %v: must be an IPv4 or IPv6 address (no zone, not IPv4-mapped)", s.VIP)
	case s.Port == 0:
		bad("port: must be 1-65535")
	}
	if s.Protocol != TCP && s.Protocol != UDP {
		bad("protocol: %q must be tcp or udp", s.Protocol)
	}
	switch s.Scheduler {
	case RoundRobin, WeightedRoundRobin, SourceHash, Maglev:
	default:
		bad("scheduler: %q must be rr, wrr, sh or maglev", s.Scheduler)
	}
	switch s.Mode {
	case NAT:
	case FNAT:
		if s.Mark != 0 {
			// The source rewrite finds its flows in postrouting by their
			// original destination (conntrack): a mark service has none.
			bad("mode: fnat finds its flows by their VIP and port; a service by mark has none: use nat")
		}
		if len(s.LocalAddresses) == 0 {
			bad("local_addresses: fnat needs at least one (the source of the flows towards the servers)")
		}
		if len(s.LocalAddresses) > MaxLocalAddresses {
			bad("local_addresses: %d, at most %d", len(s.LocalAddresses), MaxLocalAddresses)
		}
		seenLocal := map[netip.Addr]int{}
		for i, a := range s.LocalAddresses {
			switch {
			case !s.sameFamily(a):
				bad("local_addresses[%d]: %v: not of the VIP's family (%v): the kernel's NAT keeps a flow in its family", i, a, s.family())
			case a == s.VIP:
				bad("local_addresses[%d]: %v is the service's VIP: give the gateway's own address on the servers' side", i, a)
			}
			if j, ok := seenLocal[a]; ok {
				bad("local_addresses[%d]: %v: same as local_addresses[%d]", i, a, j)
			}
			seenLocal[a] = i
		}
	case DR:
		if s.Interface == "" {
			bad("interface: dr mode needs the segment's interface")
		}
		if s.Scheduler == RoundRobin || s.Scheduler == WeightedRoundRobin {
			// Without a connection table every packet is scheduled on its
			// own: a counter would send each packet of a connection to the
			// next server.
			bad("scheduler: %s is per packet in dr mode, which keeps no connection state: use sh or maglev", s.Scheduler)
		}
		if s.Limits.ConnPerSource > 0 {
			bad("limits.conn_per_source: dr mode keeps no connection state to count: use nat, or rate_per_source")
		}
	default:
		bad("mode: %q must be nat, fnat or dr", s.Mode)
	}
	if s.Mode != FNAT && len(s.LocalAddresses) > 0 {
		bad("local_addresses: only for fnat (mode %s does not rewrite the source)", s.Mode)
	}
	if s.Persistence < 0 {
		bad("persistence: %v must not be negative", s.Persistence)
	}
	if s.Persistence > 0 && s.Persistence < time.Second || s.Persistence > 30*24*time.Hour {
		bad("persistence: %v: between 1s and 720h", s.Persistence)
	}
	if n := s.TableSize; n != 0 && (n < 7 || n > MaxTableSize || !isPrime(n)) {
		bad("table_size: %d must be a prime between 7 and %d", n, MaxTableSize)
	}
	if 10*len(s.Servers) > s.tableSize() && (s.Scheduler == Maglev || s.Scheduler == SourceHash) {
		bad("table_size: %d slots for %d servers: needs at least 10 per server", s.tableSize(), len(s.Servers))
	}
	l := s.Limits
	for _, v := range []int{l.ConnPerSource, l.RatePerSource, l.Rate, l.Burst} {
		if v < 0 || v > maxLimit {
			bad("limits: %+v: each must be 0-%d", l, maxLimit)
			break
		}
	}
	for i, p := range append(append([]netip.Prefix{}, s.Allow...), s.Deny...) {
		if !p.IsValid() || !s.sameFamily(p.Addr()) {
			bad("allow/deny[%d]: %v: not a prefix of the VIP's family (%v)", i, p, s.family())
		}
	}
	seen := map[string]int{}
	wsum, gcd := 0, 0
	for i, srv := range s.Servers {
		at := fmt.Sprintf("servers[%d] (%v)", i, srv.Address)
		if !s.sameFamily(srv.Address) {
			// NAT64 (an IPv6 VIP to IPv4 servers) is not NAT: the
			// kernel's NAT keeps a flow in its family.
			bad("%s: address: not of the VIP's family (%v): the kernel's NAT keeps a flow in its family", at, s.family())
		}
		if srv.Weight < 0 || srv.Weight > MaxWeight {
			bad("%s: weight: %d must be 0-%d", at, srv.Weight, MaxWeight)
		}
		if s.Mode == DR && srv.Port != 0 && srv.Port != s.Port {
			bad("%s: port: %d: dr mode cannot change the port (only Ethernet addresses are rewritten)", at, srv.Port)
		}
		if s.Mark != 0 && s.Mode != DR && (srv.Port == 0) != (s.Servers[0].Port == 0) {
			// One NAT map holds either addresses (the port is kept) or
			// addresses and ports: a rule cannot choose per server.
			bad("%s: port: servers of a mark service either all have a port or none (none: the client's destination port is kept)", at)
		}
		if srv.MAC != nil && len(srv.MAC) != 6 {
			bad("%s: mac: %v is not an Ethernet address", at, srv.MAC)
		}
		k := s.serverKey(srv)
		if j, ok := seen[k]; ok {
			bad("%s: same server as servers[%d]", at, j)
		}
		seen[k] = i
		if srv.Weight > 0 {
			wsum += srv.Weight
			gcd = gcdInt(gcd, srv.Weight)
		}
	}
	if s.Scheduler == WeightedRoundRobin && gcd > 0 && wsum/gcd > maxWRRSlots {
		bad("servers: weights sum to %d turns (after dividing by their gcd %d), at most %d", wsum/gcd, gcd, maxWRRSlots)
	}
	return errors.Join(errs...)
}

// is6 reports an IPv6 service: its VIP is IPv6. A service by mark has no
// VIP and takes IPv4 packets only.
func (s Service) is6() bool { return s.VIP.Is6() && !s.VIP.Is4In6() }

// family names the service's address family, for errors.
func (s Service) family() string {
	if s.is6() {
		return "IPv6"
	}
	return "IPv4"
}

// sameFamily reports whether a is a plain address of the service's
// family (IPv4-mapped IPv6 addresses and zones are refused: the rules
// compare raw header bytes).
func (s Service) sameFamily(a netip.Addr) bool {
	if !a.IsValid() || a.Zone() != "" || a.Is4In6() {
		return false
	}
	return a.Is6() == s.is6()
}

// draining reports LVS's quiescent state: weight 0 and not down.
func (srv Server) draining() bool { return srv.Weight == 0 && !srv.Down }

// liveServers returns the servers that take new flows: the non-backup
// servers with a weight that are not down, or, when there are none, the
// backup servers in that state. Sorted by key, so that the configuration's
// order never changes a table.
func (s Service) liveServers() []Server {
	var prim, back []Server
	for _, srv := range s.Servers {
		if srv.Down || srv.Weight == 0 {
			continue
		}
		if srv.Backup {
			back = append(back, srv)
		} else {
			prim = append(prim, srv)
		}
	}
	live := prim
	if len(live) == 0 {
		live = back
	}
	s.sortServers(live)
	return live
}

// holdServers returns the servers whose established flows a DR table must
// keep: the live ones plus every draining one (weight 0), each draining
// one with weight 1 (its former weight is not known: exact when the
// servers have equal weights).
func (s Service) holdServers() []Server {
	out := s.liveServers()
	for _, srv := range s.Servers {
		if srv.draining() {
			srv.Weight = 1
			out = append(out, srv)
		}
	}
	s.sortServers(out)
	return out
}

func (s Service) sortServers(v []Server) {
	sort.Slice(v, func(i, j int) bool {
		a, b := netip.AddrPortFrom(v[i].Address, s.serverPort(v[i])), netip.AddrPortFrom(v[j].Address, s.serverPort(v[j]))
		return a.Compare(b) < 0
	})
}

// Describe says what the service is, in words (for plans).
func (s Service) Describe() string {
	var b strings.Builder
	if s.Mark != 0 {
		fmt.Fprintf(&b, "%s %s fwmark %d", s.Mode, s.Protocol, s.Mark)
	} else {
		fmt.Fprintf(&b, "%s %s %s", s.Mode, s.Protocol, netip.AddrPortFrom(s.VIP, s.Port))
	}
	if s.Mode == DR {
		fmt.Fprintf(&b, " on %s", s.Interface)
	}
	if s.Mode == FNAT {
		b.WriteString(" from ")
		for i, a := range s.sortedLocal() {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(a.String())
		}
	}
	fmt.Fprintf(&b, ", %s", s.Scheduler)
	if s.Persistence > 0 {
		fmt.Fprintf(&b, ", persistence %v", s.Persistence)
	}
	return b.String()
}

// sortedLocal returns the local addresses sorted, so that the order of
// the configuration never changes a table.
func (s Service) sortedLocal() []netip.Addr {
	out := slices.Clone(s.LocalAddresses)
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// DescribeServer says what one server is, in words.
func (s Service) DescribeServer(srv Server) string {
	var b strings.Builder
	if s.serverPort(srv) == 0 {
		b.WriteString(srv.Address.String() + " (client's port)")
	} else {
		b.WriteString(s.serverKey(srv))
	}
	switch {
	case srv.Down:
		b.WriteString(" down")
	case srv.Weight == 0:
		b.WriteString(" draining (weight 0)")
	default:
		fmt.Fprintf(&b, " weight %d", srv.Weight)
	}
	if srv.Backup {
		b.WriteString(" backup")
	}
	return b.String()
}

func gcdInt(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func isPrime(n int) bool {
	if n < 2 {
		return false
	}
	for d := 2; d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}
