package policies

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/gitgw/gitgw/cue/spec"
)

// genInput is the shape of test/e2e's generated site: per pair two nodes,
// two VRRP instances, two services of five servers, six unit instances.
func genInput(pairs int) Input {
	in := Input{Nodes: map[string]spec.NodeSettings{}, VRRP: map[string]spec.VRRPInstance{}, Services: map[string]spec.Service{},
		Units: map[string]spec.UnitTemplate{"app": {Instances: []spec.InstanceSet{{Ports: &spec.PortRange{From: 8080, To: 8085}}}}}}
	for p := range pairs {
		a, z := fmt.Sprintf("gw-%05da", p), fmt.Sprintf("gw-%05db", p)
		for i, n := range []string{a, z} {
			in.Nodes[n] = spec.NodeSettings{Interfaces: map[string]spec.Interface{"eth0": {Addresses: []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("2001:db8:%x::%d/64", p, i+1))}}},
				Tuning: spec.Tuning{Interfaces: map[string]spec.NICTuning{"eth0": {RPSCPUs: "all"}}}}
		}
		for i, m := range []string{a, z} {
			other := map[string]string{a: z, z: a}[m]
			in.VRRP[fmt.Sprintf("vi-%05d-%d", p, i)] = spec.VRRPInstance{Interface: "eth0", VRID: uint8(1 + i), Version: 3,
				Nodes: map[string]spec.VRRPNode{m: {Priority: 150}, other: {Priority: 100}},
				VIPs:  []spec.VIP{{Address: netip.MustParsePrefix(fmt.Sprintf("2001:db8:%x::%x/64", p, 0x100+i))}}}
			s := spec.Service{Nodes: []string{a, z}, Binds: []string{fmt.Sprintf("[2001:db8:%x::%x]:80", p, 0x100+i)},
				Servers: map[string]spec.Server{}, Check: &spec.ServiceCheck{Check: spec.Check{Kind: "http"}}}
			for k := range 5 {
				s.Servers[fmt.Sprintf("s%d", k)] = spec.Server{Address: fmt.Sprintf("[2001:db8:%x::%x]:8080", p, 0x10+k)}
			}
			in.Services[fmt.Sprintf("svc-%05d-%d", p, i)] = s
		}
	}
	return in
}

// BenchmarkCheckSite: every guardrail over a whole generated site, as
// `gitgw validate` runs them (1,000 pairs: about 2,000 nodes).
func BenchmarkCheckSite(b *testing.B) {
	for _, pairs := range []int{100, 1000} {
		in := genInput(pairs)
		b.Run(fmt.Sprintf("pairs=%d", pairs), func(b *testing.B) {
			for b.Loop() {
				if vs := Check(in); len(vs) > 0 {
					b.Fatal(vs[0])
				}
			}
		})
	}
}
