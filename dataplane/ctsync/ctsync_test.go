package ctsync

import (
	"net/netip"
	"testing"

	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

func TestRecordRoundTrip(t *testing.T) {
	r := Record{Op: OpUpdate, Protocol: unix.IPPROTO_TCP,
		Client: netip.MustParseAddrPort("203.0.113.50:40000"), VIP: netip.MustParseAddrPort("203.0.113.100:80"),
		Server: netip.MustParseAddrPort("198.51.100.11:8080"), Status: 0x1ce, Timeout: 432000, TCPState: 3}
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got Record
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if got != r {
		t.Errorf("round trip: %+v, want %+v", got, r)
	}
	b[2] = 9
	if err := got.UnmarshalBinary(b); err == nil {
		t.Errorf("a record of another version was accepted")
	}
	// An IPv6 flow: a version 2 record.
	r6 := Record{Op: OpNew, Protocol: unix.IPPROTO_UDP,
		Client: netip.MustParseAddrPort("[2001:db8:1::50]:40000"), VIP: netip.MustParseAddrPort("[2001:db8:1::100]:53"),
		Server: netip.MustParseAddrPort("[2001:db8:2::11]:5353"), Status: 0x1ce, Timeout: 30}
	b, err = r6.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != recordSize6 || b[2] != version6 {
		t.Errorf("an IPv6 record is %d bytes of version %d, want %d of version %d", len(b), b[2], recordSize6, version6)
	}
	if err := got.UnmarshalBinary(b); err != nil || got != r6 {
		t.Errorf("IPv6 round trip: %+v (%v), want %+v", got, err, r6)
	}
	if err := got.UnmarshalBinary(b[:recordSize4]); err == nil {
		t.Errorf("a version 2 record cut to a version 1 size was accepted")
	}
	mixed := r6
	mixed.Server = netip.MustParseAddrPort("198.51.100.11:53")
	if _, err := mixed.MarshalBinary(); err == nil {
		t.Errorf("a record of mixed families was encoded")
	}
}

// TestRecordOf: only the services' flows are sent, with the server taken
// from the reply tuple (where DNAT sent the flow).
func TestRecordOf(t *testing.T) {
	svc := map[Service]bool{{VIP: netip.MustParseAddrPort("203.0.113.100:80"), Protocol: unix.IPPROTO_TCP}: true}
	flow := conntrack.NewFlow(unix.IPPROTO_TCP, 0, netip.MustParseAddr("203.0.113.50"), netip.MustParseAddr("203.0.113.100"), 40000, 80, 120, 0)
	flow.TupleReply.IP.SourceAddress = netip.MustParseAddr("198.51.100.12")
	flow.TupleReply.Proto.SourcePort = 8080
	rec, ok := recordOf(conntrack.Event{Type: conntrack.EventNew, Flow: &flow}, svc)
	if !ok || rec.Op != OpNew || rec.Server != netip.MustParseAddrPort("198.51.100.12:8080") || rec.Client != netip.MustParseAddrPort("203.0.113.50:40000") {
		t.Errorf("recordOf = %+v, %v", rec, ok)
	}
	other := conntrack.NewFlow(unix.IPPROTO_UDP, 0, netip.MustParseAddr("203.0.113.50"), netip.MustParseAddr("203.0.113.100"), 40000, 80, 120, 0)
	if _, ok := recordOf(conntrack.Event{Type: conntrack.EventNew, Flow: &other}, svc); ok {
		t.Errorf("a UDP flow to a TCP service was sent")
	}
}
