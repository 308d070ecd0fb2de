package l4proxy

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestDrainKeepsSessions: a drained server (weight 0 or state drain)
// keeps its established connections and gets no new one.
func TestDrainKeepsSessions(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"weight0", "state"} {
		a, b := newBackend(t, "a"), newBackend(t, "b")
		bind := freePort(t)
		svc := Service{Name: "d", Binds: []netip.AddrPort{bind}, Servers: []Server{srvCfg(a, 1), srvCfg(b, 1)}}
		p := newTestPool(t, Options{}, Config{Services: []Service{svc}})
		var held net.Conn
		for held == nil {
			name, c, err := dialName(bind)
			if err != nil {
				t.Fatal(err)
			}
			if name == "a" {
				held = c
			} else {
				c.Close()
			}
		}
		defer held.Close()
		if how == "weight0" {
			svc.Servers[0].Weight = 0
		} else {
			svc.Servers[0].State = Drain
		}
		if err := p.Set(context.Background(), Config{Services: []Service{svc}}); err != nil {
			t.Fatal(err)
		}
		if st := serverStats(p, "d", "a"); st.Status != "DRAIN" || st.Current != 1 {
			t.Errorf("%s: drained server stats %+v", how, st)
		}
		for i := 0; i < 10; i++ {
			if name, err := roundTrip(bind, "x"); err != nil || name != "b" {
				t.Fatalf("%s: new connection %d went to %q (%v), want b", how, i, name, err)
			}
		}
		held.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(held, "still")
		buf := make([]byte, 5)
		if _, err := io.ReadFull(held, buf); err != nil || string(buf) != "still" {
			t.Errorf("%s: established connection on the drained server: %q %v", how, buf, err)
		}
	}
}

// TestShutdownSessionsOnDown: with ShutdownOnDown, a server marked down by
// its check loses its sessions at once; without, they are kept.
func TestShutdownSessionsOnDown(t *testing.T) {
	t.Parallel()
	for _, shut := range []bool{true, false} {
		// A server whose listener dies but whose accepted sessions live on:
		// the check fails while the sessions still work.
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().(*net.TCPAddr).AddrPort()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { defer c.Close(); io.Copy(c, c) }()
			}
		}()
		bind := freePort(t)
		p := newTestPool(t, Options{}, Config{Services: []Service{{
			Name: "sd", Binds: []netip.AddrPort{bind}, ShutdownOnDown: shut,
			Servers: []Server{{Name: "s", Addr: addr, Weight: 1}},
			Check:   &Check{Type: CheckTCP, Interval: 50 * time.Millisecond, Fall: 2, Rise: 2},
		}}})
		c, err := net.Dial("tcp", bind.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "1")
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		ln.Close()
		eventually(t, 20*time.Second, "server down", func() bool { return serverStats(p, "sd", "s").Status == "DOWN" })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "2")
		_, err = io.ReadFull(c, make([]byte, 1))
		if shut && err == nil {
			t.Error("session kept on a server marked down despite ShutdownOnDown")
		}
		if !shut && err != nil {
			t.Errorf("session cut on a server marked down without ShutdownOnDown: %v", err)
		}
	}
}
