package vrrp

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestGiveUp: a master told to give up sends priority 0, so that even a
// non-preempting backup takes over at once, and stays backup at the
// priority its caller set.
func TestGiveUp(t *testing.T) {
	b := &bus{}
	n1, n2 := newNode(t, b, "203.0.113.11"), newNode(t, b, "203.0.113.12")
	ctx := context.Background()
	noPreempt := func(in *Instance) { in.NoPreempt = true }
	if err := n1.e.Set(ctx, Config{Instances: []Instance{fast("A", 1, 150, "203.0.113.100/24", noPreempt)}}); err != nil {
		t.Fatal(err)
	}
	n1.wait(t, "A", StateMaster)
	if err := n2.e.Set(ctx, Config{Instances: []Instance{fast("A", 1, 100, "203.0.113.100/24", noPreempt)}}); err != nil {
		t.Fatal(err)
	}
	n2.wait(t, "A", StateBackup)

	if err := n2.e.GiveUp(ctx, "A"); err != nil {
		t.Fatalf("give up on a backup: %v", err)
	}
	if got := n2.state(t, "A").State; got != StateBackup {
		t.Fatalf("a backup that gave up is %s", got)
	}
	if err := n1.e.GiveUp(ctx, "Z"); !errors.Is(err, ErrNoInstance) {
		t.Fatalf("unknown instance: %v", err)
	}

	// What the control socket does: priority 1 first, then give up.
	if err := n1.e.Set(ctx, Config{Instances: []Instance{fast("A", 1, 1, "203.0.113.100/24", noPreempt)}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := n1.e.GiveUp(ctx, "A"); err != nil {
		t.Fatal(err)
	}
	n2.wait(t, "A", StateMaster)
	took := time.Since(start)
	n1.wait(t, "A", StateBackup)
	waitFor(t, 10*time.Second, "the VIP on n2 only", func() bool {
		return n2.vips.holds("203.0.113.100/24") && !n1.vips.holds("203.0.113.100/24")
	})
	// Without the priority-0 advert a non-preempting backup would wait
	// for Master_Down_Interval (≈ 3×100 ms) after the last advert; with it,
	// Skew_Time (≈ 60 ms). Only logged: timing is not asserted.
	t.Logf("handover took %v", took)
	if st := n1.state(t, "A"); st.Priority != 1 || st.State != StateBackup {
		t.Fatalf("n1 after giving up: %s at %d", st.State, st.Priority)
	}
}
