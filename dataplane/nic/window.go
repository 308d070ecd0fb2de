package nic

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// Counters is one reading of the receive counters, all cumulative since
// boot: the NET_RX softirqs per CPU (/proc/softirqs) and every numbered
// row of /proc/interrupts, with when it was read.
type Counters struct {
	At    time.Time
	NetRX Spread
	IRQs  map[int][]CPUCount
}

// Window keeps the readings needed to tell what was counted over the last
// Span. Since-boot figures hide what happens now: a gateway that ran
// evenly for a month and has pinned NET_RX to CPU0 for the last ten
// minutes shows "CPU0 52 %" since boot and "CPU0 90 %" over the last
// minute. With a zero Span it keeps only the newest reading: set Span.
type Window struct {
	// Span is how far back Recent looks (DefaultSpan in a Sampler).
	Span time.Duration
	// readings, oldest first; the oldest is the newest one at least Span
	// before the newest, or the first ever when the history is shorter.
	readings []Counters
}

// Add records c, taken after every reading added before, and forgets the
// readings Recent will not need again.
func (w *Window) Add(c Counters) {
	w.readings = append(w.readings, c)
	target := c.At.Add(-w.Span)
	keep := 0
	for i, r := range w.readings {
		if !r.At.After(target) {
			keep = i
		}
	}
	w.readings = slices.Delete(w.readings, 0, keep)
}

// Recent is what was counted between two readings.
type Recent struct {
	From, To time.Time
	// Full is set when the readings span the whole window; otherwise the
	// figures are since the first reading (the agent started less than a
	// window ago) and Label says so.
	Full bool
	Span time.Duration
	// NetRX is the NET_RX softirqs counted between From and To; Total is
	// the since-boot count at To.
	NetRX, Total Spread
	irqs         map[int][]CPUCount // counted between From and To
	totalIRQs    map[int][]CPUCount // since boot, at To
}

// Recent returns the counts between the reading closest to Span before the
// newest and the newest. ok is false with fewer than two readings: there
// is no window yet.
func (w *Window) Recent() (r Recent, ok bool) {
	if len(w.readings) < 2 {
		return Recent{}, false
	}
	from, to := w.readings[0], w.readings[len(w.readings)-1]
	r = Recent{From: from.At, To: to.At, Span: w.Span, Full: to.At.Sub(from.At) >= w.Span,
		NetRX: to.NetRX.Sub(from.NetRX), Total: to.NetRX,
		irqs: map[int][]CPUCount{}, totalIRQs: to.IRQs}
	for irq, now := range to.IRQs {
		d := Spread{PerCPU: now}.Sub(Spread{PerCPU: from.IRQs[irq]})
		r.irqs[irq] = d.PerCPU
	}
	r.NetRX.What = to.NetRX.What + " " + r.Label()
	return r, true
}

// Label tells what the figures cover: "over the last 1m0s", or, with less
// history than a window, "over the 20s since sampling began".
func (r Recent) Label() string {
	d := r.To.Sub(r.From).Round(time.Second)
	if r.Full {
		return fmt.Sprintf("over the last %s", d)
	}
	return fmt.Sprintf("over the %s since sampling began", d)
}

// Interrupts returns the spread of the given IRQs (a NIC's queues) over
// the window and since boot; an IRQ the readings lack counts as nothing.
func (r Recent) Interrupts(name string, irqs []int) (window, total Spread) {
	window = Spread{What: name + " interrupts " + r.Label()}
	total = Spread{What: name + " interrupts since boot"}
	window.PerCPU = sumIRQs(r.irqs, irqs)
	total.PerCPU = sumIRQs(r.totalIRQs, irqs)
	return window, total
}

// sumIRQs adds the per-CPU counts of irqs, in CPU order.
func sumIRQs(counts map[int][]CPUCount, irqs []int) []CPUCount {
	sum := map[int]uint64{}
	for _, n := range irqs {
		for _, c := range counts[n] {
			sum[c.CPU] += c.Count
		}
	}
	out := make([]CPUCount, 0, len(sum))
	for _, cpu := range slices.Sorted(maps.Keys(sum)) {
		out = append(out, CPUCount{CPU: cpu, Count: sum[cpu]})
	}
	return out
}

// Shares returns each CPU's share (0..1) of s's total, in CPU order; all
// zero when nothing was counted.
func (s Spread) Shares() []float64 {
	out := make([]float64, len(s.PerCPU))
	if t := s.Total(); t > 0 {
		for i, c := range s.PerCPU {
			out[i] = float64(c.Count) / float64(t)
		}
	}
	return out
}

// ReceiveSpread is the spread of receive work over the CPUs over the last
// minute (Recent), with each tuned interface's queue IRQs, for the
// metrics.
type ReceiveSpread struct {
	Recent Recent
	IRQs   map[string][]int
}
