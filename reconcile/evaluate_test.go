package reconcile

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile/drift"
)

// countingLoad is loader.LoadWith, counting evaluations by directory.
type countingLoad struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *countingLoad) load(ctx context.Context, dir, node string, o loader.Options) (*loader.Site, *spec.Node, error) {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[dir]++
	c.mu.Unlock()
	return loader.LoadWith(ctx, dir, node, o)
}

func (c *countingLoad) of(dir string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[dir]
}

// wavesSite writes a site of n nodes: gw1 in the main ring, every other
// node a canary that goes first.
func wavesSite(t *testing.T, n int, vrrp, services string) string {
	t.Helper()
	dir := t.TempDir()
	var nodes strings.Builder
	for i := 1; i <= n; i++ {
		ring := "canary"
		if i == 1 {
			ring = "main"
		}
		fmt.Fprintf(&nodes, "nodes: gw%d: {labels: ring: %q, interfaces: eth0: addresses: [\"203.0.113.%d/24\"]}\n", i, ring, 10+i)
	}
	files := map[string]string{
		"cue.mod/module.cue": "module: \"example.net/lab@v0\"\nlanguage: version: \"v0.17.0\"\n",
		"site.cue": "package site\n\nsite: rollout: waves: [{labels: ring: \"canary\"}, {labels: ring: \"main\"}]\n" +
			nodes.String() + vrrp + "\n" + services + "\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// spoil overwrites a site's files once they are evaluated: whatever reads
// them again (an evaluation, the labels, positioning an error) finds an
// invalid site, and the pass's outcome shows it.
func spoil(t *testing.T, dir string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "site.cue"), []byte("package site\n\nnodes: 42\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestEvaluatedOncePerCommit: a commit's site is evaluated once, whatever
// reads it: the pass that applies it and every resync after it, a rejected
// commit tried again (its policy violations positioned in the same
// evaluation), a held commit tried again while the rollout reads every
// node's labels for its waves, and the plan's rollout notes. After the
// first evaluation each site's files are spoiled, so that any second read
// would change the outcome, not only the count.
func TestEvaluatedOncePerCommit(t *testing.T) {
	ctx := context.Background()
	const nodes = 12
	counter := &countingLoad{}
	peers := &fakePeers{}
	drv := &applyRecorder{}
	r, err := NewRunner(RunnerOptions{Node: "gw1", StateDir: t.TempDir(), Drivers: []Driver{drv}, Load: counter.load,
		Check:   PolicyCheck(PolicyOptions{}),
		Rollout: NewRollout(RolloutOptions{Node: "gw1", Peers: peers.read, Timeout: time.Hour})})
	if err != nil {
		t.Fatal(err)
	}
	c1 := wavesSite(t, nodes, labVRRP, labServices)
	tie := wavesSite(t, nodes, strings.Replace(labVRRP, "150", "100", 1), labServices)
	broken := wavesSite(t, nodes, strings.Replace(labVRRP, "vrid: 51", `vrid: "x"`, 1), labServices)
	c3 := wavesSite(t, nodes, labVRRP, threeServers)

	// The canaries run c1: gw1, in the main ring, waits for them.
	for i := 2; i <= nodes; i++ {
		peers.set(fmt.Sprintf("gw%d", i), "c1", drift.Converged)
	}
	type pass struct {
		commit, dir string
		times       int
		want        Outcome
		first       string // in the first error, for every try
	}
	for _, p := range []pass{
		{commit: "c1", dir: c1, times: 3, want: Applied},
		{commit: "tie", dir: tie, times: 3, want: Rejected, first: "site.cue:18:45: vrrp.VI_1.nodes.gw2.priority: [priority-distinct]"},
		{commit: "broken", dir: broken, times: 3, want: Rejected, first: "site.cue:17:27: vrrp.VI_1.vrid: conflicting values"},
		{commit: "c3", dir: c3, times: 3, want: Held, first: "rollout: c3 waits for gw10 (wave 0 (ring=canary) before wave 1)"},
	} {
		for i := range p.times {
			res := r.Pass(ctx, Revision{Commit: p.commit, Dir: p.dir}, PassOptions{})
			want := p.want
			if p.want == Applied && i > 0 {
				want = Unchanged // a resync
			}
			first := fmt.Sprint(res.Err)
			if len(res.Errors) > 0 {
				first = res.Errors[0].Error()
			}
			if res.Outcome != want || !strings.Contains(first, p.first) {
				t.Fatalf("%s, try %d: %s: %s; want %s: %s", p.commit, i+1, res.Outcome, first, want, p.first)
			}
			if i == 0 {
				spoil(t, p.dir)
			}
		}
		if n := counter.of(p.dir); n != 1 {
			t.Errorf("%s: %d evaluations in %d passes, want 1", p.commit, n, p.times)
		}
	}

	// The plan's notes for the held commit come from its evaluation too.
	rev3 := Revision{Commit: "c3", Dir: c3}
	desired, _, err := r.Evaluate(ctx, rev3)
	if err != nil || desired == nil {
		t.Fatalf("evaluate c3: %v", err)
	}
	if notes := r.RolloutNotes(ctx, rev3, desired); len(notes) != nodes-1 {
		t.Errorf("rollout notes: %q, want one per canary", notes)
	}
	// The canaries report c3 applied: the held commit goes through.
	for i := 2; i <= nodes; i++ {
		peers.set(fmt.Sprintf("gw%d", i), "c3", drift.Converged)
	}
	if res := r.Pass(ctx, rev3, PassOptions{}); res.Outcome != Applied {
		t.Fatalf("c3 released: %s %v", res.Outcome, res.Err)
	}
	if n := counter.of(c3); n != 1 {
		t.Errorf("c3: %d evaluations, want 1", n)
	}
}
