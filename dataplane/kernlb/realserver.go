package kernlb

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
)

// RealServer is what a direct-routing real server needs, so that gitgw
// running on a server of the site can set it up: each VIP on lo (the server
// accepts packets for it and answers from it) and the two ARP knobs of LVS's
// documentation, so that the server never answers ARP for a VIP nor uses
// one as an ARP source (else it steals the VIP from the gateway).
type RealServer struct {
	VIPs []netip.Addr
}

// RealServerState is what Observe found on the server.
type RealServerState struct {
	VIPs        []netip.Addr // /32 addresses on lo, other than 127.0.0.0/8
	ARPIgnore   int          // net.ipv4.conf.all.arp_ignore
	ARPAnnounce int          // net.ipv4.conf.all.arp_announce
}

// The knob values DR needs (ip-sysctl.txt): arp_ignore 1 answers only for
// addresses on the receiving interface; arp_announce 2 always uses the
// best local address of the outgoing interface as ARP source.
const (
	wantARPIgnore   = 1
	wantARPAnnounce = 2
)

// RealServerHost is the seam to the server's kernel: a netlink handle and
// the sysctl root (/proc/sys, or a fake one in tests). /proc/sys/net is the
// network namespace of the thread that opens it.
type RealServerHost struct {
	NL         *netlink.Handle
	SysctlRoot string
}

func (h RealServerHost) knob(name string) string {
	return filepath.Join(h.SysctlRoot, "net/ipv4/conf/all", name)
}

// Observe reads the VIPs on lo and the two knobs.
func (h RealServerHost) Observe() (RealServerState, error) {
	var st RealServerState
	lo, err := h.NL.LinkByName("lo")
	if err != nil {
		return st, fmt.Errorf("kernlb: real server: lo: %w", err)
	}
	addrs, err := h.NL.AddrList(lo, netlink.FAMILY_V4)
	if err != nil {
		return st, fmt.Errorf("kernlb: real server: addresses of lo: %w", err)
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP.To4())
		if ones, _ := a.Mask.Size(); ok && ones == 32 && !ip.IsLoopback() {
			st.VIPs = append(st.VIPs, ip)
		}
	}
	slices.SortFunc(st.VIPs, netip.Addr.Compare)
	for _, k := range []struct {
		name string
		v    *int
	}{{"arp_ignore", &st.ARPIgnore}, {"arp_announce", &st.ARPAnnounce}} {
		b, err := os.ReadFile(h.knob(k.name))
		if err != nil {
			return st, fmt.Errorf("kernlb: real server: %w", err)
		}
		if *k.v, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
			return st, fmt.Errorf("kernlb: real server: %s: %w", h.knob(k.name), err)
		}
	}
	return st, nil
}

// DiffRealServer says, in words, what Set would change. VIPs on lo that the
// config does not name are left alone (the server may hold other services'
// addresses there), so they are not reported.
func DiffRealServer(want RealServer, have RealServerState) []string {
	var out []string
	if have.ARPIgnore != wantARPIgnore {
		out = append(out, fmt.Sprintf("net.ipv4.conf.all.arp_ignore %d → %d", have.ARPIgnore, wantARPIgnore))
	}
	if have.ARPAnnounce != wantARPAnnounce {
		out = append(out, fmt.Sprintf("net.ipv4.conf.all.arp_announce %d → %d", have.ARPAnnounce, wantARPAnnounce))
	}
	for _, v := range want.VIPs {
		if !slices.Contains(have.VIPs, v) {
			out = append(out, fmt.Sprintf("add %v/32 on lo", v))
		}
	}
	return out
}

// Set applies want: the knobs first (so that no ARP answer for a VIP can
// leave between the two steps), then the VIPs. It returns what it changed.
func (h RealServerHost) Set(want RealServer) ([]string, error) {
	have, err := h.Observe()
	if err != nil {
		return nil, err
	}
	changes := DiffRealServer(want, have)
	if len(changes) == 0 {
		return nil, nil
	}
	var errs []error
	for name, v := range map[string]int{"arp_ignore": wantARPIgnore, "arp_announce": wantARPAnnounce} {
		if err := os.WriteFile(h.knob(name), []byte(strconv.Itoa(v)+"\n"), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("kernlb: real server: %w", err))
		}
	}
	if len(errs) > 0 {
		// Never add a VIP while the server could still answer ARP for it.
		return nil, errors.Join(errs...)
	}
	lo, err := h.NL.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("kernlb: real server: lo: %w", err)
	}
	for _, v := range want.VIPs {
		if slices.Contains(have.VIPs, v) {
			continue
		}
		a := &netlink.Addr{IPNet: &net.IPNet{IP: v.AsSlice(), Mask: net.CIDRMask(32, 32)}}
		if err := h.NL.AddrAdd(lo, a); err != nil {
			errs = append(errs, fmt.Errorf("kernlb: real server: add %v/32 on lo: %w", v, err))
		}
	}
	return changes, errors.Join(errs...)
}
