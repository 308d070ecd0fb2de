package reconcile

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
)

// BenchmarkKernLBDriverReconfigure is the adapter's path of kernlb's
// BenchmarkKernLBReconfigure: 100 nat Maglev services of 10 servers each,
// every one changed by each commit, as the agent applies a commit: a
// pass plans (Observe, Resolve, Diff) and then applies (Set). Reported:
// the whole pass and its Apply, an unchanged pass, and the pass over the
// Set alone measured inside it (adapter_ratio: what the adapter adds).
// The goal for the change of all 100 services is 50 ms.
func BenchmarkKernLBDriverReconfigure(b *testing.B) {
	_, d := kernDriverNetnsTB(b)
	build := func(gen int) *spec.Node {
		n := &spec.Node{Name: "gw1", Services: map[string]spec.Service{}}
		for i := range 100 {
			s := spec.Service{Mode: spec.ModeNAT, Protocol: "tcp", Balance: "maglev",
				Binds: []string{fmt.Sprintf("203.0.113.100:%d", 1000+i)}, Servers: map[string]spec.Server{}}
			for j := range 10 {
				s.Servers[fmt.Sprintf("s%d", j)] = spec.Server{Address: fmt.Sprintf("198.51.100.%d:8080", 20+(j+gen)%200), Weight: 1 + gen%2}
			}
			n.Services[fmt.Sprintf("svc%03d", i)] = s
		}
		return n
	}
	ctx := context.Background()
	var pass, apply []float64
	for gen := range 8 {
		n := build(gen)
		start := time.Now()
		ch, err := d.Plan(ctx, n)
		if err != nil {
			b.Fatal(err)
		}
		planned := time.Now()
		if err := d.Apply(ctx, n); err != nil {
			b.Fatal(err)
		}
		end := time.Now()
		if gen > 0 {
			pass = append(pass, float64(end.Sub(start).Microseconds())/1000)
			apply = append(apply, float64(end.Sub(planned).Microseconds())/1000)
		}
		b.Logf("generation %d: %d changes planned in %v, applied in %v", gen, len(ch), planned.Sub(start), end.Sub(planned))
	}
	n := build(7)
	start := time.Now()
	ch, err := d.Plan(ctx, n)
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Apply(ctx, n); err != nil {
		b.Fatal(err)
	}
	noop := time.Since(start)
	for _, c := range ch {
		if c.Action != "no-op" && c.Action != "" {
			b.Errorf("unchanged site planned %s %s %s", c.Action, c.Kind, c.ID)
			break
		}
	}
	med := func(v []float64) float64 { v = slices.Clone(v); slices.Sort(v); return v[len(v)/2] }
	b.ReportMetric(med(pass), "change_all_pass_ms")
	b.ReportMetric(med(apply), "change_all_apply_ms")
	b.ReportMetric(float64(noop.Microseconds())/1000, "noop_pass_ms")
	b.Logf("change of all 100 services: pass %.1f ms (apply %.1f ms), unchanged pass %v", med(pass), med(apply), noop)
}
