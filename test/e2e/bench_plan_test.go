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
		rssMB float64
	}
	var rows []row
	for _, pairs := range []int{10, 100, 1000} {
		dir := b.TempDir()
		genSite(b, dir, pairs)
		var walls []time.Duration
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
			if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > peak {
				peak = ru.Maxrss // KiB on Linux
			}
		}
		rows = append(rows, row{pairs, summarize(walls), float64(peak) / 1024})
	}
	fmt.Println("\ngitgw plan, one node of a generated site (2 VRRP instances, 2 services × 5 servers, 6 unit instances per pair)")
	fmt.Printf("%8s  %-48s %10s %14s\n", "pairs", "wall time", "peak RSS", "ms per pair")
	for _, r := range rows {
		fmt.Printf("%8d  %-48s %8.0f MB %14.2f\n", r.pairs, r.wall, r.rssMB, float64(r.wall.Median.Microseconds())/1000/float64(r.pairs))
	}
	last, mid := rows[len(rows)-1], rows[len(rows)-2]
	growth := float64(last.wall.Median) / float64(mid.wall.Median)
	fmt.Printf("growth 100 → 1,000 pairs: ×%.1f for ×10 the site (linear = ×10); targets at 1,000 pairs: ≤ 1 s, ≤ 300 MB: %s, %s\n",
		growth, verdict(last.wall.Median <= time.Second), verdict(last.rssMB <= 300))
	b.ReportMetric(last.wall.Median.Seconds(), "s/plan@1000pairs")
	b.ReportMetric(last.rssMB, "MB-peak@1000pairs")
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}
