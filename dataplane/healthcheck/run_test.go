package healthcheck

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestTarget: a server's own check port wins over the check's port, which
// wins over the server's port; the check's address replaces the server's.
func TestTarget(t *testing.T) {
	srv := netip.MustParseAddrPort("198.51.100.11:5432")
	for _, tt := range []struct {
		ck   Check
		port uint16
		want string
	}{
		{Check{}, 0, "198.51.100.11:5432"},
		{Check{Port: 8008}, 0, "198.51.100.11:8008"},
		{Check{Port: 8008}, 9000, "198.51.100.11:9000"},
		{Check{}, 9000, "198.51.100.11:9000"},
		{Check{Address: netip.MustParseAddr("198.51.100.99"), Port: 8008}, 9000, "198.51.100.99:9000"},
	} {
		if got := Target(srv, &tt.ck, tt.port); got.String() != tt.want {
			t.Errorf("Target(%v, port %d, server port %d) = %v, want %s", srv, tt.ck.Port, tt.port, got, tt.want)
		}
	}
}

// TestLoopCheckPort: a server whose service port is closed comes up when
// its own check port answers, and a loop reports the flip once.
func TestLoopCheckPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	service := netip.MustParseAddrPort(closed.Addr().String())
	closed.Close() // the service port: nothing listens
	checkPort := netip.MustParseAddrPort(ln.Addr().String()).Port()

	ck := (&Check{Type: CheckTCP, Interval: 20 * time.Millisecond, Rise: 2, Fall: 1}).WithDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	results := make(chan Result, 16)
	go Loop{Check: ck, Name: "db1", Up: false,
		Target: func() ([]netip.AddrPort, bool) { return []netip.AddrPort{Target(service, ck, checkPort)}, true },
		Report: func(r Result) {
			select {
			case results <- r:
			case <-ctx.Done():
			}
		}}.Run(ctx)
	for {
		select {
		case r := <-results:
			if !r.OK {
				t.Fatalf("check of %v with check port %d failed: %s", service, checkPort, r.Detail)
			}
			if r.Flipped {
				if !r.Up {
					t.Fatalf("flipped down: %+v", r)
				}
				return
			}
		case <-ctx.Done():
			t.Fatal("the server never came up")
		}
	}
}

// TestServerCheckWhere: a server's own targets replace everything; its own
// address and port go over the check's, which go over the server's.
func TestServerCheckWhere(t *testing.T) {
	srv := netip.MustParseAddrPort("198.51.100.11:25")
	ck := &Check{Address: netip.MustParseAddr("198.51.100.99"), Port: 2525}
	for _, tt := range []struct {
		own  ServerCheck
		ck   *Check
		want string
	}{
		{ServerCheck{}, &Check{}, "[198.51.100.11:25]"},
		{ServerCheck{}, ck, "[198.51.100.99:2525]"},
		{ServerCheck{Addr: netip.MustParseAddr("192.0.2.1")}, &Check{}, "[192.0.2.1:25]"},
		{ServerCheck{Addr: netip.MustParseAddr("192.0.2.1")}, ck, "[192.0.2.1:2525]"},
		{ServerCheck{Addr: netip.MustParseAddr("192.0.2.1"), Port: 587}, ck, "[192.0.2.1:587]"},
		{ServerCheck{Targets: []netip.AddrPort{srv, netip.MustParseAddrPort("192.0.2.1:587")}}, ck, "[198.51.100.11:25 192.0.2.1:587]"},
	} {
		if got := fmt.Sprint(tt.own.Where(srv, tt.ck)); got != tt.want {
			t.Errorf("%+v.Where(%v, %+v) = %s, want %s", tt.own, srv, tt.ck, got, tt.want)
		}
	}
}

// TestLoopTargets: a server checked at several targets is up only while
// every one answers: one that stops answering takes it down, with the
// target named in the detail, and it comes back once that one answers
// again. Real listeners on loopback.
func TestLoopTargets(t *testing.T) {
	listen := func(addr string) net.Listener {
		ln, err := net.Listen("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		return ln
	}
	a := listen("127.0.0.1:0")
	defer a.Close()
	b := listen("127.0.0.1:0")
	bAddr := netip.MustParseAddrPort(b.Addr().String())
	targets := []netip.AddrPort{netip.MustParseAddrPort(a.Addr().String()), bAddr}

	ck := (&Check{Type: CheckTCP, Interval: 20 * time.Millisecond, Rise: 1, Fall: 1}).WithDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	results := make(chan Result, 16)
	go Loop{Check: ck, Name: "mx1", Up: true,
		Target: func() ([]netip.AddrPort, bool) { return targets, true },
		Report: func(r Result) {
			select {
			case results <- r:
			case <-ctx.Done():
			}
		}}.Run(ctx)
	next := func(what string, flipped bool) Result {
		t.Helper()
		for {
			select {
			case r := <-results:
				if !flipped || r.Flipped {
					return r
				}
			case <-ctx.Done():
				t.Fatalf("%s: %v", what, ctx.Err())
			}
		}
	}
	if r := next("a first check", false); !r.OK || !strings.Contains(r.Detail, "at all 2 targets") {
		t.Fatalf("both targets answer: %+v", r)
	}
	b.Close() // the second target stops answering
	r := next("down", true)
	if r.Up || !strings.Contains(r.Detail, "at "+bAddr.String()+": ") {
		t.Fatalf("after %v closed: %+v, want down naming it", bAddr, r)
	}
	b = listen(bAddr.String())
	defer b.Close()
	if r := next("up again", true); !r.Up {
		t.Fatalf("after %v answers again: %+v", bAddr, r)
	}
}
