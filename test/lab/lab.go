// Package lab builds the throwaway environments that gitgw's root-only tests
// run in: network namespaces joined by veth pairs and a bridge, entered either
// by a locked OS thread (for sockets opened from the test process) or by
// `ip netns exec` (for child processes, which then also see their own sysfs).
//
// Everything is created inside namespaces of its own — the bridge lives in a
// "switch" namespace and veth pairs are created there with their peer moved
// straight into the target namespace — so the host's interfaces, routes and
// sysctls are never touched. Every object is removed by t.Cleanup.
//
// Under CI=true a test that lacks root or a tool fails instead of skipping:
// nothing is silently skipped in CI.
package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// InCI reports whether the tests run under CI (CI=true), where a missing
// prerequisite is a failure rather than a skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable skips the test outside CI and fails it under CI.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("prerequisite missing under CI=true: %s", msg)
	}
	t.Skip(msg)
}

// RequireRoot stops the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root")
	}
}

// RequireCommand stops the test unless every named program is on PATH
// (or in /usr/sbin, where Debian puts keepalived, haproxy and sshd).
func RequireCommand(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := LookPath(n); err != nil {
			Unavailable(t, "needs %s: %v", n, err)
		}
	}
}

// LookPath finds a program on PATH, then in the sbin directories that a
// non-login root shell may lack.
func LookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := dir + "/" + name
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH or sbin", name)
}

// Unique returns prefix plus a short random suffix, for names that must not
// collide between test packages running at the same time. The result stays
// within the kernel's 15-byte interface-name limit when prefix is ≤ 8 bytes.
func Unique(prefix string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// Netns is a named network namespace (/run/netns/NAME), its loopback up.
type Netns struct {
	Name string
}

// NewNetns creates a namespace named gg<prefix><random> and deletes it, with
// every interface inside, when the test ends.
func NewNetns(t testing.TB, prefix string) *Netns {
	t.Helper()
	RequireRoot(t)
	RequireCommand(t, "ip")
	n := &Netns{Name: Unique("gg" + prefix)}
	Must(t, "ip", "netns", "add", n.Name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.Name).Run() })
	n.Run(t, "ip", "link", "set", "lo", "up")
	return n
}

// Path is the namespace's bind-mount, usable with setns(2).
func (n *Netns) Path() string { return "/run/netns/" + n.Name }

// Do runs fn on an OS thread switched into the namespace. Sockets opened by
// fn stay in the namespace after Do returns; goroutines started by fn do not
// inherit it. The thread is returned to the original namespace, or retired
// if that fails.
func (n *Netns) Do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("lab: open own netns: %w", err)
	}
	defer orig.Close()
	target, err := os.Open(n.Path())
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("lab: open netns %s: %w", n.Name, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("lab: enter netns %s: %w", n.Name, err)
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: it dies with its goroutine instead of
		// carrying the wrong namespace into other work.
		return fmt.Errorf("lab: leave netns %s: %w (fn: %v)", n.Name, err, ferr)
	}
	runtime.UnlockOSThread()
	return ferr
}

// Command returns a command that runs inside the namespace through
// `ip netns exec`, which also gives it a sysfs of the namespace.
func (n *Netns) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs a command inside the namespace and fails the test if it fails.
// It returns the combined output.
func (n *Netns) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	return Must(t, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Try runs a command inside the namespace and returns its output and error.
func (n *Netns) Try(name string, args ...string) (string, error) {
	return try("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Must runs a command on the host side (only ever `ip netns …` / `ip -n …`
// style commands that address a namespace) and fails the test on error.
func Must(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := try(name, args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

func try(name string, args ...string) (string, error) {
	var buf bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return buf.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(buf.String()))
	}
	return buf.String(), nil
}

// Switch is a namespace holding a bridge, br0, that other namespaces attach
// to: the lab's L2 segment.
type Switch struct {
	NS    *Netns
	ports int
}

// NewSwitch creates the switch namespace and its bridge.
func NewSwitch(t testing.TB) *Switch {
	t.Helper()
	s := &Switch{NS: NewNetns(t, "sw")}
	s.NS.Run(t, "ip", "link", "add", "br0", "type", "bridge")
	// No STP forwarding delay: ports forward as soon as they are up.
	s.NS.Run(t, "ip", "link", "set", "br0", "type", "bridge", "forward_delay", "0", "stp_state", "0")
	s.NS.Run(t, "ip", "link", "set", "br0", "up")
	return s
}

// Attach connects namespace n to the bridge with a veth pair: ifname inside n
// (addressed with addrs, CIDR form, brought up) and a port on br0. It returns
// the name of the switch-side port, which a test may set down to cut the link.
func (s *Switch) Attach(t testing.TB, n *Netns, ifname string, addrs ...string) string {
	t.Helper()
	s.ports++
	port := fmt.Sprintf("p%d", s.ports)
	s.NS.Run(t, "ip", "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", n.Name)
	s.NS.Run(t, "ip", "link", "set", port, "master", "br0")
	s.NS.Run(t, "ip", "link", "set", port, "up")
	for _, a := range addrs {
		args := []string{"addr", "add", a, "dev", ifname}
		if strings.Contains(a, ":") {
			args = []string{"-6", "addr", "add", a, "dev", ifname, "nodad"}
		}
		n.Run(t, "ip", args...)
	}
	n.Run(t, "ip", "link", "set", ifname, "up")
	return port
}

// SetPort sets a switch port up or down: cutting a node off the segment while
// its own interface stays up, as a failed cable or switch port would.
func (s *Switch) SetPort(t testing.TB, port string, up bool) {
	t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	s.NS.Run(t, "ip", "link", "set", port, state)
}

// Veth connects two namespaces directly: aIf in a, bIf in b, each addressed
// (CIDR) when the address is not empty, both brought up.
func Veth(t testing.TB, a *Netns, aIf, aAddr string, b *Netns, bIf, bAddr string) {
	t.Helper()
	a.Run(t, "ip", "link", "add", aIf, "type", "veth", "peer", "name", bIf, "netns", b.Name)
	for _, side := range []struct {
		ns       *Netns
		ifn, adr string
	}{{a, aIf, aAddr}, {b, bIf, bAddr}} {
		if side.adr != "" {
			side.ns.Run(t, "ip", "addr", "add", side.adr, "dev", side.ifn)
		}
		side.ns.Run(t, "ip", "link", "set", side.ifn, "up")
	}
}

// SkipShort skips a slow or privileged test under `go test -short` (make
// unit). CI never passes -short; if it ever did, the test fails instead of
// vanishing.
func SkipShort(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		Unavailable(t, "-short: %s", why)
	}
}
