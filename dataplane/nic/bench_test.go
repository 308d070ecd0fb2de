package nic

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// timings runs fn reps times and returns the durations, sorted.
func timings(b *testing.B, reps int, fn func() error) []time.Duration {
	b.Helper()
	out := make([]time.Duration, 0, reps)
	for range reps {
		start := time.Now()
		if err := fn(); err != nil {
			b.Fatal(err)
		}
		out = append(out, time.Since(start))
	}
	slices.Sort(out)
	return out
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

func benchRow(b *testing.B, name string, ds []time.Duration, metric string) {
	med := ds[len(ds)/2]
	fmt.Printf("  %-44s %10.1f %10.1f %10.1f %6d\n", name, micros(med), micros(ds[0]), micros(ds[len(ds)-1]), len(ds))
	b.ReportMetric(micros(med), metric)
}

func benchHeader(title string) {
	fmt.Printf("\n%s\n  %-44s %10s %10s %10s %6s\n", title, "operation", "median µs", "min µs", "max µs", "reps")
}

// BenchmarkResyncFakeRoot measures one resync's cost — Observe + Diff, and
// a Set that finds nothing to write — on a large fake node: 64 CPUs, a NIC
// with 64 rx and 64 tx queues and 64 IRQs, 16 sysctls.
func BenchmarkResyncFakeRoot(b *testing.B) {
	f := newFakeNode(b, "0-63", "0-63")
	irqs := make([]int, 64)
	for i := range irqs {
		irqs[i] = 100 + i
	}
	f.nic("eth0", 64, 64, irqs...)
	cfg := Config{
		Interfaces:         []Interface{{Name: "eth0", RPSCPUs: "all", RPSFlowCnt: ptr(2048), XPSCPUs: "spread", IRQCPUs: "spread"}},
		RPSSockFlowEntries: ptr(131072),
		Sysctls:            map[string]string{},
	}
	for i := range 16 {
		name := "net.ipv4.conf.eth0.knob" + strconv.Itoa(i)
		f.procFile("sys/net/ipv4/conf/eth0/knob"+strconv.Itoa(i), "0")
		cfg.Sysctls[name] = "1"
	}
	tu := f.tuner()
	ctx := context.Background()
	st, err := tu.Set(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		benchHeader(fmt.Sprintf("nic resync on a fake root (64 CPUs, 64+64 queues, 64 IRQs, 16 sysctls: %d knobs)", len(st.Knobs)))
		plan := timings(b, 200, func() error {
			st, err := tu.Observe(ctx, cfg)
			if err == nil && len(Pending(Diff(cfg, st))) != 0 {
				err = fmt.Errorf("unexpected pending changes")
			}
			return err
		})
		benchRow(b, "Observe + Diff (plan)", plan, "plan-µs")
		set := timings(b, 200, func() error { _, err := tu.Set(ctx, cfg); return err })
		benchRow(b, "Set, nothing to write", set, "noop-set-µs")
	}
}

// BenchmarkResyncKernel measures the same on a real veth with 16 queues in
// a network namespace, plus a Set that corrects one knob changed by hand.
func BenchmarkResyncKernel(b *testing.B) {
	lab.RequireRoot(b)
	lab.RequireCommand(b, "ip")
	ns := lab.NewNetns(b, "nicb")
	ns.Run(b, "ip", "link", "add", "q0", "numrxqueues", "16", "numtxqueues", "16",
		"type", "veth", "peer", "name", "q1", "numrxqueues", "16", "numtxqueues", "16")
	tu := &Tuner{SysRoot: lab.MountSysfs(b, ns)}
	cfg := Config{
		Interfaces: []Interface{{Name: "q0", RPSCPUs: "all", RPSFlowCnt: ptr(2048), XPSCPUs: "spread"}},
		Sysctls:    map[string]string{"net.ipv4.ip_forward": "1", "net.ipv4.ip_nonlocal_bind": "1", "net.ipv4.conf.all.arp_ignore": "1"},
	}
	ctx := context.Background()
	drifted := filepath.Join(tu.SysRoot, "class/net/q0/queues/rx-7/rps_cpus")
	run := func(fn func() error) error {
		var ferr error
		if err := ns.Do(func() error { ferr = fn(); return nil }); err != nil {
			return err
		}
		return ferr
	}
	var st State
	if err := run(func() (err error) { st, err = tu.Set(ctx, cfg); return err }); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		benchHeader(fmt.Sprintf("nic resync on a real veth in a netns (16+16 queues, 3 sysctls: %d knobs)", len(st.Knobs)))
		plan := timings(b, 100, func() error {
			return run(func() error { _, err := tu.Observe(ctx, cfg); return err })
		})
		benchRow(b, "Observe + Diff (plan)", plan, "plan-µs")
		noop := timings(b, 100, func() error {
			return run(func() error { _, err := tu.Set(ctx, cfg); return err })
		})
		benchRow(b, "Set, nothing to write", noop, "noop-set-µs")
		fix := timings(b, 100, func() error {
			if err := os.WriteFile(drifted, []byte("0"), 0); err != nil {
				return err
			}
			return run(func() error {
				st, err := tu.Set(ctx, cfg)
				if err == nil && len(Pending(Diff(cfg, st))) != 0 {
					err = fmt.Errorf("drift not corrected")
				}
				return err
			})
		})
		benchRow(b, "Set correcting one drifted queue", fix, "fix-set-µs")
	}
}
