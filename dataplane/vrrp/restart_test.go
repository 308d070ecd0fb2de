package vrrp

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitgw/gitgw/dataplane/vip"
)

// countVIPs counts the removals of one node's VIPs.
type countVIPs struct {
	*fakeVIPs
	removed atomic.Int64
}

func (c *countVIPs) Remove(ctx context.Context, ifname string, addrs []vip.Address) error {
	for _, a := range addrs {
		if c.holds(a.Prefix.String()) {
			c.removed.Add(1)
		}
	}
	return c.fakeVIPs.Remove(ctx, ifname, addrs)
}

// masterTransitions drains the transitions an engine sent so far and
// returns those into Master.
func masterTransitions(e *Engine) []Transition {
	var out []Transition
	for {
		select {
		case tr := <-e.Events():
			if tr.To == StateMaster {
				out = append(out, tr)
			}
		default:
			return out
		}
	}
}

// restartPair runs VI_1 on n1 (priority 150, master) and n2 (100).
func restartPair(t *testing.T) (b *bus, n1, n2 *node, vips *countVIPs, cfg1 Config) {
	t.Helper()
	b = &bus{}
	vips = &countVIPs{fakeVIPs: &fakeVIPs{have: map[netip.Prefix]bool{}}}
	n1 = newNode(t, b, "203.0.113.11", func(o *Options) { o.VIPs = vips })
	n2 = newNode(t, b, "203.0.113.12")
	cfg1 = Config{Instances: []Instance{fast("VI_1", 51, 150, "203.0.113.100/24")}}
	if err := n1.e.Set(context.Background(), cfg1); err != nil {
		t.Fatal(err)
	}
	if err := n2.e.Set(context.Background(), Config{Instances: []Instance{fast("VI_1", 51, 100, "203.0.113.100/24")}}); err != nil {
		t.Fatal(err)
	}
	n1.wait(t, "VI_1", StateMaster)
	n2.wait(t, "VI_1", StateBackup)
	masterTransitions(n2.e)
	return b, n1, n2, vips, cfg1
}

// next is the agent after n1's restart: same state dir, same VIPs.
func (n *node) next(t *testing.T, b *bus, vips VIPSet) *node {
	return newNode(t, b, n.addr.String(), func(o *Options) { o.StateDir, o.VIPs, o.Resume = n.dir, vips, true })
}

// TestEngineRestartKeepsMastership stops the master for a restart: the
// release the guardian and ExecStopPost= run keeps its VIP, and the next
// engine advertises at once and resumes as master, so the backup never
// takes over. The next agent's first pass comes five intervals after the
// engine started (the holder bridges them).
func TestEngineRestartKeepsMastership(t *testing.T) {
	b, n1, n2, vips, cfg1 := restartPair(t)
	ctx := context.Background()
	if err := n1.e.StopForRestart(ctx); err != nil {
		t.Fatal(err)
	}
	rel := ReleaseOptions{Listen: func(string, bool) (Conn, error) { return b.listen(n1.addr), nil }, VIPs: vips}
	if err := ReleaseWith(ctx, n1.dir, nil, rel); err != nil {
		t.Fatal(err)
	}
	if ents, err := ReadState(n1.dir); err != nil || len(ents) != 1 {
		t.Fatalf("state file after a restart's release: %v %v, want VI_1 kept", ents, err)
	}
	next := n1.next(t, b, vips)
	time.Sleep(500 * time.Millisecond) // the agent's start before its first pass: longer than the backup waits
	if err := next.e.Set(ctx, cfg1); err != nil {
		t.Fatal(err)
	}
	next.wait(t, "VI_1", StateMaster)
	// Longer than the backup's Master_Down_Interval (~360 ms).
	time.Sleep(time.Second)
	if got := masterTransitions(n2.e); len(got) != 0 {
		t.Errorf("the backup became master during the restart: %+v", got)
	}
	if n := vips.removed.Load(); n != 0 || !vips.holds("203.0.113.100/24") {
		t.Errorf("VIP removed %d times across the restart, held now: %v", n, vips.holds("203.0.113.100/24"))
	}
	if _, err := ReadRestart(n1.dir); err != nil {
		t.Error(err)
	} else if r, _ := ReadRestart(n1.dir); r != nil {
		t.Errorf("restart record left after the resume: %+v", r)
	}
	// A stop after that hands over at once, as before.
	if err := next.e.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	n2.wait(t, "VI_1", StateMaster)
	if vips.holds("203.0.113.100/24") {
		t.Error("VIP left after a stop")
	}
}

// TestEngineRestartTooSlow lets the restart outlast the backup's timer:
// the backup takes over by itself, the release still keeps nothing twice,
// and the next engine finds the record stale: it starts as backup, drops
// the VIP it was left, and then follows the normal rules (it preempts with
// the higher priority) — never two masters for longer than an advert.
func TestEngineRestartTooSlow(t *testing.T) {
	b, n1, n2, vips, cfg1 := restartPair(t)
	ctx := context.Background()
	if err := n1.e.StopForRestart(ctx); err != nil {
		t.Fatal(err)
	}
	n2.wait(t, "VI_1", StateMaster)
	// The record is void now: ExecStopPost's release hands over.
	rel := ReleaseOptions{Listen: func(string, bool) (Conn, error) { return b.listen(n1.addr), nil }, VIPs: vips}
	waitFor(t, 5*time.Second, "the restart record void", func() bool {
		r, _ := ReadRestart(n1.dir)
		return !r.Fresh(time.Now())
	})
	next := n1.next(t, b, vips)
	if err := next.e.Set(ctx, cfg1); err != nil {
		t.Fatal(err)
	}
	if tr := <-next.e.Events(); tr.To != StateBackup {
		t.Errorf("after a stale restart the engine went %s → %s (%s), want BACKUP first", tr.From, tr.To, tr.Reason)
	}
	if vips.removed.Load() == 0 {
		t.Error("the VIP kept by a stale restart was not removed at start")
	}
	next.wait(t, "VI_1", StateMaster) // preempts: 150 > 100
	n2.wait(t, "VI_1", StateBackup)
	if err := ReleaseWith(ctx, t.TempDir(), nil, rel); err != nil {
		t.Fatal(err)
	}
}

// TestReleaseIgnoresRestartWhenTold: a release after a failed start
// (SERVICE_RESULT not success) hands over despite a fresh record.
func TestReleaseIgnoresRestartWhenTold(t *testing.T) {
	b, n1, n2, vips, _ := restartPair(t)
	ctx := context.Background()
	if err := n1.e.StopForRestart(ctx); err != nil {
		t.Fatal(err)
	}
	rel := ReleaseOptions{Listen: func(string, bool) (Conn, error) { return b.listen(n1.addr), nil }, VIPs: vips, IgnoreRestart: true}
	if err := ReleaseWith(ctx, n1.dir, nil, rel); err != nil {
		t.Fatal(err)
	}
	if vips.holds("203.0.113.100/24") {
		t.Error("VIP kept by a release told to ignore the restart")
	}
	n2.wait(t, "VI_1", StateMaster)
}

// TestEngineRestartHoldReleased: mastership kept by a restart that the
// next agent's configuration does not claim is released, at the first Set
// without the instance or when the hold runs out without any Set; the
// backup takes over at once (priority 0) and the VIP goes.
func TestEngineRestartHoldReleased(t *testing.T) {
	for _, tc := range []struct {
		name string
		next func(t *testing.T, n *node)
	}{
		{"set without it", func(t *testing.T, n *node) {
			if err := n.e.Set(context.Background(), Config{}); err != nil {
				t.Fatal(err)
			}
		}},
		{"hold ran out", func(*testing.T, *node) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, n1, n2, vips, _ := restartPair(t)
			if err := n1.e.StopForRestart(context.Background()); err != nil {
				t.Fatal(err)
			}
			next := newNode(t, b, n1.addr.String(), func(o *Options) {
				o.StateDir, o.VIPs, o.Resume, o.RestartHold = n1.dir, vips, true, 1500*time.Millisecond
			})
			tc.next(t, next)
			n2.wait(t, "VI_1", StateMaster)
			waitFor(t, 5*time.Second, "the kept VIP removed", func() bool { return !vips.holds("203.0.113.100/24") })
			if ents, err := ReadState(n1.dir); err != nil || len(ents) != 0 {
				t.Errorf("state file after the release: %v %v", ents, err)
			}
		})
	}
}
