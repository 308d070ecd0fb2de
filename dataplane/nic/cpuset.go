package nic

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// CPUSet is a set of CPU numbers held as a bitmap. The zero value is the
// empty set. Two sets are compared as bitmaps (Equal), never as strings, so
// "00000003", "3" and "0-1" all name the same set.
type CPUSet struct {
	w []uint64
}

// NewCPUSet returns the set of the given CPUs.
func NewCPUSet(cpus ...int) CPUSet {
	var s CPUSet
	for _, c := range cpus {
		s.Add(c)
	}
	return s
}

// Add puts cpu into the set. Negative numbers are ignored.
func (s *CPUSet) Add(cpu int) {
	if cpu < 0 {
		return
	}
	for len(s.w) <= cpu/64 {
		s.w = append(s.w, 0)
	}
	s.w[cpu/64] |= 1 << (cpu % 64)
}

// Has reports whether cpu is in the set.
func (s CPUSet) Has(cpu int) bool {
	if cpu < 0 || cpu/64 >= len(s.w) {
		return false
	}
	return s.w[cpu/64]&(1<<(cpu%64)) != 0
}

// Count is the number of CPUs in the set.
func (s CPUSet) Count() int {
	n := 0
	for _, w := range s.w {
		n += bits.OnesCount64(w)
	}
	return n
}

// Empty reports whether the set holds no CPU.
func (s CPUSet) Empty() bool { return s.Count() == 0 }

// Max is the highest CPU in the set, or -1 when it is empty.
func (s CPUSet) Max() int {
	for i := len(s.w) - 1; i >= 0; i-- {
		if s.w[i] != 0 {
			return i*64 + 63 - bits.LeadingZeros64(s.w[i])
		}
	}
	return -1
}

// CPUs lists the set's members in increasing order.
func (s CPUSet) CPUs() []int {
	var out []int
	for i, w := range s.w {
		for w != 0 {
			b := bits.TrailingZeros64(w)
			out = append(out, i*64+b)
			w &^= 1 << b
		}
	}
	return out
}

// Equal compares two sets as bitmaps.
func (s CPUSet) Equal(o CPUSet) bool {
	n := max(len(s.w), len(o.w))
	for i := range n {
		if s.word(i) != o.word(i) {
			return false
		}
	}
	return true
}

// Intersect returns the CPUs in both sets.
func (s CPUSet) Intersect(o CPUSet) CPUSet {
	var r CPUSet
	for i := range min(len(s.w), len(o.w)) {
		r.w = append(r.w, s.w[i]&o.w[i])
	}
	return r
}

// Minus returns the CPUs of s that are not in o.
func (s CPUSet) Minus(o CPUSet) CPUSet {
	r := CPUSet{w: make([]uint64, len(s.w))}
	for i := range s.w {
		r.w[i] = s.w[i] &^ o.word(i)
	}
	return r
}

func (s CPUSet) word(i int) uint64 {
	if i < len(s.w) {
		return s.w[i]
	}
	return 0
}

// String renders the set as a kernel CPU list ("0-3,6"), or "none".
func (s CPUSet) String() string {
	cpus := s.CPUs()
	if len(cpus) == 0 {
		return "none"
	}
	var b strings.Builder
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if j == i {
			fmt.Fprintf(&b, "%d", cpus[i])
		} else {
			fmt.Fprintf(&b, "%d-%d", cpus[i], cpus[j])
		}
		i = j + 1
	}
	return b.String()
}

// Mask renders the set as the hex bitmap that sysfs and /proc/irq accept:
// 32-bit groups separated by commas, most significant first, with only as
// many groups as the highest CPU needs (the kernel refuses extra groups
// beyond nr_cpu_ids with EOVERFLOW). The empty set is "0".
func (s CPUSet) Mask() string {
	top := s.Max()
	if top < 0 {
		return "0"
	}
	groups := top/32 + 1
	var b strings.Builder
	for g := groups - 1; g >= 0; g-- {
		v := uint32(s.word(g/2) >> (32 * (g % 2)))
		if g == groups-1 {
			fmt.Fprintf(&b, "%x", v)
		} else {
			fmt.Fprintf(&b, ",%08x", v)
		}
	}
	return b.String()
}

// ParseMask reads a hex CPU bitmap as the kernel prints it ("3",
// "00000003", "ff,ffffffff"): comma-separated 32-bit groups, most
// significant first.
func ParseMask(text string) (CPUSet, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return CPUSet{}, fmt.Errorf("nic: empty cpu mask")
	}
	groups := strings.Split(text, ",")
	var s CPUSet
	for i, g := range groups {
		g = strings.TrimPrefix(strings.TrimPrefix(g, "0x"), "0X")
		if g == "" || len(g) > 8 {
			return CPUSet{}, fmt.Errorf("nic: cpu mask %q: group %q is not 1-8 hex digits", text, g)
		}
		v, err := strconv.ParseUint(g, 16, 32)
		if err != nil {
			return CPUSet{}, fmt.Errorf("nic: cpu mask %q: %w", text, err)
		}
		base := 32 * (len(groups) - 1 - i)
		for v != 0 {
			b := bits.TrailingZeros64(v)
			s.Add(base + b)
			v &^= 1 << b
		}
	}
	return s, nil
}

// ParseCPUList reads a kernel CPU list: "0-3,6,8-11", with "none" or an
// empty string for the empty set. ("all" is resolved by the caller against
// the CPUs online; see Spec.)
func ParseCPUList(text string) (CPUSet, error) {
	text = strings.TrimSpace(text)
	var s CPUSet
	if text == "" || text == "none" {
		return s, nil
	}
	for part := range strings.SplitSeq(text, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := parseCPU(lo)
		if err != nil {
			return CPUSet{}, fmt.Errorf("nic: cpu list %q: %w", text, err)
		}
		b := a
		if isRange {
			if b, err = parseCPU(hi); err != nil {
				return CPUSet{}, fmt.Errorf("nic: cpu list %q: %w", text, err)
			}
			if b < a {
				return CPUSet{}, fmt.Errorf("nic: cpu list %q: range %s is reversed", text, part)
			}
		}
		for c := a; c <= b; c++ {
			s.Add(c)
		}
	}
	return s, nil
}

// maxCPU bounds CPU numbers in lists: far above any real machine, low
// enough that a typo cannot allocate a huge bitmap.
const maxCPU = 1 << 16

func parseCPU(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n >= maxCPU {
		return 0, fmt.Errorf("%q is not a cpu number", s)
	}
	return n, nil
}
