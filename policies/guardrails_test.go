package policies

import (
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/l4proxy"
	"github.com/gitgw/gitgw/test/goldenfile"
)

// labSite is examples/lab as a whole site: every guardrail passes on it.
func labSite() Input {
	node := func(addr string) spec.NodeSettings {
		return spec.NodeSettings{
			Interfaces: map[string]spec.Interface{"eth0": {Addresses: []netip.Prefix{netip.MustParsePrefix(addr)}}},
			Tuning:     spec.Tuning{Interfaces: map[string]spec.NICTuning{"eth0": {RPSCPUs: "all"}}},
		}
	}
	return Input{
		Settings: spec.SiteSettings{Name: "lab", Policies: spec.Policies{MaxServerRemovalPercent: 50}},
		Nodes:    map[string]spec.NodeSettings{"gw1": node("203.0.113.11/24"), "gw2": node("203.0.113.12/24")},
		VRRP: map[string]spec.VRRPInstance{"VI_1": {
			Interface: "eth0", VRID: 51, Version: 3,
			Nodes: map[string]spec.VRRPNode{"gw1": {Priority: 150}, "gw2": {Priority: 100}},
			VIPs:  []spec.VIP{{Address: netip.MustParsePrefix("203.0.113.100/24")}},
		}},
		Services: map[string]spec.Service{"web": {
			Binds:   []string{"203.0.113.100:80"},
			Servers: map[string]spec.Server{"s1": {Address: "198.51.100.11:8080"}, "s2": {Address: "198.51.100.12:8080"}},
			Check:   &spec.ServiceCheck{Check: spec.Check{Kind: "tcp"}},
		}},
		Units: map[string]spec.UnitTemplate{"app": {ExecStart: "/bin/app %i", Instances: []spec.InstanceSet{{List: []string{"8080", "8081"}}}}},
		Whole: true,
	}
}

// backSegment gives gw1 and gw2 an address on the servers' segment
// (198.51.100.0/24 on eth1): a nat service's route back.
func backSegment(in *Input) {
	for n, a := range map[string]string{"gw1": "198.51.100.2/24", "gw2": "198.51.100.3/24"} {
		setNode(in, n, func(ns *spec.NodeSettings) {
			ifs := maps.Clone(ns.Interfaces)
			ifs["eth1"] = spec.Interface{Addresses: []netip.Prefix{netip.MustParsePrefix(a)}}
			ns.Interfaces = ifs
		})
	}
}

// realServers adds r1 and r2, nodes whose eth0 addresses are the servers
// of a dr service lvs run by gw1 and gw2; web runs on the gateways only.
func realServers(in *Input) {
	setService(in, "web", func(s *spec.Service) { s.Nodes = []string{"gw1", "gw2"} })
	for n, a := range map[string]string{"r1": "203.0.113.21/24", "r2": "203.0.113.22/24"} {
		in.Nodes[n] = spec.NodeSettings{Interfaces: map[string]spec.Interface{"eth0": {Addresses: []netip.Prefix{netip.MustParsePrefix(a)}}}}
	}
	in.Services["lvs"] = spec.Service{Nodes: []string{"gw1", "gw2"}, Mode: spec.ModeDR, Interface: "eth0", Balance: "maglev",
		Binds:   []string{"203.0.113.100:443"},
		Servers: map[string]spec.Server{"r1": {Address: "203.0.113.21:443"}, "r2": {Address: "203.0.113.22:443"}},
		Check:   &spec.ServiceCheck{Check: spec.Check{Kind: "tcp"}}}
}

// edit applies fn to a copy of the lab site (maps copied one level down,
// which is as deep as the cases write).
func edit(fn func(in *Input)) Input {
	in := labSite()
	fn(&in)
	return in
}

func vip(s string) spec.VIP { return spec.VIP{Address: netip.MustParsePrefix(s)} }

func setVRRP(in *Input, name string, fn func(vi *spec.VRRPInstance)) {
	vi := in.VRRP[name]
	fn(&vi)
	in.VRRP[name] = vi
}

func setNode(in *Input, name string, fn func(n *spec.NodeSettings)) {
	n := in.Nodes[name]
	fn(&n)
	in.Nodes[name] = n
}

func setService(in *Input, name string, fn func(s *spec.Service)) {
	s := in.Services[name]
	fn(&s)
	in.Services[name] = s
}

// secondInstance adds VI_2, by default a valid neighbour of VI_1.
// ipv6Instance adds VI_6, holding the IPv6 VIP 2001:db8:1::100 on eth0.
func ipv6Instance(in *Input) {
	in.VRRP["VI_6"] = spec.VRRPInstance{Interface: "eth0", VRID: 56, Version: 3,
		Nodes: map[string]spec.VRRPNode{"gw1": {Priority: 150}, "gw2": {Priority: 100}},
		VIPs:  []spec.VIP{vip("2001:db8:1::100/64")}}
}

func secondInstance(in *Input, fn func(vi *spec.VRRPInstance)) {
	vi := spec.VRRPInstance{Interface: "eth0", VRID: 52, Version: 3,
		Nodes: map[string]spec.VRRPNode{"gw1": {Priority: 100}, "gw2": {Priority: 150}},
		VIPs:  []spec.VIP{vip("203.0.113.101/24")}}
	fn(&vi)
	in.VRRP["VI_2"] = vi
}

// TestGuardrails runs each guardrail on a valid and an invalid site; the
// messages are in testdata/guardrails.golden. Each case names the policy
// it exercises; a case must make that policy (and only it) speak.
func TestGuardrails(t *testing.T) {
	cases := []struct {
		name, policy string
		in           Input
		want         int // violations of that policy
	}{
		{"lab site", "", labSite(), 0},
		{"feature built: a nat udp service and a dr service with maglev", "service-feature-built", edit(func(in *Input) {
			backSegment(in)
			setService(in, "web", func(s *spec.Service) {
				s.Mode, s.Protocol, s.Balance = spec.ModeNAT, "udp", "roundrobin"
				s.Source = &spec.SourceRules{Allow: []string{"198.51.100.0/24"}, MaxConnPerSource: 10, MaxRatePerSource: "600/m"}
			})
			in.Services["lvs"] = spec.Service{Mode: spec.ModeDR, Protocol: "tcp", Interface: "eth0", Balance: "maglev",
				Binds:   []string{"203.0.113.100:443"},
				Servers: map[string]spec.Server{"r1": {Address: "203.0.113.21:443", CheckPort: 8008}, "r2": {Address: "203.0.113.22:443"}},
				Check:   &spec.ServiceCheck{Check: spec.Check{Kind: "http"}}}
		}), 0},
		{"feature built: what kernel modes cannot carry, at its place", "service-feature-built", edit(func(in *Input) {
			backSegment(in)
			setService(in, "web", func(s *spec.Service) {
				s.Mode, s.Balance, s.MaxConn, s.ProxyProtocol = spec.ModeDR, "leastconn", 100, "v2"
				s.Source = &spec.SourceRules{MaxConnPerSource: 10, MaxRatePerSource: "100/s"}
				s.Servers = map[string]spec.Server{"s1": {Address: "198.51.100.11:8080", MaxConn: 5}, "s2": {Address: "app.example:80"}}
			})
			in.Services["dns"] = spec.Service{Mode: spec.ModeNAT, Protocol: "udp", Balance: "first", Interface: "eth0",
				Binds: []string{"0.0.0.0:53"}, Persistence: spec.Duration(500 * time.Millisecond),
				Source:  &spec.SourceRules{Deny: []string{"2001:db8::/32"}, MaxRatePerSource: "1000/h"},
				Servers: map[string]spec.Server{"d1": {Address: "198.51.100.53:53"}},
				Check:   &spec.ServiceCheck{Check: spec.Check{Kind: "tcp"}}}
			in.Services["lvs"] = spec.Service{Mode: spec.ModeDR, Protocol: "tcp", Interface: "eth0", Balance: "source",
				Binds:   []string{"203.0.113.100:443"},
				Servers: map[string]spec.Server{"r1": {Address: "198.51.100.21:443"}, "r2": {Address: "203.0.113.22:443"}},
				Check:   &spec.ServiceCheck{Check: spec.Check{Kind: "tcp"}}}
			in.Services["px"] = spec.Service{Balance: "maglev", Binds: []string{"203.0.113.100:8443"},
				Servers: map[string]spec.Server{"p1": {Address: "198.51.100.11:8443"}},
				Check:   &spec.ServiceCheck{Check: spec.Check{Kind: "tcp"}}}
		}), 17},
		{"feature built: a check port carried", "service-feature-built", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) {
				s.Servers = map[string]spec.Server{"s1": {Address: "198.51.100.11:8080", CheckPort: 8008}}
			})
		}), 0},
		{"feature built: transparent in proxy mode carried", "service-feature-built", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) { s.Transparent = true })
		}), 0},
		{"feature built: udp in proxy mode carried", "service-feature-built", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) { s.Protocol = "udp" })
		}), 0},
		{"feature built: transparent in a kernel mode refused", "service-feature-built", edit(func(in *Input) {
			backSegment(in)
			setService(in, "web", func(s *spec.Service) { s.Mode, s.Transparent = spec.ModeNAT, true })
		}), 1},
		{"feature built: services by fwmark in nat and dr carried", "service-feature-built", edit(func(in *Input) {
			backSegment(in)
			setService(in, "web", func(s *spec.Service) {
				s.Mode, s.Binds, s.Fwmarks = spec.ModeNAT, nil, []uint32{1}
				s.Servers = map[string]spec.Server{"s1": {Address: "198.51.100.11"}, "s2": {Address: "198.51.100.12"}}
				s.Check = &spec.ServiceCheck{Check: spec.Check{Kind: "tcp"}, Port: 80}
			})
			in.Services["lvs"] = spec.Service{Mode: spec.ModeDR, Interface: "eth0", Balance: "maglev",
				Binds: []string{"203.0.113.100:443"}, Fwmarks: []uint32{2},
				Servers: map[string]spec.Server{"r1": {Address: "203.0.113.21", CheckPort: 443}, "r2": {Address: "203.0.113.22", CheckPort: 443}},
				Check:   &spec.ServiceCheck{Check: spec.Check{Kind: "tcp"}}}
		}), 0},
		{"feature built: fwmarks where they cannot be, at their place", "service-feature-built", edit(func(in *Input) {
			backSegment(in)
			setService(in, "web", func(s *spec.Service) {
				s.Fwmarks = []uint32{1}
				s.Servers = map[string]spec.Server{"s1": {Address: "198.51.100.11"}, "s2": {Address: "198.51.100.12:8080"}}
			})
			in.Services["nat"] = spec.Service{Mode: spec.ModeNAT, Fwmarks: []uint32{2},
				Servers: map[string]spec.Server{"n1": {Address: "198.51.100.11"}, "n2": {Address: "198.51.100.12:8080"}},
				Check:   &spec.ServiceCheck{Check: spec.Check{Kind: "tcp"}}}
			in.Services["lvs"] = spec.Service{Mode: spec.ModeDR, Interface: "eth0", Balance: "maglev", Fwmarks: []uint32{3},
				Servers: map[string]spec.Server{"r1": {Address: "203.0.113.21:443"}},
				Check:   &spec.ServiceCheck{Check: spec.Check{Kind: "tcp"}}}
			in.Services["none"] = spec.Service{Mode: spec.ModeNAT,
				Servers: map[string]spec.Server{"x1": {Address: "198.51.100.13:80"}},
				Check:   &spec.ServiceCheck{Check: spec.Check{Kind: "tcp"}}}
		}), 6},
		{"feature built: the transparent proxy's mark taken by a service", "service-feature-built", edit(func(in *Input) {
			backSegment(in)
			setService(in, "web", func(s *spec.Service) { s.Mode, s.Fwmarks = spec.ModeNAT, []uint32{l4proxy.TransparentMark} })
		}), 1},
		{"feature built: server tls in proxy mode carried", "service-feature-built", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) {
				s.Servers = map[string]spec.Server{"s1": {Address: "198.51.100.11:8443", TLS: &spec.ServerTLS{CheckTLS: spec.CheckTLS{Verify: "none"}}}}
			})
		}), 0},
		{"feature built: server tls in a kernel mode refused", "service-feature-built", edit(func(in *Input) {
			backSegment(in)
			setService(in, "web", func(s *spec.Service) {
				s.Mode = spec.ModeNAT
				s.Servers = map[string]spec.Server{"s1": {Address: "198.51.100.11:8443", TLS: &spec.ServerTLS{CheckTLS: spec.CheckTLS{Verify: "none"}}}}
			})
		}), 1},
		{"feature built: servers via socks4 in proxy mode carried", "service-feature-built", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) {
				s.Servers = map[string]spec.Server{
					"s1": {Address: "198.51.100.11:25", Via: &spec.ServerVia{SOCKS4: "127.0.0.1:1080", Check: true}},
					"s2": {Address: "198.51.100.12:443", Via: &spec.ServerVia{SOCKS4: "[2001:db8::5]:1080"},
						TLS: &spec.ServerTLS{CheckTLS: spec.CheckTLS{Verify: "none"}}},
				}
			})
		}), 0},
		{"feature built: via socks4 where it cannot be, at its place", "service-feature-built", edit(func(in *Input) {
			backSegment(in)
			via := &spec.ServerVia{SOCKS4: "127.0.0.1:1080"}
			setService(in, "web", func(s *spec.Service) {
				s.Mode = spec.ModeNAT
				s.Servers = map[string]spec.Server{"s1": {Address: "198.51.100.11:8080", Via: via}}
			})
			in.Services["dns"] = spec.Service{Protocol: "udp", Binds: []string{"203.0.113.100:53"},
				Servers: map[string]spec.Server{"d1": {Address: "198.51.100.53:53", Via: via}},
				Check:   &spec.ServiceCheck{Check: spec.Check{Kind: "tcp"}}}
			in.Services["tp"] = spec.Service{Transparent: true, Binds: []string{"203.0.113.100:25"},
				Servers: map[string]spec.Server{"t1": {Address: "198.51.100.25:25", Via: via}, "t6": {Address: "[2001:db8::25]:25"}},
				Check:   &spec.ServiceCheck{Check: spec.Check{Kind: "tcp"}}}
			in.Services["v6"] = spec.Service{Binds: []string{"203.0.113.100:587"},
				Servers: map[string]spec.Server{"s6": {Address: "[2001:db8::25]:587", Via: via}},
				Check:   &spec.ServiceCheck{Check: spec.Check{Kind: "tcp"}}}
		}), 4},

		{"nat route back: servers on the gateways' back segment", "nat-route-back", edit(func(in *Input) {
			backSegment(in)
			setService(in, "web", func(s *spec.Service) { s.Mode = spec.ModeNAT })
		}), 0},
		{"nat route back: servers on the segment of a VIP", "nat-route-back", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) { s.Mode = spec.ModeNAT })
			secondInstance(in, func(vi *spec.VRRPInstance) {
				vi.VIPs = []spec.VIP{{Address: netip.MustParsePrefix("198.51.100.1/24"), Dev: "eth1"}}
			})
			setNode(in, "gw1", func(ns *spec.NodeSettings) {
				ns.Interfaces = map[string]spec.Interface{"eth0": ns.Interfaces["eth0"], "eth1": {}}
			})
			setNode(in, "gw2", func(ns *spec.NodeSettings) {
				ns.Interfaces = map[string]spec.Interface{"eth0": ns.Interfaces["eth0"], "eth1": {}}
			})
			in.Settings.Policies.Disable = []string{"vip-in-subnet"} // eth1 has no address: the VIP is the segment's only one
		}), 0},
		{"nat route back: servers on no segment of the gateways", "nat-route-back", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) { s.Mode = spec.ModeNAT })
		}), 2},
		{"nat route back: only the node that runs the service counts", "nat-route-back", edit(func(in *Input) {
			backSegment(in)
			setNode(in, "gw2", func(ns *spec.NodeSettings) {
				ns.Interfaces = map[string]spec.Interface{"eth0": ns.Interfaces["eth0"]}
			})
			setService(in, "web", func(s *spec.Service) { s.Mode, s.Nodes = spec.ModeNAT, []string{"gw1"} })
		}), 0},
		{"nat route back: routed by a router the site does not describe", "nat-route-back", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) { s.Mode, s.RouteBack = spec.ModeNAT, spec.RouteBackRouted })
		}), 0},
		{"nat route back: nodes whose addresses the site does not state", "nat-route-back", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) { s.Mode, s.Nodes = spec.ModeNAT, []string{"gw3"} })
			in.Nodes["gw3"] = spec.NodeSettings{}
		}), 0},
		{"nat route back: proxy mode is not concerned", "nat-route-back", labSite(), 0},

		{"dr real server: real servers described, the service on its gateways", "dr-real-server", edit(realServers), 0},
		{"dr real server: the service runs on every node, its real servers too", "dr-real-server", edit(func(in *Input) {
			realServers(in)
			setService(in, "lvs", func(s *spec.Service) { s.Nodes = nil })
			// bind-address sees it too (a real server holds no VIP of an
			// instance), in words that do not say what to do.
			in.Settings.Policies.Disable = []string{"bind-address"}
		}), 2},
		{"dr real server: a real server listed in the service's nodes", "dr-real-server", edit(func(in *Input) {
			realServers(in)
			setService(in, "lvs", func(s *spec.Service) { s.Nodes = []string{"gw1", "gw2", "r2"} })
			in.Settings.Policies.Disable = []string{"bind-address"}
		}), 1},
		{"dr real server: off, the node is no real server", "dr-real-server", edit(func(in *Input) {
			realServers(in)
			setService(in, "lvs", func(s *spec.Service) { s.Nodes = []string{"gw1", "gw2", "r2"} })
			in.Settings.Policies.Disable = []string{"bind-address"}
			setNode(in, "r2", func(ns *spec.NodeSettings) { ns.RealServer = spec.RealServerOff })
		}), 0},
		{"dr real server: on, and no service names the node", "dr-real-server", edit(func(in *Input) {
			realServers(in)
			setNode(in, "r2", func(ns *spec.NodeSettings) {
				ns.RealServer = spec.RealServerOn
				ns.Interfaces = map[string]spec.Interface{"eth0": {Addresses: []netip.Prefix{netip.MustParsePrefix("203.0.113.23/24")}}}
			})
		}), 1},

		{"vrid unique: two instances, two VRIDs", "vrid-unique", edit(func(in *Input) { secondInstance(in, func(*spec.VRRPInstance) {}) }), 0},
		{"vrid unique: same VRID on one segment", "vrid-unique", edit(func(in *Input) {
			secondInstance(in, func(vi *spec.VRRPInstance) { vi.VRID = 51 })
		}), 1},
		{"vrid unique: same VRID, other nodes, same segment", "vrid-unique", edit(func(in *Input) {
			in.Nodes["gw3"] = spec.NodeSettings{Interfaces: map[string]spec.Interface{"eth0": {Addresses: []netip.Prefix{netip.MustParsePrefix("203.0.113.13/24")}}}}
			in.Nodes["gw4"] = spec.NodeSettings{Interfaces: map[string]spec.Interface{"eth0": {Addresses: []netip.Prefix{netip.MustParsePrefix("203.0.113.14/24")}}}}
			setService(in, "web", func(s *spec.Service) { s.Nodes = []string{"gw1", "gw2"} })
			secondInstance(in, func(vi *spec.VRRPInstance) {
				vi.VRID = 51
				vi.Nodes = map[string]spec.VRRPNode{"gw3": {Priority: 150}, "gw4": {Priority: 100}}
			})
		}), 1},
		{"vrid unique: same VRID, other segment", "vrid-unique", edit(func(in *Input) {
			in.Nodes["gw3"] = spec.NodeSettings{Interfaces: map[string]spec.Interface{"eth0": {Addresses: []netip.Prefix{netip.MustParsePrefix("198.51.100.13/24")}}}}
			in.Nodes["gw4"] = spec.NodeSettings{Interfaces: map[string]spec.Interface{"eth0": {Addresses: []netip.Prefix{netip.MustParsePrefix("198.51.100.14/24")}}}}
			setService(in, "web", func(s *spec.Service) { s.Nodes = []string{"gw1", "gw2"} })
			secondInstance(in, func(vi *spec.VRRPInstance) {
				vi.VRID = 51
				vi.Nodes = map[string]spec.VRRPNode{"gw3": {Priority: 150}, "gw4": {Priority: 100}}
				vi.VIPs = []spec.VIP{vip("198.51.100.100/24")}
			})
		}), 0},
		{"vrid unique: same VRID, IPv4 and IPv6", "vrid-unique", edit(func(in *Input) {
			secondInstance(in, func(vi *spec.VRRPInstance) { vi.VRID = 51; vi.VIPs = []spec.VIP{vip("2001:db8::100/64")} })
		}), 0},

		{"priority distinct: tie", "priority-distinct", edit(func(in *Input) {
			setVRRP(in, "VI_1", func(vi *spec.VRRPInstance) {
				vi.Nodes = map[string]spec.VRRPNode{"gw1": {Priority: 100}, "gw2": {Priority: 100}}
			})
		}), 1},

		{"vip in subnet: outside", "vip-in-subnet", edit(func(in *Input) {
			setVRRP(in, "VI_1", func(vi *spec.VRRPInstance) { vi.VIPs = []spec.VIP{vip("198.51.100.100/24")} })
			setService(in, "web", func(s *spec.Service) { s.Binds = []string{"198.51.100.100:80"} })
		}), 2},
		{"vip in subnet: no IPv4 address on the VIP's dev", "vip-in-subnet", edit(func(in *Input) {
			setVRRP(in, "VI_1", func(vi *spec.VRRPInstance) {
				vi.VIPs = append(vi.VIPs, spec.VIP{Address: netip.MustParsePrefix("198.51.100.100/24"), Dev: "eth1"})
			})
			setNode(in, "gw1", func(n *spec.NodeSettings) {
				n.Interfaces = map[string]spec.Interface{"eth0": n.Interfaces["eth0"], "eth1": {}}
			})
			setNode(in, "gw2", func(n *spec.NodeSettings) {
				n.Interfaces = map[string]spec.Interface{"eth0": n.Interfaces["eth0"], "eth1": {Addresses: []netip.Prefix{netip.MustParsePrefix("198.51.100.2/24")}}}
			})
		}), 1},
		{"vip in subnet: IPv6 VIP on an IPv4-only link", "vip-in-subnet", edit(func(in *Input) {
			setVRRP(in, "VI_1", func(vi *spec.VRRPInstance) { vi.VIPs = append(vi.VIPs, vip("2001:db8::100/64")) })
		}), 0},

		{"vip not node address: VIP is gw2's address", "vip-not-node-address", edit(func(in *Input) {
			setVRRP(in, "VI_1", func(vi *spec.VRRPInstance) { vi.VIPs = []spec.VIP{vip("203.0.113.12/24")} })
			setService(in, "web", func(s *spec.Service) { s.Binds = []string{"203.0.113.12:80"} })
		}), 1},
		{"vip not node address: excluded VIP", "vip-not-node-address", edit(func(in *Input) {
			setVRRP(in, "VI_1", func(vi *spec.VRRPInstance) { vi.ExcludedVIPs = []spec.VIP{vip("203.0.113.11/32")} })
		}), 1},

		{"vip unique: twice in vips", "vip-unique", edit(func(in *Input) {
			setVRRP(in, "VI_1", func(vi *spec.VRRPInstance) { vi.VIPs = append(vi.VIPs, vip("203.0.113.100/32")) })
		}), 1},
		{"vip unique: in vips and excluded_vips", "vip-unique", edit(func(in *Input) {
			setVRRP(in, "VI_1", func(vi *spec.VRRPInstance) {
				vi.ExcludedVIPs = []spec.VIP{vip("203.0.113.101/24"), vip("203.0.113.100/24")}
			})
		}), 1},

		{"instance consistent: node without the interface", "instance-consistent", edit(func(in *Input) {
			setVRRP(in, "VI_1", func(vi *spec.VRRPInstance) { vi.Interface = "eth1" })
		}), 2},
		{"instance consistent: VIP in two instances", "instance-consistent", edit(func(in *Input) {
			secondInstance(in, func(vi *spec.VRRPInstance) { vi.VIPs = []spec.VIP{vip("203.0.113.100/24")} })
		}), 1},
		{"instance consistent: sync group over other nodes and versions", "instance-consistent", edit(func(in *Input) {
			setVRRP(in, "VI_1", func(vi *spec.VRRPInstance) { vi.SyncGroup = "G1" })
			secondInstance(in, func(vi *spec.VRRPInstance) {
				vi.SyncGroup = "G1"
				vi.Version = 2
				vi.Nodes = map[string]spec.VRRPNode{"gw1": {Priority: 100}}
			})
		}), 2},
		{"instance consistent: sync group on the same nodes", "instance-consistent", edit(func(in *Input) {
			setVRRP(in, "VI_1", func(vi *spec.VRRPInstance) { vi.SyncGroup = "G1" })
			secondInstance(in, func(vi *spec.VRRPInstance) { vi.SyncGroup = "G1" })
		}), 0},

		{"service primary server: only a backup", "service-primary-server", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) {
				s.Servers = map[string]spec.Server{"s1": {Address: "198.51.100.11:8080", Backup: true}, "s2": {Address: "198.51.100.12:8080", Disabled: true}}
			})
		}), 1},
		{"service primary server: a backup and a primary", "service-primary-server", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) {
				s.Servers = map[string]spec.Server{"s1": {Address: "198.51.100.11:8080", Backup: true}, "s2": {Address: "198.51.100.12:8080"}}
			})
		}), 0},

		{"service primary server: http rules without servers", "service-primary-server", edit(func(in *Input) {
			in.Services["front"] = spec.Service{Binds: []string{"203.0.113.100:8091"}, HTTP: &spec.ServiceHTTP{Rules: []spec.HTTPRule{{Use: "web"}}}}
		}), 0},
		{"service health check: http rules without servers need none, and take none", "service-health-check", edit(func(in *Input) {
			in.Services["front"] = spec.Service{Binds: []string{"203.0.113.100:8091"}, HTTP: &spec.ServiceHTTP{Rules: []spec.HTTPRule{{Use: "web"}}}}
			in.Services["checked"] = spec.Service{Binds: []string{"203.0.113.100:8092"}, HTTP: &spec.ServiceHTTP{Rules: []spec.HTTPRule{{Use: "web"}}},
				Check: &spec.ServiceCheck{Check: spec.Check{Kind: "tcp"}}}
		}), 1},
		{"service health check: none", "service-health-check", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) { s.Check = nil })
		}), 1},
		{"service health check: none on purpose (udp proxy, nat and dr)", "service-health-check", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) { s.Check, s.Unchecked, s.Protocol = nil, true, "udp" })
			in.Services["nat"] = spec.Service{Mode: spec.ModeNAT, Protocol: "udp", Binds: []string{"203.0.113.100:53"},
				Servers: in.Services["web"].Servers, Unchecked: true, RouteBack: spec.RouteBackRouted}
			in.Services["dr"] = spec.Service{Mode: spec.ModeDR, Protocol: "udp", Interface: "eth0", Binds: []string{"203.0.113.100:514"},
				Balance: "maglev", Servers: map[string]spec.Server{"r1": {Address: "203.0.113.21:514"}}, Unchecked: true}
		}), 0},
		{"service health check: none in kernel modes, not said", "service-health-check", edit(func(in *Input) {
			in.Services["nat"] = spec.Service{Mode: spec.ModeNAT, Protocol: "udp", Binds: []string{"203.0.113.100:53"},
				Servers: in.Services["web"].Servers, RouteBack: spec.RouteBackRouted}
		}), 1},
		{"service health check: a check and unchecked", "service-health-check", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) { s.Unchecked = true })
		}), 1},
		{"service health check: a server unchecked, others checked elsewhere", "service-health-check", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) {
				s.Servers = map[string]spec.Server{
					"a": {Address: "198.51.100.11:25", Unchecked: true},
					"b": {Address: "198.51.100.12:25", CheckAddress: "198.51.100.99", CheckPort: 2525},
					"c": {Address: "198.51.100.13:25", CheckTargets: []string{"198.51.100.13:25", "198.51.100.98:25"}},
				}
			})
		}), 0},
		{"service health check: every server unchecked", "service-health-check", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) {
				s.Servers = map[string]spec.Server{"a": {Address: "198.51.100.11:80", Unchecked: true}, "b": {Address: "198.51.100.12:80", Unchecked: true}}
			})
		}), 1},
		{"service health check: server settings that contradict", "service-health-check", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) {
				s.Servers = map[string]spec.Server{
					"a": {Address: "198.51.100.11:25", Unchecked: true, CheckAddress: "198.51.100.99"},
					"b": {Address: "198.51.100.12:25", CheckTargets: []string{"198.51.100.98:25"}, CheckPort: 2525},
					"c": {Address: "198.51.100.13:25"},
				}
			})
			in.Services["dns"] = spec.Service{Protocol: "udp", Binds: []string{"203.0.113.100:53"}, Unchecked: true,
				Servers: map[string]spec.Server{"d1": {Address: "198.51.100.53:53", Unchecked: true}, "d2": {Address: "198.51.100.54:53", CheckTargets: []string{"198.51.100.9:53"}}}}
		}), 4},

		{"port clash: unit instance on a bind's port", "port-clash", edit(func(in *Input) {
			in.Units["app"] = spec.UnitTemplate{ExecStart: "/bin/app %i", Instances: []spec.InstanceSet{{Ports: &spec.PortRange{From: 79, To: 81}}}}
		}), 2},
		{"port clash: two services on one address and port", "port-clash", edit(func(in *Input) {
			in.Services["web2"] = spec.Service{Binds: []string{"203.0.113.100:80"}, Servers: in.Services["web"].Servers, Check: in.Services["web"].Check}
		}), 2},
		{"port clash: one fwmark taken by two tcp services", "port-clash", edit(func(in *Input) {
			backSegment(in)
			setService(in, "web", func(s *spec.Service) { s.Mode, s.Fwmarks = spec.ModeNAT, []uint32{1} })
			in.Services["web2"] = spec.Service{Mode: spec.ModeNAT, Fwmarks: []uint32{1}, Servers: in.Services["web"].Servers, Check: in.Services["web"].Check}
		}), 2},
		{"port clash: one fwmark for tcp and for udp", "port-clash", edit(func(in *Input) {
			backSegment(in)
			setService(in, "web", func(s *spec.Service) { s.Mode, s.Fwmarks = spec.ModeNAT, []uint32{1} })
			in.Services["web2"] = spec.Service{Mode: spec.ModeNAT, Protocol: "udp", Fwmarks: []uint32{1}, Servers: in.Services["web"].Servers, Check: in.Services["web"].Check}
		}), 0},
		{"port clash: tcp and udp on one address and port (DNS)", "port-clash", edit(func(in *Input) {
			in.Services["web2"] = spec.Service{Protocol: "udp", Binds: []string{"203.0.113.100:80"}, Servers: in.Services["web"].Servers, Check: in.Services["web"].Check}
		}), 0},
		{"port clash: two udp services on one address and port", "port-clash", edit(func(in *Input) {
			in.Services["web2"] = spec.Service{Protocol: "udp", Binds: []string{"203.0.113.100:80"}, Servers: in.Services["web"].Servers, Check: in.Services["web"].Check}
			in.Services["web3"] = spec.Service{Protocol: "udp", Binds: []string{"203.0.113.100:80"}, Servers: in.Services["web"].Servers, Check: in.Services["web"].Check}
		}), 2},
		{"port clash: a wildcard bind and a VIP bind", "port-clash", edit(func(in *Input) {
			in.Services["web2"] = spec.Service{Binds: []string{"0.0.0.0:80"}, Servers: in.Services["web"].Servers, Check: in.Services["web"].Check}
		}), 2},
		{"port clash: two VIPs, one port", "port-clash", edit(func(in *Input) {
			setVRRP(in, "VI_1", func(vi *spec.VRRPInstance) { vi.VIPs = append(vi.VIPs, vip("203.0.113.101/24")) })
			in.Services["web2"] = spec.Service{Binds: []string{"203.0.113.101:80"}, Servers: in.Services["web"].Servers, Check: in.Services["web"].Check}
		}), 0},
		{"port clash: unit on another node than the service", "port-clash", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) { s.Nodes = []string{"gw1"} })
			in.Units["app"] = spec.UnitTemplate{ExecStart: "/bin/app %i", Instances: []spec.InstanceSet{{Nodes: []string{"gw2"}, List: []string{"80"}}}}
		}), 0},

		{"bind address: neither a VIP nor a node address", "bind-address", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) { s.Binds = append(s.Binds, "203.0.113.200:443") })
		}), 2},
		{"bind address: a node address, loopback, a wildcard", "bind-address", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) {
				s.Nodes = []string{"gw1"}
				s.Binds = append(s.Binds, "203.0.113.11:8443", "127.0.0.1:9000", "[::1]:9001", "0.0.0.0:9002", "[::]:9003")
			})
		}), 0},
		{"bind address: a VIP of another node's instance", "bind-address", edit(func(in *Input) {
			in.Nodes["gw3"] = spec.NodeSettings{Interfaces: map[string]spec.Interface{"eth0": {Addresses: []netip.Prefix{netip.MustParsePrefix("203.0.113.13/24")}}}}
		}), 1},
		{"bind address: a node whose addresses the site does not state", "bind-address", edit(func(in *Input) {
			in.Nodes["gw3"] = spec.NodeSettings{}
		}), 0},

		{"cpu mask: beyond the node's CPUs", "cpu-mask", edit(func(in *Input) {
			setNode(in, "gw1", func(n *spec.NodeSettings) {
				n.CPUs = 2
				n.Tuning.Interfaces = map[string]spec.NICTuning{"eth0": {RPSCPUs: "0-3", XPSCPUs: "1", IRQCPUs: "0,1"}}
			})
		}), 1},
		{"cpu mask: backwards range", "cpu-mask", edit(func(in *Input) {
			setNode(in, "gw2", func(n *spec.NodeSettings) { n.Tuning.Interfaces = map[string]spec.NICTuning{"eth0": {IRQCPUs: "3-1"}} })
		}), 1},
		{"cpu mask: no CPU count, any list", "cpu-mask", edit(func(in *Input) {
			setNode(in, "gw2", func(n *spec.NodeSettings) { n.Tuning.Interfaces = map[string]spec.NICTuning{"eth0": {RPSCPUs: "0-63"}} })
		}), 0},

		{"proxy busy poll: too long", "proxy-busy-poll", edit(func(in *Input) {
			setNode(in, "gw1", func(n *spec.NodeSettings) { n.Tuning.ProxyBusyPoll = spec.Duration(50 * time.Millisecond) })
		}), 1},
		{"proxy busy poll: the longest", "proxy-busy-poll", edit(func(in *Input) {
			setNode(in, "gw1", func(n *spec.NodeSettings) { n.Tuning.ProxyBusyPoll = spec.Duration(10 * time.Millisecond) })
		}), 0},

		{"http pool: a rule to a service without binds", "http-pool", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) {
				s.HTTP = &spec.ServiceHTTP{Rules: []spec.HTTPRule{{Use: "static", When: []spec.HTTPCond{{Subject: "path", Match: "prefix", Values: []string{"/img"}}}}}}
			})
			st := in.Services["web"]
			st.Binds, st.HTTP = nil, nil
			in.Services["static"] = st
		}), 0},
		{"http pool: a rule to no service, a pool nothing uses, a tls bind not bound", "http-pool", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) {
				s.HTTP = &spec.ServiceHTTP{TLS: &spec.HTTPTLS{CertFiles: []string{"/etc/site.pem"}, Binds: []string{"203.0.113.100:443"}},
					Rules: []spec.HTTPRule{{Use: "statik"}}}
			})
			st := in.Services["web"]
			st.Binds, st.HTTP = nil, nil
			in.Services["static"] = st
		}), 3},
		{"http pool: cookie persistence on a pool a rule sends to", "http-pool", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) { s.HTTP = &spec.ServiceHTTP{Rules: []spec.HTTPRule{{Use: "static"}}} })
			st := in.Services["web"]
			st.Binds, st.HTTP = nil, nil
			st.Cookie = &spec.ServiceCookie{Name: "SRV", Mode: "insert"}
			st.Servers = map[string]spec.Server{"a": {Address: "198.51.100.21:80", Weight: 1, Cookie: "a"}, "b": {Address: "198.51.100.22:80", Weight: 1, Cookie: "b"}}
			in.Services["static"] = st
		}), 0},
		{"http pool: a cookie nothing reads, a duplicate value, a value without cookie", "http-pool", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) {
				s.Cookie = &spec.ServiceCookie{Name: "SRV", Mode: "insert"}
				s.Servers = map[string]spec.Server{"a": {Address: "198.51.100.21:80", Weight: 1, Cookie: "x"}, "b": {Address: "198.51.100.22:80", Weight: 1, Cookie: "x"}}
			})
			st := in.Services["web"]
			st.Cookie, st.Binds = nil, []string{"203.0.113.100:81"}
			st.Servers = map[string]spec.Server{"c": {Address: "198.51.100.23:80", Weight: 1, Cookie: "c"}}
			in.Services["static"] = st
		}), 3},
		{"http pool: a pool server reached via socks4", "http-pool", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) { s.HTTP = &spec.ServiceHTTP{Rules: []spec.HTTPRule{{Use: "static"}}} })
			st := in.Services["web"]
			st.Binds, st.HTTP = nil, nil
			st.Servers = map[string]spec.Server{"a": {Address: "198.51.100.21:80", Weight: 1, Via: &spec.ServerVia{SOCKS4: "127.0.0.1:1080"}}}
			in.Services["static"] = st
		}), 1},
		{"http pool: header rewrites for the service's own pool, one a rule sends to, and one no rule sends to", "http-pool", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) {
				s.HTTP = &spec.ServiceHTTP{Rules: []spec.HTTPRule{{Use: "static", When: []spec.HTTPCond{{Subject: "path", Match: "prefix", Values: []string{"/img"}}}}},
					RequestHeaders:  []spec.HTTPHeaderAction{{Op: "set", Name: "X-A", Value: "1", Pool: "web"}, {Op: "set", Name: "X-B", Value: "1", Pool: "static"}},
					ResponseHeaders: []spec.HTTPHeaderAction{{Op: "del", Name: "Server", Pool: "api"}}}
			})
			st := in.Services["web"]
			st.Binds, st.HTTP = nil, nil
			in.Services["static"] = st
		}), 1},
		{"http pool: an sni rule to no service", "http-pool", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) {
				s.SNI = &spec.ServiceSNI{Rules: []spec.SNIRule{{Names: []string{"a.example"}, Use: "nowhere"}}}
			})
		}), 1},
		{"source address: a VIP, a gateway's own, a foreign one off the servers' segment", "source-address", edit(func(in *Input) {
			backSegment(in)
			setService(in, "web", func(s *spec.Service) {
				s.SourceAddress, s.TransparentAddress = "203.0.113.100", "203.0.113.99"
			})
			in.Services["db"] = spec.Service{Nodes: []string{"gw1"}, Binds: []string{"203.0.113.100:5432"},
				Servers: map[string]spec.Server{"p1": {Address: "198.51.100.21:5432", SourceAddress: "198.51.100.2"}},
				Check:   &spec.ServiceCheck{Check: spec.Check{Kind: "tcp"}}}
		}), 0},
		{"source address: one gateway lacks it, a foreign address a gateway holds", "source-address", edit(func(in *Input) {
			backSegment(in)
			setService(in, "web", func(s *spec.Service) {
				s.SourceAddress, s.TransparentAddress = "198.51.100.2", "203.0.113.12"
				s.Servers = map[string]spec.Server{"s1": {Address: "198.51.100.11:8080", SourceAddress: "203.0.113.11"}, "s2": {Address: "198.51.100.12:8080"}}
			})
		}), 3},
		{"source address: a foreign address on the servers' segment", "source-address", edit(func(in *Input) {
			backSegment(in)
			setService(in, "web", func(s *spec.Service) { s.TransparentAddress = "198.51.100.99" })
		}), 1},
		{"source address: where the proxy does not connect to the servers", "source-address", edit(func(in *Input) {
			backSegment(in)
			setService(in, "web", func(s *spec.Service) {
				// HTTP routing leaves from a source address (none
				// reported), never from a transparent one.
				s.HTTP = &spec.ServiceHTTP{Rules: []spec.HTTPRule{{Use: "api"}}}
				s.SourceAddress, s.TransparentAddress = "203.0.113.100", "192.0.2.99"
			})
			in.Services["api"] = spec.Service{Servers: map[string]spec.Server{"a1": {Address: "198.51.100.31:80", SourceAddress: "203.0.113.100"}},
				Transparent: true, TransparentAddress: "192.0.2.98", Check: &spec.ServiceCheck{Check: spec.Check{Kind: "tcp"}}}
			in.Services["dns"] = spec.Service{Protocol: "udp", Binds: []string{"203.0.113.100:53"}, TransparentAddress: "203.0.113.99",
				Servers: map[string]spec.Server{"d1": {Address: "198.51.100.53:53"}}, Unchecked: true}
			in.Services["lvs"] = spec.Service{Mode: spec.ModeNAT, Binds: []string{"203.0.113.100:443"}, SourceAddress: "203.0.113.100",
				Servers: map[string]spec.Server{"r1": {Address: "198.51.100.41:443"}}, Check: &spec.ServiceCheck{Check: spec.Check{Kind: "tcp"}}}
		}), 5},
		{"fnat: each gateway's own local address, servers off its segments", "fnat-local-address", edit(func(in *Input) {
			// No nat-route-back: the servers answer the local address.
			setService(in, "web", func(s *spec.Service) {
				s.Mode, s.LocalAddresses = spec.ModeFNAT, []string{"203.0.113.12", "203.0.113.11"}
			})
		}), 0},
		{"fnat: local addresses no gateway holds, a VIP, IPv6, twice, a gateway with none", "fnat-local-address", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) {
				s.Mode = spec.ModeFNAT
				s.LocalAddresses = []string{"203.0.113.11", "203.0.113.100", "198.51.100.9", "2001:db8::2", "203.0.113.11", "gw"}
			})
		}), 6},
		{"fnat: no local addresses", "fnat-local-address", edit(func(in *Input) {
			setService(in, "web", func(s *spec.Service) { s.Mode = spec.ModeFNAT })
		}), 1},
		{"fnat: what only nat or fnat may have", "service-feature-built", edit(func(in *Input) {
			backSegment(in)
			setService(in, "web", func(s *spec.Service) {
				s.Mode, s.RouteBack, s.Fwmarks = spec.ModeFNAT, spec.RouteBackRouted, []uint32{3}
				s.LocalAddresses, s.Interface = []string{"198.51.100.2", "198.51.100.3"}, "eth1"
			})
			in.Services["dns"] = spec.Service{Mode: spec.ModeNAT, Protocol: "udp", Balance: "source",
				Binds: []string{"203.0.113.100:53"}, LocalAddresses: []string{"198.51.100.2"},
				Servers: map[string]spec.Server{"d1": {Address: "198.51.100.53:53"}},
				Check:   &spec.ServiceCheck{Check: spec.Check{Kind: "tcp"}}}
		}), 4},
		{"feature built: IPv6 in nat, fnat and dr carried", "service-feature-built", edit(func(in *Input) {
			ipv6Instance(in)
			// The gateways' IPv6 addresses on the servers' segment (the
			// nat servers' route back, the fnat local addresses) and on
			// the dr servers' segment.
			for n, i := range map[string]int{"gw1": 2, "gw2": 3} {
				setNode(in, n, func(ns *spec.NodeSettings) {
					ifs := maps.Clone(ns.Interfaces)
					eth0 := ifs["eth0"]
					eth0.Addresses = append(slices.Clone(eth0.Addresses), netip.MustParsePrefix(fmt.Sprintf("2001:db8:1::%d/64", 9+i)))
					ifs["eth0"] = eth0
					ifs["eth1"] = spec.Interface{Addresses: []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("2001:db8:2::%d/64", i))}}
					ns.Interfaces = ifs
				})
			}
			in.Services["lvs6"] = spec.Service{Mode: spec.ModeDR, Interface: "eth0", Balance: "maglev",
				Binds:   []string{"[2001:db8:1::100]:443"},
				Servers: map[string]spec.Server{"r1": {Address: "[2001:db8:1::21]:443"}, "r2": {Address: "2001:db8:1::22"}},
				Check:   &spec.ServiceCheck{Check: spec.Check{Kind: "tcp"}, Port: 443}}
			in.Services["web6"] = spec.Service{Mode: spec.ModeNAT, Balance: "source", Persistence: spec.Duration(time.Minute),
				Binds:   []string{"[2001:db8:1::100]:80", "[2001:db8:1::100]:81"},
				Source:  &spec.SourceRules{Allow: []string{"2001:db8::/32"}, MaxConnPerSource: 10},
				Servers: map[string]spec.Server{"s1": {Address: "[2001:db8:2::11]:8080"}, "s2": {Address: "[2001:db8:2::12]:8080"}},
				Check:   &spec.ServiceCheck{Check: spec.Check{Kind: "tcp"}}}
			in.Services["full6"] = spec.Service{Mode: spec.ModeFNAT, Binds: []string{"[2001:db8:1::100]:82"},
				LocalAddresses: []string{"2001:db8:2::2", "2001:db8:2::3"},
				Servers:        map[string]spec.Server{"s1": {Address: "[2001:db8:2::11]:8080"}},
				Check:          &spec.ServiceCheck{Check: spec.Check{Kind: "tcp"}}}
		}), 0},
		{"feature built: IPv6 where kernel modes cannot carry it, at its place", "service-feature-built", edit(func(in *Input) {
			backSegment(in)
			ipv6Instance(in)
			// An IPv6 VIP to an IPv4 server (NAT64), IPv4 sources, binds of both families.
			in.Services["mixed"] = spec.Service{Mode: spec.ModeNAT, RouteBack: spec.RouteBackRouted,
				Binds:   []string{"[2001:db8:1::100]:80", "203.0.113.100:90", "[::ffff:203.0.113.100]:81"},
				Source:  &spec.SourceRules{Deny: []string{"198.51.100.0/24"}},
				Servers: map[string]spec.Server{"s1": {Address: "198.51.100.11:8080"}, "s2": {Address: "[2001:db8:2::12]:8080"}},
				Check:   &spec.ServiceCheck{Check: spec.Check{Kind: "tcp"}}}
			// A dr server off the segment, which the site states IPv4 only.
			in.Services["lvs6"] = spec.Service{Mode: spec.ModeDR, Interface: "eth0", Balance: "maglev",
				Binds:   []string{"[2001:db8:1::100]:443"},
				Servers: map[string]spec.Server{"r1": {Address: "[2001:db8:1::21]:443"}},
				Check:   &spec.ServiceCheck{Check: spec.Check{Kind: "tcp"}}}
		}), 5},
		{"secret in clear: password", "secret-in-clear", edit(func(in *Input) {
			setVRRP(in, "VI_1", func(vi *spec.VRRPInstance) {
				vi.Version = 2
				vi.Auth = &spec.VRRPAuth{Type: "pass", Password: "s3cr3t"}
			})
		}), 1},
		{"secret in clear: password file", "secret-in-clear", edit(func(in *Input) {
			setVRRP(in, "VI_1", func(vi *spec.VRRPInstance) {
				vi.Version = 2
				vi.Auth = &spec.VRRPAuth{Type: "pass", PasswordFile: "/etc/gitgw/vrrp-pass"}
			})
		}), 0},

		{"disable: tie allowed by name", "priority-distinct", edit(func(in *Input) {
			in.Settings.Policies.Disable = []string{"priority-distinct"}
			setVRRP(in, "VI_1", func(vi *spec.VRRPInstance) {
				vi.Nodes = map[string]spec.VRRPNode{"gw1": {Priority: 100}, "gw2": {Priority: 100}}
			})
		}), 0},
		{"disable: unknown name", "policies", edit(func(in *Input) { in.Settings.Policies.Disable = []string{"vrid-uniq"} }), 1},
	}
	var golden strings.Builder
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Check(c.in)
			fmt.Fprintf(&golden, "# %s\n", c.name)
			n := 0
			for _, v := range got {
				fmt.Fprintln(&golden, v.String())
				if v.Policy != c.policy {
					t.Errorf("policy %s spoke, want only %q: %s", v.Policy, c.policy, v)
					continue
				}
				n++
			}
			if n != c.want {
				t.Errorf("%d violations of %s, want %d: %v", n, c.policy, c.want, got)
			}
		})
	}
	checkGolden(t, "guardrails.golden", golden.String())
}

// TestGuardrailsOnNodeView: the agent checks its own view; the lab site's
// view of gw1 passes, and a tie is still seen in it.
func TestGuardrailsOnNodeView(t *testing.T) {
	in := labSite()
	n := &spec.Node{Name: "gw1", Site: in.Settings, Node: in.Nodes["gw1"], VRRP: in.VRRP, Services: in.Services, Units: in.Units}
	if got := Check(FromNode(n)); len(got) != 0 {
		t.Errorf("lab view of gw1: %v", got)
	}
	vi := n.VRRP["VI_1"]
	vi.Nodes = map[string]spec.VRRPNode{"gw1": {Priority: 100}, "gw2": {Priority: 100}}
	n.VRRP = map[string]spec.VRRPInstance{"VI_1": vi}
	if got := Check(FromNode(n)); len(got) != 1 || got[0].Policy != "priority-distinct" {
		t.Errorf("tie in gw1's view: %v", got)
	}

	// An fnat local address of gw2's is not gw1's concern in its view;
	// gw1 holding none is.
	web := n.Services["web"]
	web.Mode, web.LocalAddresses = spec.ModeFNAT, []string{"203.0.113.12", "203.0.113.11"}
	n.VRRP, n.Services = in.VRRP, map[string]spec.Service{"web": web}
	if got := Check(FromNode(n)); len(got) != 0 {
		t.Errorf("fnat in gw1's view: %v", got)
	}
	web.LocalAddresses = []string{"203.0.113.12"}
	n.Services = map[string]spec.Service{"web": web}
	if got := Check(FromNode(n)); len(got) != 1 || got[0].Policy != "fnat-local-address" || !strings.Contains(got[0].Msg, "node gw1 holds none") {
		t.Errorf("fnat in gw1's view, gw1 holding no local address: %v", got)
	}
}

func TestNamesAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range Names() {
		if seen[p.Name] || p.Doc == "" {
			t.Errorf("policy %q: duplicate or undocumented", p.Name)
		}
		seen[p.Name] = true
	}
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name), []byte(got))
}

// TestBusyPollBoundIsTheProxys holds the guardrail's bound (in cue/spec, so
// that policies need no data plane) to the proxy's own: a site the
// guardrail passes must not be refused by the proxy at apply time.
func TestTransparentMarkIsTheProxys(t *testing.T) {
	if proxyTransparentMark != l4proxy.TransparentMark {
		t.Errorf("policies.proxyTransparentMark %#x, l4proxy.TransparentMark %#x: keep them equal", proxyTransparentMark, l4proxy.TransparentMark)
	}
}

func TestBusyPollBoundIsTheProxys(t *testing.T) {
	if spec.MaxProxyBusyPoll != l4proxy.MaxBusyPoll {
		t.Errorf("spec.MaxProxyBusyPoll = %v, l4proxy.MaxBusyPoll = %v: the guardrail and the proxy disagree", spec.MaxProxyBusyPoll, l4proxy.MaxBusyPoll)
	}
}
