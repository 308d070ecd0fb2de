package lab

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// KeepalivedInstance is one vrrp_instance of a keepalived.conf written by
// RenderKeepalived: the reference peer of VRRP interop tests and
// benchmarks.
type KeepalivedInstance struct {
	Name      string
	Interface string
	VRID      int
	Priority  int
	// AdvertInt is keepalived's advert_int ("0.1", "1").
	AdvertInt string
	// Version is 2 or 3.
	Version      int
	AuthPass     string
	NoPreempt    bool
	VIPs         []string // "203.0.113.100/24"
	UnicastSrc   string
	UnicastPeers []string
	// Extra lines inside the vrrp_instance block.
	Extra []string
}

// RenderKeepalived returns a keepalived.conf with the given instances.
func RenderKeepalived(routerID string, insts ...KeepalivedInstance) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global_defs {\n  router_id %s\n  vrrp_garp_master_delay 0\n}\n", routerID)
	for _, in := range insts {
		fmt.Fprintf(&b, "vrrp_instance %s {\n  state BACKUP\n  interface %s\n  virtual_router_id %d\n  priority %d\n  advert_int %s\n  version %d\n",
			in.Name, in.Interface, in.VRID, in.Priority, in.AdvertInt, in.Version)
		if in.NoPreempt {
			b.WriteString("  nopreempt\n")
		}
		if in.AuthPass != "" {
			fmt.Fprintf(&b, "  authentication {\n    auth_type PASS\n    auth_pass %s\n  }\n", in.AuthPass)
		}
		if in.UnicastSrc != "" {
			fmt.Fprintf(&b, "  unicast_src_ip %s\n  unicast_peer {\n", in.UnicastSrc)
			for _, p := range in.UnicastPeers {
				fmt.Fprintf(&b, "    %s\n", p)
			}
			b.WriteString("  }\n")
		}
		b.WriteString("  virtual_ipaddress {\n")
		for _, v := range in.VIPs {
			fmt.Fprintf(&b, "    %s\n", v)
		}
		b.WriteString("  }\n")
		for _, l := range in.Extra {
			fmt.Fprintf(&b, "  %s\n", l)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// Keepalived is a keepalived VRRP daemon running in a namespace, in the
// foreground, logging to a file, with its own config and pid files: no
// syslog, no /etc, no /run/keepalived of the host.
type Keepalived struct {
	NS   *Netns
	Dir  string
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	log  *bytes.Buffer
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// StartKeepalived writes conf and runs `keepalived -P -n -l -D -G` in ns.
// The daemon is killed (both processes, by PID) when the test ends.
func StartKeepalived(t testing.TB, ns *Netns, conf string) *Keepalived {
	t.Helper()
	RequireCommand(t, "keepalived")
	bin, _ := LookPath("keepalived")
	k := &Keepalived{NS: ns, Dir: t.TempDir(), done: make(chan struct{}), log: &bytes.Buffer{}}
	cfg := filepath.Join(k.Dir, "keepalived.conf")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	k.cmd = exec.Command("ip", "netns", "exec", ns.Name, bin, "--vrrp", "--dont-fork", "--log-console", "--log-detail", "--no-syslog",
		"-f", cfg, "-p", filepath.Join(k.Dir, "keepalived.pid"), "-r", filepath.Join(k.Dir, "vrrp.pid"))
	w := lockedWriter{&k.mu, k.log}
	k.cmd.Stdout, k.cmd.Stderr = w, w
	if err := k.cmd.Start(); err != nil {
		t.Fatalf("start keepalived: %v", err)
	}
	go func() { _ = k.cmd.Wait(); close(k.done) }()
	t.Cleanup(func() {
		k.Kill()
		if t.Failed() {
			t.Logf("keepalived in %s:\n%s", ns.Name, k.Log())
		}
	})
	return k
}

// Log returns everything keepalived printed so far.
func (k *Keepalived) Log() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.log.String()
}

// WaitLog polls the log until it contains substr.
func (k *Keepalived) WaitLog(t testing.TB, substr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(k.Log(), substr) {
		if time.Now().After(deadline) {
			t.Fatalf("keepalived did not log %q within %v:\n%s", substr, within, k.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// VRRPPID returns the PID of keepalived's VRRP child, 0 if not known yet.
func (k *Keepalived) VRRPPID() int {
	b, err := os.ReadFile(filepath.Join(k.Dir, "vrrp.pid"))
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// PID is the parent (ip netns exec execs keepalived in place).
func (k *Keepalived) PID() int { return k.cmd.Process.Pid }

// Stop sends SIGTERM (keepalived sends priority 0 and removes its VIPs)
// and waits for the exit.
func (k *Keepalived) Stop(t testing.TB) {
	t.Helper()
	_ = k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("keepalived did not stop")
	}
}

// Kill SIGKILLs the VRRP child and the parent: a crash that leaves the
// VIPs configured.
func (k *Keepalived) Kill() {
	if pid := k.VRRPPID(); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = k.cmd.Process.Signal(syscall.SIGKILL)
	<-k.done
}
