package lab

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// HAProxyService is one `listen` section of a generated mode-tcp config.
type HAProxyService struct {
	Name    string
	Bind    string   // "127.0.0.1:18080"
	Servers []string // "127.0.0.1:19001"; named s1, s2, … in order
	Balance string   // default roundrobin
	Check   bool     // `check inter 2s fall 3 rise 2` on every server
	// Options are extra lines of the section (e.g. `option httpchk GET /`);
	// ServerOptions, when set, replaces the check settings of every server
	// line (e.g. `check inter 1s check-ssl verify none`).
	Options       []string
	ServerOptions string
}

// HAProxyConfig generates a HAProxy 2.6 `mode tcp` configuration with the
// settings the L4 benchmarks compare against (anchors: l4-anchors.md §3).
type HAProxyConfig struct {
	Threads  int // nbthread; default 1
	MaxConn  int // global maxconn; default 4096
	Splice   bool
	Services []HAProxyService
}

// Render returns the configuration text.
func (c HAProxyConfig) Render() string {
	threads, maxconn := c.Threads, c.MaxConn
	if threads <= 0 {
		threads = 1
	}
	if maxconn <= 0 {
		maxconn = 4096
	}
	var b strings.Builder
	fmt.Fprintf(&b, "global\n    nbthread %d\n    maxconn %d\n", threads, maxconn)
	if !c.Splice {
		b.WriteString("    nosplice\n")
	}
	b.WriteString("\ndefaults\n    mode tcp\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n" +
		"    timeout client-fin 5s\n    timeout tunnel 1h\n    retries 2\n    option redispatch\n")
	if c.Splice {
		b.WriteString("    option splice-auto\n")
	}
	for _, s := range c.Services {
		bal := s.Balance
		if bal == "" {
			bal = "roundrobin"
		}
		fmt.Fprintf(&b, "\nlisten %s\n    bind %s\n    balance %s\n", s.Name, s.Bind, bal)
		for _, o := range s.Options {
			fmt.Fprintf(&b, "    %s\n", o)
		}
		for i, srv := range s.Servers {
			fmt.Fprintf(&b, "    server s%d %s", i+1, srv)
			if s.ServerOptions != "" {
				b.WriteString(" " + s.ServerOptions)
			} else if s.Check {
				b.WriteString(" check inter 2s fall 3 rise 2")
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

// HAProxy is a haproxy process started by a test, stopped by PID.
type HAProxy struct {
	Cmd    *exec.Cmd
	Config string // path of the configuration file
}

// Pid is the haproxy process id (it runs in the foreground, -db).
func (h *HAProxy) Pid() int { return h.Cmd.Process.Pid }

// StartHAProxy writes cfg, checks it with `haproxy -c`, runs haproxy in the
// foreground and waits until every bind accepts. The process is killed by
// PID when the test ends.
func StartHAProxy(t testing.TB, cfg HAProxyConfig) *HAProxy {
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
	cmd := exec.Command(bin, "-db", "-f", path)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start haproxy: %v", err)
	}
	h := &HAProxy{Cmd: cmd, Config: path}
	t.Cleanup(func() {
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range cfg.Services {
		for {
			c, err := net.DialTimeout("tcp", s.Bind, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("haproxy never accepted on %s: %v", s.Bind, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return h
}
