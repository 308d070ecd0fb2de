package fdstore

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gitgw/gitgw/dataplane/l4proxy"
)

// msg is one datagram systemd would read: the state lines and how many
// descriptors came with them.
type msg struct {
	state string
	fds   int
}

// listen stands in for systemd's notify socket ($NOTIFY_SOCKET).
func listen(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return c
}

// read returns the datagrams queued on c, closing the descriptors received.
func read(t *testing.T, c *net.UnixConn) []msg {
	t.Helper()
	var out []msg
	for {
		buf, oob := make([]byte, 512), make([]byte, 4096)
		if err := c.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil {
			return out // nothing more queued: every send is synchronous
		}
		m := msg{state: string(buf[:n])}
		scms, err := syscall.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			t.Fatal(err)
		}
		for _, scm := range scms {
			fds, err := syscall.ParseUnixRights(&scm)
			if err != nil {
				t.Fatal(err)
			}
			for _, fd := range fds {
				syscall.Close(fd)
			}
			m.fds += len(fds)
		}
		out = append(out, m)
	}
}

// TestSyncStoresListenersOnce: the first pass clears what a previous
// agent handed over and stores the bound listeners; a pass that binds the
// same addresses stores nothing again; outside systemd nothing is sent.
func TestSyncStoresListenersOnce(t *testing.T) {
	c := listen(t)
	pool := l4proxy.New(slog.New(slog.DiscardHandler), l4proxy.Options{Shards: 1})
	t.Cleanup(func() { _ = pool.Close(context.Background()) })
	bind := netip.MustParseAddrPort("127.0.92.1:18080")
	if err := pool.Set(context.Background(), l4proxy.Config{Services: []l4proxy.Service{{Name: "web", Binds: []netip.AddrPort{bind},
		Servers: []l4proxy.Server{{Name: "s1", Addr: netip.MustParseAddrPort("127.0.92.2:80"), Weight: 1}}}}}); err != nil {
		t.Fatal(err)
	}
	s := New(pool, slog.New(slog.DiscardHandler))
	s.Sync()
	want := []msg{
		{"FDSTOREREMOVE=1\nFDNAME=" + l4proxy.HandOverConnName, 0},
		{"FDSTOREREMOVE=1\nFDNAME=" + l4proxy.HandOverStateName, 0},
		{"FDSTOREREMOVE=1\nFDNAME=" + Name, 0},
		{"FDSTORE=1\nFDNAME=" + Name, 1},
	}
	if got := read(t, c); !equal(got, want) {
		t.Fatalf("first sync sent %+v, want %+v", got, want)
	}
	s.Sync()
	if got := read(t, c); len(got) != 0 {
		t.Fatalf("a sync with the same listeners sent %+v", got)
	}
	// No $FDSTORE: the store's size is unknown, nothing is handed over.
	s.HandOver()
	if got := read(t, c); len(got) != 0 {
		t.Fatalf("a hand-over without $FDSTORE sent %+v", got)
	}
	t.Setenv("NOTIFY_SOCKET", "")
	if New(pool, slog.New(slog.DiscardHandler)) != nil {
		t.Fatal("a store without NOTIFY_SOCKET")
	}
	var none *Store
	none.Sync() // nil stores nothing
	none.HandOver()
}

// TestHandOverStoresListenersAgain: at a stop the listeners are stored
// again (they must be there for the next agent), then the connections'
// state, even when there is no connection to hand over.
func TestHandOverStoresListenersAgain(t *testing.T) {
	c := listen(t)
	t.Setenv("FDSTORE", "16")
	pool := l4proxy.New(slog.New(slog.DiscardHandler), l4proxy.Options{Shards: 1})
	t.Cleanup(func() { _ = pool.Close(context.Background()) })
	bind := netip.MustParseAddrPort("127.0.92.1:18081")
	if err := pool.Set(context.Background(), l4proxy.Config{Services: []l4proxy.Service{{Name: "web", Binds: []netip.AddrPort{bind},
		Servers: []l4proxy.Server{{Name: "s1", Addr: netip.MustParseAddrPort("127.0.92.2:80"), Weight: 1}}}}}); err != nil {
		t.Fatal(err)
	}
	s := New(pool, slog.New(slog.DiscardHandler))
	s.Sync()
	read(t, c)
	s.HandOver()
	got := read(t, c)
	want := []msg{
		{"FDSTOREREMOVE=1\nFDNAME=" + Name, 0},
		{"FDSTORE=1\nFDNAME=" + Name, 1},
		{"FDSTOREREMOVE=1\nFDNAME=" + l4proxy.HandOverConnName, 0},
		{"FDSTOREREMOVE=1\nFDNAME=" + l4proxy.HandOverStateName, 0},
		{"FDSTORE=1\nFDPOLL=0\nFDNAME=" + l4proxy.HandOverStateName, 1},
	}
	if !equal(got, want) {
		t.Fatalf("hand-over sent %+v, want %+v", got, want)
	}
}

func equal(a, b []msg) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
