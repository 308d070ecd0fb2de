package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// TestHeldRevisionKeepsLastGood: while a new revision waits for its turn
// (pair-aware rollout), the node keeps running the last good state. Drift
// against it is corrected, and a restarted agent, whose in-process data
// plane starts empty, rebuilds it instead of running nothing.
func TestHeldRevisionKeepsLastGood(t *testing.T) {
	ctx := context.Background()
	state := t.TempDir()
	c1, c2 := filepath.Join(t.TempDir(), "c1"), filepath.Join(t.TempDir(), "c2")
	writeSite(t, c1, labVRRP, labServices, "")
	writeSite(t, c2, labVRRP, `services: web: {
	binds: ["203.0.113.100:80"]
	servers: {s1: address: "198.51.100.11:8080", s2: address: "198.51.100.12:8080", s3: address: "198.51.100.13:8080"}
	check: kind: "tcp"
}`, "")
	hold := func(_ context.Context, rev Revision, _ *LastGood, _ *spec.Node, _ *plan.Plan) error {
		if rev.Commit == "c2" {
			return errors.New("waits for gw2")
		}
		return nil
	}
	newRunner := func(d Driver) *Runner {
		r, err := NewRunner(RunnerOptions{Node: "gw1", StateDir: state, Drivers: []Driver{d}, Hold: hold})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	drv := &applyRecorder{}
	r := newRunner(drv)
	if res := r.Pass(ctx, Revision{Commit: "c1", Dir: c1}, PassOptions{}); res.Outcome != Applied {
		t.Fatalf("c1: %s %v", res.Outcome, res.Err)
	}
	good := string(drv.applied)

	// Someone changes the node by hand; then c2 arrives and is held.
	drv.applied = []byte(`{}`)
	res := r.Pass(ctx, Revision{Commit: "c2", Dir: c2}, PassOptions{})
	if res.Outcome != Held || len(res.Drift) != 1 {
		t.Fatalf("c2: outcome %s, drift %d, err %v", res.Outcome, len(res.Drift), res.Err)
	}
	if string(drv.applied) != good {
		t.Errorf("held pass did not put the last good state back")
	}

	// The agent restarts while c2 is still held: a fresh, empty driver is
	// rebuilt from the last good state, and that is not drift.
	fresh := &applyRecorder{}
	res = newRunner(fresh).Pass(ctx, Revision{Commit: "c2", Dir: c2}, PassOptions{})
	if res.Outcome != Held || len(res.Drift) != 0 || res.AppliedCommit != "c1" {
		t.Fatalf("after restart: outcome %s, drift %d, applied %q", res.Outcome, len(res.Drift), res.AppliedCommit)
	}
	var n spec.Node
	if err := json.Unmarshal(fresh.applied, &n); err != nil || string(fresh.applied) != good || len(n.Services["web"].Servers) != 2 {
		t.Errorf("after restart the node runs %s, want the last good state", fresh.applied)
	}
}
