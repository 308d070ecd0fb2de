package nic

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Spread is how a counter is distributed over CPUs: the NET_RX softirqs of
// the node, or the interrupts of one NIC. Counters are cumulative since
// boot; Sub gives the spread between two observations.
type Spread struct {
	// What names the counter ("NET_RX softirqs", "eth0 interrupts").
	What string
	// PerCPU holds one count per CPU listed by the kernel (online CPUs),
	// in increasing CPU order.
	PerCPU []CPUCount
}

// CPUCount is one CPU's share of a counter.
type CPUCount struct {
	CPU   int
	Count uint64
}

// Total is the sum over all CPUs.
func (s Spread) Total() uint64 {
	var n uint64
	for _, c := range s.PerCPU {
		n += c.Count
	}
	return n
}

// Busiest returns the CPU with the largest count and its share of the total
// (0..1). The share is 0 when nothing was counted.
func (s Spread) Busiest() (cpu int, share float64) {
	cpu = -1
	var top uint64
	for _, c := range s.PerCPU {
		if cpu < 0 || c.Count > top {
			cpu, top = c.CPU, c.Count
		}
	}
	if t := s.Total(); t > 0 {
		share = float64(top) / float64(t)
	}
	return cpu, share
}

// Sub returns the spread of what was counted since prev (same CPUs;
// a counter that went backwards counts as zero).
func (s Spread) Sub(prev Spread) Spread {
	old := map[int]uint64{}
	for _, c := range prev.PerCPU {
		old[c.CPU] = c.Count
	}
	out := Spread{What: s.What}
	for _, c := range s.PerCPU {
		d := uint64(0)
		if c.Count >= old[c.CPU] {
			d = c.Count - old[c.CPU]
		}
		out.PerCPU = append(out.PerCPU, CPUCount{CPU: c.CPU, Count: d})
	}
	return out
}

// String is a one-line human report of the imbalance, e.g.
// "NET_RX softirqs: cpu0 91%, cpu1 9% — busiest cpu0 91% (even: 50%) of 10000".
func (s Spread) String() string {
	total := s.Total()
	if len(s.PerCPU) == 0 || total == 0 {
		return s.What + ": none counted"
	}
	parts := make([]string, 0, len(s.PerCPU))
	for _, c := range s.PerCPU {
		parts = append(parts, fmt.Sprintf("cpu%d %s", c.CPU, pct(float64(c.Count)/float64(total))))
	}
	cpu, share := s.Busiest()
	return fmt.Sprintf("%s: %s — busiest cpu%d %s (even: %s) of %d",
		s.What, strings.Join(parts, ", "), cpu, pct(share), pct(1/float64(len(s.PerCPU))), total)
}

func pct(f float64) string { return fmt.Sprintf("%.0f%%", 100*f) }

// parseCPUHeader reads the "CPU0 CPU1 …" header of /proc/softirqs and
// /proc/interrupts (offline CPUs are left out, so numbers may skip).
func parseCPUHeader(line string) ([]int, error) {
	var cpus []int
	for _, f := range strings.Fields(line) {
		n, err := strconv.Atoi(strings.TrimPrefix(f, "CPU"))
		if err != nil || !strings.HasPrefix(f, "CPU") {
			return nil, fmt.Errorf("header field %q is not CPUn", f)
		}
		cpus = append(cpus, n)
	}
	if len(cpus) == 0 {
		return nil, fmt.Errorf("no CPU in header")
	}
	return cpus, nil
}

// parseSoftirqs returns the per-CPU counts of one softirq (e.g. "NET_RX")
// from /proc/softirqs.
func parseSoftirqs(r io.Reader, name string) (Spread, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	if !sc.Scan() {
		return Spread{}, fmt.Errorf("softirqs: empty")
	}
	cpus, err := parseCPUHeader(sc.Text())
	if err != nil {
		return Spread{}, fmt.Errorf("softirqs: %w", err)
	}
	for sc.Scan() {
		label, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(label) != name {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) < len(cpus) {
			return Spread{}, fmt.Errorf("softirqs: %s has %d counts for %d CPUs", name, len(fields), len(cpus))
		}
		s := Spread{What: name + " softirqs"}
		for i, cpu := range cpus {
			n, err := strconv.ParseUint(fields[i], 10, 64)
			if err != nil {
				return Spread{}, fmt.Errorf("softirqs: %s cpu%d: %w", name, cpu, err)
			}
			s.PerCPU = append(s.PerCPU, CPUCount{CPU: cpu, Count: n})
		}
		return s, sc.Err()
	}
	if err := sc.Err(); err != nil {
		return Spread{}, fmt.Errorf("softirqs: %w", err)
	}
	return Spread{}, fmt.Errorf("softirqs: no %s row", name)
}

// irqLine is one numbered row of /proc/interrupts.
type irqLine struct {
	IRQ    int
	Counts []CPUCount
	// Name is the action name (last field), e.g. "eth0-TxRx-0" or
	// "virtio2-input.0".
	Name string
}

// parseInterrupts reads the numbered rows of /proc/interrupts (NMI, LOC
// and other named rows are skipped).
func parseInterrupts(r io.Reader) (map[int]irqLine, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	if !sc.Scan() {
		return nil, fmt.Errorf("interrupts: empty")
	}
	cpus, err := parseCPUHeader(sc.Text())
	if err != nil {
		return nil, fmt.Errorf("interrupts: %w", err)
	}
	out := map[int]irqLine{}
	for sc.Scan() {
		label, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		irq, err := strconv.Atoi(strings.TrimSpace(label))
		if err != nil {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) < len(cpus) {
			continue
		}
		l := irqLine{IRQ: irq}
		for i, cpu := range cpus {
			n, err := strconv.ParseUint(fields[i], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("interrupts: irq %d cpu%d: %w", irq, cpu, err)
			}
			l.Counts = append(l.Counts, CPUCount{CPU: cpu, Count: n})
		}
		if extra := fields[len(cpus):]; len(extra) > 0 {
			l.Name = extra[len(extra)-1]
		}
		out[irq] = l
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("interrupts: %w", err)
	}
	return out, nil
}
