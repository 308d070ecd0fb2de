package vrrp

import (
	"context"
	"net/netip"
	"slices"
	"testing"
)

// TestEngineSetInPlaceTakesEffectBeforeReturn: a VIP added in place on a
// master is installed, and shown by Status, by the time Set returns. The
// runner observes right after applying; an engine that queued the change
// and returned made that observation report the VIP as still differing.
func TestEngineSetInPlaceTakesEffectBeforeReturn(t *testing.T) {
	n := newNode(t, &bus{}, "203.0.113.11")
	ctx := context.Background()
	base := fast("A", 1, 150, "203.0.113.100/24")
	if err := n.e.Set(ctx, Config{Instances: []Instance{base}}); err != nil {
		t.Fatal(err)
	}
	n.wait(t, "A", StateMaster)
	// Many rounds: the old, queued update lost the race to the observer
	// most of the time but not always.
	for i := range 100 {
		extra := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}), 24)
		in := base
		in.ExcludedVIPs = []VIP{{Prefix: extra}}
		if err := n.e.Set(ctx, Config{Instances: []Instance{in}}); err != nil {
			t.Fatal(err)
		}
		st := n.state(t, "A")
		if !slices.Contains(st.VIPs, extra) {
			t.Fatalf("round %d: Status right after Set lists %v, not the VIP %v just added", i, st.VIPs, extra)
		}
		if !n.vips.holds(extra.String()) {
			t.Fatalf("round %d: VIP %v not installed when Set returned", i, extra)
		}
	}
}
