package nic

import (
	"errors"
	"fmt"
	"io/fs"
	"math/bits"
	"strconv"
	"strings"
)

// Change is one knob compared: its current and desired values, and the
// exact text Set writes when they differ.
type Change struct {
	Kind string
	ID   string
	Path string
	// Current and Desired are for people: CPU masks as CPU lists ("cpus
	// 0-1", "cpu 0", "none"), counts and sysctls as read. Current is ""
	// when the file is unreadable.
	Current, Desired string
	// Write is the exact value Set writes (a hex mask for CPU masks).
	Write string
	// Differs is true when Set would write (or, with Err, fail to).
	Differs bool
	// Unavailable marks a knob this node cannot have from here: xps_cpus on
	// a single-tx-queue device, IRQs of a virtual device, the global
	// rps_sock_flow_entries inside a child network namespace. Reason says
	// which; Set skips it without error.
	Unavailable bool
	// Reason says, for people, why a knob is skipped or cannot be set,
	// when it is not simply a different value.
	Reason string
	// Err is set when the knob cannot be brought to the desired value: the
	// interface or file is missing, a CPU named is not online, ….
	Err error
}

// ErrNotFound marks a configured interface or knob file that the node lacks.
var ErrNotFound = errors.New("not found")

// Diff compares the config with an observed state. It returns one Change
// per knob the config names — in sync ones included (Differs false), so a
// plan lists everything gitgw manages — in State.Knobs order, with global
// knobs first. Masks are compared as bitmaps, counts after the kernel's
// rounding up to a power of two, sysctls field by field.
func Diff(cfg Config, st State) []Change {
	var out []Change
	for _, k := range st.Knobs {
		if k.Iface == "" {
			out = append(out, diffKnob(cfg, st, k))
		}
	}
	for _, it := range cfg.Interfaces {
		is := st.Interfaces[it.Name]
		if is == nil || !is.Present {
			out = append(out, Change{Kind: KindInterface, ID: it.Name, Desired: "present", Differs: true,
				Reason: "interface not found on this node",
				Err:    fmt.Errorf("nic: interface %s: %w", it.Name, ErrNotFound)})
			continue
		}
		for _, k := range st.Knobs {
			if k.Iface == it.Name {
				out = append(out, diffKnob(cfg, st, k))
			}
		}
		if it.IRQCPUs != "" && len(is.IRQs) == 0 {
			out = append(out, Change{Kind: KindIRQAffinity, ID: it.Name + "/irq", Desired: it.IRQCPUs, Unavailable: true,
				Reason: "no IRQs for this device in /proc/irq (virtual device): nothing to set"})
		}
	}
	return out
}

// Pending returns the changes Set would act on.
func Pending(changes []Change) []Change {
	var out []Change
	for _, c := range changes {
		if c.Differs {
			out = append(out, c)
		}
	}
	return out
}

func findInterface(cfg Config, name string) Interface {
	for _, it := range cfg.Interfaces {
		if it.Name == name {
			return it
		}
	}
	return Interface{}
}

func diffKnob(cfg Config, st State, k Knob) Change {
	c := Change{Kind: k.Kind, ID: k.ID, Path: k.Path, Current: k.Value}
	it := findInterface(cfg, k.Iface)
	switch k.Kind {
	case KindSysctl:
		want := sysctlValue(cfg, k.ID)
		c.Desired, c.Write = want, want
		if k.Err == nil {
			c.Differs = strings.Join(strings.Fields(k.Value), " ") != strings.Join(strings.Fields(want), " ")
		}
	case KindRPSSockFlowEntries:
		if cfg.RPSSockFlowEntries == nil {
			c.Err = fmt.Errorf("nic: %s: not in the config the state was observed with", k.ID)
			break
		}
		diffCount(&c, k, *cfg.RPSSockFlowEntries)
	case KindRPSFlowCnt:
		if it.RPSFlowCnt == nil {
			c.Err = fmt.Errorf("nic: %s %s: not in the config the state was observed with", k.Kind, k.ID)
			break
		}
		diffCount(&c, k, *it.RPSFlowCnt)
	case KindRPSCPUs:
		diffMask(&c, k, st.CPUs, it.RPSCPUs, true)
	case KindXPSCPUs:
		diffMask(&c, k, st.CPUs, it.XPSCPUs, false)
	case KindIRQAffinity:
		diffMask(&c, k, st.CPUs, it.IRQCPUs, false)
	default:
		c.Err = fmt.Errorf("nic: %s %s: unknown knob kind", k.Kind, k.ID)
	}
	if k.Err != nil && c.Err == nil {
		if k.Kind == KindXPSCPUs && errors.Is(k.Err, fs.ErrNotExist) {
			// The kernel hides xps_cpus on single-tx-queue devices.
			c.Reason = "xps_cpus not available (device with one tx queue): nothing to set"
			c.Unavailable = true
			return c
		}
		if k.Kind == KindRPSSockFlowEntries && errors.Is(k.Err, fs.ErrNotExist) {
			// A global knob: the kernel shows it in the initial network
			// namespace only.
			c.Reason = "not visible here (global knob, absent inside a child network namespace)"
			c.Unavailable = true
			return c
		}
		c.Differs = true
		c.Reason = "cannot read the current value: " + k.Err.Error()
		c.Err = k.Err
		if errors.Is(k.Err, fs.ErrNotExist) {
			c.Reason = "no such file on this node: " + k.Path
			c.Err = fmt.Errorf("nic: %s %s: %s: %w", k.Kind, k.ID, k.Path, ErrNotFound)
		}
	}
	if c.Err != nil {
		c.Differs = true
	}
	return c
}

func sysctlValue(cfg Config, id string) string {
	for name, v := range cfg.Sysctls {
		if canonicalSysctl(name) == id {
			return v
		}
	}
	return ""
}

// roundPow2 is the table size the kernel allocates for a requested count.
func roundPow2(n int) int {
	if n <= 1 {
		return n
	}
	return 1 << bits.Len(uint(n-1))
}

func diffCount(c *Change, k Knob, want int) {
	// Write the table size the kernel would allocate anyway, so that what
	// is written is what reads back.
	c.Write = strconv.Itoa(roundPow2(want))
	c.Desired = c.Write
	if r := roundPow2(want); r != want {
		c.Desired = fmt.Sprintf("%d (%d rounded up to a power of two, as the kernel does)", r, want)
	}
	if k.Err != nil {
		return
	}
	have, err := strconv.Atoi(k.Value)
	c.Differs = err != nil || have != roundPow2(want)
}

// DesiredCPUs resolves a CPU spec for the index-th queue or IRQ: "all" is
// the CPUs online (for RPS, minus the isolated ones), "spread" the
// index-th online CPU round robin ("spread:LIST" the index-th of LIST), a
// list must name only online CPUs.
func DesiredCPUs(spec string, index int, cpus CPUInfo, rps bool) (CPUSet, error) {
	if list, ok := spreadList(spec); ok && list != "" {
		set, err := DesiredCPUs(list, 0, cpus, false)
		if err != nil {
			return CPUSet{}, err
		}
		on := set.CPUs()
		if len(on) == 0 {
			return CPUSet{}, fmt.Errorf("no CPU to spread over")
		}
		return NewCPUSet(on[index%len(on)]), nil
	}
	switch spec {
	case CPUsAll:
		if rps {
			if s := cpus.Online.Minus(cpus.Isolated); !s.Empty() {
				return s, nil
			}
		}
		return cpus.Online, nil
	case CPUsNone:
		return CPUSet{}, nil
	case CPUsSpread:
		on := cpus.Online.CPUs()
		if len(on) == 0 {
			return CPUSet{}, fmt.Errorf("no CPU online")
		}
		return NewCPUSet(on[index%len(on)]), nil
	}
	set, err := ParseCPUList(spec)
	if err != nil {
		return CPUSet{}, err
	}
	if off := set.Minus(cpus.Online); !off.Empty() {
		return CPUSet{}, fmt.Errorf("cpus %s are not online (online: %s)", off, cpus.Online)
	}
	return set, nil
}

func diffMask(c *Change, k Knob, cpus CPUInfo, spec string, rps bool) {
	want, err := DesiredCPUs(spec, k.Index, cpus, rps)
	if err != nil {
		c.Desired = spec
		c.Err = fmt.Errorf("nic: %s %s: %q: %w", k.Kind, k.ID, spec, err)
		c.Reason = "cannot be used on this node: " + err.Error()
		return
	}
	c.Desired, c.Write = describeCPUs(want), want.Mask()
	if k.Err != nil {
		return
	}
	have, err := ParseMask(k.Value)
	if err != nil {
		c.Differs = true
		c.Reason = "current value is not a CPU mask"
		return
	}
	c.Current = describeCPUs(have)
	c.Differs = !have.Equal(want)
}

// describeCPUs renders a mask for people: "none", "cpu 2", "cpus 0-3".
func describeCPUs(s CPUSet) string {
	switch s.Count() {
	case 0:
		return CPUsNone
	case 1:
		return "cpu " + s.String()
	}
	return "cpus " + s.String()
}

// DriftReason says why a knob gitgw had brought to its value differs now,
// naming the likely cause when the value says it: queues re-created by a
// driver reset or `ethtool -L` come back with RPS, RFS and XPS off;
// irqbalance rewrites IRQ affinities every few seconds.
func DriftReason(c Change) string {
	const base = "changed outside gitgw"
	switch {
	case c.Kind == KindIRQAffinity:
		return base + " (irqbalance running?)"
	case (c.Kind == KindRPSCPUs || c.Kind == KindXPSCPUs) && c.Current == CPUsNone,
		c.Kind == KindRPSFlowCnt && c.Current == "0":
		return base + " (reset to 0: queue re-created by a driver reset or ethtool -L?)"
	}
	return base
}
