package kernlb

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/gitgw/gitgw/test/lab"
)

// rsStates are the real servers' state files, one per namespace, in the
// test's temporary directory.
var rsStates sync.Map

func rsHost(t testing.TB, ns *lab.Netns, h *netlink.Handle) RealServerHost {
	f, _ := rsStates.LoadOrStore(ns.Name, filepath.Join(t.TempDir(), "realserver.json"))
	return RealServerHost{NL: h, SysctlRoot: "/proc/sys", StateFile: f.(string)}
}

// setRealServer applies rs in namespace ns (the sysctl writes must come
// from a thread in it).
func setRealServer(t testing.TB, ns *lab.Netns, rs RealServer) []RealServerChange {
	t.Helper()
	var ch []RealServerChange
	err := ns.Do(func() error {
		h, err := netlink.NewHandle()
		if err != nil {
			return err
		}
		defer h.Close()
		ch, err = rsHost(t, ns, h).Set(rs)
		return err
	})
	if err != nil {
		t.Fatalf("real server setup: %v", err)
	}
	return ch
}

// observeRealServer reads the real-server state of namespace ns (the knobs
// of "all" and ifaces) and what gitgw saved there.
func observeRealServer(t testing.TB, ns *lab.Netns, ifaces ...string) (RealServerState, RealServerSaved) {
	t.Helper()
	var st RealServerState
	var saved RealServerSaved
	err := ns.Do(func() error {
		h, err := netlink.NewHandle()
		if err != nil {
			return err
		}
		defer h.Close()
		host := rsHost(t, ns, h)
		if st, err = host.Observe(ifaces...); err != nil {
			return err
		}
		saved, err = host.LoadSaved()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return st, saved
}

// words are the changes that do something, in words.
func words(cs []RealServerChange) string {
	var out []string
	for _, c := range cs {
		if c.Action == RSNone {
			continue
		}
		w := c.String()
		if c.Drift {
			w += " (drift)"
		}
		out = append(out, w)
	}
	return strings.Join(out, "; ")
}

// TestRealServer: a DR real server's setup in a fresh namespace: said in
// words, applied once (knobs of "all" and of the segment's interface, the
// VIPs on lo), idempotent; a VIP and a knob changed by hand are drift and
// put back; when the node stops being a real server, the VIPs gitgw added
// go (not the operator's own address on lo) and every knob gets the value
// it had before, a non-default one included. The host's knobs are not
// touched.
func TestRealServer(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "sysctl")
	lab.SkipShort(t, "network namespaces")
	ns := lab.NewNetns(t, "rs")
	ns.Run(t, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
	// The operator's own: an address on lo, and arp_announce 1 on eth0.
	ns.Run(t, "ip", "addr", "add", "198.51.100.200/32", "dev", "lo")
	ns.Run(t, "sysctl", "-qw", "net.ipv4.conf.eth0.arp_announce=1")
	hostKnob := func() string {
		b, err := os.ReadFile("/proc/sys/net/ipv4/conf/all/arp_ignore")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	hostBefore := hostKnob()

	rs := RealServer{VIPs: []netip.Addr{mustAddr(vip), mustAddr("203.0.113.101")}, Interfaces: []string{"eth0"}}
	before, saved := observeRealServer(t, ns, "eth0")
	want := "net.ipv4.conf.all.arp_ignore 0 → 1; net.ipv4.conf.all.arp_announce 0 → 2; " +
		"net.ipv4.conf.eth0.arp_ignore 0 → 1; net.ipv4.conf.eth0.arp_announce 1 → 2; " +
		"add 203.0.113.100/32 on lo; add 203.0.113.101/32 on lo"
	if d := words(DiffRealServer(rs, before, saved)); d != want {
		t.Errorf("Diff on a fresh namespace:\n %s\nwant\n %s", d, want)
	}
	if ch := words(setRealServer(t, ns, rs)); ch != want {
		t.Errorf("Set changed\n %s\nwant\n %s", ch, want)
	}
	got, saved := observeRealServer(t, ns, "eth0")
	if fmt.Sprint(got.VIPs) != "[198.51.100.200 203.0.113.100 203.0.113.101]" ||
		got.Knobs["net.ipv4.conf.all.arp_ignore"] != 1 || got.Knobs["net.ipv4.conf.eth0.arp_announce"] != 2 {
		t.Errorf("after Set: %+v", got)
	}
	if fmt.Sprint(saved.VIPs) != "[203.0.113.100 203.0.113.101]" || saved.Knobs["net.ipv4.conf.eth0.arp_announce"] != 1 {
		t.Errorf("saved after Set: %+v", saved)
	}
	if ch := setRealServer(t, ns, rs); len(ch) != 0 {
		t.Errorf("a second Set changed %s", words(ch))
	}

	// By hand: a VIP removed, arp_ignore reset.
	ns.Run(t, "ip", "addr", "del", vip+"/32", "dev", "lo")
	ns.Run(t, "sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=0")
	have, saved := observeRealServer(t, ns, "eth0")
	drift := "net.ipv4.conf.all.arp_ignore 0 → 1 (drift); add 203.0.113.100/32 on lo (drift)"
	if d := words(DiffRealServer(rs, have, saved)); d != drift {
		t.Errorf("Diff after changes by hand:\n %s\nwant\n %s", d, drift)
	}
	if ch := words(setRealServer(t, ns, rs)); ch != drift {
		t.Errorf("Set after changes by hand:\n %s\nwant\n %s", ch, drift)
	}

	// One VIP less, then no real server at all.
	if ch := words(setRealServer(t, ns, RealServer{VIPs: rs.VIPs[:1], Interfaces: rs.Interfaces})); ch != "remove 203.0.113.101/32 on lo" {
		t.Errorf("one VIP less: %s", ch)
	}
	undo := "remove 203.0.113.100/32 on lo; net.ipv4.conf.all.arp_announce 2 → 0; net.ipv4.conf.all.arp_ignore 1 → 0; " +
		"net.ipv4.conf.eth0.arp_announce 2 → 1; net.ipv4.conf.eth0.arp_ignore 1 → 0"
	if ch := words(setRealServer(t, ns, RealServer{})); ch != undo {
		t.Errorf("no longer a real server:\n %s\nwant\n %s", ch, undo)
	}
	got, saved = observeRealServer(t, ns, "eth0")
	if fmt.Sprint(got.VIPs) != "[198.51.100.200]" || got.Knobs["net.ipv4.conf.eth0.arp_announce"] != 1 || got.Knobs["net.ipv4.conf.all.arp_ignore"] != 0 {
		t.Errorf("after the undo: %+v", got)
	}
	if len(saved.Knobs) != 0 || len(saved.VIPs) != 0 {
		t.Errorf("saved after the undo: %+v", saved)
	}
	if ch := setRealServer(t, ns, RealServer{}); len(ch) != 0 {
		t.Errorf("a second undo changed %s", words(ch))
	}
	if h := hostKnob(); h != hostBefore {
		t.Errorf("the host's arp_ignore changed from %s to %s", hostBefore, h)
	}
}
