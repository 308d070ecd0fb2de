package lab

import (
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// StartHAProxyIn is StartHAProxy inside namespace ns: a gateway of a lab
// running HAProxy on its VIP, for benchmarks that compare it with kernel
// forwarding on the same backends. `ip netns exec` execs haproxy in place,
// so the PID killed at the end is haproxy's own.
func StartHAProxyIn(t testing.TB, ns *Netns, cfg HAProxyConfig) *HAProxy {
	t.Helper()
	RequireCommand(t, "haproxy")
	bin, _ := LookPath("haproxy")
	path := t.TempDir() + "/haproxy.cfg"
	if err := os.WriteFile(path, []byte(cfg.Render()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s\n%s", err, out, cfg.Render())
	}
	cmd := exec.Command("ip", "netns", "exec", ns.Name, bin, "-db", "-f", path)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start haproxy in %s: %v", ns.Name, err)
	}
	h := &HAProxy{Cmd: cmd, Config: path}
	t.Cleanup(func() {
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range cfg.Services {
		for {
			err := ns.Do(func() error {
				c, err := net.DialTimeout("tcp", s.Bind, time.Second)
				if err == nil {
					c.Close()
				}
				return err
			})
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("haproxy in %s never accepted on %s: %v", ns.Name, s.Bind, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return h
}
