package kernlb

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// TableName is the name of the agent's two tables, `inet gitgw` (NAT) and
// `netdev gitgw` (DR). The agent writes nothing anywhere else.
const TableName = "gitgw"

// pinTimeout is how long a DR flow started during a drain stays pinned to
// its server after its last packet (refreshed by every packet).
const pinTimeout = 10 * time.Minute

// rateSetTimeout is how long a per-source rate entry lives without packets.
const rateSetTimeout = time.Minute

// Registers: 1..4 are the 16-byte registers, 8..23 their 4-byte parts
// (reg 1 = 8..11). A concatenation of address and port fills reg 8 and 9.
const (
	reg1   = 1
	reg2   = 2
	reg3   = 3
	reg4   = 4
	reg32b = 9 // second 4-byte part of reg 1
)

// program is what a Config renders to: the content of the two tables. It
// is pure data, built without I/O, so that Diff can compare it with what
// Observe read back.
type program struct {
	tables [2]tableProg // inet, netdev
}

type tableProg struct {
	family nftables.TableFamily
	chains []*chainProg
	sets   []*setProg
}

type chainProg struct {
	name string
	svc  string // owning service; "" for base chains
	// base chain only
	hook   *nftables.ChainHook
	prio   *nftables.ChainPriority
	typ    nftables.ChainType
	device string
	rules  []ruleProg
	isBase bool
}

type ruleProg struct {
	svc, role string
	comment   string
	exprs     []expr.Any
	// print is exprsPrint of exprs, computed with the rule when its
	// service is rendered (renderWith), so that a service rendered again
	// from the memo is not marshalled again.
	print string
}

type setProg struct {
	svc, role string
	set       nftables.Set
	elems     []nftables.SetElement
	// slots, when not nil, are the elements of a dense slot map, in
	// place of elems: slot i holds slots[i]. A render of 100 Maglev
	// services has 100,000 slots; as library elements they would be
	// 13 MB to allocate and fingerprint on every render, and most of
	// them are never sent (a change sends only the slots that differ).
	slots [][]byte
	// state marks a set the kernel fills (persistence, pins, limits): its
	// definition is compared and kept across Sets, its elements are not.
	state bool
	// liveValues are the server values a persistence map may keep.
	liveValues map[string]bool
}

// elements returns the set's elements as the library's type.
func (sp *setProg) elements() []nftables.SetElement {
	if sp.slots == nil {
		return sp.elems
	}
	return slotElems(sp.slots)
}

// slotElems turns a dense slot map into elements.
func slotElems(slots [][]byte) []nftables.SetElement {
	out := make([]nftables.SetElement, len(slots))
	for i, v := range slots {
		out[i] = nftables.SetElement{Key: slotKey(i), Val: v}
	}
	return out
}

func (p *program) inet() *tableProg   { return &p.tables[0] }
func (p *program) netdev() *tableProg { return &p.tables[1] }

// render builds the program of a validated, resolved config.
func render(c Config) (*program, error) { return renderWith(c, nil) }

// renderMemo holds the last render of each service, by name: a service
// whose configuration has not changed since (the same key) is not rendered
// again. An agent's commit usually changes a few services of many; a
// Maglev service costs a table to fill and rules to marshal.
type renderMemo map[string]*svcRender

type svcRender struct {
	key      string // the service's configuration, printed
	dispatch ruleProg
	// snat is an fnat service's rule in the postrouting chain; nil else.
	snat  *ruleProg
	chain *chainProg
	sets  []*setProg
}

// renderWith is render with a memo (nil: none), which it updates to hold
// the services of c.
func renderWith(c Config, memo renderMemo) (*program, error) {
	p := &program{tables: [2]tableProg{{family: nftables.TableFamilyINet}, {family: nftables.TableFamilyNetdev}}}
	services := append([]Service{}, c.Services...)
	// Mark services first: their dispatch rules come before those by
	// address, as IPVS looks a packet's fwmark service up first.
	sort.Slice(services, func(i, j int) bool {
		if mi, mj := services[i].Mark != 0, services[j].Mark != 0; mi != mj {
			return mi
		}
		return services[i].Name < services[j].Name
	})
	var natBase, snatBase *chainProg
	drBase := map[string]*chainProg{}
	seen := map[string]bool{}
	for _, s := range services {
		var t *tableProg
		var base *chainProg
		switch s.Mode {
		case NAT, FNAT:
			t = p.inet()
			if natBase == nil {
				natBase = &chainProg{name: "prerouting", isBase: true, typ: nftables.ChainTypeNAT,
					hook: nftables.ChainHookPrerouting, prio: nftables.ChainPriorityNATDest}
				t.chains = append(t.chains, natBase)
			}
			base = natBase
			if s.Mode == FNAT && snatBase == nil {
				snatBase = &chainProg{name: "postrouting", isBase: true, typ: nftables.ChainTypeNAT,
					hook: nftables.ChainHookPostrouting, prio: nftables.ChainPriorityNATSource}
				t.chains = append(t.chains, snatBase)
			}
		case DR:
			t = p.netdev()
			if s.ifindex == 0 || len(s.ifMAC) != 6 {
				return nil, fmt.Errorf("kernlb: service %s: interface %s not resolved", s.Name, s.Interface)
			}
			base = drBase[s.Interface]
			if base == nil {
				base = &chainProg{name: "in-" + s.Interface, isBase: true, typ: nftables.ChainTypeFilter,
					hook: nftables.ChainHookIngress, prio: nftables.ChainPriorityFilter, device: s.Interface}
				drBase[s.Interface] = base
				t.chains = append(t.chains, base)
			}
			// Only the servers in a table need a MAC: a down server may
			// not answer ARP at all.
			for _, srv := range s.holdServers() {
				if len(srv.MAC) != 6 {
					return nil, fmt.Errorf("kernlb: service %s: server %s: MAC not resolved", s.Name, srv.Address)
				}
			}
		}
		var r *svcRender
		var key string
		if memo != nil {
			key = fmt.Sprintf("%v", s)
			seen[s.Name] = true
			if m := memo[s.Name]; m != nil && m.key == key {
				r = m
			}
		}
		if r == nil {
			r = renderService(s, byte(t.family))
			r.key = key
			if memo != nil {
				memo[s.Name] = r
			}
		}
		base.rules = append(base.rules, r.dispatch)
		if r.snat != nil {
			snatBase.rules = append(snatBase.rules, *r.snat)
		}
		t.chains = append(t.chains, r.chain)
		t.sets = append(t.sets, r.sets...)
	}
	for name := range memo {
		if !seen[name] {
			delete(memo, name)
		}
	}
	return p, nil
}

// renderService renders one service of family fam: its dispatch rule, its
// chain and its sets, the rules' prints computed.
func renderService(s Service, fam byte) *svcRender {
	chain := &chainProg{name: "svc-" + s.Name, svc: s.Name}
	dispatch := ruleProg{svc: s.Name, role: "dispatch", comment: specLine(s), exprs: dispatchExprs(s, chain.name)}
	dispatch.print = exprsPrint(fam, dispatch.exprs)
	sets, rules := serviceProgram(s)
	for i := range rules {
		rules[i].print = exprsPrint(fam, rules[i].exprs)
	}
	chain.rules = rules
	r := &svcRender{dispatch: dispatch, chain: chain, sets: sets}
	if s.Mode == FNAT {
		set, rule := snatProgram(s)
		rule.print = exprsPrint(fam, rule.exprs)
		r.snat = &rule
		r.sets = append(r.sets, set)
	}
	return r
}

// snatProgram is the source half of fnat: a map of the local addresses
// by slot and a postrouting rule that rewrites the source of the
// service's new flows to them in turn. The rule finds the flows that the
// service's chain sent to a server by conntrack: original destination
// the VIP and port, and DNAT done (a connection of the gateway's own to
// the VIP, which leaves through lo, is not one). A nat chain sees only a
// flow's first packet: conntrack applies the binding to the rest, and
// undoes both rewrites on the replies, which the servers send to the
// local address, that is, to the gateway, whatever their routes.
func snatProgram(s Service) (*setProg, ruleProg) {
	local := s.sortedLocal()
	elems := make([]nftables.SetElement, len(local))
	for i, a := range local {
		elems[i] = nftables.SetElement{Key: slotKey(i), Val: a.AsSlice()}
	}
	set := nftables.Set{Name: setName(s, "laddr"), IsMap: true, KeyType: typeSlot, DataType: s.addrType(),
		KeyByteOrder: binaryutil.NativeEndian, Size: fixedSize(len(elems))}
	status := make([]byte, 4)
	binary.NativeEndian.PutUint32(status, ipsDstNAT)
	e := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{s.nfproto()}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{protoNum(s.Protocol)}},
		&expr.Ct{Key: expr.CtKeySTATUS, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: status, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: make([]byte, 4)},
		// In an inet table the original destination fills 16 bytes, of
		// which an IPv4 flow's address is the first 4.
		&expr.Ct{Key: expr.CtKeyDST, Direction: 0, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: s.VIP.AsSlice()},
		&expr.Ct{Key: expr.CtKeyPROTODST, Direction: 0, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.BigEndian.PutUint16(s.Port)},
		&expr.Numgen{Register: reg1, Modulus: uint32(len(elems)), Type: unix.NFT_NG_INCREMENTAL},
		&expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: set.Name},
		&expr.NAT{Type: expr.NATTypeSourceNAT, Family: uint32(s.nfproto()), RegAddrMin: reg1, RegAddrMax: reg1},
	}
	return &setProg{svc: s.Name, role: "laddr", set: set, elems: elems},
		ruleProg{svc: s.Name, role: "snat", comment: "gitgw " + s.Name + " snat", exprs: e}
}

// ipsDstNAT is conntrack's IPS_DST_NAT status bit: the flow's destination
// was rewritten.
const ipsDstNAT = 1 << 5

// specLine is the dispatch rule's comment: the service's parameters, so
// that Observe can tell in words what a table forwards. Validate's bounds
// keep it under ~170 bytes, within the kernel's 256 of rule user data.
func specLine(s Service) string {
	ifn := s.Interface
	if s.Mode != DR || ifn == "" {
		ifn = "-"
	}
	match := netip.AddrPortFrom(s.VIP, s.Port).String()
	if s.Mark != 0 {
		match = fmt.Sprintf("fwmark=%d", s.Mark)
	}
	return fmt.Sprintf("gitgw %s %s %s %s %s %s %d %d %d %d %d %d",
		s.Name, s.Mode, s.Protocol, match, ifn, s.Scheduler,
		int64(s.Persistence/time.Second), s.TableSize, s.Limits.ConnPerSource, s.Limits.RatePerSource, s.Limits.Rate, s.Limits.Burst)
}

// parseSpecLine is specLine's inverse.
func parseSpecLine(line string) (Service, error) {
	var s Service
	var ap, ifn string
	var persist int64
	_, err := fmt.Sscanf(line, "gitgw %s %s %s %s %s %s %d %d %d %d %d %d",
		&s.Name, &s.Mode, &s.Protocol, &ap, &ifn, &s.Scheduler,
		&persist, &s.TableSize, &s.Limits.ConnPerSource, &s.Limits.RatePerSource, &s.Limits.Rate, &s.Limits.Burst)
	if err != nil {
		return s, fmt.Errorf("kernlb: rule comment %q: %w", line, err)
	}
	if m, ok := strings.CutPrefix(ap, "fwmark="); ok {
		v, err := strconv.ParseUint(m, 10, 32)
		if err != nil || v == 0 {
			return s, fmt.Errorf("kernlb: rule comment %q: mark %q", line, m)
		}
		s.Mark = uint32(v)
	} else {
		a, err := netip.ParseAddrPort(ap)
		if err != nil {
			return s, fmt.Errorf("kernlb: rule comment %q: %w", line, err)
		}
		s.VIP, s.Port = a.Addr(), a.Port()
	}
	if ifn != "-" {
		s.Interface = ifn
	}
	s.Persistence = time.Duration(persist) * time.Second
	return s, nil
}

func protoNum(p Protocol) byte {
	if p == UDP {
		return unix.IPPROTO_UDP
	}
	return unix.IPPROTO_TCP
}

// dispatchExprs matches the service's VIP:port/protocol, or its
// protocol and mark, and jumps to its chain.
func dispatchExprs(s Service, chain string) []expr.Any {
	var e []expr.Any
	if s.Mode == DR {
		// netdev sees every frame: the service's family only, and only
		// frames sent to this gateway's MAC. A frame the switch floods (to
		// the peer gateway's MAC, unknown to its table) must not be
		// forwarded twice.
		ethType := uint16(unix.ETH_P_IP)
		if s.is6() {
			ethType = unix.ETH_P_IPV6
		}
		e = append(e,
			&expr.Meta{Key: expr.MetaKeyPKTTYPE, Register: reg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{unix.PACKET_HOST}},
			&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: reg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.BigEndian.PutUint16(ethType)})
	} else {
		e = append(e,
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{s.nfproto()}})
	}
	e = append(e,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{protoNum(s.Protocol)}})
	if s.Mark != 0 {
		return append(e,
			&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(s.Mark)},
			&expr.Verdict{Kind: expr.VerdictJump, Chain: chain})
	}
	off, n := uint32(16), uint32(4) // ip daddr
	if s.is6() {
		off, n = 24, 16 // ip6 daddr
	}
	e = append(e,
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: s.VIP.AsSlice()},
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.BigEndian.PutUint16(s.Port)},
		&expr.Verdict{Kind: expr.VerdictJump, Chain: chain})
	return e
}

// loadSaddr loads the client address (ip saddr, ip6 saddr) into reg.
func loadSaddr(s Service, reg uint32) expr.Any {
	if s.is6() {
		return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16}
	}
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}
}

// nfproto is the service's netfilter family (NFPROTO_IPV4 or _IPV6).
func (s Service) nfproto() byte {
	if s.is6() {
		return unix.NFPROTO_IPV6
	}
	return unix.NFPROTO_IPV4
}

// addrType is the set type of the service's addresses.
func (s Service) addrType() nftables.SetDatatype {
	if s.is6() {
		return nftables.TypeIP6Addr
	}
	return nftables.TypeIPAddr
}

// addrPtType is the set type of the service's address . port values.
func (s Service) addrPtType() nftables.SetDatatype {
	if s.is6() {
		return typeAddrPt6
	}
	return typeAddrPt
}

// portReg is the register that holds the port of an address . port
// concatenation loaded into reg 1: right after the address, that is the
// second 4-byte part of reg 1 (IPv4), or reg 2 (IPv6, whose address
// fills reg 1). Named as the kernel dumps it: a register that starts a
// 16-byte one by its 16-byte number, so that a rule reads back as written.
func (s Service) portReg() uint32 {
	if s.is6() {
		return reg2
	}
	return reg32b
}

// keyReg is the register of a persistence key next to an address . port
// value in reg 1, which spills into reg 2 when the address is IPv6.
func (s Service) keyReg() uint32 {
	if s.is6() {
		return reg3
	}
	return reg2
}

func loadSport(reg uint32) expr.Any {
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2}
}

func drop() expr.Any { return &expr.Verdict{Kind: expr.VerdictDrop} }

// setName names a service's set.
func setName(s Service, role string) string { return s.Name + "-" + role }

var (
	typeSlot    = nftables.TypeInteger
	typeAddrPt  = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)
	typeAddrPt6 = nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetService)
)

// slotKey is a slot number as the hash and numgen expressions leave it in
// a register: a host-endian 32-bit integer. The keys are slices of one
// table shared by every map (capacity-limited, and nothing writes to an
// element's key): a render of 100 Maglev services makes 100,000 of them.
func slotKey(i int) []byte {
	k := slotKeys()
	return k[4*i : 4*i+4 : 4*i+4]
}

// slotKeys holds the keys of every slot a table can have.
var slotKeys = sync.OnceValue(func() []byte {
	b := make([]byte, 4*MaxTableSize)
	for i := range MaxTableSize {
		binary.NativeEndian.PutUint32(b[4*i:], uint32(i))
	}
	return b
})

// addrPort is the concatenation ipv4_addr . inet_service (8 bytes) or
// ipv6_addr . inet_service (20 bytes), the port padded to 4 bytes, as a
// NAT map value and a pin key.
func addrPort(a netip.Addr, port uint16) []byte {
	b := append(a.AsSlice(), 0, 0, 0, 0)
	binary.BigEndian.PutUint16(b[len(b)-4:], port)
	return b
}

// hashKey computes the flow's slot into reg 1: the client address (sh, or
// any scheduler with persistence) or the client address and port (maglev).
func hashKey(s Service) []expr.Any {
	alen := uint32(len(s.VIP.AsSlice()))
	if s.Mark != 0 {
		alen = 4
	}
	length := alen + 4
	e := []expr.Any{loadSaddr(s, reg1)}
	if s.Scheduler == SourceHash || s.Persistence > 0 {
		length = alen
	} else {
		e = append(e, loadSport(s.portReg()))
	}
	return append(e, &expr.Hash{SourceRegister: reg1, DestRegister: reg1, Length: length,
		Modulus: uint32(s.tableSize()), Seed: s.Seed(), Type: expr.HashTypeJenkins})
}

// slotTable is the scheduler's table over members (indexes into members).
func slotTable(s Service, members []Server) []int {
	ms := make([]Member, len(members))
	for i, srv := range members {
		ms[i] = Member{Key: s.serverKey(srv), Weight: srv.Weight}
		if s.Scheduler == RoundRobin {
			ms[i].Weight = 1
		}
	}
	switch s.Scheduler {
	case Maglev:
		return MaglevTable(s.Identity(), ms, s.tableSize())
	case SourceHash:
		return SourceHashTable(ms, s.tableSize())
	default:
		return WRRSequence(ms)
	}
}

// fixedSize is the size declared for a set the agent fills: the next power
// of two that holds n elements (at least 16). A declared size makes the
// kernel choose its fixed-size hash (nft_hash) over the resizable one
// (rhash). The resizable hash grows in a deferred worker after a batch, and
// a dump that spans several netlink messages while it grows resumes by
// skipping a count of elements in a reordered table: Observe then read some
// slots twice and others not at all, and saw drift that was not there. The
// size is part of the set's definition, so a set that outgrows it is
// replaced (in the same batch as its chain) rather than refused.
func fixedSize(n int) uint32 {
	size := uint32(16)
	for int(size) < n {
		size <<= 1
	}
	return size
}

// serviceProgram returns the sets and the chain rules of one service.
func serviceProgram(s Service) ([]*setProg, []ruleProg) {
	var sets []*setProg
	var rules []ruleProg
	add := func(role string, set nftables.Set, elems []nftables.SetElement, state bool) *setProg {
		set.Name = setName(s, role)
		if !state && !set.Interval {
			set.Size = fixedSize(len(elems))
		}
		sp := &setProg{svc: s.Name, role: role, set: set, elems: elems, state: state}
		sets = append(sets, sp)
		return sp
	}
	addSlots := func(role string, set nftables.Set, slots [][]byte) {
		set.Name = setName(s, role)
		set.Size = fixedSize(len(slots))
		sets = append(sets, &setProg{svc: s.Name, role: role, set: set, slots: slots})
	}
	rule := func(role string, e ...expr.Any) {
		rules = append(rules, ruleProg{svc: s.Name, role: role, exprs: e})
	}

	// The catalog: every server with its weight and flags, read back by
	// Observe to say what changed in words. No rule uses it.
	var cat []nftables.SetElement
	for _, srv := range s.Servers {
		v := uint32(srv.Weight)
		if srv.Backup {
			v |= 1 << 16
		}
		if srv.Down {
			v |= 1 << 17
		}
		cat = append(cat, nftables.SetElement{Key: addrPort(srv.Address, s.serverPort(srv)), Val: binaryutil.BigEndian.PutUint32(v)})
	}
	add("servers", nftables.Set{IsMap: true, KeyType: s.addrPtType(), DataType: nftables.TypeInteger}, cat, false)

	// Admission: deny, allow, rate limits, connection limits.
	if len(s.Deny) > 0 {
		add("deny", nftables.Set{Interval: true, KeyType: s.addrType()}, intervalElems(s.Deny), false)
		rule("deny", loadSaddr(s, reg1), &expr.Lookup{SourceRegister: reg1, SetName: setName(s, "deny")}, drop())
	}
	if len(s.Allow) > 0 {
		add("allow", nftables.Set{Interval: true, KeyType: s.addrType()}, intervalElems(s.Allow), false)
		rule("allow", loadSaddr(s, reg1), &expr.Lookup{SourceRegister: reg1, SetName: setName(s, "allow"), Invert: true}, drop())
	}
	burst := uint32(s.Limits.Burst)
	if s.Limits.Rate > 0 {
		rule("rate", &expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(s.Limits.Rate), Over: true, Unit: expr.LimitTimeSecond, Burst: burst}, drop())
	}
	if s.Limits.RatePerSource > 0 {
		add("rate", nftables.Set{KeyType: s.addrType(), Dynamic: true, HasTimeout: true, Timeout: rateSetTimeout}, nil, true)
		rule("rate-per-source", loadSaddr(s, reg1),
			&expr.Dynset{SrcRegKey: reg1, SetName: setName(s, "rate"), Operation: unix.NFT_DYNSET_OP_UPDATE,
				Exprs: []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(s.Limits.RatePerSource), Over: true, Unit: expr.LimitTimeSecond, Burst: burst}}},
			drop())
	}
	if s.Limits.ConnPerSource > 0 {
		add("conns", nftables.Set{KeyType: s.addrType(), Dynamic: true}, nil, true)
		rule("conn-per-source", loadSaddr(s, reg1),
			&expr.Dynset{SrcRegKey: reg1, SetName: setName(s, "conns"), Operation: unix.NFT_DYNSET_OP_ADD,
				Exprs: []expr.Any{&expr.Connlimit{Count: uint32(s.Limits.ConnPerSource), Flags: 1 /* NFT_CONNLIMIT_F_INV: over */}}},
			drop())
	}

	live := s.liveServers()
	table := slotTable(s, live)
	if len(table) == 0 {
		rule("no-server", drop())
		return sets, rules
	}
	if s.Mode != DR {
		natProgram(s, live, table, add, addSlots, rule)
	} else {
		drProgram(s, live, table, add, addSlots, rule)
	}
	return sets, rules
}

type addSet func(role string, set nftables.Set, elems []nftables.SetElement, state bool) *setProg
type addSlotMap func(role string, set nftables.Set, slots [][]byte)
type addRule func(role string, e ...expr.Any)

// natProgram: DNAT to the chosen server; conntrack carries the rest of the
// flow (the nat chain sees only a flow's first packet), so a drained server
// keeps its flows simply by leaving the table.
func natProgram(s Service, live []Server, table []int, add addSet, addSlots addSlotMap, rule addRule) {
	// A mark service's servers without a port keep the client's
	// destination port (Validate: all of them or none): the maps then
	// hold addresses only and DNAT rewrites the address alone.
	keepPort := s.serverPort(live[0]) == 0
	valType := s.addrPtType()
	val := func(srv Server) []byte { return addrPort(srv.Address, s.serverPort(srv)) }
	// Max registers equal to the min ones: what the kernel echoes back.
	fam := uint32(s.nfproto())
	dnat := &expr.NAT{Type: expr.NATTypeDestNAT, Family: fam, RegAddrMin: reg1, RegAddrMax: reg1,
		RegProtoMin: s.portReg(), RegProtoMax: s.portReg(), Specified: true}
	if keepPort {
		valType = s.addrType()
		val = func(srv Server) []byte { return srv.Address.AsSlice() }
		dnat = &expr.NAT{Type: expr.NATTypeDestNAT, Family: fam, RegAddrMin: reg1, RegAddrMax: reg1}
	}
	// One value per server, shared by its slots.
	vals := make([][]byte, len(live))
	for i, srv := range live {
		vals[i] = val(srv)
	}
	slots := make([][]byte, len(table))
	for slot, idx := range table {
		slots[slot] = vals[idx]
	}
	addSlots("live", nftables.Set{IsMap: true, KeyType: typeSlot, DataType: valType, KeyByteOrder: binaryutil.NativeEndian}, slots)
	if s.Persistence > 0 {
		ps := add("persist", nftables.Set{IsMap: true, KeyType: s.addrType(), DataType: valType,
			Dynamic: true, HasTimeout: true, Timeout: s.Persistence}, nil, true)
		lv := map[string]bool{}
		for _, srv := range live {
			lv[string(val(srv))] = true
		}
		ps.liveValues = lv
		rule("persistent", loadSaddr(s, reg1),
			&expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: setName(s, "persist")},
			dnat)
	}
	var pick []expr.Any
	switch s.Scheduler {
	case RoundRobin, WeightedRoundRobin:
		pick = []expr.Any{&expr.Numgen{Register: reg1, Modulus: uint32(len(table)), Type: unix.NFT_NG_INCREMENTAL}}
	default:
		pick = hashKey(s)
	}
	pick = append(pick, &expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: setName(s, "live")})
	if s.Persistence > 0 {
		pick = append(pick, loadSaddr(s, s.keyReg()),
			&expr.Dynset{SrcRegKey: s.keyReg(), SrcRegData: reg1, SetName: setName(s, "persist"), Operation: unix.NFT_DYNSET_OP_UPDATE, Timeout: s.Persistence})
	}
	rule("schedule", append(pick, dnat)...)
}

// drProgram: rewrite the Ethernet addresses and send the frame back out on
// the segment. Stateless, so both gateways forward a flow alike.
//
// Quiescent drain in DR (TCP): a packet without SYN belongs to an
// established flow and follows the table as it was with the draining
// servers ("hold", only the slots that differ from the live table); a SYN
// follows the live table, and a SYN that lands on a held slot pins its flow
// (client address and port) to the live choice, so that its later packets
// do not follow the hold. UDP has no flows to tell apart: a draining UDP
// server leaves the table at once.
func drProgram(s Service, live []Server, table []int, add addSet, addSlots addSlotMap, rule addRule) {
	// The chosen MAC's register: reg 2, unless an IPv6 flow key (address
	// and port, 20 bytes from reg 1) spills into it; reg 3 is the tail's.
	mac := uint32(reg2)
	if s.is6() {
		mac = reg4
	}
	mapSet := nftables.Set{IsMap: true, KeyType: typeSlot, DataType: nftables.TypeEtherAddr, KeyByteOrder: binaryutil.NativeEndian}
	slots := make([][]byte, len(table))
	for slot, idx := range table {
		slots[slot] = live[idx].MAC
	}
	ifidx := make([]byte, 4)
	binary.NativeEndian.PutUint32(ifidx, uint32(s.ifindex))
	tail := func(macReg uint32) []expr.Any {
		return []expr.Any{
			&expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: macReg, Base: expr.PayloadBaseLLHeader, Offset: 0, Len: 6},
			&expr.Immediate{Register: reg3, Data: []byte(s.ifMAC)},
			&expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: reg3, Base: expr.PayloadBaseLLHeader, Offset: 6, Len: 6},
			&expr.Immediate{Register: reg3, Data: ifidx},
			// google/nftables v0.3.0 has no fwd expression: dup to the
			// device and drop the original (one skb clone per packet).
			&expr.Dup{RegAddr: reg3, RegDev: reg3, IsRegDevSet: true},
			drop(),
		}
	}
	flags := func(syn bool) []expr.Any {
		op := expr.CmpOpEq // no SYN
		if syn {
			op = expr.CmpOpNeq
		}
		return []expr.Any{
			&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 1, Mask: []byte{0x02}, Xor: []byte{0}},
			&expr.Cmp{Op: op, Register: reg1, Data: []byte{0}},
		}
	}
	flowKey := []expr.Any{loadSaddr(s, reg1), loadSport(s.portReg())}
	cat := func(parts ...[]expr.Any) []expr.Any {
		var out []expr.Any
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}

	holdMembers := s.holdServers()
	if s.Protocol == TCP && len(holdMembers) > len(live) {
		holdTable := slotTable(s, holdMembers)
		var held []nftables.SetElement
		for slot := range holdTable {
			h := holdMembers[holdTable[slot]]
			if slot >= len(table) || s.serverKey(h) != s.serverKey(live[table[slot]]) {
				held = append(held, nftables.SetElement{Key: slotKey(slot), Val: h.MAC})
			}
		}
		if len(held) > 0 {
			add("hold", mapSet, held, false)
			add("pin", nftables.Set{IsMap: true, KeyType: s.addrPtType(), DataType: nftables.TypeEtherAddr,
				Dynamic: true, HasTimeout: true, Timeout: pinTimeout}, nil, true)
			pin := setName(s, "pin")
			rule("pinned", cat(flags(false), flowKey,
				[]expr.Any{
					&expr.Lookup{SourceRegister: reg1, DestRegister: mac, IsDestRegSet: true, SetName: pin},
					&expr.Dynset{SrcRegKey: reg1, SrcRegData: mac, SetName: pin, Operation: unix.NFT_DYNSET_OP_UPDATE, Timeout: pinTimeout},
				}, tail(mac))...)
			rule("held", cat(flags(false), hashKey(s),
				[]expr.Any{&expr.Lookup{SourceRegister: reg1, DestRegister: mac, IsDestRegSet: true, SetName: setName(s, "hold")}},
				tail(mac))...)
			rule("pin-new", cat(flags(true), hashKey(s),
				[]expr.Any{
					&expr.Lookup{SourceRegister: reg1, SetName: setName(s, "hold")},
					&expr.Lookup{SourceRegister: reg1, DestRegister: mac, IsDestRegSet: true, SetName: setName(s, "live")},
				}, flowKey,
				[]expr.Any{&expr.Dynset{SrcRegKey: reg1, SrcRegData: mac, SetName: pin, Operation: unix.NFT_DYNSET_OP_UPDATE, Timeout: pinTimeout}},
				tail(mac))...)
		}
	}
	addSlots("live", mapSet, slots)
	rule("schedule", cat(hashKey(s),
		[]expr.Any{&expr.Lookup{SourceRegister: reg1, DestRegister: mac, IsDestRegSet: true, SetName: setName(s, "live")}},
		tail(mac))...)
}

// intervalElems turns prefixes (all of one family) into the elements of
// an interval set: merged ranges, each a start and an end (first address
// after) flagged IntervalEnd, as the kernel's rbtree wants them; a range
// that reaches the family's last address has no end.
func intervalElems(ps []netip.Prefix) []nftables.SetElement {
	type rng struct{ lo, hi netip.Addr } // hi exclusive; invalid: past the last address
	var rs []rng
	for _, p := range ps {
		p = p.Masked()
		rs = append(rs, rng{p.Addr(), lastAddr(p).Next()})
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].lo.Less(rs[j].lo) })
	// before reports a < b where an invalid b is past every address.
	before := func(a, b netip.Addr) bool { return !b.IsValid() || a.IsValid() && a.Less(b) }
	var merged []rng
	for _, r := range rs {
		if n := len(merged); n > 0 && !before(merged[n-1].hi, r.lo) {
			if before(merged[n-1].hi, r.hi) {
				merged[n-1].hi = r.hi
			}
			continue
		}
		merged = append(merged, r)
	}
	var out []nftables.SetElement
	for _, r := range merged {
		out = append(out, nftables.SetElement{Key: r.lo.AsSlice()})
		if r.hi.IsValid() {
			out = append(out, nftables.SetElement{Key: r.hi.AsSlice(), IntervalEnd: true})
		}
	}
	return out
}

// lastAddr is the last address of a masked prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// prefixesOf turns interval elements back into prefixes (Observe).
func prefixesOf(elems []nftables.SetElement) []netip.Prefix {
	sort.Slice(elems, func(i, j int) bool { return bytes.Compare(elems[i].Key, elems[j].Key) < 0 })
	var out []netip.Prefix
	for i := 0; i < len(elems); i++ {
		if elems[i].IntervalEnd {
			continue
		}
		lo, ok := netip.AddrFromSlice(elems[i].Key)
		if !ok || len(elems[i].Key) != 4 && len(elems[i].Key) != 16 {
			continue
		}
		var hi netip.Addr // invalid: to the family's last address
		if i+1 < len(elems) && elems[i+1].IntervalEnd {
			hi, _ = netip.AddrFromSlice(elems[i+1].Key)
		}
		// Split [lo, hi) into the largest aligned blocks.
		for lo.IsValid() && (!hi.IsValid() || lo.Less(hi)) {
			bits := lo.BitLen()
			for bits > 0 {
				wider := netip.PrefixFrom(lo, bits-1)
				next := lastAddr(wider.Masked()).Next()
				if wider.Masked().Addr() != lo || hi.IsValid() && (!next.IsValid() || hi.Less(next)) {
					break
				}
				bits--
			}
			p := netip.PrefixFrom(lo, bits)
			out = append(out, p)
			lo = lastAddr(p).Next()
		}
	}
	return out
}

func comment(s string) []byte { return userdata.AppendString(nil, userdata.TypeComment, s) }
