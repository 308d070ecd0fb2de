package healthcheck

import (
	"context"
	"net"
	"net/netip"
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
		Target: func() (netip.AddrPort, bool) { return Target(service, ck, checkPort), true },
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
