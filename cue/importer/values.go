package importer

import (
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// seconds parses keepalived's seconds ("1", "0.1", "4.12").
func seconds(s string) (time.Duration, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || f > 1e6 {
		return 0, fmt.Errorf("%q is not a number of seconds", s)
	}
	return time.Duration(math.Round(f*1000)) * time.Millisecond, nil
}

// hapTime parses an HAProxy time: a number with an optional unit (us, ms,
// s, m, h, d); a bare number is milliseconds.
func hapTime(s string) (time.Duration, error) {
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], s[i:]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not an HAProxy time", s)
	}
	mult := map[string]time.Duration{"": time.Millisecond, "us": time.Microsecond, "ms": time.Millisecond,
		"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("%q: unknown time unit %q", s, unit)
	}
	return time.Duration(n) * mult, nil
}

// integer parses a decimal integer within [lo, hi].
func integer(s string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || s[0] == '+' {
		return 0, fmt.Errorf("%q is not an integer", s)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d is out of range [%d, %d]", n, lo, hi)
	}
	return n, nil
}

// prefix parses an address with an optional prefix length; a bare address
// is a host route (/32, /128), as keepalived reads it.
func prefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf("%q is not an address/prefix", s)
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// hostPort writes an address and port as the schema wants them.
func hostPort(a netip.Addr, port int) string {
	return netip.AddrPortFrom(a, uint16(port)).String()
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// siteName makes s a valid name of the schema (#Name), replacing what is
// not allowed.
func siteName(s string) string {
	if nameRE.MatchString(s) {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			b[i] = '-'
		}
	}
	s = strings.Trim(string(b), "-_.")
	if s == "" {
		s = "x"
	}
	return s[:min(len(s), 63)]
}

var ifnameRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,15}$`)

// setTo returns a function that stores a parsed value in dst when parsing
// succeeded: setTo(&x)(integer(s, 1, 255)) leaves x alone on an error.
func setTo[T any](dst *T) func(T, error) error {
	return func(v T, err error) error {
		if err == nil {
			*dst = v
		}
		return err
	}
}

// setOpt is setTo for a value marked as set.
func setOpt[T comparable](dst *opt[T]) func(T, error) error {
	return func(v T, err error) error {
		if err == nil {
			*dst = some(v)
		}
		return err
	}
}
