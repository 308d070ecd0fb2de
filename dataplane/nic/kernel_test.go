package nic

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gitgw/gitgw/test/lab"
)

// kernelLab is a network namespace holding a veth pair with four rx and tx
// queues (q0, q1), and a sysfs mounted from inside it.
type kernelLab struct {
	ns     *lab.Netns
	tuner  *Tuner
	logBuf *bytes.Buffer
}

func newKernelLab(t *testing.T) *kernelLab {
	t.Helper()
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip")
	ns := lab.NewNetns(t, "nic")
	addVeth(t, ns)
	l := &kernelLab{ns: ns, logBuf: &bytes.Buffer{}}
	l.tuner = &Tuner{SysRoot: lab.MountSysfs(t, ns), Log: slog.New(slog.NewTextHandler(l.logBuf, nil))}
	return l
}

func addVeth(t *testing.T, ns *lab.Netns) {
	t.Helper()
	ns.Run(t, "ip", "link", "add", "q0", "numrxqueues", "4", "numtxqueues", "4",
		"type", "veth", "peer", "name", "q1", "numrxqueues", "4", "numtxqueues", "4")
	ns.Run(t, "ip", "link", "set", "q0", "up")
	ns.Run(t, "ip", "link", "set", "q1", "up")
}

// set runs Set inside the namespace (so /proc/sys/net is the namespace's)
// and returns how many knobs it wrote.
func (l *kernelLab) set(t *testing.T, cfg Config) (State, int, error) {
	t.Helper()
	var st State
	var setErr error
	before := strings.Count(l.logBuf.String(), "knob set")
	if err := l.ns.Do(func() error {
		st, setErr = l.tuner.Set(context.Background(), cfg)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return st, strings.Count(l.logBuf.String(), "knob set") - before, setErr
}

func (l *kernelLab) observe(t *testing.T, cfg Config) State {
	t.Helper()
	var st State
	if err := l.ns.Do(func() (err error) {
		st, err = l.tuner.Observe(context.Background(), cfg)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return st
}

// cat reads a file through `ip netns exec`, an observer independent of the
// Tuner (it mounts its own sysfs for the namespace).
func (l *kernelLab) cat(t *testing.T, path string) string {
	t.Helper()
	return strings.TrimSpace(l.ns.Run(t, "cat", path))
}

func gatewayConfig() Config {
	return Config{
		Interfaces: []Interface{{Name: "q0", RPSCPUs: "all", RPSFlowCnt: ptr(1000), XPSCPUs: "spread", IRQCPUs: "all"}},
		Sysctls: map[string]string{
			"net.ipv4.ip_forward":             "1",
			"net.ipv4.ip_nonlocal_bind":       "1",
			"net.ipv4.conf.all.rp_filter":     "2",
			"net.ipv4.conf.q0.arp_ignore":     "1",
			"net/ipv4/conf/q0/arp_announce":   "2",
			"net.ipv4.conf.default.rp_filter": "2",
		},
	}
}

func hostValue(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestKernelSetVethQueuesAndSysctls(t *testing.T) {
	t.Parallel()
	l := newKernelLab(t)
	hostNonlocal := hostValue(t, "/proc/sys/net/ipv4/ip_nonlocal_bind")
	cfg := gatewayConfig()

	st, n, err := l.set(t, cfg)
	if err != nil {
		t.Fatalf("Set: %v\n%s", err, l.logBuf)
	}
	if n == 0 {
		t.Fatal("Set wrote nothing on a fresh veth")
	}
	if p := Pending(Diff(cfg, st)); len(p) != 0 {
		t.Fatalf("pending after Set:\n%s", renderChanges(p))
	}
	if got := len(st.Interfaces["q0"].RXQueues); got != 4 {
		t.Errorf("rx queues = %d, want 4", got)
	}
	online := st.CPUs.Online
	for q := range 4 {
		rps, err := ParseMask(l.cat(t, "/sys/class/net/q0/queues/rx-"+string(rune('0'+q))+"/rps_cpus"))
		if err != nil || !rps.Equal(online.Minus(st.CPUs.Isolated)) && !rps.Equal(online) {
			t.Errorf("rx-%d rps_cpus = %s, %v; want %s", q, rps, err, online)
		}
		if got := l.cat(t, "/sys/class/net/q0/queues/rx-"+string(rune('0'+q))+"/rps_flow_cnt"); got != "1024" {
			t.Errorf("rx-%d rps_flow_cnt = %s, want 1024 (1000 rounded up)", q, got)
		}
		xps, err := ParseMask(l.cat(t, "/sys/class/net/q0/queues/tx-"+string(rune('0'+q))+"/xps_cpus"))
		want := NewCPUSet(online.CPUs()[q%online.Count()])
		if err != nil || !xps.Equal(want) {
			t.Errorf("tx-%d xps_cpus = %s, %v; want %s", q, xps, err, want)
		}
	}
	for path, want := range map[string]string{
		"/proc/sys/net/ipv4/ip_forward":           "1",
		"/proc/sys/net/ipv4/ip_nonlocal_bind":     "1",
		"/proc/sys/net/ipv4/conf/all/rp_filter":   "2",
		"/proc/sys/net/ipv4/conf/q0/arp_ignore":   "1",
		"/proc/sys/net/ipv4/conf/q0/arp_announce": "2",
	} {
		if got := l.cat(t, path); got != want {
			t.Errorf("%s = %s in the namespace, want %s", path, got, want)
		}
	}
	if got := hostValue(t, "/proc/sys/net/ipv4/ip_nonlocal_bind"); got != hostNonlocal {
		t.Errorf("host ip_nonlocal_bind changed: %s → %s", hostNonlocal, got)
	}

	// veth has no IRQs: the plan says so rather than failing.
	if !strings.Contains(renderChanges(Diff(cfg, st)), "no IRQs for this device") {
		t.Errorf("no note about IRQs:\n%s", renderChanges(Diff(cfg, st)))
	}

	if _, n, err := l.set(t, cfg); err != nil || n != 0 {
		t.Errorf("second Set: wrote %d, err %v", n, err)
	}
}

func TestKernelDriftIsDetectedAndCorrected(t *testing.T) {
	t.Parallel()
	l := newKernelLab(t)
	cfg := gatewayConfig()
	if _, _, err := l.set(t, cfg); err != nil {
		t.Fatal(err)
	}
	// Someone switches RPS off on one queue and forwarding off, by hand.
	l.ns.Run(t, "sh", "-c", "echo 0 > /sys/class/net/q0/queues/rx-2/rps_cpus && echo 0 > /proc/sys/net/ipv4/ip_forward")
	p := Pending(Diff(cfg, l.observe(t, cfg)))
	got := renderChanges(p)
	if len(p) != 2 || !strings.Contains(got, "rps_cpus q0/rx-2") || !strings.Contains(got, "sysctl net.ipv4.ip_forward") {
		t.Fatalf("drift not detected as exactly two changes:\n%s", got)
	}
	if _, n, err := l.set(t, cfg); err != nil || n != 2 {
		t.Fatalf("Set after drift: wrote %d, err %v", n, err)
	}
	if v := l.cat(t, "/proc/sys/net/ipv4/ip_forward"); v != "1" {
		t.Errorf("ip_forward = %s after correction", v)
	}

	// The interface is re-created (as a driver reset or ethtool -L does):
	// its queues come back with RPS, RFS and XPS off.
	l.ns.Run(t, "ip", "link", "del", "q0")
	addVeth(t, l.ns)
	p = Pending(Diff(cfg, l.observe(t, cfg)))
	if len(p) < 8 { // 4 rps_flow_cnt + 4 rps_cpus at least
		t.Fatalf("re-created queues: only %d pending:\n%s", len(p), renderChanges(p))
	}
	st, _, err := l.set(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p := Pending(Diff(cfg, st)); len(p) != 0 {
		t.Errorf("pending after re-apply:\n%s", renderChanges(p))
	}
}

func TestKernelRefusalNamesFileAndValue(t *testing.T) {
	t.Parallel()
	l := newKernelLab(t)
	cfg := Config{
		Interfaces: []Interface{{Name: "q0", RPSFlowCnt: ptr(256)}},
		Sysctls:    map[string]string{"net.ipv4.conf.q0.arp_announce": "abc", "net.ipv4.ip_nonlocal_bind": "1"},
	}
	_, n, err := l.set(t, cfg)
	if err == nil {
		t.Fatal("Set accepted arp_announce=abc")
	}
	if want := `write "abc" to /proc/sys/net/ipv4/conf/q0/arp_announce: `; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q lacks %q", err, want)
	}
	if !errors.Is(err, syscall.EINVAL) {
		t.Errorf("error does not wrap EINVAL: %v", err)
	}
	if n != 5 { // four flow counts and ip_nonlocal_bind were still set
		t.Errorf("wrote %d knobs, want 5:\n%s", n, l.logBuf)
	}

	// A mask with a CPU beyond the possible ones: EOVERFLOW from the
	// kernel (EINVAL on some versions), the value left unchanged.
	st := l.observe(t, Config{Interfaces: []Interface{{Name: "q0", RPSCPUs: "none"}}})
	over := NewCPUSet(st.CPUs.Possible.Max() + 1).Mask()
	path := filepath.Join(l.tuner.SysRoot, "class/net/q0/queues/rx-0/rps_cpus")
	err = writeValue(path, over)
	if err == nil {
		t.Fatalf("kernel accepted mask %s", over)
	}
	if !errors.Is(err, syscall.EOVERFLOW) && !errors.Is(err, syscall.EINVAL) {
		t.Errorf("error class: %v", err)
	}
	if !strings.Contains(err.Error(), `"`+over+`"`) || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name file and value", err)
	}
}
