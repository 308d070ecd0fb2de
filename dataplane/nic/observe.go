package nic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// State is what Observe found: the CPUs, the current value of every knob
// the config names, and the spread of receive work over the CPUs.
type State struct {
	CPUs CPUInfo
	// Knobs lists every knob the config names, in a stable order: sysctls
	// by name, rps_sock_flow_entries, then per interface its rx queues,
	// tx queues and IRQs in numeric order.
	Knobs []Knob
	// Interfaces holds what was found of each configured interface.
	Interfaces map[string]*InterfaceState
	// NetRX is the spread of NET_RX softirqs over the CPUs: over the
	// Tuner's window when it has one, else since boot (What says which).
	NetRX Spread
	// Warnings are observations that failed without making the state
	// unusable (an unreadable /proc/softirqs, say).
	Warnings []string
}

// CPUInfo are the CPU sets the masks are computed from.
type CPUInfo struct {
	// Online CPUs (/sys/devices/system/cpu/online): "all" means these.
	Online CPUSet
	// Possible CPUs (…/possible): a mask bit beyond them is EOVERFLOW.
	Possible CPUSet
	// Isolated CPUs (…/isolated and …/nohz_full): RPS leaves them out.
	Isolated CPUSet
}

// InterfaceState is one configured interface as found on the node.
type InterfaceState struct {
	Name    string
	Present bool
	// RXQueues and TXQueues are the queue directories ("rx-0", …) in
	// numeric order.
	RXQueues, TXQueues []string
	// IRQs are the device's interrupts that /proc/irq has, in numeric order.
	IRQs []IRQ
	// Interrupts is the spread of those IRQs' counts over the CPUs, over
	// the same period as State.NetRX.
	Interrupts Spread
}

// IRQ is one interrupt of a NIC.
type IRQ struct {
	Num  int
	Name string // action name from /proc/interrupts, e.g. "eth0-TxRx-0"
}

// Knob is one file gitgw manages, with the value read from it.
type Knob struct {
	Kind string // KindSysctl, KindRPSCPUs, …
	ID   string // "net.ipv4.ip_forward", "eth0/rx-0", "eth0/irq-38"
	Path string
	// Iface is the interface the knob belongs to ("" for global knobs) and
	// Index its queue's or IRQ's position (used by "spread").
	Iface string
	Index int
	// Value is the content read, trimmed; empty when Err is set.
	Value string
	Err   error
}

// Observe reads the current value of every knob cfg names, the CPU sets,
// and the softirq and interrupt spread. A knob that cannot be read is
// recorded with its error (Knob.Err), not returned: the plan shows it.
// The error is for an invalid config or unreadable CPU sets.
func (t *Tuner) Observe(ctx context.Context, cfg Config) (State, error) {
	if err := cfg.Validate(); err != nil {
		return State{}, err
	}
	var st State
	var err error
	if st.CPUs, err = t.readCPUs(); err != nil {
		return State{}, err
	}
	names := slices.Sorted(maps.Keys(cfg.Sysctls))
	slices.SortFunc(names, func(a, b string) int { return strings.Compare(canonicalSysctl(a), canonicalSysctl(b)) })
	for _, name := range names {
		p, _ := sysctlPath(name)
		st.Knobs = append(st.Knobs, t.read(Knob{Kind: KindSysctl, ID: canonicalSysctl(name), Path: filepath.Join(t.proc(), "sys", p)}))
	}
	if cfg.RPSSockFlowEntries != nil {
		st.Knobs = append(st.Knobs, t.read(Knob{Kind: KindRPSSockFlowEntries, ID: "net.core.rps_sock_flow_entries",
			Path: filepath.Join(t.proc(), "sys/net/core/rps_sock_flow_entries")}))
	}

	var irqLines map[int]irqLine
	if len(cfg.Interfaces) > 0 {
		irqLines, err = t.interrupts()
		if err != nil {
			st.Warnings = append(st.Warnings, err.Error())
		}
	}
	st.Interfaces = map[string]*InterfaceState{}
	for _, it := range cfg.Interfaces {
		if err := ctx.Err(); err != nil {
			return State{}, fmt.Errorf("nic: observe: %w", err)
		}
		is, knobs, warn := t.observeInterface(it, irqLines)
		st.Interfaces[it.Name] = is
		st.Knobs = append(st.Knobs, knobs...)
		st.Warnings = append(st.Warnings, warn...)
	}

	if f, err := os.Open(filepath.Join(t.proc(), "softirqs")); err != nil {
		st.Warnings = append(st.Warnings, fmt.Sprintf("nic: read softirqs: %v", err))
	} else {
		st.NetRX, err = parseSoftirqs(f, "NET_RX")
		f.Close()
		if err != nil {
			st.Warnings = append(st.Warnings, "nic: "+err.Error())
		}
	}
	t.recentSpread(&st)
	return st, nil
}

// recentSpread labels the since-boot spreads as such, or replaces them by
// the window's figures when the Tuner has a window with two readings.
func (t *Tuner) recentSpread(st *State) {
	r, ok := t.Window.Recent()
	if ok && len(r.NetRX.PerCPU) > 0 {
		st.NetRX = r.NetRX
	} else if st.NetRX.What != "" {
		st.NetRX.What += " since boot"
	}
	for _, is := range st.Interfaces {
		if len(is.IRQs) == 0 {
			continue
		}
		if !ok {
			is.Interrupts.What += " since boot"
			continue
		}
		nums := make([]int, 0, len(is.IRQs))
		for _, q := range is.IRQs {
			nums = append(nums, q.Num)
		}
		is.Interrupts, _ = r.Interrupts(is.Name, nums)
	}
}

func (t *Tuner) interrupts() (map[int]irqLine, error) {
	f, err := os.Open(filepath.Join(t.proc(), "interrupts"))
	if err != nil {
		return nil, fmt.Errorf("nic: read interrupts: %w", err)
	}
	defer f.Close()
	lines, err := parseInterrupts(f)
	if err != nil {
		return nil, fmt.Errorf("nic: %w", err)
	}
	return lines, nil
}

func (t *Tuner) observeInterface(it Interface, irqLines map[int]irqLine) (*InterfaceState, []Knob, []string) {
	is := &InterfaceState{Name: it.Name}
	dir := filepath.Join(t.sys(), "class/net", it.Name)
	if _, err := os.Stat(dir); err != nil {
		return is, nil, nil
	}
	is.Present = true
	var warn []string
	qdir := filepath.Join(dir, "queues")
	entries, err := os.ReadDir(qdir)
	if err != nil {
		warn = append(warn, fmt.Sprintf("nic: %s: list queues: %v", it.Name, err))
	}
	for _, e := range entries {
		switch {
		case strings.HasPrefix(e.Name(), "rx-"):
			is.RXQueues = append(is.RXQueues, e.Name())
		case strings.HasPrefix(e.Name(), "tx-"):
			is.TXQueues = append(is.TXQueues, e.Name())
		}
	}
	slices.SortFunc(is.RXQueues, byQueueNumber)
	slices.SortFunc(is.TXQueues, byQueueNumber)

	var knobs []Knob
	for i, q := range is.RXQueues {
		id := it.Name + "/" + q
		if it.RPSCPUs != "" {
			knobs = append(knobs, t.read(Knob{Kind: KindRPSCPUs, ID: id, Path: filepath.Join(qdir, q, "rps_cpus"), Iface: it.Name, Index: i}))
		}
		if it.RPSFlowCnt != nil {
			knobs = append(knobs, t.read(Knob{Kind: KindRPSFlowCnt, ID: id, Path: filepath.Join(qdir, q, "rps_flow_cnt"), Iface: it.Name, Index: i}))
		}
	}
	if it.XPSCPUs != "" {
		for i, q := range is.TXQueues {
			knobs = append(knobs, t.read(Knob{Kind: KindXPSCPUs, ID: it.Name + "/" + q, Path: filepath.Join(qdir, q, "xps_cpus"), Iface: it.Name, Index: i}))
		}
	}

	nums, err := t.deviceIRQs(dir, irqLines)
	if err != nil {
		warn = append(warn, fmt.Sprintf("nic: %s: find IRQs: %v", it.Name, err))
	}
	is.Interrupts = Spread{What: it.Name + " interrupts"}
	total := map[int]uint64{}
	for i, n := range nums {
		l := irqLines[n]
		is.IRQs = append(is.IRQs, IRQ{Num: n, Name: l.Name})
		for _, c := range l.Counts {
			total[c.CPU] += c.Count
		}
		if it.IRQCPUs != "" {
			knobs = append(knobs, t.read(Knob{Kind: KindIRQAffinity, ID: fmt.Sprintf("%s/irq-%d", it.Name, n),
				Path: filepath.Join(t.proc(), "irq", strconv.Itoa(n), "smp_affinity"), Iface: it.Name, Index: i}))
		}
	}
	for _, cpu := range sortedInts(total) {
		is.Interrupts.PerCPU = append(is.Interrupts.PerCPU, CPUCount{CPU: cpu, Count: total[cpu]})
	}
	return is, knobs, warn
}

// deviceIRQs finds the interrupts of a network device: the MSI vectors of
// its device (or of the parent device, for virtio whose PCI function holds
// them), else its legacy IRQ line, else the vectors named after it. Vectors named "*-config" (virtio's
// configuration interrupt) are not queue IRQs and are left out, as are IRQs
// /proc/irq does not list. Virtual devices (veth, bridge) have none.
func (t *Tuner) deviceIRQs(netDir string, lines map[int]irqLine) ([]int, error) {
	dev := filepath.Join(netDir, "device")
	if _, err := os.Stat(dev); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	real, err := filepath.EvalSymlinks(dev)
	if err != nil {
		return nil, err
	}
	var nums []int
	for _, d := range []string{real, filepath.Dir(real)} {
		entries, err := os.ReadDir(filepath.Join(d, "msi_irqs"))
		if err != nil {
			continue
		}
		for _, e := range entries {
			if n, err := strconv.Atoi(e.Name()); err == nil {
				nums = append(nums, n)
			}
		}
		if len(nums) > 0 {
			break
		}
	}
	if len(nums) == 0 {
		if b, err := os.ReadFile(filepath.Join(real, "irq")); err == nil {
			if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n > 0 {
				nums = append(nums, n)
			}
		}
	}
	if len(nums) == 0 {
		// Platform NICs without MSI or an irq file: the vectors named
		// after the interface ("eth0", "eth0-rx-0"). Only for a device
		// that has a "device" link: a veth named like a host NIC must
		// never claim the host's IRQs (/proc/interrupts is global).
		name := filepath.Base(netDir)
		for n, l := range lines {
			if l.Name == name || strings.HasPrefix(l.Name, name+"-") {
				nums = append(nums, n)
			}
		}
	}
	slices.Sort(nums)
	out := nums[:0]
	for _, n := range nums {
		if strings.HasSuffix(lines[n].Name, "-config") {
			continue
		}
		if _, err := os.Stat(filepath.Join(t.proc(), "irq", strconv.Itoa(n))); err != nil {
			continue
		}
		out = append(out, n)
	}
	return out, nil
}

func byQueueNumber(a, b string) int {
	return queueNumber(a) - queueNumber(b)
}

func queueNumber(q string) int {
	_, n, _ := strings.Cut(q, "-")
	v, err := strconv.Atoi(n)
	if err != nil {
		return 1 << 30
	}
	return v
}

func sortedInts[V any](m map[int]V) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// read fills k.Value (or k.Err) from k.Path.
func (t *Tuner) read(k Knob) Knob {
	v, err := readValue(k.Path)
	k.Value, k.Err = v, err
	return k
}

// readValue reads a small kernel file, bounded so that a mistaken path
// (a device node) cannot make it read forever.
func readValue(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("nic: read %s: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return "", fmt.Errorf("nic: read %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (t *Tuner) readCPUs() (CPUInfo, error) {
	base := filepath.Join(t.sys(), "devices/system/cpu")
	var ci CPUInfo
	for _, f := range []struct {
		name     string
		dst      *CPUSet
		optional bool
	}{
		{"online", &ci.Online, false},
		{"possible", &ci.Possible, false},
		{"isolated", &ci.Isolated, true},
		{"nohz_full", nil, true},
	} {
		v, err := readValue(filepath.Join(base, f.name))
		if err != nil {
			if f.optional {
				continue
			}
			return CPUInfo{}, err
		}
		if v == "(null)" { // nohz_full when unset, on some kernels
			v = ""
		}
		set, err := ParseCPUList(v)
		if err != nil {
			return CPUInfo{}, fmt.Errorf("nic: %s/%s: %w", base, f.name, err)
		}
		if f.dst == nil {
			for _, c := range set.CPUs() {
				ci.Isolated.Add(c)
			}
			continue
		}
		*f.dst = set
	}
	if ci.Online.Empty() {
		return CPUInfo{}, fmt.Errorf("nic: %s/online lists no CPU", base)
	}
	if ci.Possible.Empty() {
		ci.Possible = ci.Online
	}
	return ci, nil
}

// Imbalance is a human report of how receive work is spread over the CPUs:
// one line for the NET_RX softirqs and one per configured interface that
// has IRQs, each naming the busiest CPU and its share. Plan and status show
// these lines; each says what it covers (the last minute, or since boot).
func (s State) Imbalance() []string {
	var out []string
	if len(s.NetRX.PerCPU) > 0 {
		out = append(out, s.NetRX.String())
	}
	for _, name := range slices.Sorted(maps.Keys(s.Interfaces)) {
		if is := s.Interfaces[name]; is.Present && len(is.IRQs) > 0 {
			out = append(out, is.Interrupts.String())
		}
	}
	return out
}
