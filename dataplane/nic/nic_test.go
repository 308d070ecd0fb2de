package nic

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/gitgw/gitgw/test/goldenfile"
)

func golden(t *testing.T, name, got string) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name+".golden"), []byte(got))
}

func renderChanges(changes []Change) string {
	var b strings.Builder
	for _, c := range changes {
		mark := "="
		if c.Differs {
			mark = "~"
		}
		fmt.Fprintf(&b, "%s %s %s: %q -> %q", mark, c.Kind, c.ID, c.Current, c.Desired)
		if c.Differs && c.Write != "" {
			fmt.Fprintf(&b, " write %q", c.Write)
		}
		if c.Reason != "" {
			fmt.Fprintf(&b, " (%s)", c.Reason)
		}
		if c.Err != nil {
			fmt.Fprintf(&b, " ERR")
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// seedConfig is the seed's tuning on a 4-CPU node: RPS on every CPU and
// RFS, one CPU per tx queue, IRQs spread, and the gateway sysctls.
func seedConfig() Config {
	return Config{
		Interfaces: []Interface{{
			Name: "eth0", RPSCPUs: "all", RPSFlowCnt: ptr(4096), XPSCPUs: "spread", IRQCPUs: "spread",
		}},
		RPSSockFlowEntries: ptr(32768),
		Sysctls: map[string]string{
			"net.ipv4.ip_forward":              "1",
			"net/ipv4/ip_nonlocal_bind":        "1",
			"net.ipv4.conf.all.rp_filter":      "2",
			"net/ipv4/conf/eth0.100/rp_filter": "1",
			"net.ipv4.tcp_rmem":                "4096 131072 6291456",
		},
	}
}

func TestObserveAndDiff(t *testing.T) {
	f := newFakeNode(t, "0-3", "0-7")
	f.nic("eth0", 2, 2, 37, 38, 39)
	f.sysFile("class/net/eth0/queues/rx-1/rps_cpus", "0000000f") // already all: no change
	f.sysFile("class/net/eth0/queues/rx-0/rps_flow_cnt", "4096")
	f.sysFile("class/net/eth0/queues/tx-1/xps_cpus", "00000002")
	cfg := seedConfig()
	st, err := f.tuner().Observe(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CPUs.Online.String() + " " + st.CPUs.Possible.String(); got != "0-3 0-7" {
		t.Errorf("cpus = %s", got)
	}
	is := st.Interfaces["eth0"]
	if got := fmt.Sprint(is.RXQueues, is.TXQueues, is.IRQs); got != "[rx-0 rx-1] [tx-0 tx-1] [{38 virtio2-input.0} {39 virtio2-output.0}]" {
		t.Errorf("interface = %s", got)
	}
	golden(t, "diff", renderChanges(Diff(cfg, st)))
	golden(t, "imbalance", strings.Join(st.Imbalance(), "\n")+"\n")
}

func TestSetIsIdempotent(t *testing.T) {
	f := newFakeNode(t, "0-3", "0-3")
	f.nic("eth0", 4, 4, 38, 39)
	cfg := seedConfig()
	st, n, err := f.set(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// 5 sysctls + rps_sock_flow_entries + 4×(rps_cpus, rps_flow_cnt) +
	// 4 xps_cpus + 2 IRQs, less tcp_rmem which already matched (tabs vs
	// spaces).
	if n != 5+1+8+4+2-1 {
		t.Errorf("first Set wrote %d knobs:\n%s", n, f.writes)
	}
	if p := Pending(Diff(cfg, st)); len(p) != 0 {
		t.Errorf("after Set, still pending: %s", renderChanges(p))
	}
	for path, want := range map[string]string{
		"class/net/eth0/queues/rx-3/rps_cpus":     "f",
		"class/net/eth0/queues/rx-3/rps_flow_cnt": "4096",
		"class/net/eth0/queues/tx-2/xps_cpus":     "4",
	} {
		if got := f.read(filepath.Join(f.sys, path)); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	for path, want := range map[string]string{
		"irq/38/smp_affinity":                  "1",
		"irq/39/smp_affinity":                  "2",
		"sys/net/core/rps_sock_flow_entries":   "32768",
		"sys/net/ipv4/conf/eth0.100/rp_filter": "1",
		"sys/net/ipv4/ip_nonlocal_bind":        "1",
	} {
		if got := f.read(filepath.Join(f.proc, path)); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	if _, n, err := f.set(cfg); err != nil || n != 0 {
		t.Errorf("second Set: wrote %d knobs, err %v", n, err)
	}

	// Drift: a queue value changed by hand is the only knob rewritten.
	f.sysFile("class/net/eth0/queues/rx-2/rps_cpus", "00000001")
	st, err = f.tuner().Observe(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := Pending(Diff(cfg, st))
	if len(p) != 1 || p[0].ID != "eth0/rx-2" || p[0].Current != "cpu 0" || p[0].Desired != "cpus 0-3" {
		t.Fatalf("drift not detected as one change: %s", renderChanges(p))
	}
	if _, n, err := f.set(cfg); err != nil || n != 1 {
		t.Errorf("drift Set: wrote %d knobs, err %v", n, err)
	}
}

func TestSetSelectedLeavesOtherKnobs(t *testing.T) {
	f := newFakeNode(t, "0-1", "0-1")
	f.nic("eth0", 2, 1)
	cfg := Config{Interfaces: []Interface{{Name: "eth0", RPSCPUs: "all"}}, Sysctls: map[string]string{"net.ipv4.ip_forward": "1"}}
	st, err := f.tuner().SetSelected(context.Background(), cfg, func(c Change) bool { return c.ID != "eth0/rx-1" })
	if err != nil {
		t.Fatal(err)
	}
	p := Pending(Diff(cfg, st))
	if len(p) != 1 || p[0].ID != "eth0/rx-1" {
		t.Errorf("pending: %s", renderChanges(p))
	}
}

func TestCountsCompareAfterKernelRounding(t *testing.T) {
	f := newFakeNode(t, "0-1", "0-1")
	f.nic("eth0", 1, 1)
	f.sysFile("class/net/eth0/queues/rx-0/rps_flow_cnt", "1024") // the kernel's answer to 1000
	f.procFile("sys/net/core/rps_sock_flow_entries", "32768")
	cfg := Config{Interfaces: []Interface{{Name: "eth0", RPSFlowCnt: ptr(1000)}}, RPSSockFlowEntries: ptr(32768)}
	if _, n, err := f.set(cfg); err != nil || n != 0 {
		t.Errorf("wrote %d knobs, err %v", n, err)
	}
	for n, want := range map[int]int{0: 0, 1: 1, 2: 2, 3: 4, 1000: 1024, 1024: 1024, 1025: 2048} {
		if got := roundPow2(n); got != want {
			t.Errorf("roundPow2(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestSetCollectsEveryFailure(t *testing.T) {
	f := newFakeNode(t, "0-1", "0-1")
	f.nic("eth0", 2, 1)
	// A knob the "kernel" refuses: a directory where the file should be
	// (EISDIR on write, as EOVERFLOW or EINVAL would come from sysfs).
	refused := filepath.Join(f.sys, "class/net/eth0/queues/rx-1/rps_flow_cnt")
	if err := os.Remove(refused); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(refused, 0o755); err != nil {
		t.Fatal(err)
	}
	f.write(filepath.Join(refused, "x"), "")
	cfg := Config{
		Interfaces: []Interface{
			{Name: "eth0", RPSCPUs: "0-3", RPSFlowCnt: ptr(256)}, // cpus 2-3 are not online
			{Name: "eth9", RPSCPUs: "all"},                       // no such interface
		},
		Sysctls: map[string]string{"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1"},
	}
	_, n, err := f.set(cfg)
	if err == nil {
		t.Fatal("Set succeeded")
	}
	msg := err.Error()
	for _, want := range []string{
		"cpus 2-3 are not online (online: 0-1)",
		"interface eth9: not found",
		"net.ipv6.conf.all.forwarding",
		`read ` + refused,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("error is not ErrNotFound: %v", err)
	}
	// What could be set was set: ip_forward and rx-0's flow count.
	if n != 2 || f.read(filepath.Join(f.proc, "sys/net/ipv4/ip_forward")) != "1" {
		t.Errorf("wrote %d knobs:\n%s", n, f.writes)
	}
}

func TestWriteErrorNamesFileAndValue(t *testing.T) {
	dir := t.TempDir()
	err := writeValue(dir, "f")
	if err == nil {
		t.Fatal("write to a directory succeeded")
	}
	if want := fmt.Sprintf("write %q to %s: ", "f", dir); !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q does not start with %q", err, want)
	}
	if !errors.Is(err, syscall.EISDIR) {
		t.Errorf("error does not wrap the errno: %v", err)
	}
	err = writeValue(filepath.Join(dir, "missing"), "1")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for valid
	}{
		{"seed", seedConfig(), ""},
		{"empty", Config{}, ""},
		{"bad cpu list", Config{Interfaces: []Interface{{Name: "eth0", RPSCPUs: "0-x"}}}, "eth0 rps_cpus"},
		{"spread on rps", Config{Interfaces: []Interface{{Name: "eth0", RPSCPUs: "spread"}}}, "only valid for xps_cpus"},
		{"spread list", Config{Interfaces: []Interface{{Name: "eth0", XPSCPUs: "spread:0-1", IRQCPUs: "spread:all"}}}, ""},
		{"spread bad list", Config{Interfaces: []Interface{{Name: "eth0", IRQCPUs: "spread:x"}}}, "irq_affinity"},
		{"spread empty list", Config{Interfaces: []Interface{{Name: "eth0", IRQCPUs: "spread:none"}}}, "spreads over no CPU"},
		{"irq none", Config{Interfaces: []Interface{{Name: "eth0", IRQCPUs: "none"}}}, "at least one CPU"},
		{"dup iface", Config{Interfaces: []Interface{{Name: "eth0"}, {Name: "eth0"}}}, "configured twice"},
		{"bad iface", Config{Interfaces: []Interface{{Name: "../x"}}}, "not valid"},
		{"flow cnt", Config{Interfaces: []Interface{{Name: "eth0", RPSFlowCnt: ptr(-1)}}}, "out of range"},
		{"sock flow", Config{RPSSockFlowEntries: ptr(1 << 30)}, "out of range"},
		{"sysctl dotdot", Config{Sysctls: map[string]string{"net/../../etc": "1"}}, "not valid"},
		{"sysctl empty", Config{Sysctls: map[string]string{"": "1"}}, "empty sysctl"},
		{"sysctl dots and slashes", Config{Sysctls: map[string]string{"net.ipv4.ip_forward": "1", "net/ipv4/ip_forward": "0"}}, "name the same knob"},
		{"sysctl twice", Config{RPSSockFlowEntries: ptr(1), Sysctls: map[string]string{"net.core.rps_sock_flow_entries": "1"}}, "also set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestSysctlNames(t *testing.T) {
	for _, tc := range []struct{ name, path, id string }{
		{"net.ipv4.ip_forward", "net/ipv4/ip_forward", "net.ipv4.ip_forward"},
		{"net/ipv4/conf/eth0.100/rp_filter", "net/ipv4/conf/eth0.100/rp_filter", "net.ipv4.conf.eth0.100.rp_filter"},
		{"/net/core/somaxconn/", "net/core/somaxconn", "net.core.somaxconn"},
	} {
		p, err := sysctlPath(tc.name)
		if err != nil || p != tc.path {
			t.Errorf("sysctlPath(%q) = %q, %v; want %q", tc.name, p, err, tc.path)
		}
		if id := canonicalSysctl(tc.name); id != tc.id {
			t.Errorf("canonicalSysctl(%q) = %q, want %q", tc.name, id, tc.id)
		}
	}
}

func TestUnavailableKnobsAreNotErrors(t *testing.T) {
	f := newFakeNode(t, "0-1", "0-1")
	f.nic("eth0", 1, 1)
	// Single-tx-queue devices have no xps_cpus file.
	if err := os.Remove(filepath.Join(f.sys, "class/net/eth0/queues/tx-0/xps_cpus")); err != nil {
		t.Fatal(err)
	}
	// A child network namespace has no rps_sock_flow_entries.
	if err := os.Remove(filepath.Join(f.proc, "sys/net/core/rps_sock_flow_entries")); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Interfaces: []Interface{{Name: "eth0", XPSCPUs: "all", IRQCPUs: "all"}}, RPSSockFlowEntries: ptr(4096)}
	st, n, err := f.set(cfg)
	if err != nil || n != 0 {
		t.Fatalf("wrote %d, err %v", n, err)
	}
	changes := Diff(cfg, st)
	got := renderChanges(changes)
	for _, want := range []string{"xps_cpus not available", "no IRQs for this device", "global knob"} {
		if !strings.Contains(got, want) {
			t.Errorf("changes lack %q:\n%s", want, got)
		}
	}
	for _, c := range changes {
		if !c.Unavailable || c.Differs {
			t.Errorf("%s %s: unavailable %v, differs %v", c.Kind, c.ID, c.Unavailable, c.Differs)
		}
	}
}

func TestObserveRejectsInvalidConfig(t *testing.T) {
	f := newFakeNode(t, "0-1", "0-1")
	if _, err := f.tuner().Observe(context.Background(), Config{Interfaces: []Interface{{Name: "eth0", RPSCPUs: "x"}}}); err == nil {
		t.Fatal("Observe accepted an invalid config")
	}
	if _, err := (&Tuner{SysRoot: t.TempDir()}).Observe(context.Background(), Config{}); err == nil {
		t.Fatal("Observe without CPU files succeeded")
	}
}

func TestIRQsByName(t *testing.T) {
	f := newFakeNode(t, "0-1", "0-1")
	f.copyProc("interrupts", "testdata/interrupts.platform")
	f.nic("eth0", 1, 1)
	// A platform device: a device directory without MSI vectors or irq.
	if err := os.MkdirAll(filepath.Join(f.sys, "devices/platform/soc/eth"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(f.sys, "devices/platform/soc/eth"), filepath.Join(f.sys, "class/net/eth0/device")); err != nil {
		t.Fatal(err)
	}
	f.nic("eth1", 1, 1) // virtual: no device link, never matched by name
	for _, n := range []string{"50", "51", "52", "53"} {
		f.procFile("irq/"+n+"/smp_affinity", "3")
	}
	cfg := Config{Interfaces: []Interface{{Name: "eth0", IRQCPUs: "spread"}, {Name: "eth1", IRQCPUs: "spread"}}}
	st, err := f.tuner().Observe(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(st.Interfaces["eth0"].IRQs, st.Interfaces["eth1"].IRQs); got != "[{50 eth0} {51 eth0-rx-1}] []" {
		t.Errorf("IRQs = %s", got)
	}
	if got := strings.Join(st.Imbalance(), "\n"); !strings.Contains(got, "eth0 interrupts since boot: cpu0 79%, cpu1 21%") {
		t.Errorf("imbalance: %s", got)
	}
}

// TestDiffWithAnotherConfigDoesNotPanic: a state observed with one config
// and compared with another that lacks its counts (a caller mixing two
// revisions) yields, for every knob observed, a change that differs and
// says why, instead of dereferencing the missing count.
func TestDiffWithAnotherConfigDoesNotPanic(t *testing.T) {
	f := newFakeNode(t, "0-1", "0-1")
	f.nic("eth0", 1, 1)
	cfg := Config{Interfaces: []Interface{{Name: "eth0", RPSFlowCnt: ptr(16)}}, RPSSockFlowEntries: ptr(16)}
	st, err := f.tuner().Observe(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	changes := Diff(Config{Interfaces: []Interface{{Name: "eth0"}}}, st)
	var got []string
	for _, c := range changes {
		got = append(got, c.Kind+" "+c.ID)
		if !c.Differs || c.Err == nil || !strings.Contains(c.Err.Error(), "not in the config the state was observed with") {
			t.Errorf("%s %s: differs %v, err %v; want a difference with the reason", c.Kind, c.ID, c.Differs, c.Err)
		}
	}
	var want []string
	for _, k := range st.Knobs {
		want = append(want, k.Kind+" "+k.ID)
	}
	if len(want) != 2 || !slices.Equal(got, want) {
		t.Errorf("changes for %v, want one for each of the 2 knobs observed: %v", got, want)
	}
}
