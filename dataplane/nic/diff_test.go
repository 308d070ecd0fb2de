package nic

import (
	"fmt"
	"io/fs"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestDiffTable: Diff over hand-made observations, one knob at a time.
func TestDiffTable(t *testing.T) {
	cpus := CPUInfo{Online: NewCPUSet(0, 1, 2, 3), Possible: NewCPUSet(0, 1, 2, 3), Isolated: NewCPUSet(3)}
	eth0 := func(st *State) {
		st.Interfaces = map[string]*InterfaceState{"eth0": {Name: "eth0", Present: true, RXQueues: []string{"rx-0"}, TXQueues: []string{"tx-0"}}}
	}
	knob := func(kind, id, value string, err error) Knob {
		k := Knob{Kind: kind, ID: id, Path: "/x/" + id, Value: value, Err: err}
		if kind != KindSysctl && kind != KindRPSSockFlowEntries {
			k.Iface = "eth0"
		}
		return k
	}
	type out struct {
		Kind, ID, Current, Desired, Write string
		Differs, Unavailable, Err         bool
	}
	for _, c := range []struct {
		name string
		cfg  Config
		knob Knob
		want []out
	}{
		{"sysctl in sync, fields compared apart from spacing", Config{Sysctls: map[string]string{"net.ipv4.ip_local_port_range": "1024 65000"}},
			knob(KindSysctl, "net.ipv4.ip_local_port_range", "1024\t65000", nil),
			[]out{{KindSysctl, "net.ipv4.ip_local_port_range", "1024\t65000", "1024 65000", "1024 65000", false, false, false}}},
		{"sysctl differs", Config{Sysctls: map[string]string{"net.ipv4.ip_forward": "1"}},
			knob(KindSysctl, "net.ipv4.ip_forward", "0", nil),
			[]out{{KindSysctl, "net.ipv4.ip_forward", "0", "1", "1", true, false, false}}},
		{"sysctl spelled with slashes", Config{Sysctls: map[string]string{"net/ipv4/ip_forward": "1"}},
			knob(KindSysctl, "net.ipv4.ip_forward", "1", nil),
			[]out{{KindSysctl, "net.ipv4.ip_forward", "1", "1", "1", false, false, false}}},
		{"rps all leaves the isolated CPU out; masks compare as bitmaps", Config{Interfaces: []Interface{{Name: "eth0", RPSCPUs: CPUsAll}}},
			knob(KindRPSCPUs, "eth0/rx-0", "00000000,00000007", nil),
			[]out{{KindRPSCPUs, "eth0/rx-0", "cpus 0-2", "cpus 0-2", "7", false, false, false}}},
		{"rps reset to none", Config{Interfaces: []Interface{{Name: "eth0", RPSCPUs: "0-1"}}},
			knob(KindRPSCPUs, "eth0/rx-0", "0", nil),
			[]out{{KindRPSCPUs, "eth0/rx-0", "none", "cpus 0-1", "3", true, false, false}}},
		{"a CPU not online", Config{Interfaces: []Interface{{Name: "eth0", RPSCPUs: "0-5"}}},
			knob(KindRPSCPUs, "eth0/rx-0", "0", nil),
			[]out{{KindRPSCPUs, "eth0/rx-0", "0", "0-5", "", true, false, true}}},
		{"flow count compared after rounding up", Config{Interfaces: []Interface{{Name: "eth0", RPSFlowCnt: ptr(3000)}}},
			knob(KindRPSFlowCnt, "eth0/rx-0", "4096", nil),
			[]out{{KindRPSFlowCnt, "eth0/rx-0", "4096", "4096 (3000 rounded up to a power of two, as the kernel does)", "4096", false, false, false}}},
		{"xps on a single-queue device: unavailable", Config{Interfaces: []Interface{{Name: "eth0", XPSCPUs: CPUsSpread}}},
			knob(KindXPSCPUs, "eth0/tx-0", "", fs.ErrNotExist),
			[]out{{KindXPSCPUs, "eth0/tx-0", "", "cpu 0", "1", false, true, false}}},
		{"rps_sock_flow_entries inside a child netns: unavailable", Config{RPSSockFlowEntries: ptr(32768)},
			knob(KindRPSSockFlowEntries, "net.core.rps_sock_flow_entries", "", fs.ErrNotExist),
			[]out{{KindRPSSockFlowEntries, "net.core.rps_sock_flow_entries", "", "32768", "32768", false, true, false}}},
		{"unreadable knob", Config{Sysctls: map[string]string{"net.ipv4.ip_forward": "1"}},
			knob(KindSysctl, "net.ipv4.ip_forward", "", fs.ErrPermission),
			[]out{{KindSysctl, "net.ipv4.ip_forward", "", "1", "1", true, false, true}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := State{CPUs: cpus, Knobs: []Knob{c.knob}}
			eth0(&st)
			var got []out
			for _, ch := range Diff(c.cfg, st) {
				got = append(got, out{ch.Kind, ch.ID, ch.Current, ch.Desired, ch.Write, ch.Differs, ch.Unavailable, ch.Err != nil})
			}
			if d := cmp.Diff(c.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
	// Interfaces: one missing, one virtual (no IRQs) asked for IRQ affinity.
	st := State{CPUs: cpus, Interfaces: map[string]*InterfaceState{"veth0": {Name: "veth0", Present: true}}}
	var got []string
	for _, ch := range Diff(Config{Interfaces: []Interface{{Name: "eth9", RPSCPUs: "0"}, {Name: "veth0", IRQCPUs: CPUsSpread}}}, st) {
		got = append(got, fmt.Sprintf("%s %s differs=%v unavailable=%v: %s", ch.Kind, ch.ID, ch.Differs, ch.Unavailable, ch.Reason))
	}
	want := []string{
		"interface eth9 differs=true unavailable=false: interface not found on this node",
		"irq_affinity veth0/irq differs=false unavailable=true: no IRQs for this device in /proc/irq (virtual device): nothing to set",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("interfaces (-want +got):\n%s", d)
	}
}

func TestDriftReason(t *testing.T) {
	for _, c := range []struct {
		ch   Change
		want string
	}{
		{Change{Kind: KindIRQAffinity, Current: "cpu 1"}, "changed outside gitgw (irqbalance running?)"},
		{Change{Kind: KindRPSCPUs, Current: CPUsNone}, "changed outside gitgw (reset to 0: queue re-created by a driver reset or ethtool -L?)"},
		{Change{Kind: KindRPSFlowCnt, Current: "0"}, "changed outside gitgw (reset to 0: queue re-created by a driver reset or ethtool -L?)"},
		{Change{Kind: KindRPSCPUs, Current: "cpu 1"}, "changed outside gitgw"},
		{Change{Kind: KindSysctl, Current: "0"}, "changed outside gitgw"},
	} {
		if got := DriftReason(c.ch); got != c.want {
			t.Errorf("%s %q: %q, want %q", c.ch.Kind, c.ch.Current, got, c.want)
		}
	}
}
