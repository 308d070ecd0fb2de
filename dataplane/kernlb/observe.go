package kernlb

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Observed is the comparable form of the agent's tables: what Observe read
// back, or what a Config renders to (observedOf), so that Diff compares like
// with like. Rules are compared by their expressions, sets by their
// definition and (except the kernel-filled ones) their elements.
type Observed struct {
	Tables [2]*TableState // inet, netdev; nil when the table does not exist
}

// TableState is one table's content.
type TableState struct {
	Chains map[string]*ChainState
	Sets   map[string]*SetState
}

// ChainState is one chain: its hook (base chains) and its rules in order.
type ChainState struct {
	Hook  string // "" for a regular chain
	Rules []RuleState
}

// RuleState is one rule: its comment and a fingerprint of its expressions.
type RuleState struct {
	Comment string
	Exprs   string
}

// SetState is one set or map.
type SetState struct {
	Def   string
	State bool   // filled by the kernel: elements not compared
	Elems string // fingerprint of the elements ("" for a rendered slot map until compared: print)
	// raw elements of the sets Observe decodes (servers, allow, deny), as
	// read; or, for a rendered dense slot map, its slots (setProg.slots)
	elems []nftables.SetElement
	slots [][]byte
}

// elements returns the set's elements as the library's type.
func (ss *SetState) elements() []nftables.SetElement {
	if ss.slots != nil {
		return slotElems(ss.slots)
	}
	return ss.elems
}

var families = [2]nftables.TableFamily{nftables.TableFamilyINet, nftables.TableFamilyNetdev}

func familyName(f nftables.TableFamily) string {
	if f == nftables.TableFamilyNetdev {
		return "netdev"
	}
	return "inet"
}

// Observe reads the agent's two tables back over netlink, or returns what
// it read or wrote last when the ruleset's generation has not moved since.
func (lb *LB) Observe() (Observed, error) {
	o, _, err := lb.observe()
	return o, err
}

// observe is Observe that also returns the generation the result is of.
// A read is kept only if the generation did not move during it.
func (lb *LB) observe() (Observed, uint32, error) {
	g1, err := lb.generation()
	if err != nil {
		return Observed{}, 0, err
	}
	if lb.cached.ok && lb.cached.gen == g1 {
		return lb.cached.obs, g1, nil
	}
	o, err := lb.read()
	if err != nil {
		return o, 0, err
	}
	g2, err := lb.generation()
	if err != nil {
		return o, 0, err
	}
	lb.cached.ok, lb.cached.gen, lb.cached.obs = g1 == g2, g2, o
	return o, g2, nil
}

// read reads the two tables.
func (lb *LB) read() (Observed, error) {
	var o Observed
	for i, fam := range families {
		tables, err := lb.conn.ListTablesOfFamily(fam)
		if err != nil {
			return o, fmt.Errorf("kernlb: list %s tables: %w", familyName(fam), err)
		}
		var t *nftables.Table
		for _, x := range tables {
			if x.Name == TableName {
				t = x
			}
		}
		if t == nil {
			continue
		}
		ts := &TableState{Chains: map[string]*ChainState{}, Sets: map[string]*SetState{}}
		chains, err := lb.conn.ListChainsOfTableFamily(fam)
		if err != nil {
			return o, fmt.Errorf("kernlb: list %s chains: %w", familyName(fam), err)
		}
		for _, c := range chains {
			if c.Table.Name != TableName {
				continue
			}
			rules, err := lb.rules(fam, c.Name)
			if err != nil {
				return o, fmt.Errorf("kernlb: rules of %s %s chain %s: %w", familyName(fam), TableName, c.Name, err)
			}
			ts.Chains[c.Name] = &ChainState{Hook: hookOf(c.Hooknum, c.Priority, c.Type), Rules: rules}
		}
		sets, err := lb.conn.GetSets(t)
		if err != nil {
			return o, fmt.Errorf("kernlb: sets of %s %s: %w", familyName(fam), TableName, err)
		}
		for _, s := range sets {
			state := s.HasTimeout || s.Dynamic
			ss := &SetState{Def: setDef(s, state), State: state}
			if !ss.State {
				elems, err := lb.conn.GetSetElements(s)
				if err != nil {
					return o, fmt.Errorf("kernlb: elements of %s %s set %s: %w", familyName(fam), TableName, s.Name, err)
				}
				ss.elems = elems
				ss.Elems = elemsPrint(elems)
			}
			ts.Sets[s.Name] = ss
		}
		o.Tables[i] = ts
	}
	return o, nil
}

// observedOf is the comparable form of a rendered program: what Observe
// would read once Set has written it.
func observedOf(p *program) Observed {
	var o Observed
	for i, t := range p.tables {
		if len(t.chains) == 0 {
			continue
		}
		ts := &TableState{Chains: map[string]*ChainState{}, Sets: map[string]*SetState{}}
		for _, c := range t.chains {
			cs := &ChainState{}
			if c.isBase {
				cs.Hook = hookOf(c.hook, c.prio, c.typ)
			}
			for _, r := range c.rules {
				ex := r.print
				if ex == "" {
					ex = exprsPrint(byte(t.family), r.exprs)
				}
				cs.Rules = append(cs.Rules, RuleState{Comment: r.commentText(), Exprs: ex})
			}
			ts.Chains[c.name] = cs
		}
		for _, s := range t.sets {
			set := s.set
			ss := &SetState{Def: setDef(&set, s.state), State: s.state}
			switch {
			case s.state:
			case s.slots != nil:
				// Fingerprinted only if compared with elements read
				// from the kernel (sameElems).
				ss.slots = s.slots
			default:
				ss.elems = s.elems
				ss.Elems = elemsPrint(s.elems)
			}
			ts.Sets[set.Name] = ss
		}
		o.Tables[i] = ts
	}
	return o
}

func (r ruleProg) commentText() string {
	if r.comment != "" {
		return r.comment
	}
	return "gitgw:" + r.svc + ":" + r.role
}

func hookOf(h *nftables.ChainHook, p *nftables.ChainPriority, typ nftables.ChainType) string {
	if h == nil {
		return ""
	}
	prio := int32(0)
	if p != nil {
		prio = int32(*p)
	}
	// The device is not compared: google/nftables does not read it back,
	// and the chain's name (in-<device>) carries it.
	return fmt.Sprintf("type %s hook %d priority %d", typ, uint32(*h), prio)
}

// setDef is a set's definition as compared. The size is part of it for
// the sets the agent fills (it declares one: fixedSize), not for those the
// kernel fills (state): none is declared, and once a rule adds to such a
// set the kernel reports 65535 (the dynset expression's default), so every
// read from the kernel (after a restart, after an edit by hand) saw them
// redefined, and Set would have replaced them, losing their entries.
func setDef(s *nftables.Set, state bool) string {
	size := s.Size
	if state {
		size = 0
	}
	return fmt.Sprintf("map=%v interval=%v timeout=%v(%v) key=%d/%d data=%d/%d size=%d",
		s.IsMap, s.Interval, s.HasTimeout, s.Timeout, s.KeyType.GetNFTMagic(), s.KeyType.Bytes, s.DataType.GetNFTMagic(), s.DataType.Bytes, size)
}

// elemsPrint fingerprints a set's elements, in any order (the kernel
// returns a hash set's elements in its own order): each element is hashed
// on its own and the hashes are combined by sum and xor, which do not
// depend on the order, so that no sort is needed. A Set fingerprints every
// map it renders, 100,000 elements for 100 Maglev services, so the
// element hash is a few multiplications (elemHash), not a library hash
// with its allocations. Fingerprints are compared within one process
// only: the function may change between versions.
func elemsPrint(elems []nftables.SetElement) string {
	var f fingerprint
	for i := range elems {
		e := &elems[i]
		f.add(e.Key, e.Val, e.IntervalEnd)
	}
	return f.String(len(elems))
}

// sameElems reports whether two sets hold the same elements: two dense
// slot maps slot by slot (a render against the render the tables hold
// since the last Set: no fingerprint needed), others by fingerprint.
func sameElems(w, h *SetState) bool {
	if w.slots != nil && h.slots != nil {
		if len(w.slots) != len(h.slots) {
			return false
		}
		for i, v := range w.slots {
			if !bytes.Equal(v, h.slots[i]) {
				return false
			}
		}
		return true
	}
	return w.print() == h.print()
}

// print is the set's fingerprint, computed once for a slot map.
func (ss *SetState) print() string {
	if ss.Elems == "" && ss.slots != nil {
		ss.Elems = slotsPrint(ss.slots)
	}
	return ss.Elems
}

// slotsPrint is elemsPrint of the elements of a dense slot map.
func slotsPrint(slots [][]byte) string {
	var f fingerprint
	for i, v := range slots {
		f.add(slotKey(i), v, false)
	}
	return f.String(len(slots))
}

type fingerprint struct{ sum, xor, sum2 uint64 }

func (f *fingerprint) add(key, val []byte, intervalEnd bool) {
	a, b := elemHash(key, val, intervalEnd)
	f.sum += a
	f.xor ^= b
	f.sum2 += a*0x9e3779b97f4a7c15 ^ b
}

func (f *fingerprint) String(n int) string {
	return fmt.Sprintf("%d:%016x%016x%016x", n, f.sum, f.xor, f.sum2)
}

// elemHash is two independent 64-bit hashes of an element: its interval
// flag, its key's and value's lengths, its key and its value, taken 8 bytes
// at a time through two different multiply-xorshift mixes.
func elemHash(key, val []byte, intervalEnd bool) (uint64, uint64) {
	h := uint64(len(key)) | uint64(len(val))<<16
	if intervalEnd {
		h |= 1 << 32
	}
	a, b := mixA(h), mixB(h)
	for _, p := range [2][]byte{key, val} {
		for len(p) > 0 {
			var w uint64
			n := min(len(p), 8)
			switch n {
			case 8:
				w = binary.LittleEndian.Uint64(p)
			case 4:
				w = uint64(binary.LittleEndian.Uint32(p))
			default:
				for i := range n {
					w |= uint64(p[i]) << (8 * i)
				}
			}
			p = p[n:]
			a, b = mixA(a^w), mixB(b+w)
		}
	}
	return a, b
}

// mixA and mixB are MurmurHash3's and SplitMix64's finalizers.
func mixA(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

func mixB(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// exprsPrint fingerprints a rule's expressions: each marshalled to its
// netlink form after removing what the kernel does not echo back (set ids
// that only matter inside a batch, and the netdev dup, which the library cannot read back).
func exprsPrint(fam byte, es []expr.Any) string {
	var b bytes.Buffer
	for _, e := range es {
		switch x := e.(type) {
		case *expr.Lookup:
			c := *x
			c.SetID = 0
			e = &c
		case *expr.Dynset:
			c := *x
			c.SetID = 0
			e = &c
		case *expr.Dup:
			// google/nftables v0.3.0 does not parse dup back (it skips
			// expressions it does not know): compare without it.
			continue
		}
		m, err := expr.Marshal(fam, e)
		if err != nil {
			fmt.Fprintf(&b, "<%T: %v>", e, err)
			continue
		}
		fmt.Fprintf(&b, "%T:%x;", e, m)
	}
	return b.String()
}

// Services decodes, from the dispatch rules' comments and the catalog and
// allow/deny sets, which services the tables forward: the words a plan
// shows. Services whose comment cannot be read are left out (Diff reports
// their chains as foreign).
func (o Observed) Services() map[string]Service {
	out := map[string]Service{}
	for _, t := range o.Tables {
		if t == nil {
			continue
		}
		for _, c := range t.Chains {
			if c.Hook == "" {
				continue
			}
			for _, r := range c.Rules {
				s, err := parseSpecLine(r.Comment)
				if err != nil {
					continue
				}
				if cat := t.Sets[setName(s, "servers")]; cat != nil {
					for _, e := range cat.elems {
						// address . port: 4+4 bytes (IPv4) or 16+4 (IPv6)
						n := len(e.Key) - 4
						if n != 4 && n != 16 || len(e.Val) < 4 {
							continue
						}
						a, _ := netip.AddrFromSlice(e.Key[:n])
						v := binary.BigEndian.Uint32(e.Val)
						srv := Server{Address: a, Weight: int(v & 0xffff), Backup: v&(1<<16) != 0, Down: v&(1<<17) != 0}
						if p := binary.BigEndian.Uint16(e.Key[n : n+2]); p != s.Port {
							srv.Port = p
						}
						s.Servers = append(s.Servers, srv)
					}
					s.sortServers(s.Servers)
				}
				if a := t.Sets[setName(s, "allow")]; a != nil {
					s.Allow = prefixesOf(a.elems)
				}
				if d := t.Sets[setName(s, "deny")]; d != nil {
					s.Deny = prefixesOf(d.elems)
				}
				if la := t.Sets[setName(s, "laddr")]; la != nil && s.Mode == FNAT {
					for _, e := range la.elems {
						if a, ok := netip.AddrFromSlice(e.Val); ok {
							s.LocalAddresses = append(s.LocalAddresses, a)
						}
					}
					s.LocalAddresses = s.sortedLocal()
				}
				out[s.Name] = s
			}
		}
	}
	return out
}
