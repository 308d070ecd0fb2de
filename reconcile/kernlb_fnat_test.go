package reconcile

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/dataplane/kernlb"
)

// TestKernLBConfigFNAT: an fnat service reaches kernlb with the local
// addresses the node holds, and only those: each gateway gives the flows
// a source of its own (gw1 holds 203.0.113.11, gw2 .12).
func TestKernLBConfigFNAT(t *testing.T) {
	dir := checkSite(t, `
services: web: {
	mode: "fnat"
	local_addresses: ["203.0.113.12", "203.0.113.11"]
}
`)
	for node, want := range map[string]string{
		"gw1": "fnat tcp 203.0.113.100:80 from 203.0.113.11, wrr",
		"gw2": "fnat tcp 203.0.113.100:80 from 203.0.113.12, wrr",
	} {
		_, n, err := loader.Load(context.Background(), dir, node)
		if err != nil {
			t.Fatal(err)
		}
		svcs, err := KernLBConfig(n)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, ks := range svcs {
			got = append(got, ks.LB.Describe())
		}
		if strings.Join(got, "\n") != want {
			t.Errorf("%s: %q, want %q", node, got, want)
		}
		var cfg kernlb.Config
		for _, ks := range svcs {
			cfg.Services = append(cfg.Services, ks.LB)
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: %v", node, err)
		}
	}
	// fnat flows are not replicated: the peer cannot answer for the
	// local address the flow was given (see ctSyncServices).
	_, n, err := loader.Load(context.Background(), dir, "gw1")
	if err != nil {
		t.Fatal(err)
	}
	svcs, _ := KernLBConfig(n)
	if cs := ctSyncServices(svcs); len(cs) != 0 {
		t.Errorf("fnat services replicated by ctsync: %v", cs)
	}
}

// TestCtSyncNetwork: the sync socket follows the peer's family; an IPv4
// socket cannot send to an IPv6 peer.
func TestCtSyncNetwork(t *testing.T) {
	for peer, want := range map[string]string{"203.0.113.12": "udp4", "::ffff:203.0.113.12": "udp4", "2001:db8::12": "udp6"} {
		if got := ctSyncNetwork(netip.MustParseAddr(peer)); got != want {
			t.Errorf("peer %s: %s, want %s", peer, got, want)
		}
	}
}
