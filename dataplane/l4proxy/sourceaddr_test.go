package l4proxy

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/dataplane/httpproxy"
)

// TestValidateSourceAddrs: what Validate refuses of source and transparent
// addresses, each with the service and server it is about.
func TestValidateSourceAddrs(t *testing.T) {
	bind := []netip.AddrPort{netip.MustParseAddrPort("203.0.113.1:80")}
	v4 := Server{Name: "s4", Addr: netip.MustParseAddrPort("198.51.100.10:80"), Weight: 1}
	a := netip.MustParseAddr
	for _, tt := range []struct {
		name string
		svc  Service
		want string // "" : valid
	}{
		{"source", Service{SourceAddr: a("198.51.100.2"), Servers: []Server{v4}}, ""},
		{"foreign", Service{TransparentAddr: a("203.0.113.99"), SourceAddr: a("198.51.100.2"), Servers: []Server{v4}}, ""},
		{"both transparent", Service{Transparent: true, TransparentAddr: a("203.0.113.99"), Servers: []Server{v4}},
			`service "x": transparent and a transparent address`},
		{"unspecified source", Service{SourceAddr: a("0.0.0.0"), Servers: []Server{v4}},
			`service "x": source address 0.0.0.0: not a unicast address`},
		{"multicast foreign", Service{TransparentAddr: a("224.0.0.1"), Servers: []Server{v4}},
			`service "x": transparent address 224.0.0.1: not a unicast address`},
		{"family", Service{SourceAddr: a("2001:db8::2"), Servers: []Server{v4}},
			`service "x": server "s4" at 198.51.100.10:80: source address 2001:db8::2 is of the other address family`},
		{"server family", Service{Servers: []Server{{Name: "s4", Addr: v4.Addr, Weight: 1, SourceAddr: a("2001:db8::2")}}},
			`server "s4" at 198.51.100.10:80: source address 2001:db8::2 is of the other address family`},
		{"foreign family", Service{TransparentAddr: a("2001:db8::99"), Servers: []Server{v4}},
			`transparent address 2001:db8::99 is of the other address family`},
		{"udp", Service{Protocol: ProtoUDP, Servers: []Server{{Name: "s4", Addr: v4.Addr, Weight: 1, SourceAddr: a("198.51.100.2")}}},
			`service "x": udp: a source address is for TCP`},
		{"http source", Service{SourceAddr: a("198.51.100.2"), Servers: []Server{v4}, HTTP: &httpproxy.HTTP{}}, ""},
		{"http foreign", Service{TransparentAddr: a("203.0.113.99"), Servers: []Server{v4}, HTTP: &httpproxy.HTTP{}},
			`service "x": http: a transparent address is for TCP mode`},
	} {
		tt.svc.Name, tt.svc.Binds = "x", bind
		err := Config{Services: []Service{tt.svc}}.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestValidatePoolSourceAddr: an HTTP rule may send requests to a pool
// with a source address (the HTTP proxy leaves from it), not to one in
// transparent mode or with a transparent address, which it would not use.
func TestValidatePoolSourceAddr(t *testing.T) {
	cfg := func(pool Service) Config {
		pool.Name = "pool"
		pool.Servers = []Server{{Name: "b", Addr: netip.MustParseAddrPort("198.51.100.11:80"), Weight: 1}}
		return Config{Services: []Service{
			{Name: "front", Binds: []netip.AddrPort{netip.MustParseAddrPort("203.0.113.1:80")},
				HTTP:    &httpproxy.HTTP{Rules: []httpproxy.Rule{{Use: "pool"}}},
				Servers: []Server{{Name: "a", Addr: netip.MustParseAddrPort("198.51.100.10:80"), Weight: 1}}},
			pool,
		}}
	}
	if err := cfg(Service{SourceAddr: netip.MustParseAddr("198.51.100.2")}).Validate(); err != nil {
		t.Errorf("pool with a source address: %v", err)
	}
	want := `service "front": a rule sends requests to service "pool", whose transparent mode or address HTTP and SNI routing do not carry`
	for _, pool := range []Service{{TransparentAddr: netip.MustParseAddr("203.0.113.99")}, {Transparent: true}} {
		if err := cfg(pool).Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("pool %+v: error %v, want %q", pool, err, want)
		}
	}
}

// TestDiffSourceAddrs: the plan names a changed source or transparent
// address of a service and a server's own source address.
func TestDiffSourceAddrs(t *testing.T) {
	base := Service{Name: "x"}
	w := base
	w.SourceAddr, w.TransparentAddr = netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("203.0.113.99")
	got := diffService(ViewService(base), ViewService(w))
	for _, want := range []string{"transparent address none → 203.0.113.99", "source address by route → 198.51.100.2"} {
		if !slices.Contains(got, want) {
			t.Errorf("plan %q lacks %q", got, want)
		}
	}
	s := Server{Name: "a", Addr: netip.MustParseAddrPort("198.51.100.10:80"), Weight: 1}
	ws := s
	ws.SourceAddr = netip.MustParseAddr("198.51.100.3")
	if d := diffServer("a", ViewServer(s), ViewServer(ws)); len(d) != 1 || d[0] != "source address the service's → 198.51.100.3" {
		t.Errorf("plan of a server's source address: %q", d)
	}
}
