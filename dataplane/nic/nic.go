// Package nic tunes and observes the kernel knobs that decide how a gateway
// spreads packet work over its CPUs: RPS masks and RFS flow tables per rx
// queue, the global RFS socket table, XPS masks per tx queue, the IRQ
// affinity of the NIC's queues, and any sysctl (ip_forward, arp_ignore, …).
//
// It exists because hand-written tuning scripts hard-code masks ("f" fails
// with EOVERFLOW on a 2-CPU box), compare values as strings and are never
// re-run when a queue is re-created. Here every knob is a row of a table
// (kind, id, file, current value, desired value, reason), masks are computed
// from the CPUs actually online and compared as bitmaps, and Set writes only
// what differs, so the same config can be applied on every resync to correct
// drift.
//
// The kernel sits behind two root paths (SysRoot, ProcRoot) so the logic is
// tested against a fake tree; the real-kernel tests run the same code in a
// network namespace with its own sysfs mount. Observe also reads the spread
// of NET_RX softirqs and of the NIC's interrupts per CPU, the figures that
// show whether receive work lands on one CPU.
package nic

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
)

// Knob kinds, as they appear in changes and plans.
const (
	KindSysctl             = "sysctl"
	KindRPSCPUs            = "rps_cpus"
	KindRPSFlowCnt         = "rps_flow_cnt"
	KindXPSCPUs            = "xps_cpus"
	KindIRQAffinity        = "irq_affinity"
	KindRPSSockFlowEntries = "rps_sock_flow_entries"
	// KindInterface is the kind of the change that reports a configured
	// interface missing from the node.
	KindInterface = "interface"
)

// Special CPU list values.
const (
	// CPUsAll selects every CPU online (for RPS: every online CPU that is
	// not isolated, since RPS drops isolated ones).
	CPUsAll = "all"
	// CPUsNone is the empty mask: the feature is switched off.
	CPUsNone = "none"
	// CPUsSpread gives queue or IRQ i one CPU, the i-th online CPU (round
	// robin): the usual one-CPU-per-queue layout for XPS and IRQs.
	// "spread:LIST" spreads over the CPUs of LIST instead ("spread:2-5").
	CPUsSpread = "spread"
)

// Config is the tuning wanted on one node. Fields left empty (or nil) are
// not managed: gitgw neither reads nor writes them.
type Config struct {
	// Interfaces are tuned per queue.
	Interfaces []Interface
	// RPSSockFlowEntries sets net.core.rps_sock_flow_entries, the global
	// RFS socket flow table (rounded up by the kernel to a power of two;
	// 0 switches RFS off). It is global: not visible inside a child netns.
	RPSSockFlowEntries *int
	// Sysctls maps a sysctl name to its value. Names use dots
	// ("net.ipv4.ip_forward") or slashes ("net/ipv4/conf/eth0.100/rp_filter",
	// needed when a component holds a dot, such as a VLAN interface).
	// Values with several fields compare field by field.
	Sysctls map[string]string
}

// Interface is the tuning of one network interface's queues.
type Interface struct {
	Name string
	// RPSCPUs is written to every rx-N/rps_cpus: a CPU list ("0-3,6"),
	// "all", "none" or "" (not managed).
	RPSCPUs string
	// RPSFlowCnt is written to every rx-N/rps_flow_cnt (the kernel rounds
	// it up to a power of two). Nil: not managed.
	RPSFlowCnt *int
	// XPSCPUs is written to every tx-N/xps_cpus: a CPU list, "all", "none",
	// "spread", "spread:LIST" or "".
	XPSCPUs string
	// IRQCPUs is the smp_affinity of every IRQ of the interface's device
	// (where /proc/irq has them): a CPU list, "all", "spread",
	// "spread:LIST" (IRQ i pinned to the i-th CPU of LIST) or "".
	IRQCPUs string
}

// Validate checks the config's syntax without looking at the node: CPU
// lists, counts, sysctl names, duplicates. Every problem is reported.
func (c Config) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for _, it := range c.Interfaces {
		if it.Name == "" || strings.ContainsAny(it.Name, "/ ") || it.Name == "." || it.Name == ".." {
			errs = append(errs, fmt.Errorf("nic: interface name %q is not valid", it.Name))
			continue
		}
		if seen[it.Name] {
			errs = append(errs, fmt.Errorf("nic: interface %s is configured twice", it.Name))
		}
		seen[it.Name] = true
		for _, f := range []struct{ field, val string }{
			{"rps_cpus", it.RPSCPUs}, {"xps_cpus", it.XPSCPUs}, {"irq_affinity", it.IRQCPUs},
		} {
			if err := checkCPUSpec(f.val, f.field != "rps_cpus"); err != nil {
				errs = append(errs, fmt.Errorf("nic: %s %s: %w", it.Name, f.field, err))
			}
		}
		if it.IRQCPUs == CPUsNone || (it.IRQCPUs != "" && isEmptyList(it.IRQCPUs)) {
			errs = append(errs, fmt.Errorf("nic: %s irq_affinity: an IRQ needs at least one CPU", it.Name))
		}
		if it.RPSFlowCnt != nil && (*it.RPSFlowCnt < 0 || *it.RPSFlowCnt > 1<<30) {
			errs = append(errs, fmt.Errorf("nic: %s rps_flow_cnt %d out of range 0..2^30", it.Name, *it.RPSFlowCnt))
		}
	}
	if c.RPSSockFlowEntries != nil && (*c.RPSSockFlowEntries < 0 || *c.RPSSockFlowEntries > 1<<29) {
		errs = append(errs, fmt.Errorf("nic: rps_sock_flow_entries %d out of range 0..2^29", *c.RPSSockFlowEntries))
	}
	ids := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(c.Sysctls)) {
		if _, err := sysctlPath(name); err != nil {
			errs = append(errs, err)
			continue
		}
		if other, dup := ids[canonicalSysctl(name)]; dup {
			errs = append(errs, fmt.Errorf("nic: sysctls %s and %s name the same knob", other, name))
		}
		ids[canonicalSysctl(name)] = name
		if c.RPSSockFlowEntries != nil && canonicalSysctl(name) == "net.core.rps_sock_flow_entries" {
			errs = append(errs, fmt.Errorf("nic: sysctl %s is also set by rps_sock_flow_entries", name))
		}
	}
	return errors.Join(errs...)
}

// spreadList splits "spread" / "spread:LIST"; list is s itself when s is
// not a spread spec.
func spreadList(s string) (list string, ok bool) {
	if s == CPUsSpread {
		return "", true
	}
	if l, ok := strings.CutPrefix(s, CPUsSpread+":"); ok {
		return l, true
	}
	return s, false
}

func isEmptyList(s string) bool {
	set, err := ParseCPUList(s)
	return err == nil && set.Empty()
}

func checkCPUSpec(s string, spreadOK bool) error {
	switch s {
	case "", CPUsAll, CPUsNone:
		return nil
	}
	list, isSpread := spreadList(s)
	if isSpread {
		if !spreadOK {
			return fmt.Errorf("%q is only valid for xps_cpus and irq_affinity", s)
		}
		if list == "" || list == CPUsAll {
			return nil
		}
	}
	set, err := ParseCPUList(list)
	if err == nil && isSpread && set.Empty() {
		err = fmt.Errorf("%q spreads over no CPU", s)
	}
	return err
}

// sysctlPath turns a sysctl name into its path under /proc/sys.
func sysctlPath(name string) (string, error) {
	p := name
	if !strings.Contains(name, "/") {
		p = strings.ReplaceAll(name, ".", "/")
	}
	p = strings.Trim(p, "/")
	if p == "" {
		return "", fmt.Errorf("nic: empty sysctl name")
	}
	if slices.Contains(strings.Split(p, "/"), "..") || slices.Contains(strings.Split(p, "/"), "") || strings.ContainsAny(p, " \n") {
		return "", fmt.Errorf("nic: sysctl name %q is not valid", name)
	}
	return p, nil
}

// canonicalSysctl is the dotted form of a sysctl name, used as its id.
// Slash names keep dots inside components (eth0.100), as sysctl(8) prints.
func canonicalSysctl(name string) string {
	if !strings.Contains(name, "/") {
		return name
	}
	return strings.ReplaceAll(strings.Trim(name, "/"), "/", ".")
}

// Tuner observes and sets the knobs of a Config. The zero value works on
// the real /sys and /proc; tests point the roots at a fake tree, or at a
// sysfs mounted from inside a network namespace.
type Tuner struct {
	// SysRoot is where sysfs is mounted; "" means /sys. Note that
	// /sys/class/net lists the devices of the netns that mounted sysfs.
	SysRoot string
	// ProcRoot is where procfs is mounted; "" means /proc. /proc/sys/net
	// follows the network namespace of the calling thread.
	ProcRoot string
	// Log receives one line per write; nil discards.
	Log *slog.Logger
	// Window, when set and once it has two readings, gives the NET_RX and
	// interrupt spreads Observe reports over the last minute instead of
	// since boot: what an operator needs is what happens now.
	Window *Sampler
}

func (t *Tuner) sys() string {
	if t.SysRoot == "" {
		return "/sys"
	}
	return t.SysRoot
}

func (t *Tuner) proc() string {
	if t.ProcRoot == "" {
		return "/proc"
	}
	return t.ProcRoot
}

func (t *Tuner) log() *slog.Logger {
	if t.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return t.Log
}
