package reconcile

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

// TestRefusedRevisionIsNotLoaded: a revision the source refused (an
// unsigned commit, a crafted tree) is rejected without being loaded or
// admitted, whatever its Dir holds, and the last good state keeps running.
func TestRefusedRevisionIsNotLoaded(t *testing.T) {
	ctx := context.Background()
	c1, c2 := filepath.Join(t.TempDir(), "c1"), filepath.Join(t.TempDir(), "c2")
	writeSite(t, c1, labVRRP, labServices, "")
	writeSite(t, c2, labVRRP, "", "")
	admitted := 0
	drv := &applyRecorder{}
	r, err := NewRunner(RunnerOptions{Node: "gw1", StateDir: t.TempDir(), Drivers: []Driver{drv},
		Admit: func(context.Context, Revision, *LastGood) error { admitted++; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if res := r.Pass(ctx, Revision{Commit: "c1", Dir: c1}, PassOptions{}); res.Outcome != Applied {
		t.Fatalf("c1: %s %v", res.Outcome, res.Err)
	}
	good, admittedC1 := string(drv.applied), admitted
	refusal := errors.New("gitrepo: verify c2: commit is not signed")
	res := r.Pass(ctx, Revision{Commit: "c2", Dir: c2, Refused: refusal}, PassOptions{})
	if res.Outcome != Rejected || !errors.Is(res.Err, refusal) || res.AppliedCommit != "c1" {
		t.Fatalf("refused c2: outcome %s, err %v, applied %q", res.Outcome, res.Err, res.AppliedCommit)
	}
	if string(drv.applied) != good {
		t.Errorf("the refused revision was applied: %s", drv.applied)
	}
	if admitted != admittedC1 {
		t.Errorf("the refused revision went through Admit")
	}
	if lg := r.LastGood(); lg == nil || lg.Commit != "c1" {
		t.Errorf("last good = %+v, want c1", lg)
	}
}
