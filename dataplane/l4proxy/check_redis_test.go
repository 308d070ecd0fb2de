package l4proxy

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// startRedis runs Debian's redis-server on a loopback port, as a replica
// of master when it is valid; it is killed by PID when the test ends.
func startRedis(t *testing.T, master netip.AddrPort) netip.AddrPort {
	t.Helper()
	bin, _ := lab.LookPath("redis-server")
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), closedPort(t))
	args := []string{"--port", fmt.Sprint(addr.Port()), "--bind", "127.0.0.1", "--dir", t.TempDir(),
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no", "--loglevel", "warning"}
	if master.IsValid() {
		args = append(args, "--replicaof", master.Addr().String(), fmt.Sprint(master.Port()))
	}
	cmd := exec.Command(bin, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	eventually(t, 20*time.Second, "redis-server on "+addr.String(), func() bool {
		c, err := net.DialTimeout("tcp", addr.String(), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr
}

// TestRedisRealMasterOnly: a real Redis master and its replica behind one
// service; the redis check with role master, and the tcp-check sequence
// HAProxy users write for it, keep only the master up.
func TestRedisRealMasterOnly(t *testing.T) {
	t.Parallel()
	lab.RequireCommand(t, "redis-server")
	master := startRedis(t, netip.AddrPort{})
	replica := startRedis(t, master)
	// Timeouts and Fall 2 leave room for a loaded CI box: the master must
	// not fail twice in a row by being slow.
	seq := &Check{Type: CheckSequence, Interval: 50 * time.Millisecond, Timeout: time.Second, Rise: 1, Fall: 2, Steps: []CheckStep{
		{Send: []byte("PING\r\n")}, {Expect: []byte("+PONG")},
		{Send: []byte("INFO replication\r\n")}, {Expect: []byte("role:master")},
		{Send: []byte("QUIT\r\n")}, {Expect: []byte("+OK")},
	}}
	role := &Check{Type: CheckRedis, Role: "master", Interval: 50 * time.Millisecond, Timeout: time.Second, Rise: 1, Fall: 2}
	servers := []Server{{Name: "master", Addr: master, Weight: 1}, {Name: "replica", Addr: replica, Weight: 1}}
	p := newTestPool(t, Options{}, Config{Services: []Service{
		{Name: "seq", Binds: []netip.AddrPort{freePort(t)}, Servers: servers, Check: seq},
		{Name: "role", Binds: []netip.AddrPort{freePort(t)}, Servers: servers, Check: role},
	}})
	for _, svc := range []string{"seq", "role"} {
		eventually(t, 20*time.Second, svc+": replica down, master checked", func() bool {
			return serverStats(p, svc, "replica").Status == "DOWN" && serverStats(p, svc, "master").Check == "L7 ok"
		})
		if st := serverStats(p, svc, "master"); st.Status != "UP" {
			t.Errorf("%s: master %+v, want UP", svc, st)
		}
	}
	if d := serverStats(p, "role", "replica").Check; !strings.Contains(d, "Redis role slave, want master") {
		t.Errorf("the replica's check says %q", d)
	}
}
