package kernlb

import (
	"slices"
	"strings"
)

// Slot tables: pure functions from (seed, servers, size) to the sequence the
// kernel maps hold. Two gateways given the same service compute the same
// tables, which is what lets either of them carry a DR flow.

// Member is one entry of a table: a key that identifies it across
// gateways (the server's address:port) and a weight.
type Member struct {
	Key    string
	Weight int
}

// MaglevTable fills size slots (size prime, greater than the number of
// members) with member indexes by Maglev's population (Eisenbud et al.,
// NSDI 2016, §3.4): each member walks its own permutation of the slots,
// (offset + j·skip) mod size, derived from its key and the seed, and the
// members take turns claiming their next free slot. A member of weight w
// takes a turn in w/wmax of the rounds (Envoy's weighted variant), so its
// share of slots follows its weight. Removing one member of N moves about
// 1/N of the slots: the others' preferences are unchanged.
//
// Members with a weight ≤ 0 take no slot. It returns nil when none has a
// weight.
func MaglevTable(seed string, members []Member, size int) []int {
	// A walker's position is its permutation's current slot,
	// (offset + next·skip) mod size, advanced by adding skip and
	// subtracting size once on overflow: the same sequence as computing it
	// from next, without a division per probe (the table of 100 services
	// is about 100,000 probes on every render).
	type walker struct {
		idx          int
		pos, skip    uint32
		credit, norm float64
	}
	wmax := 0
	for _, m := range members {
		wmax = max(wmax, m.Weight)
	}
	if wmax == 0 || size <= 0 {
		return nil
	}
	n := uint32(size)
	ws := make([]walker, 0, len(members))
	for i, m := range members {
		if m.Weight <= 0 {
			continue
		}
		h1, h2 := keyHash(seed, "offset", m.Key), keyHash(seed, "skip", m.Key)
		ws = append(ws, walker{
			idx:  i,
			pos:  uint32(h1 % uint64(size)),
			skip: uint32(h2%uint64(size-1) + 1),
			norm: float64(m.Weight) / float64(wmax),
		})
	}
	// Turns go in key order, not configuration order: gateways that list
	// the servers differently still build the same table.
	slices.SortFunc(ws, func(a, b walker) int { return strings.Compare(members[a.idx].Key, members[b.idx].Key) })
	table := make([]int, size)
	for i := range table {
		table[i] = -1
	}
	filled := 0
	for filled < size {
		for i := range ws {
			w := &ws[i]
			w.credit += w.norm
			if w.credit < 1 {
				continue
			}
			w.credit--
			// The next preferred slot that is still free.
			for {
				slot := w.pos
				if w.pos += w.skip; w.pos >= n {
					w.pos -= n
				}
				if table[slot] < 0 {
					table[slot] = w.idx
					filled++
					break
				}
			}
			if filled == size {
				break
			}
		}
	}
	return table
}

// keyHash is FNV-1a 64 over the seed, a purpose and the key: stable across
// builds, architectures and gateways.
func keyHash(seed, purpose, key string) uint64 {
	h := uint64(fnvOffset64)
	for _, s := range [...]string{seed, "\x00", purpose, "\x00", key} {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= fnvPrime64
		}
	}
	return h
}

// FNV-1a's 64-bit parameters (hash/fnv), inline: keyHash runs twice per
// server on every render.
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// WRRSequence is the smooth weighted round-robin order of the members
// (nginx's algorithm): each turn every member gains its weight, the richest
// is chosen and pays the total. With weights divided by their gcd, the
// sequence has sum(weights) entries and spreads a heavy member's turns
// instead of bunching them. Members with a weight ≤ 0 are skipped.
func WRRSequence(members []Member) []int {
	g, sum := 0, 0
	for _, m := range members {
		if m.Weight > 0 {
			g = gcdInt(g, m.Weight)
		}
	}
	if g == 0 {
		return nil
	}
	w := make([]int, len(members))
	for i, m := range members {
		if m.Weight > 0 {
			w[i] = m.Weight / g
			sum += w[i]
		}
	}
	cur := make([]int, len(members))
	seq := make([]int, 0, sum)
	for range sum {
		best := -1
		for i := range members {
			if w[i] == 0 {
				continue
			}
			cur[i] += w[i]
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= sum
		seq = append(seq, best)
	}
	return seq
}

// SourceHashTable fills size slots with the weighted sequence repeated:
// LVS's sh (classic modulo hashing: a server change moves most clients).
func SourceHashTable(members []Member, size int) []int {
	seq := WRRSequence(members)
	if len(seq) == 0 {
		return nil
	}
	t := make([]int, size)
	for i := range t {
		t[i] = seq[i%len(seq)]
	}
	return t
}
