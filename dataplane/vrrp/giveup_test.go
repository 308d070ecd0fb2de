package vrrp

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// TestGiveUp: a master told to give up sends priority 0, so that even a
// non-preempting backup takes over at once, and stays backup at the
// priority its caller set. The bubble's clock makes the handover time
// exact, whatever the load of the host.
func TestGiveUp(t *testing.T) { synctest.Test(t, testGiveUp) }

func testGiveUp(t *testing.T) {
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
	for len(n2.e.Events()) > 0 {
		<-n2.e.Events()
	}
	start := time.Now()
	if err := n1.e.GiveUp(ctx, "A"); err != nil {
		t.Fatal(err)
	}
	took := nextTransition(t, n2.e, func(tr Transition) bool { return tr.To == StateMaster }).At.Sub(start)
	n1.wait(t, "A", StateBackup)
	waitFor(t, 10*time.Second, "the VIP on n2 only", func() bool {
		return n2.vips.holds("203.0.113.100/24") && !n1.vips.holds("203.0.113.100/24")
	})
	// With the priority-0 advert the backup takes over after Skew_Time.
	// Without it, it would wait for Master_Down_Interval after n1's last
	// advert, sent at most one interval before GiveUp: no earlier than
	// Master_Down_Interval - interval after it.
	const interval = 100 * time.Millisecond
	if skew, byTimer := SkewTime(100, interval), MasterDownInterval(100, interval)-interval; took != skew || took >= byTimer {
		t.Errorf("n2 took over %v after GiveUp, want Skew_Time %v (by its own timer: %v or later)", took, skew, byTimer)
	}
	if st := n1.state(t, "A"); st.Priority != 1 || st.State != StateBackup {
		t.Fatalf("n1 after giving up: %s at %d", st.State, st.Priority)
	}
}
