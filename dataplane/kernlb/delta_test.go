package kernlb

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/nftables"
)

// apply is what the kernel holds after deleting del from have and adding
// add, keyed by element key; it fails the test on a delete of an absent
// key or an add over a present one (the kernel refuses both).
func apply(t *testing.T, have, del, add []nftables.SetElement) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for _, e := range have {
		m[string(e.Key)] = e.Val
	}
	for _, e := range del {
		if _, ok := m[string(e.Key)]; !ok {
			t.Fatalf("delete of absent key %x", e.Key)
		}
		delete(m, string(e.Key))
	}
	for _, e := range add {
		if _, ok := m[string(e.Key)]; ok {
			t.Fatalf("add over present key %x", e.Key)
		}
		m[string(e.Key)] = e.Val
	}
	return m
}

// TestElemDelta: the slot path and the generic path of elemDelta both
// turn a slot map into another (sizes that shrink and grow, values that
// change), with the same edits.
func TestElemDelta(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	vals := [][]byte{addrPort(netip.MustParseAddr("198.51.100.1"), 80), addrPort(netip.MustParseAddr("198.51.100.2"), 80), addrPort(netip.MustParseAddr("198.51.100.3"), 8080)}
	table := func(size int) []nftables.SetElement {
		var out []nftables.SetElement
		for i := range size {
			out = append(out, nftables.SetElement{Key: slotKey(i), Val: vals[rnd.IntN(len(vals))]})
		}
		return out
	}
	for _, sizes := range [][2]int{{1021, 1021}, {7, 1021}, {1021, 7}, {0, 251}, {251, 0}} {
		want, have := table(sizes[0]), table(sizes[1])
		del, add, ok := slotDelta(want, have)
		if !ok {
			t.Fatalf("sizes %v: slotDelta refused a slot map", sizes)
		}
		mdel, madd := mapDelta(want, have)
		if len(del) != len(mdel) || len(add) != len(madd) {
			t.Errorf("sizes %v: slot path %d deletes %d adds, generic %d %d", sizes, len(del), len(add), len(mdel), len(madd))
		}
		got := apply(t, have, del, add)
		if len(got) != len(want) {
			t.Fatalf("sizes %v: %d elements after the edit, want %d", sizes, len(got), len(want))
		}
		for _, e := range want {
			if !bytes.Equal(got[string(e.Key)], e.Val) {
				t.Fatalf("sizes %v: slot %x holds %x, want %x", sizes, e.Key, got[string(e.Key)], e.Val)
			}
		}
	}
	// Keys that are not slots (the catalog: address and port) take the
	// generic path.
	cat := []nftables.SetElement{{Key: vals[0], Val: []byte{0, 0, 0, 1}}}
	if _, _, ok := slotDelta(cat, nil); ok {
		t.Errorf("slotDelta took 8-byte keys")
	}
}

// TestElemsPrint: the fingerprint ignores the order of the elements and
// sees a changed value, key, flag or count.
func TestElemsPrint(t *testing.T) {
	e := []nftables.SetElement{
		{Key: slotKey(1), Val: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{Key: slotKey(2), Val: []byte{1, 2, 3, 4, 5, 6, 7, 9}},
		{Key: []byte{10, 0, 0, 0}},
		{Key: []byte{10, 0, 1, 0}, IntervalEnd: true},
	}
	base := elemsPrint(e)
	rev := slices.Clone(e)
	slices.Reverse(rev)
	if elemsPrint(rev) != base {
		t.Errorf("the order changed the fingerprint")
	}
	for name, f := range map[string]func(x []nftables.SetElement) []nftables.SetElement{
		"value": func(x []nftables.SetElement) []nftables.SetElement {
			x[0].Val = []byte{1, 2, 3, 4, 5, 6, 7, 7}
			return x
		},
		"key":    func(x []nftables.SetElement) []nftables.SetElement { x[1].Key = slotKey(3); return x },
		"flag":   func(x []nftables.SetElement) []nftables.SetElement { x[2].IntervalEnd = true; return x },
		"count":  func(x []nftables.SetElement) []nftables.SetElement { return x[:3] },
		"swap":   func(x []nftables.SetElement) []nftables.SetElement { x[0].Val, x[1].Val = x[1].Val, x[0].Val; return x },
		"length": func(x []nftables.SetElement) []nftables.SetElement { x[2].Key = []byte{10, 0, 0, 0, 0}; return x },
	} {
		if elemsPrint(f(slices.Clone(e))) == base {
			t.Errorf("a changed %s left the fingerprint alone", name)
		}
	}
}

// TestSlotMaps: a dense slot map (setProg.slots) fingerprints as its
// elements do (the kernel's side is read as elements), and setDelta
// between two of them makes the same edit as elemDelta on their elements.
func TestSlotMaps(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 6))
	vals := [][]byte{addrPort(netip.MustParseAddr("198.51.100.1"), 80), addrPort(netip.MustParseAddr("198.51.100.2"), 80)}
	slots := func(n int) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = vals[rnd.IntN(len(vals))]
		}
		return out
	}
	for _, sizes := range [][2]int{{1021, 1021}, {7, 251}, {251, 7}, {0, 7}} {
		w, h := slots(sizes[0]), slots(sizes[1])
		if slotsPrint(w) != elemsPrint(slotElems(w)) {
			t.Fatalf("sizes %v: slotsPrint differs from elemsPrint of the same elements", sizes)
		}
		del, add := setDelta(&setProg{slots: w}, &SetState{slots: h})
		got := apply(t, slotElems(h), del, add)
		if len(got) != len(w) {
			t.Fatalf("sizes %v: %d elements after the edit, want %d", sizes, len(got), len(w))
		}
		for i, v := range w {
			if !bytes.Equal(got[string(slotKey(i))], v) {
				t.Fatalf("sizes %v: slot %d holds %x, want %x", sizes, i, got[string(slotKey(i))], v)
			}
		}
		edel, eadd := elemDelta(slotElems(w), slotElems(h))
		if len(del) != len(edel) || len(add) != len(eadd) {
			t.Errorf("sizes %v: %d deletes %d adds, elemDelta %d %d", sizes, len(del), len(add), len(edel), len(eadd))
		}
		// Against elements read from the kernel (after a restart).
		rdel, radd := setDelta(&setProg{slots: w}, &SetState{elems: slotElems(h)})
		if len(rdel) != len(edel) || len(radd) != len(eadd) {
			t.Errorf("sizes %v: against read elements %d deletes %d adds, want %d %d", sizes, len(rdel), len(radd), len(edel), len(eadd))
		}
	}
}

// TestRenderMemo: rendering with the memo gives what a full render gives,
// after a change of one service, and renders only that service again.
func TestRenderMemo(t *testing.T) {
	cfg := resolvedConfig()
	memo := renderMemo{}
	if _, err := renderWith(cfg, memo); err != nil {
		t.Fatal(err)
	}
	before := map[string]*svcRender{}
	for n, r := range memo {
		before[n] = r
	}
	// Change the nat service's servers; the dr one stays.
	cfg.Services[1].Servers = append(slices.Clone(cfg.Services[1].Servers), Server{Address: netip.MustParseAddr("198.51.100.13"), Port: 5353, Weight: 1})
	p, err := renderWith(cfg, memo)
	if err != nil {
		t.Fatal(err)
	}
	if memo["web"] != before["web"] {
		t.Errorf("the unchanged service was rendered again")
	}
	if memo["dns"] == before["dns"] {
		t.Errorf("the changed service was not rendered again")
	}
	full, err := render(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The memo's program is the full render's: Diff sees nothing to do
	// between them.
	if d := diffProgram(observedOf(p), cfg, observedOf(full)); len(d) != 0 {
		t.Errorf("the memo's render differs from a full render: %v", d)
	}
	if d := diffProgram(observedOf(full), cfg, observedOf(p)); len(d) != 0 {
		t.Errorf("a full render differs from the memo's: %v", d)
	}
	// A service that goes leaves the memo.
	cfg.Services = cfg.Services[:1]
	if _, err := renderWith(cfg, memo); err != nil {
		t.Fatal(err)
	}
	if _, ok := memo["dns"]; ok || len(memo) != 1 {
		t.Errorf("memo after removing a service: %v entries", len(memo))
	}
}
