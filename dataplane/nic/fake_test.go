package nic

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fakeNode is a sysfs and procfs tree in a temporary directory: the seam
// the unit tests fake (Tuner.SysRoot / Tuner.ProcRoot), never the kernel's
// behaviour beyond plain files.
type fakeNode struct {
	t          testing.TB
	sys, proc  string
	writes     *bytes.Buffer
	tunerCache *Tuner
}

func newFakeNode(t testing.TB, online, possible string) *fakeNode {
	t.Helper()
	root := t.TempDir()
	f := &fakeNode{t: t, sys: filepath.Join(root, "sys"), proc: filepath.Join(root, "proc"), writes: &bytes.Buffer{}}
	f.sysFile("devices/system/cpu/online", online)
	f.sysFile("devices/system/cpu/possible", possible)
	f.sysFile("devices/system/cpu/isolated", "")
	f.copyProc("softirqs", "testdata/softirqs")
	f.copyProc("interrupts", "testdata/interrupts")
	f.procFile("sys/net/core/rps_sock_flow_entries", "0")
	f.procFile("sys/net/ipv4/ip_forward", "0")
	f.procFile("sys/net/ipv4/ip_nonlocal_bind", "0")
	f.procFile("sys/net/ipv4/tcp_rmem", "4096\t131072\t6291456")
	f.procFile("sys/net/ipv4/conf/all/rp_filter", "0")
	f.procFile("sys/net/ipv4/conf/eth0.100/rp_filter", "0")
	return f
}

func (f *fakeNode) write(path, content string) {
	f.t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content+"\n"), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeNode) sysFile(rel, content string)  { f.write(filepath.Join(f.sys, rel), content) }
func (f *fakeNode) procFile(rel, content string) { f.write(filepath.Join(f.proc, rel), content) }

func (f *fakeNode) copyProc(rel, src string) {
	f.t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		f.t.Fatal(err)
	}
	f.procFile(rel, strings.TrimRight(string(b), "\n"))
}

func (f *fakeNode) read(path string) string {
	f.t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		f.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// nic adds a network device with rx and tx queues (values "0") and, when
// irqs are given, a virtio-style device whose PCI parent holds the MSI
// vectors, with /proc/irq/N/smp_affinity set to every CPU.
func (f *fakeNode) nic(name string, rx, tx int, irqs ...int) {
	f.t.Helper()
	q := filepath.Join(f.sys, "class/net", name, "queues")
	for i := range rx {
		f.write(filepath.Join(q, fmt.Sprintf("rx-%d", i), "rps_cpus"), "0")
		f.write(filepath.Join(q, fmt.Sprintf("rx-%d", i), "rps_flow_cnt"), "0")
	}
	for i := range tx {
		f.write(filepath.Join(q, fmt.Sprintf("tx-%d", i), "xps_cpus"), "0")
	}
	if len(irqs) == 0 {
		return
	}
	pci := filepath.Join(f.sys, "devices/pci0000:00/0000:00:03.0")
	virt := filepath.Join(pci, "virtio2")
	if err := os.MkdirAll(virt, 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Symlink(virt, filepath.Join(f.sys, "class/net", name, "device")); err != nil {
		f.t.Fatal(err)
	}
	for _, n := range irqs {
		f.write(filepath.Join(pci, "msi_irqs", strconv.Itoa(n)), "msix")
		f.procFile(filepath.Join("irq", strconv.Itoa(n), "smp_affinity"), "f")
	}
}

func (f *fakeNode) tuner() *Tuner {
	if f.tunerCache == nil {
		f.tunerCache = &Tuner{SysRoot: f.sys, ProcRoot: f.proc,
			Log: slog.New(slog.NewTextHandler(f.writes, &slog.HandlerOptions{ReplaceAttr: dropTime}))}
	}
	return f.tunerCache
}

// setCount runs Set and returns how many knobs it wrote.
func (f *fakeNode) set(cfg Config) (State, int, error) {
	f.t.Helper()
	before := strings.Count(f.writes.String(), "knob set")
	st, err := f.tuner().Set(context.Background(), cfg)
	return st, strings.Count(f.writes.String(), "knob set") - before, err
}

func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

func ptr[T any](v T) *T { return &v }
