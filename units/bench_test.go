package units

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	sdharness "github.com/gitgw/gitgw/test/systemd"
)

type benchStats struct{ med, min, max time.Duration }

func stats(ds []time.Duration) benchStats {
	s := slices.Clone(ds)
	slices.Sort(s)
	return benchStats{med: s[len(s)/2], min: s[0], max: s[len(s)-1]}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// benchManager is a manager on the package's harness, for benchmarks.
func benchManager(b *testing.B) (*Manager, *sdharness.Systemd) {
	b.Helper()
	h := needHarness(b)
	conn := dialHarness(b, h)
	m, err := New(context.Background(), conn, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = m.Close() })
	return m, h
}

func benchCleanup(b *testing.B, h *sdharness.Systemd, name string) {
	b.Cleanup(func() {
		ctx := context.Background()
		_, _ = h.Systemctl(ctx, "stop", name+"@*.service")
		_, _ = h.Systemctl(ctx, "reset-failed", name+"@*.service")
		_ = os.Remove(filepath.Join(h.UnitDir, name+"@.service"))
		_, _ = h.Systemctl(ctx, "daemon-reload")
	})
}

// BenchmarkConverge50 converges 50 HTTP-server instances from nothing
// (template written, 50 enabled, started and up for Settle), then removes
// them again. Target: ≤ 3 s in the harness.
func BenchmarkConverge50(b *testing.B) {
	m, h := benchManager(b)
	benchCleanup(b, h, "bconv")
	const reps = 5
	ctx := context.Background()
	cfg := Config{UnitDir: h.UnitDir, Templates: []Template{appTemplate("bconv", "v1", Ports(21000, 21049)...)}}
	var up, down []time.Duration
	for range reps {
		t0 := time.Now()
		if err := m.Set(ctx, cfg); err != nil {
			b.Fatal(err)
		}
		up = append(up, time.Since(t0))
		t0 = time.Now()
		if err := m.Set(ctx, Config{UnitDir: h.UnitDir}); err != nil {
			b.Fatal(err)
		}
		down = append(down, time.Since(t0))
	}
	su, sd := stats(up), stats(down)
	fmt.Printf("\nunits: converge 50 instances (%d runs, Settle %s)\n", reps, m.opts.Settle)
	fmt.Printf("  %-28s %12s %12s %12s\n", "", "median", "min", "max")
	fmt.Printf("  %-28s %12s %12s %12s\n", "from nothing to 50 up", ms(su.med), ms(su.min), ms(su.max))
	fmt.Printf("  %-28s %12s %12s %12s\n", "50 stopped, file removed", ms(sd.med), ms(sd.min), ms(sd.max))
	b.ReportMetric(float64(su.med.Milliseconds()), "converge50-ms")
	b.ReportMetric(float64(sd.med.Milliseconds()), "remove50-ms")
}

// BenchmarkObserve500 observes 500 loaded instances (300 running, 200
// enabled but stopped) through the host-side socket. Target: ≤ 100 ms.
func BenchmarkObserve500(b *testing.B) {
	m, h := benchManager(b)
	benchCleanup(b, h, "bobs")
	ctx := context.Background()
	tmpl := Template{
		Name:      "bobs",
		Unit:      UnitSection{Description: "observe bench %i"},
		Service:   ServiceSection{Type: "exec", ExecStart: "/bin/sleep infinity"},
		Install:   InstallSection{WantedBy: []string{"multi-user.target"}},
		Instances: Ports(30000, 30499),
	}
	running := tmpl
	running.Instances = tmpl.Instances[:300]
	cfg := Config{UnitDir: h.UnitDir, Templates: []Template{running}}
	if err := m.Set(ctx, cfg); err != nil {
		b.Fatal(err)
	}
	full := Config{UnitDir: h.UnitDir, Templates: []Template{tmpl}}
	const reps = 20
	var obs, pl []time.Duration
	var n int
	var sdCPU, selfCPU time.Duration
	for range reps {
		sd0, self0 := procCPU(h.PID), selfCPUTime()
		t0 := time.Now()
		o, err := m.Observe(ctx, full)
		if err != nil {
			b.Fatal(err)
		}
		obs = append(obs, time.Since(t0))
		sdCPU += procCPU(h.PID) - sd0
		selfCPU += selfCPUTime() - self0
		n = len(o.Units)
		t0 = time.Now()
		if _, err := m.Plan(ctx, full); err != nil {
			b.Fatal(err)
		}
		pl = append(pl, time.Since(t0))
	}
	if n != 500 {
		b.Fatalf("observed %d units, want 500", n)
	}
	so, sp := stats(obs), stats(pl)
	fmt.Printf("\nunits: observe 500 units (%d runs; 300 active, 200 never started)\n", reps)
	fmt.Printf("  %-28s %12s %12s %12s\n", "", "median", "min", "max")
	fmt.Printf("  %-28s %12s %12s %12s\n", "Observe", ms(so.med), ms(so.min), ms(so.max))
	fmt.Printf("  %-28s %12s %12s %12s\n", "Plan (observe + diff)", ms(sp.med), ms(sp.min), ms(sp.max))
	fmt.Printf("  CPU per Observe (load-independent): systemd %s, gitgw %s (mean of %d)\n",
		ms(sdCPU/reps), ms(selfCPU/reps), reps)
	b.ReportMetric(float64(so.med.Microseconds())/1000, "observe500-ms")
	b.ReportMetric(float64(sp.med.Microseconds())/1000, "plan500-ms")
	b.ReportMetric(float64((sdCPU/reps).Microseconds())/1000, "observe500-systemd-cpu-ms")
	if err := m.Set(ctx, Config{UnitDir: h.UnitDir}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRoll10 changes the template of 10 running instances and
// measures the rolling restart, sampling the instances throughout: never
// more than one may be down.
func BenchmarkRoll10(b *testing.B) {
	m, h := benchManager(b)
	benchCleanup(b, h, "broll")
	ctx := context.Background()
	ports := Ports(22000, 22009)
	if err := m.Set(ctx, Config{UnitDir: h.UnitDir, Templates: []Template{appTemplate("broll", "v0", ports...)}}); err != nil {
		b.Fatal(err)
	}
	names := appTemplate("broll", "", ports...).UnitNames()
	const reps = 3
	var rolls []time.Duration
	maxDown, samples := 0, 0
	for i := range reps {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				sts, err := m.conn.States(context.Background(), names)
				if err == nil {
					down := 0
					for _, s := range sts {
						if s.ActiveState != "active" {
							down++
						}
					}
					mu.Lock()
					maxDown = max(maxDown, down)
					samples++
					mu.Unlock()
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
		t0 := time.Now()
		err := m.Set(ctx, Config{UnitDir: h.UnitDir, Templates: []Template{appTemplate("broll", fmt.Sprintf("v%d", i+1), ports...)}})
		rolls = append(rolls, time.Since(t0))
		close(stop)
		wg.Wait()
		if err != nil {
			b.Fatal(err)
		}
	}
	for _, p := range ports {
		if body, err := httpGet(h, p); err != nil || !strings.Contains(body, fmt.Sprintf("version v%d", reps)) {
			b.Fatalf("instance %s after the rolls: %q %v", p, body, err)
		}
	}
	s := stats(rolls)
	fmt.Printf("\nunits: rolling restart of 10 instances (%d runs, Settle %s per instance)\n", reps, m.opts.Settle)
	fmt.Printf("  %-28s %12s %12s %12s\n", "", "median", "min", "max")
	fmt.Printf("  %-28s %12s %12s %12s\n", "whole roll", ms(s.med), ms(s.min), ms(s.max))
	fmt.Printf("  %-28s %12s %12s %12s\n", "per instance", ms(s.med/10), ms(s.min/10), ms(s.max/10))
	fmt.Printf("  max instances down at once: %d (%d samples)\n", maxDown, samples)
	b.ReportMetric(float64(s.med.Milliseconds()), "roll10-ms")
	b.ReportMetric(float64(maxDown), "max-down")
	if maxDown > 1 {
		b.Errorf("%d instances down at once during a roll", maxDown)
	}
	if err := m.Set(ctx, Config{UnitDir: h.UnitDir}); err != nil {
		b.Fatal(err)
	}
}

// procCPU is the user+system CPU time of a process (clock ticks of 10 ms).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	var u, st int64
	fmt.Sscan(f[11], &u)
	fmt.Sscan(f[12], &st)
	return time.Duration(u+st) * 10 * time.Millisecond
}

func selfCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
