package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gitgw/gitgw/test/lab"
	"github.com/gitgw/gitgw/test/systemd"
)

// topology is the demo's lab: a switch namespace with two bridges, br0 for
// the external network 203.0.113.0/24 and br1 for the internal network
// 198.51.100.0/24; two gateways, each a set of namespaces with systemd as
// PID 1 (test/systemd) and an eth0 and eth1; a client on the external side.
// Everything it creates is listed so that close removes it, whatever
// happened before.
type topology struct {
	// shared is a host directory bound into both gateways at the same path:
	// the site repository and what the gateways' units read from it.
	shared string
	sw     string
	client *lab.Netns
	gws    []*gateway

	netns []string
	ports int
}

// gateway is one gateway host: its network namespace and the systemd that
// runs in it.
type gateway struct {
	name  string // gw1, gw2: its node name in the site and its hostname
	ext   string // eth0's address
	int   string // eth1's address
	ns    *lab.Netns
	h     *systemd.Systemd
	bin   string // the gitgw binary, as the gateway sees it
	state string // the agent's state directory
}

// sh runs a host-side command (only `ip -n …`-style commands that address
// a namespace, git, and gitgw commands that read the repository) and
// returns its combined output, and an error that includes it.
func sh(ctx context.Context, name string, args ...string) (string, error) {
	var buf bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return buf.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(buf.String()))
	}
	return buf.String(), nil
}

func (t *topology) addNetns(ctx context.Context, prefix string) (*lab.Netns, error) {
	n := &lab.Netns{Name: lab.Unique("gwdemo-" + prefix + "-")}
	if _, err := sh(ctx, "ip", "netns", "add", n.Name); err != nil {
		return nil, err
	}
	t.netns = append(t.netns, n.Name)
	_, err := sh(ctx, "ip", "-n", n.Name, "link", "set", "lo", "up")
	return n, err
}

// attach connects n to bridge br of the switch with a veth pair, ifname
// inside n, addressed and up.
func (t *topology) attach(ctx context.Context, n *lab.Netns, ifname, br, addr string) error {
	t.ports++
	port := fmt.Sprintf("p%d", t.ports)
	for _, args := range [][]string{
		{"-n", t.sw, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", n.Name},
		{"-n", t.sw, "link", "set", port, "master", br},
		{"-n", t.sw, "link", "set", port, "up"},
		{"-n", n.Name, "addr", "add", addr, "dev", ifname},
		{"-n", n.Name, "link", "set", ifname, "up"},
	} {
		if _, err := sh(ctx, "ip", args...); err != nil {
			return err
		}
	}
	return nil
}

// up builds the networks and boots a systemd in each gateway, in parallel.
func (t *topology) up(ctx context.Context, gitgw string, backend []byte) error {
	var err error
	if t.shared, err = os.MkdirTemp("/run", "gitgw-demo-"); err != nil {
		return err
	}
	sw, err := t.addNetns(ctx, "sw")
	if err != nil {
		return err
	}
	t.sw = sw.Name
	for _, br := range []string{"br0", "br1"} {
		for _, args := range [][]string{
			{"-n", t.sw, "link", "add", br, "type", "bridge", "forward_delay", "0", "stp_state", "0"},
			{"-n", t.sw, "link", "set", br, "up"},
		} {
			if _, err := sh(ctx, "ip", args...); err != nil {
				return err
			}
		}
	}
	t.gws = []*gateway{
		{name: "gw1", ext: "203.0.113.11/24", int: "198.51.100.11/24"},
		{name: "gw2", ext: "203.0.113.12/24", int: "198.51.100.12/24"},
	}
	for _, g := range t.gws {
		if g.ns, err = t.addNetns(ctx, g.name); err != nil {
			return err
		}
		if err := t.attach(ctx, g.ns, "eth0", "br0", g.ext); err != nil {
			return err
		}
		if err := t.attach(ctx, g.ns, "eth1", "br1", g.int); err != nil {
			return err
		}
	}
	if t.client, err = t.addNetns(ctx, "client"); err != nil {
		return err
	}
	if err := t.attach(ctx, t.client, "eth0", "br0", "203.0.113.50/24"); err != nil {
		return err
	}

	errs := make([]error, len(t.gws))
	var wg sync.WaitGroup
	for i, g := range t.gws {
		wg.Go(func() { errs[i] = g.boot(ctx, t.shared, gitgw, backend) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// boot starts the gateway's systemd, with a system bus as on a real host
// (the agent's units driver uses it, and its signals need Subscribe()),
// names the host, installs gitgw and the backend program.
func (g *gateway) boot(ctx context.Context, shared, gitgw string, backend []byte) error {
	h, err := systemd.Start(ctx, systemd.Options{Name: "demo-" + g.name + "-", Netns: g.ns.Path(), RW: []string{shared}, SystemBus: true})
	if err != nil {
		return fmt.Errorf("%s: %w", g.name, err)
	}
	g.h = h
	if err := setHostname(h.PID, g.name); err != nil {
		return err
	}
	if g.bin, err = h.Install(gitgw, "gitgw"); err != nil {
		return err
	}
	g.state = filepath.Join(h.StateDir, "var-lib-gitgw")
	if err := os.MkdirAll(g.state, 0o750); err != nil {
		return err
	}
	// The backend lives in the gateway's own /run (a tmpfs of its own), at
	// the path the site's app@ template names.
	dir := filepath.Join(fmt.Sprintf("/proc/%d/root", h.PID), "run", "gitgw-demo")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "app.py"), backend, 0o644)
}

// setHostname names the host whose PID 1 is pid (its own uts namespace):
// the backends tell their gateway by its hostname.
func setHostname(pid int, name string) error {
	done := make(chan error, 1)
	go func() {
		// The thread switches namespace and is never unlocked: it ends
		// with this goroutine instead of going back to the scheduler.
		runtime.LockOSThread()
		f, err := os.Open(fmt.Sprintf("/proc/%d/ns/uts", pid))
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWUTS); err != nil {
			done <- fmt.Errorf("enter the uts namespace of %d: %w", pid, err)
			return
		}
		done <- unix.Sethostname([]byte(name))
	}()
	return <-done
}

// systemctl runs systemctl in the gateway (never on the host).
func (g *gateway) systemctl(ctx context.Context, args ...string) (string, error) {
	return g.h.Systemctl(ctx, args...)
}

// gitgw runs the gateway's gitgw inside the gateway.
func (g *gateway) gitgw(ctx context.Context, args ...string) (string, error) {
	return g.h.Try(ctx, g.bin, args...)
}

// hasVIP says whether the gateway holds addr on eth0.
func (g *gateway) hasVIP(ctx context.Context, addr string) (bool, string) {
	out, err := sh(ctx, "ip", "-n", g.ns.Name, "-o", "-4", "addr", "show", "dev", "eth0")
	if err != nil {
		return false, err.Error()
	}
	return strings.Contains(out, " "+addr+"/"), out
}

// get asks http://addr/ from the client and returns the answer's body.
func (t *topology) get(addr string) (string, error) {
	var body string
	err := t.client.Do(func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, "80"), time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.0\r\nHost: "+addr+"\r\n\r\n"); err != nil {
			return err
		}
		b, err := io.ReadAll(c)
		if err != nil {
			return err
		}
		_, b2, ok := bytes.Cut(b, []byte("\r\n\r\n"))
		if !ok || !bytes.HasPrefix(b, []byte("HTTP/1.0 200")) {
			return fmt.Errorf("unexpected answer %q", b)
		}
		body = strings.TrimSpace(string(b2))
		return nil
	})
	return body, err
}

// close stops every gateway's systemd (which kills everything in its
// namespaces), keeps their logs in keep when it is set, deletes the
// network namespaces and the shared directory. It never gives up half way.
func (t *topology) close(keep string) error {
	var errs []error
	for _, g := range t.gws {
		if g.h == nil {
			continue
		}
		if keep != "" {
			if err := os.WriteFile(filepath.Join(keep, g.name+"-console.log"), []byte(g.h.Log()), 0o644); err != nil {
				errs = append(errs, err)
			}
		}
		if err := g.h.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", g.name, err))
		}
	}
	for i := len(t.netns) - 1; i >= 0; i-- {
		if _, err := sh(context.Background(), "ip", "netns", "del", t.netns[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if t.shared != "" {
		if err := os.RemoveAll(t.shared); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
