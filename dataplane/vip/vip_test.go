package vip

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func handleIn(t *testing.T, ns *lab.Netns) *netlink.Handle {
	t.Helper()
	nh, err := netns.GetFromPath(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	h, err := netlink.NewHandleAt(nh)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func TestAddRemovePresent(t *testing.T) {
	lab.SkipShort(t, "real-kernel lab: not in -short")
	lab.RequireRoot(t)
	sw := lab.NewSwitch(t)
	gw := lab.NewNetns(t, "vip")
	sw.Attach(t, gw, "eth0", "203.0.113.11/24", "2001:db8::11/64")
	m := New(handleIn(t, gw), slog.New(slog.DiscardHandler))
	ctx := context.Background()
	addrs := []Address{
		{Prefix: netip.MustParsePrefix("203.0.113.100/24"), Label: "eth0:vip"},
		{Prefix: netip.MustParsePrefix("203.0.113.101/32")},
		{Prefix: netip.MustParsePrefix("2001:db8::100/64")},
	}
	for range 2 { // idempotent
		if err := m.Add(ctx, "eth0", addrs); err != nil {
			t.Fatal(err)
		}
	}
	have, err := m.Present("eth0", addrs)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if !have[a.Prefix] {
			t.Errorf("%v not present", a)
		}
	}
	out := gw.Run(t, "ip", "-o", "addr", "show", "dev", "eth0")
	if !strings.Contains(out, "203.0.113.100/24 brd 203.0.113.255 scope global secondary eth0:vip") {
		t.Errorf("label missing:\n%s", out)
	}
	if strings.Contains(out, "2001:db8::100/64 scope global tentative") {
		t.Errorf("IPv6 VIP went through DAD:\n%s", out)
	}
	for range 2 {
		if err := m.Remove(ctx, "eth0", addrs); err != nil {
			t.Fatal(err)
		}
	}
	have, _ = m.Present("eth0", addrs)
	for _, a := range addrs {
		if have[a.Prefix] {
			t.Errorf("%v still present", a)
		}
	}
	if err := m.Add(ctx, "nosuch0", addrs); err == nil || !strings.Contains(err.Error(), "vip: link nosuch0") {
		t.Errorf("add on a missing link: %v", err)
	}
}

// TestAnnounceMovesNeighbour checks the GARP form against a real Linux
// neighbour table, inside its locktime: the client's entry for the VIP
// moves from gw1's MAC to gw2's on one announcement.
func TestAnnounceMovesNeighbour(t *testing.T) {
	lab.SkipShort(t, "real-kernel lab: not in -short")
	lab.RequireRoot(t)
	sw := lab.NewSwitch(t)
	gw1, gw2, cl := lab.NewNetns(t, "va"), lab.NewNetns(t, "vb"), lab.NewNetns(t, "vc")
	sw.Attach(t, gw1, "eth0", "203.0.113.11/24", "203.0.113.100/24")
	sw.Attach(t, gw2, "eth0", "203.0.113.12/24", "2001:db8::12/64")
	sw.Attach(t, cl, "eth0", "203.0.113.50/24", "2001:db8::50/64")
	cl.Run(t, "ping", "-c", "1", "-W", "2", "203.0.113.100")
	mac := func(ns *lab.Netns) string { return strings.TrimSpace(ns.Run(t, "cat", "/sys/class/net/eth0/address")) }
	neigh := func(ip string) string {
		out, _ := cl.Try("ip", "neigh", "show", ip, "dev", "eth0")
		return out
	}
	if !strings.Contains(neigh("203.0.113.100"), mac(gw1)) {
		t.Fatalf("client entry not on gw1: %s", neigh("203.0.113.100"))
	}
	gw1.Run(t, "ip", "addr", "del", "203.0.113.100/24", "dev", "eth0")
	gw2.Run(t, "ip", "addr", "add", "203.0.113.100/24", "dev", "eth0")
	a := NewAnnouncer()
	t.Cleanup(func() { a.Close() })
	if err := gw2.Do(func() error { return a.Announce("eth0", []netip.Addr{netip.MustParseAddr("203.0.113.100")}) }); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(neigh("203.0.113.100"), mac(gw2)) {
		if time.Now().After(deadline) {
			t.Fatalf("client entry did not move to gw2: %s", neigh("203.0.113.100"))
		}
		time.Sleep(10 * time.Millisecond)
	}

	// IPv6: an existing entry is overridden by the unsolicited NA.
	cl.Run(t, "ip", "-6", "neigh", "replace", "2001:db8::100", "lladdr", "02:00:00:00:00:01", "dev", "eth0", "nud", "stale")
	gw2.Run(t, "ip", "-6", "addr", "add", "2001:db8::100/64", "dev", "eth0", "nodad")
	waitLinkLocal(t, gw2)
	if err := gw2.Do(func() error { return a.Announce("eth0", []netip.Addr{netip.MustParseAddr("2001:db8::100")}) }); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(neigh("2001:db8::100"), mac(gw2)) {
		if time.Now().After(deadline) {
			t.Fatalf("IPv6 entry did not move to gw2: %s", neigh("2001:db8::100"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitLinkLocal(t *testing.T, ns *lab.Netns) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _ := ns.Try("ip", "-6", "addr", "show", "dev", "eth0", "scope", "link")
		if strings.Contains(out, "fe80") && !strings.Contains(out, "tentative") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no usable link-local address: %s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWatchReportsChanges(t *testing.T) {
	lab.SkipShort(t, "real-kernel lab: not in -short")
	lab.RequireRoot(t)
	sw := lab.NewSwitch(t)
	gw := lab.NewNetns(t, "vw")
	sw.Attach(t, gw, "eth0", "203.0.113.11/24")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := make(chan Event, 16)
	if err := gw.Do(func() error { return Watch(ctx, func(e Event) { ch <- e }) }); err != nil {
		t.Fatal(err)
	}
	gw.Run(t, "ip", "addr", "add", "203.0.113.100/24", "dev", "eth0")
	gw.Run(t, "ip", "addr", "del", "203.0.113.100/24", "dev", "eth0")
	want := netip.MustParsePrefix("203.0.113.100/24")
	var got []bool
	timeout := time.After(10 * time.Second)
	for len(got) < 2 {
		select {
		case e := <-ch:
			if e.Prefix == want {
				got = append(got, e.Added)
			}
		case <-timeout:
			t.Fatalf("events %v", got)
		}
	}
	if !got[0] || got[1] {
		t.Errorf("events %v, want add then delete", got)
	}
}

// TestVMACRestoresParentSysctls: the parent's arp_ignore and arp_filter,
// which a VMAC needs, get back their own values when the last VMAC on the
// parent goes, and not before.
func TestVMACRestoresParentSysctls(t *testing.T) {
	lab.SkipShort(t, "real-kernel lab: not in -short")
	lab.RequireRoot(t)
	sw := lab.NewSwitch(t)
	gw := lab.NewNetns(t, "vmac")
	sw.Attach(t, gw, "eth0", "203.0.113.11/24")
	m := New(handleIn(t, gw), slog.New(slog.DiscardHandler))
	// /proc/sys/net is the reading thread's namespace: Do runs there.
	sysctl := func(key string) string {
		out, err := gw.Try("cat", "/proc/sys/net/ipv4/conf/eth0/"+key)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	gw.Run(t, "sysctl", "-qw", "net.ipv4.conf.eth0.arp_ignore=2", "net.ipv4.conf.eth0.arp_filter=0")
	var a, b string
	if err := gw.Do(func() (err error) {
		if a, err = m.EnsureVMAC("eth0", 51, false, ""); err != nil {
			return err
		}
		b, err = m.EnsureVMAC("eth0", 52, false, "")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := sysctl("arp_ignore") + sysctl("arp_filter"); got != "11" {
		t.Fatalf("with VMACs, parent arp_ignore+arp_filter = %s, want 11", got)
	}
	if err := gw.Do(func() error { return m.RemoveVMAC(a) }); err != nil {
		t.Fatal(err)
	}
	if got := sysctl("arp_ignore") + sysctl("arp_filter"); got != "11" {
		t.Errorf("with one VMAC left, parent sysctls = %s, want 11 still", got)
	}
	if err := gw.Do(func() error { return m.RemoveVMAC(b) }); err != nil {
		t.Fatal(err)
	}
	if got := sysctl("arp_ignore") + sysctl("arp_filter"); got != "20" {
		t.Errorf("after the last VMAC, parent sysctls = %s, want the operator's 20", got)
	}
}

// TestVMAC6: the IPv6 VMAC of a VRID is its own macvlan beside the IPv4
// one, with 00:00:5e:00:02:VRID; it is made down, and up it has no
// link-local (no EUI-64 address from the shared MAC); it leaves the
// parent's ARP sysctls alone, so removing it keeps the IPv4 VMAC's.
func TestVMAC6(t *testing.T) {
	lab.SkipShort(t, "real-kernel lab: not in -short")
	lab.RequireRoot(t)
	sw := lab.NewSwitch(t)
	gw := lab.NewNetns(t, "vmac6")
	sw.Attach(t, gw, "eth0", "203.0.113.11/24", "2001:db8::11/64")
	m := New(handleIn(t, gw), slog.New(slog.DiscardHandler))
	cat := func(path string) string {
		out, err := gw.Try("cat", path)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	parentARP := func() string {
		return cat("/proc/sys/net/ipv4/conf/eth0/arp_ignore") + cat("/proc/sys/net/ipv4/conf/eth0/arp_filter")
	}
	gw.Run(t, "sysctl", "-qw", "net.ipv4.conf.eth0.arp_ignore=2", "net.ipv4.conf.eth0.arp_filter=0")
	var v6 string
	if err := gw.Do(func() (err error) { v6, err = m.EnsureVMAC("eth0", 51, true, ""); return err }); err != nil {
		t.Fatal(err)
	}
	if v6 != VMAC6Name("eth0", 51) || v6 == VMACName("eth0", 51) {
		t.Fatalf("IPv6 VMAC named %q", v6)
	}
	if mac := cat("/sys/class/net/" + v6 + "/address"); mac != "00:00:5e:00:02:33" {
		t.Errorf("IPv6 VMAC address %s", mac)
	}
	if out := gw.Run(t, "ip", "-o", "link", "show", "dev", v6); strings.Contains(out, ",UP") {
		t.Errorf("IPv6 VMAC made up: %s", out)
	}
	if got := parentARP(); got != "20" {
		t.Errorf("an IPv6 VMAC changed the parent's ARP sysctls to %s", got)
	}
	for key, want := range map[string]string{"addr_gen_mode": "1", "accept_dad": "0", "accept_ra": "0", "router_solicitations": "0", "keep_addr_on_down": "0"} {
		if got := cat("/proc/sys/net/ipv6/conf/" + v6 + "/" + key); got != want {
			t.Errorf("%s %s = %s, want %s", v6, key, got, want)
		}
	}
	var v4 string
	if err := gw.Do(func() (err error) {
		if err = m.SetVMACUp(v6, true); err != nil {
			return err
		}
		v4, err = m.EnsureVMAC("eth0", 51, false, "")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// addrconf makes the link-local while handling NETDEV_UP: by now it
	// would be there.
	if out := gw.Run(t, "ip", "-6", "addr", "show", "dev", v6); strings.Contains(out, "inet6") {
		t.Errorf("IPv6 VMAC up has addresses: %s", out)
	}
	if err := gw.Do(func() error { return m.RemoveVMAC(v6) }); err != nil {
		t.Fatal(err)
	}
	if got := parentARP(); got != "11" {
		t.Errorf("after removing the IPv6 VMAC, parent ARP sysctls %s, want the IPv4 VMAC's 11", got)
	}
	if err := gw.Do(func() error { return m.RemoveVMAC(v4) }); err != nil {
		t.Fatal(err)
	}
	if got := parentARP(); got != "20" {
		t.Errorf("after the last VMAC, parent ARP sysctls %s, want 20", got)
	}
}
