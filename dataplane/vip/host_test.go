package vip

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gitgw/gitgw/test/lab"
)

// TestHostAddresses reads a namespace's interfaces: every global address
// with its prefix length, IPv4 and IPv6, an interface without one listed
// empty; no loopback, no link-local address. ReadHostAddresses run inside
// the namespace sees the same.
func TestHostAddresses(t *testing.T) {
	lab.SkipShort(t, "real-kernel lab: not in -short")
	lab.RequireRoot(t)
	sw := lab.NewSwitch(t)
	gw := lab.NewNetns(t, "vh")
	sw.Attach(t, gw, "eth0", "203.0.113.11/24", "203.0.113.100/32", "2001:db8::11/64")
	sw.Attach(t, gw, "eth1")
	p := netip.MustParsePrefix
	want := map[string][]netip.Prefix{
		"eth0": {p("203.0.113.11/24"), p("203.0.113.100/32"), p("2001:db8::11/64")},
		"eth1": {},
	}
	got, err := HostAddresses(handleIn(t, gw))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Errorf("HostAddresses (-want +got):\n%s", d)
	}
	var inside map[string][]netip.Prefix
	if err := gw.Do(func() error {
		var err error
		inside, err = ReadHostAddresses()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, inside, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Errorf("ReadHostAddresses in the namespace (-want +got):\n%s", d)
	}
}
