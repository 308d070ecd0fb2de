package reconcile

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkResyncPass is what a resync costs (the agent runs one every
// minute to find drift) now that a commit is evaluated once, against the
// pass of a commit seen for the first time, which evaluates the site: the
// ratio resync/new-commit is the share of a pass the evaluation took.
// The site is examples/lab; the driver plans nothing of the host.
func BenchmarkResyncPass(b *testing.B) {
	ctx := context.Background()
	dir := labVariant(b, "8080", "")
	for _, tc := range []struct {
		name  string
		fresh bool
	}{{"resync", false}, {"new-commit", true}} {
		b.Run(tc.name, func(b *testing.B) {
			r, err := NewRunner(RunnerOptions{Node: "gw1", Drivers: []Driver{&applyRecorder{}}, Check: PolicyCheck(PolicyOptions{})})
			if err != nil {
				b.Fatal(err)
			}
			i := 0
			for b.Loop() {
				commit := "c"
				if tc.fresh {
					// Another commit of the same tree: evaluated again.
					i++
					commit = fmt.Sprint("c", i)
				}
				if res := r.Pass(ctx, Revision{Commit: commit, Dir: dir}, PassOptions{}); res.Err != nil {
					b.Fatal(res.Err)
				}
			}
		})
	}
}
