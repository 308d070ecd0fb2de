package ctsync

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// TestSyncIPv6: an IPv6 NAT flow of a service, created in one namespace's
// conntrack table, reaches the other's with its DNAT binding (the reply
// tuple from the server), through a real sender and receiver; a flow of
// another port is not sent.
func TestSyncIPv6(t *testing.T) {
	lab.RequireRoot(t)
	lab.SkipShort(t, "network namespaces")
	a, b := lab.NewNetns(t, "h6ca"), lab.NewNetns(t, "h6cb")
	fd := func(ns *lab.Netns) int {
		f, err := os.Open(ns.Path())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return int(f.Fd())
	}
	fa, fb := fd(a), fd(b)
	// The datagrams travel over a's loopback; the receiver applies them
	// to b's table, where its ctnetlink socket is.
	var out, in, unused net.PacketConn
	if err := a.Do(func() (err error) {
		if out, err = net.ListenPacket("udp6", "[::1]:0"); err != nil {
			return err
		}
		if unused, err = net.ListenPacket("udp6", "[::1]:0"); err != nil {
			return err
		}
		in, err = net.ListenPacket("udp6", "[::1]:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer unused.Close()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	vip := netip.MustParseAddrPort("[2001:db8:1::100]:80")
	snd, err := NewSender(fa, out, in.LocalAddr(), []Service{{VIP: vip, Protocol: unix.IPPROTO_TCP}}, logger)
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := NewReceiver(fb, in, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = snd.Run(ctx) }()
	go func() { defer wg.Done(); _ = rcv.Run(ctx) }()
	defer func() { cancel(); out.Close(); wg.Wait() }()

	// The flows, made in a's table as its kernel would have made them
	// (the local receiver writes the same netlink a DNAT would leave).
	local, err := NewReceiver(fa, unused, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer local.nf.Close()
	flow := Record{Op: OpNew, Protocol: unix.IPPROTO_TCP,
		Client: netip.MustParseAddrPort("[2001:db8:1::50]:40000"), VIP: vip,
		Server: netip.MustParseAddrPort("[2001:db8:2::11]:8080"), Status: 0x1ce, Timeout: 300, TCPState: 3}
	other := flow
	other.Client, other.VIP = netip.MustParseAddrPort("[2001:db8:1::50]:40001"), netip.MustParseAddrPort("[2001:db8:1::100]:81")
	for _, r := range []Record{other, flow} {
		if err := local.Apply(r); err != nil {
			t.Fatalf("create %v in a: %v", r.Client, err)
		}
	}

	ct, err := conntrack.Dial(&netlink.Config{NetNS: fb})
	if err != nil {
		t.Fatal(err)
	}
	defer ct.Close()
	var got []conntrack.Flow
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if got, err = ct.Dump(nil); err != nil {
			t.Fatal(err)
		}
		if len(got) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond) // polls b's table: no event tells the test
	}
	if len(got) != 1 {
		t.Fatalf("b's table holds %d flows, want the service's one: %+v", len(got), got)
	}
	f := got[0]
	if o := f.TupleOrig; o.IP.SourceAddress != flow.Client.Addr() || o.IP.DestinationAddress != vip.Addr() || o.Proto.DestinationPort != vip.Port() {
		t.Errorf("b's flow: original %v → %v:%d, want %v → %v", o.IP.SourceAddress, o.IP.DestinationAddress, o.Proto.DestinationPort, flow.Client, vip)
	}
	if r := f.TupleReply; r.IP.SourceAddress != flow.Server.Addr() || r.Proto.SourcePort != flow.Server.Port() {
		t.Errorf("b's flow: reply from %v:%d, want the server %v (the DNAT binding)", r.IP.SourceAddress, r.Proto.SourcePort, flow.Server)
	}
}
