package importer

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/cue/spec"
)

// TestFNATImport: DPVS's lb_kind FNAT becomes mode fnat with the local
// addresses of its laddr_group_name (ranges expanded, DPDK interface
// names dropped with a warning); each local address is a node address to
// fill in, and once filled in the site passes the guardrails. What the
// kernel's fnat cannot carry is refused at its line.
func TestFNATImport(t *testing.T) {
	const inst = "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  203.0.113.1/24\n }\n}\n"
	vs := func(body string) string {
		return "virtual_server 203.0.113.1 80 {\n lb_algo rr\n" + body +
			" real_server 198.51.100.11 80 {\n  TCP_CHECK {\n  }\n }\n real_server 198.51.100.12 80 {\n  TCP_CHECK {\n  }\n }\n}\n"
	}
	const group = "local_address_group L {\n 198.51.100.2 dpdk0\n 198.51.100.200-202 dpdk0\n}\n"
	ka := inst + group + vs(" lb_kind FNAT\n laddr_group_name L\n")
	res, view := loadText(t, ka, "")
	if len(res.Refused) > 0 {
		t.Fatalf("refused: %v", res.Refused)
	}
	s := view.Services["vs-203.0.113.1-80"]
	want := []string{"198.51.100.2", "198.51.100.200", "198.51.100.201", "198.51.100.202"}
	if s.Mode != spec.ModeFNAT || !slices.Equal(s.LocalAddresses, want) {
		t.Errorf("service: mode %q, local_addresses %v, want fnat and %v", s.Mode, s.LocalAddresses, want)
	}
	ws := strings.Join(warnStrings(res.Warnings), "\n")
	if !strings.Contains(ws, "ka:9: local_address_group L: DPVS's DPDK interface dpdk0 is dropped") {
		t.Errorf("no warning about the DPDK interface in:\n%s", ws)
	}
	if strings.Contains(ws, "laddr_group_name") || strings.Contains(ws, "local_address_group: not mapped") {
		t.Errorf("the local addresses warned as not mapped:\n%s", ws)
	}
	var held []string
	for _, m := range res.Missing {
		if m.Address.IsValid() {
			held = append(held, m.Address.String())
		}
	}
	if !slices.Equal(held, want) {
		t.Errorf("addresses to fill in: %v, want the local addresses %v", held, want)
	}

	// Filled in (here on eth1, as the operator would), the site passes
	// every guardrail; without them, fnat-local-address says what is
	// missing.
	if bad := siteViolations(t, res); !slices.ContainsFunc(bad, func(v string) bool {
		return strings.Contains(v, "[fnat-local-address] service vs-203.0.113.1-80: node gw1 holds none")
	}) {
		t.Errorf("the site without the node's addresses: %v, want fnat-local-address", bad)
	}
	var addrs []netip.Prefix
	for _, a := range want {
		addrs = append(addrs, netip.MustParsePrefix(a+"/24"))
	}
	filled, err := Import(Options{Keepalived: []Input{{Node: "gw1", Path: "ka", Data: []byte(ka)}},
		Hosts: map[string]map[string][]netip.Prefix{"gw1": {"eth0": {netip.MustParsePrefix("203.0.113.11/24")}}}})
	if err != nil {
		t.Fatal(err)
	}
	filled.Files = append(filled.Files, File{Name: "eth1.cue", Data: []byte("package site\n\nnodes: gw1: interfaces: eth1: addresses: [" + quoted(addrs) + "]\n")})
	if bad := siteViolations(t, filled); len(bad) > 0 {
		t.Errorf("the site with the node's addresses: %v", bad)
	}

	// Two DPVS nodes, each with its own local addresses: one service
	// that lists both; each gateway uses its own.
	two, err := Import(Options{Keepalived: []Input{
		{Node: "gw1", Path: "ka1", Data: []byte(inst + "local_address_group L {\n 198.51.100.2 dpdk0\n}\n" + vs(" lb_kind FNAT\n laddr_group_name L\n"))},
		{Node: "gw2", Path: "ka2", Data: []byte(inst + "local_address_group L {\n 198.51.100.3 dpdk0\n}\n" + vs(" lb_kind FNAT\n laddr_group_name L\n"))},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if txt := goldenText(two); !strings.Contains(txt, `local_addresses: ["198.51.100.2", "198.51.100.3"]`) || strings.Contains(txt, "vs-203.0.113.1-80-2") {
		t.Errorf("two nodes' local addresses not merged into one service:\n%s", txt)
	}

	// DPVS's consistent hash of the client: a source hash.
	res, view = loadText(t, strings.Replace(ka, "lb_algo rr", "lb_algo conhash", 1), "")
	if s := view.Services["vs-203.0.113.1-80"]; s.Balance != "source" {
		t.Errorf("lb_algo conhash: balance %q, want source", s.Balance)
	}
	if ws := strings.Join(warnStrings(res.Warnings), "\n"); !strings.Contains(ws, "lb_algo conhash: DPVS's consistent hash of the client's address: imported as source") {
		t.Errorf("no warning about conhash in:\n%s", ws)
	}

	// DPVS's deny list of clients (daddr_group_name) is the service's
	// source.deny; an empty one denies nobody, and says so.
	deny := inst + group + "deny_address_group D {\n 203.0.113.66\n 203.0.113.70-71\n}\ndeny_address_group E {\n}\n" +
		vs(" lb_kind FNAT\n laddr_group_name L\n daddr_group_name D\n")
	res, view = loadText(t, deny, "")
	s = view.Services["vs-203.0.113.1-80"]
	if s.Source == nil || strings.Join(s.Source.Deny, " ") != "203.0.113.66/32 203.0.113.70/32 203.0.113.71/32" {
		t.Errorf("source: %+v, want the deny_address_group's addresses denied", s.Source)
	}
	if ws := strings.Join(warnStrings(res.Warnings), "\n"); !strings.Contains(ws, "ka:16: deny_address_group E: no imported virtual_server uses it") {
		t.Errorf("no warning about the unused deny group in:\n%s", ws)
	}
	res = importText(t, strings.Replace(deny, "daddr_group_name D", "daddr_group_name E", 1), "")
	if ws := strings.Join(warnStrings(res.Warnings), "\n"); !strings.Contains(ws, "daddr_group_name E: the deny_address_group (ka:16) is empty: no client is denied") {
		t.Errorf("no warning about the empty deny group in:\n%s", ws)
	}

	for _, tt := range []struct {
		name, ka string
		line     int
		says     string
	}{
		{"syn_proxy", inst + group + vs(" lb_kind FNAT\n laddr_group_name L\n syn_proxy\n"), 16, "syn_proxy (DPVS's SYN proxy"},
		{"quic", inst + group + vs(" lb_kind FNAT\n laddr_group_name L\n quic\n"), 16, "quic (DPVS's QUIC"},
		{"no laddr_group_name", inst + group + vs(" lb_kind FNAT\n"), 14, "lb_kind FNAT without laddr_group_name"},
		{"an unknown group", inst + vs(" lb_kind FNAT\n laddr_group_name M\n"), 11, "laddr_group_name M: no local_address_group M"},
		{"by fwmark", inst + group + strings.Replace(vs(" lb_kind FNAT\n laddr_group_name L\n"), "203.0.113.1 80", "fwmark 5", 1), 14, "lb_kind FNAT by fwmark"},
		{"DPVS's SNAT", inst + vs(" lb_kind SNAT\n"), 10, "lb_kind SNAT"},
		{"TUN", inst + vs(" lb_kind TUN\n"), 10, "lb_kind TUN"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := importText(t, tt.ka, "")
			if !slices.ContainsFunc(res.Refused, func(r Refusal) bool {
				return r.Feature == FeatKernelLB && r.Pos.Line == tt.line && strings.Contains(r.Directive, tt.says)
			}) {
				t.Errorf("refused %v, want kernel-lb at line %d: %q", res.Refused, tt.line, tt.says)
			}
			if strings.Contains(goldenText(res), "mode: \"fnat\"") {
				t.Errorf("imported anyway:\n%s", goldenText(res))
			}
		})
	}
}

// siteViolations writes and loads an imported site and lists its
// guardrail errors (but service-feature-built's).
func siteViolations(t *testing.T, res *Result) []string {
	t.Helper()
	bad, _ := guardrailErrors(t, res)
	return bad
}

func quoted(ps []netip.Prefix) string {
	var q []string
	for _, p := range ps {
		q = append(q, `"`+p.String()+`"`)
	}
	return strings.Join(q, ", ")
}
