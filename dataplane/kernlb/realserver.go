package kernlb

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/gitgw/gitgw/internal/statefile"
)

// RealServer is what a direct-routing real server needs, so that gitgw
// running on a server of the site can set it up: each VIP on lo (the server
// accepts the frames the gateway forwards to it and answers from the VIP)
// and the two ARP knobs of LVS's documentation, so that the server never
// answers ARP for a VIP nor uses one as an ARP source (else it steals the
// VIP from the gateway). An IPv6 VIP needs no knob (Linux answers a
// neighbour solicitation only for the addresses of the interface it
// arrived on, so a VIP on lo is never announced on the segment); the
// knobs, which act on IPv4 alone, are set all the same. The zero
// RealServer is a node that is no real server: what gitgw had set is
// undone.
type RealServer struct {
	VIPs []netip.Addr
	// Interfaces are the server's interfaces on the gateway's segment. The
	// knobs are set on "all" and on each of them: the kernel takes the
	// higher of the two, and LVS's documentation sets both, so that a
	// reset of one (a distribution's sysctl.d, a network manager bringing
	// the interface up again) does not re-open ARP for the VIPs.
	Interfaces []string
}

// RealServerState is what Observe found on the server.
type RealServerState struct {
	VIPs []netip.Addr // /32 and /128 addresses on lo, other than loopback ones
	// Knobs are the ARP knobs by sysctl name
	// ("net.ipv4.conf.all.arp_ignore"), for "all" and the interfaces
	// Observe was asked about.
	Knobs map[string]int
}

// RealServerSaved is what gitgw took over on the server, kept in a state
// file across restarts, so that a node that stops being a real server gets
// back what it had: each knob's value from before gitgw first set it, and
// the VIPs gitgw added to lo (a VIP that was there before is not gitgw's
// to remove).
type RealServerSaved struct {
	Knobs map[string]int `json:"knobs,omitempty"`
	VIPs  []netip.Addr   `json:"vips,omitempty"`
}

// The knob values DR needs (ip-sysctl.txt): arp_ignore 1 answers only for
// addresses on the receiving interface; arp_announce 2 always uses the
// best local address of the outgoing interface as ARP source.
const (
	wantARPIgnore   = 1
	wantARPAnnounce = 2
)

// RealServerAction is what Set does to one resource.
type RealServerAction string

// The actions of a real server's changes.
const (
	RSNone    RealServerAction = ""        // as wanted
	RSSet     RealServerAction = "set"     // a knob to the value DR needs
	RSAdd     RealServerAction = "add"     // a VIP on lo
	RSRemove  RealServerAction = "remove"  // a VIP gitgw added, no longer wanted
	RSRestore RealServerAction = "restore" // a knob back to its value from before gitgw
)

// Kinds of the real server's resources.
const (
	RSKindKnob = "sysctl"
	RSKindVIP  = "vip"
)

// RealServerChange is one resource of the real server: a knob or a VIP,
// what it is and what it should be. Before and After are "" for a VIP not
// on lo.
type RealServerChange struct {
	Kind          string // RSKindKnob or RSKindVIP
	ID            string // the sysctl's name, or "203.0.113.100/32 on lo"
	Action        RealServerAction
	Before, After string
	// Drift: gitgw had set it (it is in the saved state) and it moved.
	Drift bool
	// knob and value are what Set writes; vip is what it adds or removes.
	knob  string
	value int
	vip   netip.Addr
}

// String is the change in words: "net.ipv4.conf.all.arp_ignore 0 → 1",
// "add 203.0.113.100/32 on lo".
func (c RealServerChange) String() string {
	switch c.Action {
	case RSAdd, RSRemove:
		return string(c.Action) + " " + c.ID
	case RSSet, RSRestore:
		return fmt.Sprintf("%s %s → %s", c.ID, c.Before, c.After)
	}
	return c.ID + " " + c.After
}

func knobName(iface, knob string) string { return "net.ipv4.conf." + iface + "." + knob }

func vipID(v netip.Addr) string { return fmt.Sprintf("%v/%d on lo", v, v.BitLen()) }

// RealServerHost is the seam to the server's kernel: a netlink handle, the
// sysctl root (/proc/sys, or a fake one in tests; /proc/sys/net is the
// network namespace of the thread that opens it) and the file that keeps
// the saved state ("" : none, for a plan that only reads).
type RealServerHost struct {
	NL         *netlink.Handle
	SysctlRoot string
	StateFile  string
}

func (h RealServerHost) knobPath(name string) string {
	return filepath.Join(h.SysctlRoot, strings.ReplaceAll(name, ".", "/"))
}

// Observe reads the VIPs on lo and the ARP knobs of "all" and of ifaces.
func (h RealServerHost) Observe(ifaces ...string) (RealServerState, error) {
	st := RealServerState{Knobs: map[string]int{}}
	lo, err := h.NL.LinkByName("lo")
	if err != nil {
		return st, fmt.Errorf("kernlb: real server: lo: %w", err)
	}
	addrs, err := h.NL.AddrList(lo, netlink.FAMILY_ALL)
	if err != nil {
		return st, fmt.Errorf("kernlb: real server: addresses of lo: %w", err)
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		ip = ip.Unmap()
		if ones, _ := a.Mask.Size(); ok && ones == ip.BitLen() && !ip.IsLoopback() {
			st.VIPs = append(st.VIPs, ip)
		}
	}
	slices.SortFunc(st.VIPs, netip.Addr.Compare)
	for _, iface := range append([]string{"all"}, ifaces...) {
		for _, k := range []string{"arp_ignore", "arp_announce"} {
			name := knobName(iface, k)
			b, err := os.ReadFile(h.knobPath(name))
			if err != nil {
				return st, fmt.Errorf("kernlb: real server: %s: %w", name, err)
			}
			v, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				return st, fmt.Errorf("kernlb: real server: %s: %w", name, err)
			}
			st.Knobs[name] = v
		}
	}
	return st, nil
}

// LoadSaved reads the saved state (empty when there is none). A file that
// does not decode is moved aside (statefile.Load) and the error wraps
// statefile.ErrCorrupt: the caller reports it and goes on from an empty
// state (the knobs' values before gitgw are then lost, not invented).
func (h RealServerHost) LoadSaved() (RealServerSaved, error) {
	var s RealServerSaved
	if h.StateFile == "" {
		return s, nil
	}
	_, err := statefile.Load(h.StateFile, func(b []byte) error { return json.Unmarshal(b, &s) })
	if err != nil {
		return RealServerSaved{}, fmt.Errorf("kernlb: real server: saved state: %w", err)
	}
	return s, nil
}

// save writes s atomically and durably (a crash never leaves half of it),
// or removes the file when s is empty.
func (h RealServerHost) save(s RealServerSaved) error {
	if h.StateFile == "" {
		return errors.New("kernlb: real server: no state file to save the knobs' previous values in")
	}
	if len(s.Knobs) == 0 && len(s.VIPs) == 0 {
		if err := os.Remove(h.StateFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("kernlb: real server: %w", err)
		}
		return nil
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := statefile.Write(h.StateFile, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("kernlb: real server: %w", err)
	}
	return nil
}

// DiffRealServer lists every resource of the real server, in a fixed
// order (knobs of "all" then of each interface, VIPs, then what is undone),
// with what Set would do to it (RSNone: nothing). VIPs on lo that neither
// want names nor gitgw added are left alone (the server may hold other
// addresses there) and not listed. A knob gitgw saved but want no longer
// needs is restored to its saved value; a VIP gitgw added and want no
// longer names is removed.
func DiffRealServer(want RealServer, have RealServerState, saved RealServerSaved) []RealServerChange {
	var out []RealServerChange
	wanted := map[string]bool{}
	if len(want.VIPs) > 0 {
		for _, iface := range append([]string{"all"}, want.Interfaces...) {
			for _, k := range []struct {
				name string
				v    int
			}{{"arp_ignore", wantARPIgnore}, {"arp_announce", wantARPAnnounce}} {
				name := knobName(iface, k.name)
				if wanted[name] {
					continue
				}
				wanted[name] = true
				c := RealServerChange{Kind: RSKindKnob, ID: name, After: strconv.Itoa(k.v), knob: name, value: k.v}
				cur, ok := have.Knobs[name]
				if ok {
					c.Before = strconv.Itoa(cur)
				}
				if !ok || cur != k.v {
					_, c.Drift = saved.Knobs[name]
					c.Action = RSSet
				}
				out = append(out, c)
			}
		}
	}
	for _, v := range want.VIPs {
		c := RealServerChange{Kind: RSKindVIP, ID: vipID(v), After: "present", vip: v}
		if slices.Contains(have.VIPs, v) {
			c.Before = "present"
		} else {
			c.Action, c.Drift = RSAdd, slices.Contains(saved.VIPs, v)
		}
		out = append(out, c)
	}
	for _, v := range saved.VIPs {
		if !slices.Contains(want.VIPs, v) && slices.Contains(have.VIPs, v) {
			out = append(out, RealServerChange{Kind: RSKindVIP, ID: vipID(v), Action: RSRemove, Before: "present", vip: v})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(saved.Knobs)) {
		if wanted[name] {
			continue
		}
		prev := saved.Knobs[name]
		cur, ok := have.Knobs[name]
		if ok && cur == prev {
			continue
		}
		c := RealServerChange{Kind: RSKindKnob, ID: name, Action: RSRestore, After: strconv.Itoa(prev), knob: name, value: prev}
		if ok {
			c.Before = strconv.Itoa(cur)
		}
		out = append(out, c)
	}
	return out
}

// SavedKnobs are the names of the knobs in saved that want does not set:
// Observe must read them too, so that Diff can restore them.
func SavedKnobs(want RealServer, saved RealServerSaved) []string {
	set := map[string]bool{}
	if len(want.VIPs) > 0 {
		for _, iface := range append([]string{"all"}, want.Interfaces...) {
			set[iface] = true
		}
	}
	var out []string
	for name := range saved.Knobs {
		iface := strings.TrimPrefix(name, "net.ipv4.conf.")
		iface = iface[:strings.LastIndexByte(iface, '.')]
		if !set[iface] && !slices.Contains(out, iface) {
			out = append(out, iface)
		}
	}
	slices.Sort(out)
	return out
}

// Set makes the server match want and returns the changes it made. On the
// way up the knobs come first, then the VIPs, so that no ARP answer for a
// VIP can leave in between; on the way down the VIPs go first, then the
// knobs get their saved values back. The knobs' previous values and the
// VIPs it adds are saved before anything is written, so that a crash
// halfway loses nothing to restore.
func (h RealServerHost) Set(want RealServer) ([]RealServerChange, error) {
	saved, err := h.LoadSaved()
	if err != nil && !errors.Is(err, statefile.ErrCorrupt) {
		return nil, err
	} // a corrupt file is moved aside: start from an empty state
	ifaces := slices.Clone(want.Interfaces)
	for _, i := range SavedKnobs(want, saved) {
		if i != "all" && !slices.Contains(ifaces, i) {
			ifaces = append(ifaces, i)
		}
	}
	have, err := h.Observe(ifaces...)
	if err != nil {
		return nil, err
	}
	diff := DiffRealServer(want, have, saved)
	var todo []RealServerChange
	next := RealServerSaved{Knobs: maps.Clone(saved.Knobs), VIPs: slices.Clone(saved.VIPs)}
	if next.Knobs == nil {
		next.Knobs = map[string]int{}
	}
	for _, c := range diff {
		switch {
		case c.Kind == RSKindKnob && c.Action != RSRestore:
			if _, ok := next.Knobs[c.knob]; !ok {
				// Taken over now: its value before gitgw, even when it
				// needs no write (restoring it then writes the same).
				next.Knobs[c.knob] = have.Knobs[c.knob]
			}
		case c.Action == RSAdd && !slices.Contains(next.VIPs, c.vip):
			next.VIPs = append(next.VIPs, c.vip)
		}
		if c.Action != RSNone {
			todo = append(todo, c)
		}
	}
	if len(todo) == 0 && equalSaved(saved, next) {
		return nil, nil
	}
	if err := h.save(next); err != nil {
		return nil, err
	}
	var done []RealServerChange
	var errs []error
	writeKnob := func(c RealServerChange) {
		if err := os.WriteFile(h.knobPath(c.knob), []byte(strconv.Itoa(c.value)+"\n"), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("kernlb: real server: %s: %w", c.knob, err))
			return
		}
		done = append(done, c)
	}
	for _, c := range todo {
		if c.Action == RSSet {
			writeKnob(c)
		}
	}
	if len(errs) > 0 {
		// Never add a VIP while the server could still answer ARP for it.
		return done, errors.Join(errs...)
	}
	lo, err := h.NL.LinkByName("lo")
	if err != nil {
		return done, fmt.Errorf("kernlb: real server: lo: %w", err)
	}
	addr := func(v netip.Addr) *netlink.Addr {
		return &netlink.Addr{IPNet: &net.IPNet{IP: v.AsSlice(), Mask: net.CIDRMask(v.BitLen(), v.BitLen())}}
	}
	for _, c := range todo {
		if c.Action == RSAdd {
			if err := h.NL.AddrAdd(lo, addr(c.vip)); err != nil {
				errs = append(errs, fmt.Errorf("kernlb: real server: add %s: %w", c.ID, err))
				continue
			}
			done = append(done, c)
		}
	}
	for _, c := range todo {
		if c.Action == RSRemove {
			if err := h.NL.AddrDel(lo, addr(c.vip)); err != nil {
				errs = append(errs, fmt.Errorf("kernlb: real server: remove %s: %w", c.ID, err))
				continue
			}
			next.VIPs = slices.DeleteFunc(next.VIPs, func(v netip.Addr) bool { return v == c.vip })
			done = append(done, c)
		}
	}
	// A VIP of gitgw's that a hand removed already is gitgw's no more.
	next.VIPs = slices.DeleteFunc(next.VIPs, func(v netip.Addr) bool {
		return !slices.Contains(want.VIPs, v) && !slices.Contains(have.VIPs, v)
	})
	if slices.ContainsFunc(next.VIPs, func(v netip.Addr) bool { return !slices.Contains(want.VIPs, v) }) {
		// A VIP of gitgw's is still on lo: the knobs stay until it goes.
		return done, errors.Join(append(errs, h.save(next))...)
	}
	failed := map[string]bool{}
	for _, c := range todo {
		if c.Action == RSRestore {
			writeKnob(c)
			if !slices.Contains(done, c) {
				failed[c.knob] = true
			}
		}
	}
	// A knob no longer wanted is forgotten once it has its value back.
	for name := range next.Knobs {
		wanted := slices.ContainsFunc(diff, func(c RealServerChange) bool { return c.knob == name && c.Action != RSRestore })
		if !wanted && !failed[name] {
			delete(next.Knobs, name)
		}
	}
	return done, errors.Join(append(errs, h.save(next))...)
}

func equalSaved(a, b RealServerSaved) bool {
	return maps.Equal(a.Knobs, b.Knobs) && slices.Equal(a.VIPs, b.VIPs)
}

// OpenRealServerHost opens the host's real-server seam in the caller's
// network namespace: a netlink handle (Close releases it), /proc/sys, and
// stateFile for the saved state.
func OpenRealServerHost(stateFile string) (RealServerHost, error) {
	nl, err := netlink.NewHandle()
	if err != nil {
		return RealServerHost{}, fmt.Errorf("kernlb: real server: netlink: %w", err)
	}
	return RealServerHost{NL: nl, SysctlRoot: "/proc/sys", StateFile: stateFile}, nil
}

// Close releases the netlink handle.
func (h RealServerHost) Close() error {
	if h.NL != nil {
		h.NL.Close()
	}
	return nil
}
