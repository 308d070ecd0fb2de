package l4proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// TestResolveNameNetns runs the pool in a namespace with the system
// resolver: the server is a name in the namespace's own hosts file
// (/etc/netns/NAME/hosts, which `ip netns exec` mounts over /etc/hosts).
// Rewriting that file moves the name to a second backend: within the
// resolve interval new connections reach it, while a connection opened
// before the change keeps working with the first.
func TestResolveNameNetns(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip")
	t.Parallel()
	ns := lab.NewNetns(t, "dn")
	for _, a := range []string{"198.51.100.11/32", "198.51.100.12/32", "203.0.113.10/32"} {
		ns.Run(t, "ip", "addr", "add", a, "dev", "lo")
	}
	etc := filepath.Join("/etc/netns", ns.Name)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(etc) })
	hosts := filepath.Join(etc, "hosts")
	// The file is rewritten in place (same inode): the namespace's mount
	// of it follows.
	writeHosts := func(ip string) {
		t.Helper()
		if err := os.WriteFile(hosts, []byte("127.0.0.1 localhost\n"+ip+" app.lab.test\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeHosts("198.51.100.11")
	for _, b := range []struct{ name, addr string }{{"a", "198.51.100.11:8080"}, {"b", "198.51.100.12:8080"}} {
		var ln net.Listener
		if err := ns.Do(func() error {
			var err error
			ln, err = net.Listen("tcp4", b.addr)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		be := &backend{name: b.name, ln: ln, addr: ln.Addr().(*net.TCPAddr).AddrPort(), conns: map[net.Conn]bool{}}
		be.wg.Add(1)
		go be.serve()
		t.Cleanup(be.kill)
	}
	bind := netip.MustParseAddrPort("203.0.113.10:80")
	startHelperWith(t, func(name string, args ...string) *exec.Cmd {
		return ns.Command(context.Background(), name, args...)
	}, Config{Services: []Service{{
		Name: "web", Binds: []netip.AddrPort{bind}, ResolveInterval: 200 * time.Millisecond,
		Servers: []Server{{Name: "app", Host: "app.lab.test", Port: 8080, Weight: 100}},
	}}})
	dial := func() (string, net.Conn, error) {
		var (
			name string
			c    net.Conn
		)
		err := ns.Do(func() error {
			var err error
			name, c, err = dialName(bind)
			return err
		})
		return name, c, err
	}
	// The first lookup runs at once, in the background: poll until served.
	var old net.Conn
	eventually(t, 20*time.Second, "served by a", func() bool {
		name, c, err := dial()
		if err != nil {
			return false
		}
		if name != "a" {
			t.Fatalf("served by %q before the hosts file named it", name)
		}
		old = c
		return true
	})
	defer old.Close()

	writeHosts("198.51.100.12")
	// The resolver reads the file again within seconds (Go's resolver
	// checks /etc/hosts for changes every 5s), then the interval applies.
	eventually(t, 30*time.Second, "served by b", func() bool {
		name, c, err := dial()
		if err != nil {
			t.Fatalf("connection during the move: %v", err)
		}
		c.Close()
		return name == "b"
	})
	_ = old.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(old, "opened before the move\n"); err != nil {
		t.Fatalf("old connection cut: %v", err)
	}
	if got, err := bufio.NewReader(old).ReadString('\n'); err != nil || strings.TrimSpace(got) != "opened before the move" {
		t.Fatalf("old connection after the move: %q %v", got, err)
	}
	for i := range 5 {
		if name, c, err := dial(); err != nil || name != "b" {
			t.Fatalf("connection %d after the move: %q %v", i, name, err)
		} else {
			c.Close()
		}
	}
}
