package reconcile_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/nic"
	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/plan"
	"github.com/gitgw/gitgw/test/lab"
)

func tuningPtr(n int) *int { return &n }

// tuningNode is a node view holding only tuning, as the loader decodes it.
func tuningNode(iface string) *spec.Node {
	return &spec.Node{Name: "gw1", Node: spec.NodeSettings{Tuning: spec.Tuning{
		RPSSockFlowEntries: tuningPtr(32768),
		Interfaces: map[string]spec.NICTuning{
			iface: {RPSCPUs: "all", RPSFlowCnt: tuningPtr(1000), XPSCPUs: "0", IRQCPUs: "all"},
		},
		Sysctls: map[string]spec.Scalar{"net.ipv4.ip_forward": "1", "net.ipv4.ip_nonlocal_bind": "1"},
	}}}
}

func tuningWrite(t *testing.T, path, v string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(v+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// tuningFakeRoot is a 2-CPU node with eth0 (2 rx queues, 1 tx queue, two
// MSI vectors) as files in a temporary directory.
func tuningFakeRoot(t *testing.T) *nic.Tuner {
	t.Helper()
	root := t.TempDir()
	sys, proc := filepath.Join(root, "sys"), filepath.Join(root, "proc")
	tuningWrite(t, filepath.Join(sys, "devices/system/cpu/online"), "0-1")
	tuningWrite(t, filepath.Join(sys, "devices/system/cpu/possible"), "0-1")
	for _, q := range []string{"rx-0", "rx-1"} {
		tuningWrite(t, filepath.Join(sys, "class/net/eth0/queues", q, "rps_cpus"), "0")
		tuningWrite(t, filepath.Join(sys, "class/net/eth0/queues", q, "rps_flow_cnt"), "0")
	}
	tuningWrite(t, filepath.Join(sys, "class/net/eth0/queues/tx-0/xps_cpus"), "3")
	pci := filepath.Join(sys, "devices/pci0000:00/0000:00:03.0")
	for _, irq := range []string{"38", "39"} {
		tuningWrite(t, filepath.Join(pci, "msi_irqs", irq), "msix")
		tuningWrite(t, filepath.Join(proc, "irq", irq, "smp_affinity"), "3")
	}
	if err := os.MkdirAll(filepath.Join(pci, "virtio2"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(pci, "virtio2"), filepath.Join(sys, "class/net/eth0/device")); err != nil {
		t.Fatal(err)
	}
	tuningWrite(t, filepath.Join(proc, "sys/net/ipv4/ip_forward"), "0")
	tuningWrite(t, filepath.Join(proc, "sys/net/ipv4/ip_nonlocal_bind"), "0")
	tuningWrite(t, filepath.Join(proc, "sys/net/core/rps_sock_flow_entries"), "0")
	tuningWrite(t, filepath.Join(proc, "softirqs"), "    CPU0 CPU1\n NET_RX: 900 100")
	tuningWrite(t, filepath.Join(proc, "interrupts"),
		"     CPU0 CPU1\n 38: 70 10 PCI-MSIX 1-edge virtio2-input.0\n 39: 10 10 PCI-MSIX 2-edge virtio2-output.0")
	return &nic.Tuner{SysRoot: sys, ProcRoot: proc}
}

func tuningPlan(t *testing.T, d reconcile.Driver, n *spec.Node) map[string]plan.Change {
	t.Helper()
	changes, err := d.Plan(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]plan.Change{}
	for _, c := range changes {
		key := c.Kind + " " + c.ID
		if _, dup := out[key]; dup {
			t.Errorf("two changes for %s", key)
		}
		if c.Driver != "tuning" {
			t.Errorf("%s: driver %q", key, c.Driver)
		}
		out[key] = c
	}
	return out
}

func tuningActions(m map[string]plan.Change) string {
	var b strings.Builder
	for _, k := range sortedChangeKeys(m) {
		c := m[k]
		fmt.Fprintf(&b, "%s %s: %v -> %v drift=%v (%s)\n", c.Action, k, c.Before, c.After, c.Drift, c.Reason)
	}
	return b.String()
}

func sortedChangeKeys(m map[string]plan.Change) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if keys[j] < keys[i] {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	return keys
}

func TestTuningDriverPlanApplyDrift(t *testing.T) {
	tuner := tuningFakeRoot(t)
	d := reconcile.NewTuningDriver(tuner, nil)
	n := tuningNode("eth0")

	got := tuningPlan(t, d, n)
	want := map[string]plan.Action{
		"sysctl net.ipv4.ip_forward":                           plan.Update,
		"sysctl net.ipv4.ip_nonlocal_bind":                     plan.Update,
		"rps_sock_flow_entries net.core.rps_sock_flow_entries": plan.Update,
		"rps_cpus eth0/rx-0":                                   plan.Update,
		"rps_cpus eth0/rx-1":                                   plan.Update,
		"rps_flow_cnt eth0/rx-0":                               plan.Update,
		"rps_flow_cnt eth0/rx-1":                               plan.Update,
		"xps_cpus eth0/tx-0":                                   plan.Update,
		"irq_affinity eth0/irq-38":                             plan.Update, // spread over 0-1: cpu0
		"irq_affinity eth0/irq-39":                             plan.Update, // cpu1
	}
	if len(got) != len(want) {
		t.Errorf("plan has %d changes, want %d:\n%s", len(got), len(want), tuningActions(got))
	}
	for k, a := range want {
		if got[k].Action != a {
			t.Errorf("%s: action %q, want %q", k, got[k].Action, a)
		}
	}
	if c := got["rps_cpus eth0/rx-0"]; c.Before != "none" || c.After != "cpus 0-1" {
		t.Errorf("rx-0 rps_cpus: %v -> %v", c.Before, c.After)
	}
	var details []string
	for _, c := range got {
		details = append(details, c.Details...)
	}
	joined := strings.Join(details, "\n")
	for _, w := range []string{"NET_RX softirqs since boot: cpu0 90%, cpu1 10% — busiest cpu0 90%", "eth0 interrupts since boot: cpu0 80%, cpu1 20%"} {
		if !strings.Contains(joined, w) {
			t.Errorf("details lack %q:\n%s", w, joined)
		}
	}

	if err := d.Apply(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	for k, c := range tuningPlan(t, d, n) {
		if c.Action != plan.NoOp {
			t.Errorf("after apply, %s: %s (%s)", k, c.Action, c.Reason)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(tuner.ProcRoot, "irq/39/smp_affinity")); strings.TrimSpace(string(b)) != "2" {
		t.Errorf("irq 39 affinity = %q, want 2 (second IRQ on the second CPU)", b)
	}

	// A knob changed by hand: planned as drift, put back by Apply.
	tuningWrite(t, filepath.Join(tuner.SysRoot, "class/net/eth0/queues/rx-1/rps_cpus"), "1")
	got = tuningPlan(t, d, n)
	c := got["rps_cpus eth0/rx-1"]
	if c.Action != plan.Update || !c.Drift || c.Reason != "changed outside gitgw" || c.Before != "cpu 0" {
		t.Errorf("drift not planned:\n%s", tuningActions(got))
	}
	// The site changing a value is not drift.
	n2 := tuningNode("eth0")
	n2.Node.Tuning.Sysctls["net.ipv4.ip_forward"] = "0"
	if c := tuningPlan(t, d, n2)["sysctl net.ipv4.ip_forward"]; c.Drift || c.Action != plan.Update {
		t.Errorf("site change planned as %s drift=%v", c.Action, c.Drift)
	}
	if err := d.Apply(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	if c := tuningPlan(t, d, n)["rps_cpus eth0/rx-1"]; c.Action != plan.NoOp {
		t.Errorf("drift not corrected: %s", c.Action)
	}
}

func TestTuningDriverErrorsAndPending(t *testing.T) {
	tuner := tuningFakeRoot(t)
	// The global RFS table is absent inside a child network namespace.
	if err := os.Remove(filepath.Join(tuner.ProcRoot, "sys/net/core/rps_sock_flow_entries")); err != nil {
		t.Fatal(err)
	}
	d := reconcile.NewTuningDriver(tuner, nil)
	n := tuningNode("eth0")
	n.Node.Tuning.Interfaces["eth7"] = spec.NICTuning{RPSCPUs: "0-5"}
	got := tuningPlan(t, d, n)
	if c := got["rps_sock_flow_entries net.core.rps_sock_flow_entries"]; c.Action != plan.Pending || !strings.Contains(c.Reason, "global knob") {
		t.Errorf("rps_sock_flow_entries: %s (%s)", c.Action, c.Reason)
	}
	if c := got["interface eth7"]; c.Action != plan.Update || !strings.Contains(c.Reason, "not found") {
		t.Errorf("missing interface: %s (%s)", c.Action, c.Reason)
	}
	err := d.Apply(context.Background(), n)
	if err == nil || !strings.Contains(err.Error(), "interface eth7: not found") {
		t.Fatalf("Apply: %v", err)
	}
	// What could be applied was.
	if c := tuningPlan(t, d, n)["sysctl net.ipv4.ip_forward"]; c.Action != plan.NoOp {
		t.Errorf("ip_forward not applied despite another failure: %s", c.Action)
	}
	// What could not be observed is said under the plan.
	if err := os.Remove(filepath.Join(tuner.ProcRoot, "softirqs")); err != nil {
		t.Fatal(err)
	}
	var details []string
	for _, c := range tuningPlan(t, d, n) {
		details = append(details, c.Details...)
	}
	if got := strings.Join(details, "\n"); !strings.Contains(got, "warning: nic: read softirqs") {
		t.Errorf("no warning about softirqs in details:\n%s", got)
	}
	// An invalid CPU list (the loader should have caught it) fails Plan.
	n.Node.Tuning.Interfaces["eth0"] = spec.NICTuning{RPSCPUs: "zero"}
	if _, err := d.Plan(context.Background(), n); err == nil {
		t.Error("Plan accepted rps_cpus \"zero\"")
	}
}

func TestTuningConfigSpreadsIRQs(t *testing.T) {
	cfg := reconcile.TuningConfig(tuningNode("eth0"))
	if len(cfg.Interfaces) != 1 || cfg.Interfaces[0].IRQCPUs != "spread:all" || cfg.Sysctls["net.ipv4.ip_forward"] != "1" ||
		*cfg.Interfaces[0].RPSFlowCnt != 1000 || *cfg.RPSSockFlowEntries != 32768 {
		t.Errorf("config: %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
	empty := reconcile.TuningConfig(&spec.Node{})
	if len(empty.Interfaces) != 0 || empty.Sysctls != nil || empty.RPSSockFlowEntries != nil {
		t.Errorf("empty tuning: %+v", empty)
	}
}

// On a real kernel: a veth with four queues in a namespace, the driver
// applying through a sysfs mounted from inside it; a knob changed by hand
// with `ip netns exec` is planned as drift and put back.
func TestTuningDriverKernelDrift(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip")
	ns := lab.NewNetns(t, "tun")
	ns.Run(t, "ip", "link", "add", "eth0", "numrxqueues", "4", "numtxqueues", "4",
		"type", "veth", "peer", "name", "eth1", "numrxqueues", "4", "numtxqueues", "4")
	tuner := &nic.Tuner{SysRoot: lab.MountSysfs(t, ns)}
	d := reconcile.NewTuningDriver(tuner, nil)
	n := tuningNode("eth0")
	n.Node.Tuning.RPSSockFlowEntries = nil // global: never from a test

	inNS := func(fn func() error) {
		t.Helper()
		if err := ns.Do(fn); err != nil {
			t.Fatal(err)
		}
	}
	planNS := func() map[string]plan.Change {
		var m map[string]plan.Change
		inNS(func() error { m = tuningPlan(t, d, n); return nil })
		return m
	}
	inNS(func() error { return d.Apply(context.Background(), n) })
	for k, c := range planNS() {
		if c.Action != plan.NoOp && c.Action != plan.Pending {
			t.Errorf("after apply, %s: %s (%s)", k, c.Action, c.Reason)
		}
	}
	if v := strings.TrimSpace(ns.Run(t, "cat", "/sys/class/net/eth0/queues/rx-3/rps_flow_cnt")); v != "1024" {
		t.Errorf("rx-3 rps_flow_cnt = %s", v)
	}

	ns.Run(t, "sh", "-c", "echo 0 > /sys/class/net/eth0/queues/rx-3/rps_cpus && echo 0 > /proc/sys/net/ipv4/ip_nonlocal_bind")
	got := planNS()
	for k, reason := range map[string]string{
		"rps_cpus eth0/rx-3":               "changed outside gitgw (reset to 0: queue re-created by a driver reset or ethtool -L?)",
		"sysctl net.ipv4.ip_nonlocal_bind": "changed outside gitgw",
	} {
		if c := got[k]; c.Action != plan.Update || !c.Drift || c.Reason != reason {
			t.Errorf("%s: %s drift=%v reason %q\n%s", k, c.Action, c.Drift, c.Reason, tuningActions(got))
		}
	}
	inNS(func() error { return d.Apply(context.Background(), n) })
	if v := strings.TrimSpace(ns.Run(t, "cat", "/proc/sys/net/ipv4/ip_nonlocal_bind")); v != "1" {
		t.Errorf("ip_nonlocal_bind = %s after resync", v)
	}
	if c := planNS()["rps_cpus eth0/rx-3"]; c.Action != plan.NoOp {
		t.Errorf("rx-3 not restored: %s", c.Action)
	}
}

// TestTuningDriverSpreadOverTheLastMinute: with sampling on, the plan's
// spread lines and ReceiveSpread cover the last minute, so that CPU1
// taking 95 % of the NET_RX work now shows although CPU0 took 90 % since
// boot (fake time in a synctest bubble; the counters are fixture files
// that change between samples).
func TestTuningDriverSpreadOverTheLastMinute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tuner := tuningFakeRoot(t)
		d := reconcile.NewTuningDriver(tuner, nil)
		n := tuningNode("eth0")
		details := func() string {
			var out []string
			for _, c := range tuningPlan(t, d, n) {
				out = append(out, c.Details...)
			}
			return strings.Join(out, "\n")
		}
		d.StartSampling(0)
		synctest.Wait()
		if got := details(); !strings.Contains(got, "NET_RX softirqs since boot: cpu0 90%, cpu1 10%") {
			t.Errorf("one reading: want since boot:\n%s", got)
		}
		if _, ok := d.ReceiveSpread(); ok {
			t.Error("a spread from one reading")
		}

		tuningWrite(t, filepath.Join(tuner.ProcRoot, "softirqs"), "    CPU0 CPU1\n NET_RX: 1000 2000")
		tuningWrite(t, filepath.Join(tuner.ProcRoot, "interrupts"),
			"     CPU0 CPU1\n 38: 80 100 PCI-MSIX 1-edge virtio2-input.0\n 39: 10 10 PCI-MSIX 2-edge virtio2-output.0")
		time.Sleep(time.Minute)
		synctest.Wait()
		got := details()
		for _, w := range []string{
			"NET_RX softirqs over the last 1m0s: cpu0 5%, cpu1 95% — busiest cpu1 95% (even: 50%) of 2000",
			"eth0 interrupts over the last 1m0s: cpu0 10%, cpu1 90% — busiest cpu1 90% (even: 50%) of 100",
		} {
			if !strings.Contains(got, w) {
				t.Errorf("details lack %q:\n%s", w, got)
			}
		}
		rs, ok := d.ReceiveSpread()
		if !ok || fmt.Sprint(rs.IRQs) != "map[eth0:[38 39]]" || rs.Recent.To.Sub(rs.Recent.From) != time.Minute {
			t.Errorf("ReceiveSpread: %v %v %s", ok, rs.IRQs, rs.Recent.To.Sub(rs.Recent.From))
		}
		// Close ends the sampling loop (synctest fails on a goroutine left
		// behind in the bubble).
		if err := d.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestTuningSpreadRowWithoutInterfaces: with no interface tuned, the
// node's NET_RX spread is a row of its own, not a detail of the first
// sysctl (the demo once showed it under net.ipv4.ip_forward).
func TestTuningSpreadRowWithoutInterfaces(t *testing.T) {
	d := reconcile.NewTuningDriver(tuningFakeRoot(t), nil)
	n := tuningNode("eth0")
	n.Node.Tuning.Interfaces = nil
	got := tuningPlan(t, d, n)
	for k, c := range got {
		for _, det := range c.Details {
			if strings.Contains(det, "NET_RX") && c.Kind != plan.KindReceiveSpread {
				t.Errorf("%s carries %q", k, det)
			}
		}
	}
	row, ok := got[plan.KindReceiveSpread+" node"]
	if !ok || row.Action != plan.NoOp || !strings.Contains(strings.Join(row.Details, "\n"), "NET_RX softirqs since boot: cpu0 90%, cpu1 10%") {
		t.Errorf("receive spread row = %+v (present %v)", row, ok)
	}
}
