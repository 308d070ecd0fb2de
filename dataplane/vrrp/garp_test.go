package vrrp

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// TestGARPSchedule: a new master announces its VIPs Repeat times Spacing
// apart, the same burst again after Delay, then once every Refresh while
// it stays master, and none once it lost mastership. The bubble's
// clock makes the schedule exact: a late timer on a loaded host cannot
// merge two announcements.
func TestGARPSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &bus{}
		n := newNode(t, b, "203.0.113.11")
		garp := GARP{Repeat: 4, Spacing: 30 * time.Millisecond, Delay: 700 * time.Millisecond, Refresh: 2 * time.Second}
		in := fast("A", 1, 150, "203.0.113.100/24", func(in *Instance) { in.GARP = garp })
		if err := n.e.Set(context.Background(), Config{Instances: []Instance{in}}); err != nil {
			t.Fatal(err)
		}
		master := nextTransition(t, n.e, func(tr Transition) bool { return tr.To == StateMaster }).At
		// Stay master for two refreshes and a half, then lose mastership
		// to a preempting peer of higher priority.
		time.Sleep(5 * time.Second)
		synctest.Wait()
		peer := newNode(t, b, "203.0.113.12")
		if err := peer.e.Set(context.Background(), Config{Instances: []Instance{fast("A", 1, 200, "203.0.113.100/24")}}); err != nil {
			t.Fatal(err)
		}
		nextTransition(t, n.e, func(tr Transition) bool { return tr.From == StateMaster })
		lost := len(n.ann.times())
		time.Sleep(5 * time.Second)
		synctest.Wait()

		var want []time.Duration
		for i := range garp.Repeat {
			want = append(want, time.Duration(i)*garp.Spacing)
		}
		for i := range garp.Repeat {
			want = append(want, garp.Delay+time.Duration(i)*garp.Spacing)
		}
		want = append(want, garp.Refresh, 2*garp.Refresh)
		at := n.ann.times()
		if len(at) != lost {
			t.Errorf("%d announcements after losing mastership", len(at)-lost)
		}
		var got []time.Duration
		for _, a := range at[:lost] {
			got = append(got, a.Sub(master))
		}
		if len(got) != len(want) {
			t.Fatalf("announcements after becoming master at %v: got %v, want %v", master, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("announcement %d at +%v, want +%v (all: %v)", i, got[i], want[i], got)
			}
		}
	})
}

// nextTransition returns e's next transition that matches, failing t if
// none comes within a minute (of the bubble's clock, in a synctest bubble).
func nextTransition(t *testing.T, e *Engine, match func(Transition) bool) Transition {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case tr := <-e.Events():
			if match(tr) {
				return tr
			}
		case <-timeout:
			t.Fatal("no such transition within a minute")
		}
	}
}
