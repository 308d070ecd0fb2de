package e2e

import (
	"fmt"
	"slices"
	"time"
)

// durStats are the median, min and max of repeated measurements.
type durStats struct {
	Median, Min, Max time.Duration
	N                int
}

func summarize(ds []time.Duration) durStats {
	if len(ds) == 0 {
		return durStats{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return durStats{Median: m, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

func (d durStats) String() string {
	return fmt.Sprintf("median %v (min %v, max %v, n=%d)", d.Median.Round(time.Millisecond/10), d.Min.Round(time.Millisecond/10), d.Max.Round(time.Millisecond/10), d.N)
}
