package e2e

import (
	"fmt"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// BenchmarkPlanScale times `gitgw plan` for one node of generated sites of
// 10, 100 and 1,000 gateway pairs, with the peak RSS of the process.
// Targets (issue "The spine"): ≤ 1 s and ≤ 300 MB at 1,000 pairs, and cost
// growing no faster than linearly with the site.
func BenchmarkPlanScale(b *testing.B) {
	type row struct {
		pairs int
		wall  durStats
		cpu   durStats
		rssMB float64
	}
	var rows []row
	for _, pairs := range []int{10, 100, 1000} {
		dir := b.TempDir()
		genSite(b, dir, pairs)
		var walls, cpus []time.Duration
		var peak int64
		reps := 5
		if pairs >= 1000 {
			reps = 3
		}
		for i := 0; i < reps; i++ {
			cmd := exec.Command(gitgwBin, "plan", "--site", dir, "--node", "gw-00000a", "--json")
			start := time.Now()
			out, err := cmd.CombinedOutput()
			walls = append(walls, time.Since(start))
			if err != nil {
				b.Fatalf("plan %d pairs: %v\n%s", pairs, err, out)
			}
			cpus = append(cpus, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
			if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > peak {
				peak = ru.Maxrss // KiB on Linux
			}
		}
		rows = append(rows, row{pairs, summarize(walls), summarize(cpus), float64(peak) / 1024})
	}
	fmt.Println("\ngitgw plan, one node of a generated site (2 VRRP instances, 2 services × 5 servers, 6 unit instances per pair)")
	fmt.Println("(CPU = user+system time of the process: what a busy machine cannot inflate)")
	fmt.Printf("%8s  %-46s %-46s %10s %12s\n", "pairs", "wall time", "CPU time", "peak RSS", "CPU ms/pair")
	for _, r := range rows {
		fmt.Printf("%8d  %-46s %-46s %7.0f MB %12.2f\n", r.pairs, r.wall, r.cpu, r.rssMB, float64(r.cpu.Median.Microseconds())/1000/float64(r.pairs))
	}
	last, mid := rows[len(rows)-1], rows[len(rows)-2]
	growth := float64(last.cpu.Median) / float64(mid.cpu.Median)
	fmt.Printf("CPU growth 100 → 1,000 pairs: ×%.1f for ×10 the site (linear = ×10)\n", growth)
	fmt.Printf("targets at 1,000 pairs: wall ≤ 1 s: %s (CPU %v); RSS ≤ 300 MB: %s\n",
		verdict(last.wall.Median <= time.Second), last.cpu.Median.Round(time.Millisecond), verdict(last.rssMB <= 300))
	b.ReportMetric(last.cpu.Median.Seconds(), "cpu-s/plan@1000pairs")
	b.ReportMetric(last.wall.Median.Seconds(), "s/plan@1000pairs")
	b.ReportMetric(last.rssMB, "MB-peak@1000pairs")
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}
