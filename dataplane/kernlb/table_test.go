package kernlb

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

func members(n int) []Member {
	var m []Member
	for i := range n {
		m = append(m, Member{Key: fmt.Sprintf("198.51.100.%d:80", 10+i), Weight: 1})
	}
	return m
}

// keysOf turns a table of indexes into a table of member keys, comparable
// across different member lists.
func keysOf(t []int, m []Member) []string {
	out := make([]string, len(t))
	for i, x := range t {
		out[i] = m[x].Key
	}
	return out
}

func TestMaglevTable(t *testing.T) {
	const size = 1021
	m := members(10)
	tab := MaglevTable("tcp/203.0.113.100:80", m, size)
	if len(tab) != size {
		t.Fatalf("table has %d slots, want %d", len(tab), size)
	}
	count := map[int]int{}
	for _, x := range tab {
		count[x]++
	}
	// Maglev's balance: every member within a few percent of size/N.
	for i := range m {
		if c := count[i]; c < 95 || c > 110 {
			t.Errorf("member %d has %d slots, want about %d", i, c, size/len(m))
		}
	}
	// The same members in another order, on another gateway: the same table.
	rev := append([]Member{}, m...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	a, b := keysOf(tab, m), keysOf(MaglevTable("tcp/203.0.113.100:80", rev, size), rev)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("slot %d: %s with one order, %s with the other", i, a[i], b[i])
		}
	}
	// Another service (seed): another table.
	c := keysOf(MaglevTable("tcp/203.0.113.100:81", m, size), m)
	same := 0
	for i := range a {
		if a[i] == c[i] {
			same++
		}
	}
	if same > size/5 {
		t.Errorf("another seed left %d of %d slots in place: the seed is not used", same, size)
	}
}

func TestMaglevWeights(t *testing.T) {
	m := []Member{{"a", 3}, {"b", 1}, {"c", 0}}
	tab := MaglevTable("s", m, 4093)
	count := map[int]int{}
	for _, x := range tab {
		count[x]++
	}
	if count[2] != 0 {
		t.Errorf("weight 0 took %d slots", count[2])
	}
	if r := float64(count[0]) / float64(count[1]); r < 2.7 || r > 3.3 {
		t.Errorf("weights 3:1 gave %d:%d slots (%.2f)", count[0], count[1], r)
	}
	if MaglevTable("s", []Member{{"a", 0}}, 7) != nil {
		t.Errorf("a table without any weight is not nil")
	}
}

// TestMaglevRemoveOneOfTen: removing one server of ten moves about a tenth
// of the flows (its own), not most of them as a modulo hash does.
func TestMaglevRemoveOneOfTen(t *testing.T) {
	for _, size := range []int{1021, 65537} {
		m := members(10)
		before := keysOf(MaglevTable("tcp/203.0.113.100:80", m, size), m)
		fewer := append(append([]Member{}, m[:3]...), m[4:]...)
		after := keysOf(MaglevTable("tcp/203.0.113.100:80", fewer, size), fewer)
		moved := 0
		for i := range before {
			if before[i] != after[i] {
				moved++
			}
		}
		share := float64(moved) / float64(size)
		t.Logf("size %d: %.1f %% of the slots moved", size, 100*share)
		if share < 0.08 || share > 0.15 {
			t.Errorf("size %d: removing 1 server of 10 moved %.1f %% of the slots, want about 10 %% (< 15 %%)", size, 100*share)
		}
		// A modulo table (sh) moves most of them: the contrast the test is about.
		shb := keysOf(SourceHashTable(m, size), m)
		sha := keysOf(SourceHashTable(fewer, size), fewer)
		shMoved := 0
		for i := range shb {
			if shb[i] != sha[i] {
				shMoved++
			}
		}
		if float64(shMoved)/float64(size) < 0.5 {
			t.Errorf("sh moved only %d of %d slots: the comparison is broken", shMoved, size)
		}
	}
}

func TestWRRSequence(t *testing.T) {
	got := fmt.Sprint(WRRSequence([]Member{{"a", 6}, {"b", 2}, {"c", 0}}))
	if want := "[0 0 1 0]"; got != want {
		t.Errorf("WRRSequence(6,2,0) = %s, want %s (smooth, divided by the gcd)", got, want)
	}
	if s := WRRSequence([]Member{{"a", 5}, {"b", 1}, {"c", 1}}); fmt.Sprint(s) != "[0 0 1 0 2 0 0]" {
		t.Errorf("WRRSequence(5,1,1) = %v, want the smooth order [0 0 1 0 2 0 0]", s)
	}
	if WRRSequence([]Member{{"a", 0}}) != nil {
		t.Errorf("no weight: want nil")
	}
}

// maglevReference is MaglevTable as first written (a modulo per probe, FNV
// from hash/fnv): the tables must not change when the code gets faster,
// or two gateways of different versions would forward a flow differently.
func maglevReference(seed string, members []Member, size int) []int {
	type walker struct {
		idx          int
		offset, skip uint64
		next         uint64
		credit, norm float64
	}
	hash := func(purpose, key string) uint64 {
		h := fnv.New64a()
		h.Write([]byte(seed + "\x00" + purpose + "\x00" + key))
		return h.Sum64()
	}
	wmax := 0
	for _, m := range members {
		wmax = max(wmax, m.Weight)
	}
	if wmax == 0 {
		return nil
	}
	var ws []*walker
	for i, m := range members {
		if m.Weight > 0 {
			ws = append(ws, &walker{idx: i, offset: hash("offset", m.Key) % uint64(size),
				skip: hash("skip", m.Key)%uint64(size-1) + 1, norm: float64(m.Weight) / float64(wmax)})
		}
	}
	sort.Slice(ws, func(a, b int) bool { return members[ws[a].idx].Key < members[ws[b].idx].Key })
	table := make([]int, size)
	for i := range table {
		table[i] = -1
	}
	filled := 0
	for filled < size {
		for _, w := range ws {
			if w.credit += w.norm; w.credit < 1 {
				continue
			}
			w.credit--
			for {
				slot := (w.offset + w.next*w.skip) % uint64(size)
				w.next++
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

// TestMaglevSameTables: MaglevTable builds the reference's tables, for
// sizes, weights, member counts and seeds.
func TestMaglevSameTables(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{7, 251, 1021, 4093, 65537} {
		for trial := range 8 {
			n := 1 + rnd.IntN(min(size/10+1, 40))
			var m []Member
			for i := range n {
				m = append(m, Member{Key: fmt.Sprintf("198.51.100.%d:%d", rnd.IntN(250), 1000+i), Weight: rnd.IntN(4)})
			}
			seed := fmt.Sprintf("tcp/203.0.113.%d:80", trial)
			got, want := MaglevTable(seed, m, size), maglevReference(seed, m, size)
			if !slices.Equal(got, want) {
				t.Fatalf("size %d, %d members, seed %s: the table differs from the reference", size, n, seed)
			}
		}
	}
}

func BenchmarkMaglevTable(b *testing.B) {
	m := members(10)
	for b.Loop() {
		MaglevTable("tcp/203.0.113.100:80", m, DefaultTableSize)
	}
}
