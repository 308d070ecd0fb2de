package reconcile

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/cue/spec"
)

// TestVRRPConfigAllowSources: the source allow-list is built from the
// nodes' addresses on the instance's segment, extended or turned off by
// allow_sources, and a node the site gives no address is an error rather
// than a list that would shut its adverts out.
func TestVRRPConfigAllowSources(t *testing.T) {
	pfx := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	v4 := map[string][]netip.Prefix{"gw1": pfx("203.0.113.11/24", "2001:db8::11/64"), "gw2": pfx("203.0.113.12/24")}
	v6 := map[string][]netip.Prefix{"gw1": pfx("2001:db8::11/64", "fe80::11/64"), "gw2": pfx("2001:db8::12/64", "fe80::12/64")}
	for _, c := range []struct {
		name    string
		vip     string
		unicast bool
		peers   map[string][]netip.Prefix
		allow   spec.AllowSources
		want    string // fmt of the list, or the error's text
	}{
		{"v4 from the site", "203.0.113.100/24", false, v4, spec.AllowSources{}, "[203.0.113.11/32 203.0.113.12/32]"},
		{"v4 extended", "203.0.113.100/24", false, v4, spec.AllowSources{Extra: pfx("203.0.113.20/32", "198.51.100.0/24")},
			"[203.0.113.11/32 203.0.113.12/32 203.0.113.20/32 198.51.100.0/24]"},
		{"any: no list", "203.0.113.100/24", false, v4, spec.AllowSources{Any: true}, "[]"},
		{"v4 node without address", "203.0.113.100/24", false, map[string][]netip.Prefix{"gw1": pfx("203.0.113.11/24")}, spec.AllowSources{},
			"nodes gw2 have no IPv4 address on eth0"},
		{"v4 node without address, senders listed", "203.0.113.100/24", false, map[string][]netip.Prefix{"gw1": pfx("203.0.113.11/24")},
			spec.AllowSources{Extra: pfx("203.0.113.12/32")}, "[203.0.113.11/32 203.0.113.12/32]"},
		{"v6 multicast: link-local only", "2001:db8::100/64", false, v6, spec.AllowSources{}, "[fe80::11/128 fe80::12/128]"},
		{"v6 multicast without link-local", "2001:db8::100/64", false,
			map[string][]netip.Prefix{"gw1": pfx("2001:db8::11/64"), "gw2": pfx("2001:db8::12/64")}, spec.AllowSources{}, "have no link-local"},
		{"v6 unicast: every v6 address", "2001:db8::100/64", true, v6, spec.AllowSources{},
			"[2001:db8::11/128 fe80::11/128 2001:db8::12/128 fe80::12/128]"},
	} {
		vi := spec.VRRPInstance{Interface: "eth0", VRID: 51, Version: 3, AdvertInterval: spec.Duration(100 * time.Millisecond), Preempt: true,
			Nodes: map[string]spec.VRRPNode{"gw1": {Priority: 150}, "gw2": {Priority: 100}},
			VIPs:  []spec.VIP{{Address: netip.MustParsePrefix(c.vip)}}, Unicast: c.unicast, PeerAddresses: c.peers, AllowSources: c.allow}
		cfg, err := VRRPConfig(&spec.Node{Name: "gw1", VRRP: map[string]spec.VRRPInstance{"VI_1": vi}})
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = fmt.Sprint(cfg.Instances[0].AllowSources)
		}
		if !strings.Contains(got, c.want) || (err == nil) != strings.HasPrefix(c.want, "[") {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
}

// TestAllowSourcesInSite: allow_sources goes through the schema and the
// loader: a list extends the site's own, "any" turns the list off, and
// anything else is refused by `validate` with a position.
func TestAllowSourcesInSite(t *testing.T) {
	lab, err := os.ReadFile("../examples/lab/site.cue")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile("../examples/lab/cue.mod/module.cue")
	if err != nil {
		t.Fatal(err)
	}
	site := func(extra string) string {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "cue.mod"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cue.mod", "module.cue"), mod, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "site.cue"), append(lab, []byte("\n"+extra+"\n")...), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	for _, c := range []struct {
		extra, want string
	}{
		{`vrrp: VI_1: allow_sources: ["203.0.113.20", "198.51.100.0/24"]`, "[203.0.113.11/32 203.0.113.12/32 203.0.113.20/32 198.51.100.0/24]"},
		{`vrrp: VI_1: allow_sources: "any"`, "[]"},
		{`vrrp: VI_1: allow_sources: "everyone"`, "allow_sources"},
		{`vrrp: VI_1: allow_sources: ["lan"]`, "allow_sources"},
	} {
		_, n, err := loader.Load(context.Background(), site(c.extra), "gw1")
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			cfg, err := VRRPConfig(n)
			if err != nil {
				t.Fatalf("%s: %v", c.extra, err)
			}
			got = fmt.Sprint(cfg.Instances[0].AllowSources)
		}
		if !strings.Contains(got, c.want) || (err == nil) != strings.HasPrefix(c.want, "[") {
			t.Errorf("%s: got %s, want %s", c.extra, got, c.want)
		}
	}
}
