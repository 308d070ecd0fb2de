package httpproxy

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// The fetches HAProxy's sample ACL configurations test beside the host,
// path and headers' text: the client's port, how many values a header
// has and their numeric value, the request's HTTP version, and the
// slash-delimited words of a path. Each behaves as HAProxy 2.6's fetch
// of the same name, on what Go's server kept of the request (headerValues).

// The numeric and version subjects.
const (
	// SubjSourcePort is src_port: the client's TCP port, against ranges.
	SubjSourcePort Subject = "source_port"
	// SubjHeaderCount is hdr_cnt(Header): how many comma-separated values
	// Header has over all its lines, against ranges (0 when absent).
	SubjHeaderCount Subject = "header_count"
	// SubjHeaderValue is hdr_val(Header): each comma-separated value of
	// Header read as an integer as HAProxy's strl2ic reads it (leading
	// digits, "abc" is 0), against ranges; holds when any value is in
	// one. No value when the header is absent: never holds.
	SubjHeaderValue Subject = "header_value"
	// SubjVersion is req.ver: "1.0" or "1.1", as strings.
	SubjVersion Subject = "version"
)

// MatchDir is -m dir (path_dir): a value found in the subject between
// slashes (or question marks), its start or its end; the value's own
// leading and trailing slashes are ignored ("/img/" matches "img").
const MatchDir Match = "dir"

// intRange is one value of a numeric condition: HAProxy's integer
// pattern "N", "LOW:HIGH", "LOW:" or ":HIGH" (its operators, gt 1 and
// the like, are ranges too: "2:").
type intRange struct {
	lo, hi       int64
	hasLo, hasHi bool
}

func (r intRange) contains(v int64) bool {
	return (!r.hasLo || r.lo <= v) && (!r.hasHi || v <= r.hi)
}

// parseIntRange reads "N", "LOW:HIGH", "LOW:" or ":HIGH" (numbers may be
// negative).
func parseIntRange(s string) (intRange, error) {
	var r intRange
	lo, hi, colon := strings.Cut(s, ":")
	if !colon {
		hi = lo
	}
	if lo == "" && hi == "" {
		return r, fmt.Errorf("range %q: no bound", s)
	}
	var err error
	if lo != "" {
		if r.lo, err = strconv.ParseInt(lo, 10, 64); err != nil {
			return r, fmt.Errorf("range %q: %w", s, err)
		}
		r.hasLo = true
	}
	if hi != "" {
		if r.hi, err = strconv.ParseInt(hi, 10, 64); err != nil {
			return r, fmt.Errorf("range %q: %w", s, err)
		}
		r.hasHi = true
	}
	if r.hasLo && r.hasHi && r.lo > r.hi {
		return r, fmt.Errorf("range %q: low above high", s)
	}
	return r, nil
}

// compileNumeric compiles the ranges of a numeric subject.
func compileNumeric(cc *cond) (*cond, error) {
	if cc.Subject != SubjSourcePort && cc.Header == "" {
		return nil, fmt.Errorf("%s: no header name", cc.Subject)
	}
	if cc.Match != MatchExact {
		return nil, fmt.Errorf("%s: match %q: numeric subjects compare ranges", cc.Subject, cc.Match)
	}
	if len(cc.Values) == 0 {
		return nil, fmt.Errorf("%s: no range", cc.Subject)
	}
	for _, v := range cc.Values {
		r, err := parseIntRange(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cc.Subject, err)
		}
		cc.ranges = append(cc.ranges, r)
	}
	return cc, nil
}

// matchNumeric reports whether a numeric condition holds.
func (c *cond) matchNumeric(r *http.Request) bool {
	var vs []int64
	switch c.Subject {
	case SubjSourcePort:
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil {
			return false
		}
		vs = []int64{int64(ap.Port())}
	case SubjHeaderCount:
		n := 0
		for _, v := range headerValues(r, c.Header) {
			n += len(headerParts(v))
		}
		vs = []int64{int64(n)}
	case SubjHeaderValue:
		for _, v := range headerValues(r, c.Header) {
			for _, p := range headerParts(v) {
				vs = append(vs, int64(strl2ic(p)))
			}
		}
	}
	for _, v := range vs {
		for _, rg := range c.ranges {
			if rg.contains(v) {
				return true
			}
		}
	}
	return false
}

// version is req.ver: the request's HTTP version as "1.1".
func version(r *http.Request) string {
	return strconv.Itoa(r.ProtoMajor) + "." + strconv.Itoa(r.ProtoMinor)
}

// headerValues are the lines of the named header as the client sent
// them, from what Go's server kept: it moves Host to r.Host and
// Transfer-Encoding (which it accepts as "chunked" only) to
// r.TransferEncoding.
func headerValues(r *http.Request, name string) []string {
	switch {
	case strings.EqualFold(name, "Host"):
		if r.Host == "" {
			return nil
		}
		return []string{r.Host}
	case strings.EqualFold(name, "Transfer-Encoding"):
		if len(r.TransferEncoding) > 0 {
			return []string{strings.Join(r.TransferEncoding, ", ")}
		}
	}
	return r.Header.Values(name)
}

// headerParts splits a header line into its comma-separated values as
// HAProxy's http_find_header does: a comma inside a quoted string does
// not split, spaces and tabs around a value are dropped, an empty value
// counts.
func headerParts(v string) []string {
	var parts []string
	quoted, pair := false, false
	start := 0
	for i := 0; i < len(v); i++ {
		switch {
		case pair:
			pair = false
		case quoted:
			if v[i] == '\\' {
				pair = true
			} else if v[i] == '"' {
				quoted = false
			}
		case v[i] == '"':
			quoted = true
		case v[i] == ',':
			parts = append(parts, strings.Trim(v[start:i], " \t"))
			start = i + 1
		}
	}
	return append(parts, strings.Trim(v[start:], " \t"))
}

// strl2ic is HAProxy's strl2ic, which hdr_val uses: the leading digits
// of s (after a '-' for a negative number) as a 32-bit integer. As in C
// with a signed char, a byte below '0' is not a stop: it adds its
// (negative) difference to '0', so "12 " reads 104; a byte above '9'
// stops.
func strl2ic(s string) int32 {
	var i int32
	if len(s) == 0 {
		return 0
	}
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	for k := 0; k < len(s); k++ {
		j := int32(int8(s[k])) - '0'
		if j > 9 {
			break
		}
		if neg {
			i = i*10 - j
		} else {
			i = i*10 + j
		}
	}
	return i
}

// matchDir is HAProxy's match_word with the delimiters '/' and '?':
// pattern, its own leading and trailing delimiters stripped, found in s
// at the start or after a delimiter, and ending at the end or before one.
// Both are lowered already when the condition ignores case.
func matchDir(s, pattern string) bool {
	isDelim := func(b byte) bool { return b == '/' || b == '?' }
	for len(pattern) > 0 && isDelim(pattern[0]) {
		pattern = pattern[1:]
	}
	for len(pattern) > 0 && isDelim(pattern[len(pattern)-1]) {
		pattern = pattern[:len(pattern)-1]
	}
	if pattern == "" {
		return false // HAProxy compares a first byte that no word has
	}
	may := true
	for i := 0; i+len(pattern) <= len(s); i++ {
		if isDelim(s[i]) {
			may = true
			continue
		}
		if !may {
			continue
		}
		if strings.HasPrefix(s[i:], pattern) && (i+len(pattern) == len(s) || isDelim(s[i+len(pattern)])) {
			return true
		}
		may = false
	}
	return false
}
