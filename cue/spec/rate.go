package spec

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseRate parses a rate of the site, "N/UNIT" where UNIT is s, m, h or a
// Go duration ("100/s", "600/m", "50/10s"): the per-source limits both the
// proxy and the kernel forwarding enforce, and the guardrails check.
func ParseRate(s string) (n int, per time.Duration, err error) {
	num, unit, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, fmt.Errorf("rate %q: want N/s, N/m, N/h or N/DURATION", s)
	}
	n, err = strconv.Atoi(num)
	if err != nil || n <= 0 {
		return 0, 0, fmt.Errorf("rate %q: count must be a positive integer", s)
	}
	switch unit {
	case "s":
		per = time.Second
	case "m":
		per = time.Minute
	case "h":
		per = time.Hour
	default:
		per, err = time.ParseDuration(unit)
		if err != nil || per <= 0 {
			return 0, 0, fmt.Errorf("rate %q: period must be s, m, h or a positive duration", s)
		}
	}
	if per/time.Duration(n) <= 0 {
		return 0, 0, fmt.Errorf("rate %q: more than one connection per nanosecond", s)
	}
	return n, per, nil
}
