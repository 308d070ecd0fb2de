package policies

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
)

// labNode is gw1's view of the lab site, with four servers behind web so
// that shares can be told apart.
func labNode() *spec.Node {
	in := labSite()
	web := in.Services["web"]
	web.Servers = map[string]spec.Server{
		"s1": {Address: "198.51.100.11:8080"}, "s2": {Address: "198.51.100.12:8080"},
		"s3": {Address: "198.51.100.13:8080"}, "s4": {Address: "198.51.100.14:8080"},
	}
	in.Services["web"] = web
	in.Nodes["gw1"] = spec.NodeSettings{Labels: map[string]string{"zone": "a"}, Interfaces: in.Nodes["gw1"].Interfaces}
	return &spec.Node{Name: "gw1", Site: in.Settings, Node: in.Nodes["gw1"], VRRP: in.VRRP, Services: in.Services, Units: in.Units}
}

// changed returns a copy of the lab node with fn applied.
func changed(fn func(n *spec.Node)) *spec.Node {
	n := labNode()
	n.Services = maps.Clone(n.Services)
	n.VRRP = maps.Clone(n.VRRP)
	fn(n)
	return n
}

func servers(n *spec.Node, svc string, fn func(m map[string]spec.Server)) {
	s := n.Services[svc]
	s.Servers = maps.Clone(s.Servers)
	fn(s.Servers)
	n.Services[svc] = s
}

func window(start, end string, days ...string) spec.MaintenanceWindow {
	return spec.MaintenanceWindow{Name: "night", Labels: map[string]string{"zone": "a"}, Days: days, Start: start, End: end, Timezone: "UTC"}
}

func withWindows(n *spec.Node, ws ...spec.MaintenanceWindow) {
	n.Site.Policies.MaintenanceWindows = ws
}

// TestCheckChange: each change policy, allowed and refused; messages in
// testdata/change.golden.
func TestCheckChange(t *testing.T) {
	// Wednesday 2026-11-18 14:00 UTC.
	wed14 := time.Date(2026, 11, 18, 14, 0, 0, 0, time.UTC)
	allow := map[string]string{"Gitgw-Allow-Empty": "decommissioning web"}
	cases := []struct {
		name       string
		prev, next *spec.Node
		trailers   map[string]string
		now        time.Time
		want       []string // policies that speak, in order
	}{
		{"first apply: nothing to protect", nil, changed(func(n *spec.Node) { delete(n.Services, "web") }), nil, wed14, nil},
		{"unchanged", labNode(), labNode(), nil, wed14, nil},

		{"server removal: 2 of 4 (50%)", labNode(), changed(func(n *spec.Node) {
			servers(n, "web", func(m map[string]spec.Server) { delete(m, "s1"); delete(m, "s2") })
		}), nil, wed14, nil},
		{"server removal: 3 of 4", labNode(), changed(func(n *spec.Node) {
			servers(n, "web", func(m map[string]spec.Server) { delete(m, "s1"); delete(m, "s2"); delete(m, "s3") })
		}), nil, wed14, []string{"server-removal"}},
		{"server removal: 3 of 4 disabled counts as removed", labNode(), changed(func(n *spec.Node) {
			servers(n, "web", func(m map[string]spec.Server) {
				for _, k := range []string{"s1", "s2", "s3"} {
					s := m[k]
					s.Disabled = true
					m[k] = s
				}
			})
		}), nil, wed14, []string{"server-removal"}},
		{"server removal: every address changed", labNode(), changed(func(n *spec.Node) {
			servers(n, "web", func(m map[string]spec.Server) {
				for k, s := range m {
					s.Address = strings.Replace(s.Address, "198.51.100.", "198.51.100.1", 1)
					m[k] = s
				}
			})
		}), nil, wed14, []string{"server-removal"}},
		{"server removal: the new commit raises the cap, the old one still holds", labNode(), changed(func(n *spec.Node) {
			n.Site.Policies.MaxServerRemovalPercent = 100
			servers(n, "web", func(m map[string]spec.Server) { delete(m, "s1"); delete(m, "s2"); delete(m, "s3") })
		}), nil, wed14, []string{"server-removal"}},
		{"server removal: cap 75 in both", changed(func(n *spec.Node) { n.Site.Policies.MaxServerRemovalPercent = 75 }), changed(func(n *spec.Node) {
			n.Site.Policies.MaxServerRemovalPercent = 75
			servers(n, "web", func(m map[string]spec.Server) { delete(m, "s1"); delete(m, "s2"); delete(m, "s3") })
		}), nil, wed14, nil},
		{"server removal: disabled in both", changed(func(n *spec.Node) { n.Site.Policies.Disable = []string{"server-removal"} }), changed(func(n *spec.Node) {
			n.Site.Policies.Disable = []string{"server-removal"}
			servers(n, "web", func(m map[string]spec.Server) { delete(m, "s1"); delete(m, "s2"); delete(m, "s3") })
		}), nil, wed14, nil},
		{"server removal: disabled by the new commit only", labNode(), changed(func(n *spec.Node) {
			n.Site.Policies.Disable = []string{"server-removal"}
			servers(n, "web", func(m map[string]spec.Server) { delete(m, "s1"); delete(m, "s2"); delete(m, "s3") })
		}), nil, wed14, []string{"server-removal"}},
		{"service removed whole", labNode(), changed(func(n *spec.Node) { delete(n.Services, "web") }), nil, wed14, nil},

		{"allow empty: every server disabled", labNode(), changed(func(n *spec.Node) {
			servers(n, "web", func(m map[string]spec.Server) {
				for k, s := range m {
					s.Disabled = true
					m[k] = s
				}
			})
		}), nil, wed14, []string{"allow-empty"}},
		{"allow empty: every server disabled, with the trailer", labNode(), changed(func(n *spec.Node) {
			servers(n, "web", func(m map[string]spec.Server) {
				for k, s := range m {
					s.Disabled = true
					m[k] = s
				}
			})
		}), allow, wed14, nil},
		{"allow empty: every VIP", labNode(), changed(func(n *spec.Node) { n.VRRP = map[string]spec.VRRPInstance{} }), nil, wed14, []string{"allow-empty"}},
		{"allow empty: every VIP, trailer in lower case", labNode(), changed(func(n *spec.Node) { n.VRRP = map[string]spec.VRRPInstance{} }),
			map[string]string{"gitgw-allow-empty": "yes"}, wed14, nil},
		{"allow empty: an empty trailer is no trailer", labNode(), changed(func(n *spec.Node) { n.VRRP = map[string]spec.VRRPInstance{} }),
			map[string]string{"Gitgw-Allow-Empty": " "}, wed14, []string{"allow-empty"}},

		{"window: inside", changed(func(n *spec.Node) { withWindows(n, window("13:00", "15:00")) }), changed(func(n *spec.Node) {
			withWindows(n, window("13:00", "15:00"))
			servers(n, "web", func(m map[string]spec.Server) { delete(m, "s4") })
		}), nil, wed14, nil},
		{"window: outside", changed(func(n *spec.Node) { withWindows(n, window("01:00", "05:00")) }), changed(func(n *spec.Node) {
			withWindows(n, window("01:00", "05:00"))
			servers(n, "web", func(m map[string]spec.Server) { delete(m, "s4") })
		}), nil, wed14, []string{"maintenance-window"}},
		{"window: outside, but nothing changes", changed(func(n *spec.Node) { withWindows(n, window("01:00", "05:00")) }),
			changed(func(n *spec.Node) { withWindows(n, window("01:00", "05:00")) }), nil, wed14, nil},
		{"window: other label", changed(func(n *spec.Node) {
			w := window("01:00", "05:00")
			w.Labels = map[string]string{"zone": "b"}
			withWindows(n, w)
		}), changed(func(n *spec.Node) {
			w := window("01:00", "05:00")
			w.Labels = map[string]string{"zone": "b"}
			withWindows(n, w)
			servers(n, "web", func(m map[string]spec.Server) { delete(m, "s4") })
		}), nil, wed14, nil},
		{"window: past midnight, the day before", changed(func(n *spec.Node) { withWindows(n, window("22:00", "15:00", "tue")) }), changed(func(n *spec.Node) {
			withWindows(n, window("22:00", "15:00", "tue"))
			servers(n, "web", func(m map[string]spec.Server) { delete(m, "s4") })
		}), nil, wed14, nil},
		{"window: wrong day", changed(func(n *spec.Node) { withWindows(n, window("13:00", "15:00", "sat", "sun")) }), changed(func(n *spec.Node) {
			withWindows(n, window("13:00", "15:00", "sat", "sun"))
			servers(n, "web", func(m map[string]spec.Server) { delete(m, "s4") })
		}), nil, wed14, []string{"maintenance-window"}},
		{"window: the commit that removes its window is held by it", changed(func(n *spec.Node) { withWindows(n, window("01:00", "05:00")) }),
			labNode(), nil, wed14, []string{"maintenance-window"}},
		{"window: in another time zone", changed(func(n *spec.Node) {
			w := window("08:00", "10:00")
			w.Timezone = "America/New_York" // 14:00 UTC is 09:00 there in November
			withWindows(n, w)
		}), changed(func(n *spec.Node) {
			w := window("08:00", "10:00")
			w.Timezone = "America/New_York"
			withWindows(n, w)
			servers(n, "web", func(m map[string]spec.Server) { delete(m, "s4") })
		}), nil, wed14, nil},
	}
	var golden strings.Builder
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := CheckChange(Change{Prev: c.prev, Next: c.next, Trailers: c.trailers, Now: c.now})
			fmt.Fprintf(&golden, "# %s\n", c.name)
			var names []string
			for _, v := range got {
				fmt.Fprintln(&golden, v.String())
				names = append(names, v.Policy)
			}
			if strings.Join(names, ",") != strings.Join(c.want, ",") {
				t.Errorf("policies %v, want %v: %v", names, c.want, got)
			}
		})
	}
	checkGolden(t, "change.golden", golden.String())
}
