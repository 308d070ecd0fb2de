package l4proxy

import (
	"net/netip"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestNoAllocationPerConnection runs connections through an in-process
// pool with a client and a server that use raw blocking syscalls (they
// allocate nothing themselves) and counts the heap allocations per
// proxied connection and per request: the pool's hot path allocates none
// (conns, buffers and pipes are pooled, addresses decoded in place).
func TestNoAllocationPerConnection(t *testing.T) {
	noAllocation(t, nil)
}

// TestNoAllocationWithSourceRules: the same with 10,000 deny CIDRs, an
// allow list and both per-source limits in force (the lists are searched
// in place, the per-source table keeps its entries by value).
func TestNoAllocationWithSourceRules(t *testing.T) {
	noAllocation(t, &SourceRules{
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Deny: randomPrefixes(10000, 3),
		MaxConnPerSource: 1000, MaxRatePerSource: 1 << 20,
	})
}

func noAllocation(t *testing.T, src *SourceRules) {
	srv, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(srv)
	if err := unix.Bind(srv, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(srv, 1024); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(srv)
	go func() {
		buf := make([]byte, 64)
		for {
			r, _, e := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(srv), 0, 0, unix.SOCK_CLOEXEC, 0, 0)
			if e != 0 {
				return
			}
			fd := int(r)
			for {
				n, err := unix.Read(fd, buf)
				if n <= 0 || err != nil {
					break
				}
				if _, err := unix.Write(fd, buf[:n]); err != nil {
					break
				}
			}
			unix.Close(fd)
		}
	}()
	bind := freePort(t)
	newTestPool(t, Options{}, Config{Services: []Service{{
		Name: "a", Binds: []netip.AddrPort{bind}, Servers: []Server{{Name: "s", Addr: addrPortOf(sa), Weight: 1}},
		Source: src,
	}}})
	to := &unix.SockaddrInet4{Port: int(bind.Port()), Addr: bind.Addr().As4()}
	msg := []byte("0123456789abcdef")
	buf := make([]byte, 64)
	const reqs = 10
	conn := func() {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		if err := unix.Connect(fd, to); err != nil {
			t.Fatal(err)
		}
		for range reqs {
			if _, err := unix.Write(fd, msg); err != nil {
				t.Fatal(err)
			}
			for got := 0; got < len(msg); {
				n, err := unix.Read(fd, buf)
				if n <= 0 || err != nil {
					t.Fatalf("read: %d %v", n, err)
				}
				got += n
			}
		}
		_ = unix.Shutdown(fd, unix.SHUT_WR)
		for {
			if n, _ := unix.Read(fd, buf); n <= 0 {
				break
			}
		}
	}
	for range 200 { // warm the pools up
		conn()
	}
	const n = 2000
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range n {
		conn()
	}
	runtime.ReadMemStats(&m1)
	per := float64(m1.Mallocs-m0.Mallocs) / n
	t.Logf("%.2f allocations per connection of %d requests", per, reqs)
	if per > 0.5 && !raceEnabled {
		t.Errorf("%.2f heap allocations per proxied connection, want none", per)
	}
}
