package kernlb

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// TestFNAT: full NAT (DPVS's FNAT). The servers reach nothing beyond
// their own segment (no default route, no route to the client), yet
// answer: they see one of the gateway's local addresses as the source,
// both local addresses in turn, over TCP and UDP. A server down is
// skipped; persistence keeps a client on its server; Set twice changes
// nothing; the postrouting chain flushed by
// hand is reported and restored (and the service does not work without
// it: the source rewrite is what carries the replies).
func TestFNAT(t *testing.T) {
	l := newKernLab(t, FNAT)
	lab.RequireCommand(t, "nft")
	gw := l.gw[0]
	// Gateway 1 has 198.51.100.2 on the servers' segment; a second local
	// address beside it.
	gw.Run(t, "ip", "addr", "add", "198.51.100.4/24", "dev", "eth1")
	local := []netip.Addr{mustAddr("198.51.100.2"), mustAddr("198.51.100.4")}
	for i, s := range l.srv {
		if out, err := s.Try("ip", "route", "get", clientIP); err == nil {
			t.Fatalf("server %d has a route to the client: %s", i+1, out)
		}
	}
	l.holdVIP(0)
	l.serve()
	lb := l.lb(0)

	tcp := l.service(TCP, Maglev)
	tcp.LocalAddresses = local
	udp := l.service(UDP, RoundRobin)
	udp.Name = "web-udp"
	udp.LocalAddresses = []netip.Addr{local[1], local[0]} // the order does not matter
	cfg := Config{Services: []Service{tcp, udp}}
	set(t, lb, cfg)
	if ch := set(t, lb, cfg); len(ch) != 0 {
		t.Errorf("second Set with the same config changed %v", ch)
	}

	isLocal := func(seen string) (string, bool) {
		ap, err := netip.ParseAddrPort(seen)
		if err != nil {
			return "", false
		}
		for _, a := range local {
			if ap.Addr() == a {
				return a.String(), true
			}
		}
		return ap.Addr().String(), false
	}
	servers, sources := map[string]int{}, map[string]int{}
	for range 24 {
		srv, seen, err := l.once()
		if err != nil {
			t.Fatalf("tcp through the VIP: %v", err)
		}
		src, ok := isLocal(seen)
		if !ok {
			t.Fatalf("%s saw %s, want one of the local addresses %v", srv, seen, local)
		}
		servers[srv]++
		sources[src]++
	}
	if len(servers) != 2 || len(sources) != 2 {
		t.Errorf("24 connections reached servers %v from sources %v, want both of each", servers, sources)
	}
	udpSources := map[string]int{}
	for range 4 {
		ans, err := l.udpOnce()
		if err != nil {
			t.Fatalf("udp through the VIP: %v", err)
		}
		f := strings.Fields(ans)
		if len(f) != 2 {
			t.Fatalf("udp answer %q", ans)
		}
		src, ok := isLocal(f[1])
		if !ok {
			t.Fatalf("udp: %s saw %s, want a local address", f[0], f[1])
		}
		udpSources[src]++
	}
	if len(udpSources) != 2 {
		t.Errorf("4 datagrams came from %v, want both local addresses", udpSources)
	}

	// A server down is out of the table.
	tcp.Servers[0].Down = true
	cfg = Config{Services: []Service{tcp, udp}}
	if ch := set(t, lb, cfg); len(ch) != 1 || ch[0].Service != "web" || !strings.Contains(ch[0].Text, "down") {
		t.Errorf("server down reported as %v", ch)
	}
	for range 6 {
		srv, _, err := l.once()
		if err != nil {
			t.Fatal(err)
		}
		if srv != "s2" {
			t.Fatalf("a connection went to %s, which is down", srv)
		}
	}

	// Persistence as in nat: rr would alternate, a client stays.
	tcp.Servers[0].Down, tcp.Scheduler, tcp.Persistence = false, RoundRobin, time.Minute
	cfg = Config{Services: []Service{tcp, udp}}
	set(t, lb, cfg)
	sticky := map[string]int{}
	for range 6 {
		srv, _, err := l.once()
		if err != nil {
			t.Fatal(err)
		}
		sticky[srv]++
	}
	if len(sticky) != 1 {
		t.Errorf("with persistence, one client's connections went to %v", sticky)
	}

	// The source rewrite flushed by hand: the servers' replies have
	// nowhere to go, the drift is reported, the next Set restores it.
	gw.Run(t, "nft", "flush", "chain", "inet", "gitgw", "postrouting")
	if c, err := l.dialPort("", "80", 500*time.Millisecond); err == nil {
		c.Close()
		t.Fatalf("a connection went through without the source rewrite")
	}
	obs, err := lb.Observe()
	if err != nil {
		t.Fatal(err)
	}
	d, err := Diff(cfg, obs)
	if err != nil {
		t.Fatal(err)
	}
	if len(d) != 2 || d[0].Action != Restore || !strings.Contains(d[0].Text, "postrouting") {
		t.Errorf("Diff after the postrouting chain was flushed: %v, want a restore of each service's rule", d)
	}
	if ch := set(t, lb, cfg); len(ch) != 2 {
		t.Errorf("Set restored %v", ch)
	}
	if _, _, err := l.once(); err != nil {
		t.Fatalf("after the restore: %v", err)
	}
	if ch := set(t, lb, cfg); len(ch) != 0 {
		t.Errorf("Set after the restore changed %v", ch)
	}

	// A new LB reads the source rewrite back (its ct expressions) as
	// written: no drift.
	obs, err = l.lb(0).Observe()
	if err != nil {
		t.Fatalf("a new LB reads the fnat tables: %v", err)
	}
	if d, err := Diff(cfg, obs); err != nil || len(d) != 0 {
		t.Errorf("the fnat tables read back by a new LB: %v, %v", d, err)
	}

	// The last fnat service gone, its postrouting chain goes too.
	nat := tcp
	nat.Mode, nat.LocalAddresses = NAT, nil
	set(t, lb, Config{Services: []Service{nat}})
	obs, err = l.lb(0).Observe() // a new LB reads the kernel's tables
	if err != nil {
		t.Fatal(err)
	}
	if d, err := Diff(Config{Services: []Service{nat}}, obs); err != nil || len(d) != 0 {
		t.Errorf("the tables read back after fnat went: %v, %v", d, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if tb := obs.Tables[0]; tb == nil || tb.Chains["postrouting"] != nil || tb.Sets["web-laddr"] != nil || tb.Sets["web-udp-laddr"] != nil || tb.Chains["prerouting"] == nil {
		t.Errorf("fnat left pieces behind, or took nat's: %+v", tb)
	}
}

// TestFNATValidate: what an fnat service needs, and what only it may have.
func TestFNATValidate(t *testing.T) {
	base := Service{Name: "web", VIP: mustAddr(vip), Port: 80, Protocol: TCP, Mode: FNAT, Scheduler: Maglev,
		Servers:        []Server{{Address: mustAddr("198.51.100.11"), Port: 8080, Weight: 1}},
		LocalAddresses: []netip.Addr{mustAddr("198.51.100.2")}}
	if err := (Config{Services: []Service{base}}).Validate(); err != nil {
		t.Fatalf("a valid fnat service: %v", err)
	}
	for _, tc := range []struct {
		edit func(*Service)
		want string
	}{
		{func(s *Service) { s.LocalAddresses = nil }, "local_addresses: fnat needs at least one"},
		{func(s *Service) { s.LocalAddresses = append(s.LocalAddresses, mustAddr("198.51.100.2")) }, "local_addresses[1]: 198.51.100.2: same as local_addresses[0]"},
		{func(s *Service) { s.LocalAddresses = []netip.Addr{mustAddr("2001:db8::2")} }, "local_addresses[0]: 2001:db8::2: not of the VIP's family (IPv4)"},
		{func(s *Service) { s.LocalAddresses = []netip.Addr{s.VIP} }, "is the service's VIP"},
		{func(s *Service) { s.VIP, s.Port, s.Mark = netip.Addr{}, 0, 7 }, "a service by mark has none"},
		{func(s *Service) { s.Mode = NAT }, "local_addresses: only for fnat"},
	} {
		s := base
		s.LocalAddresses = append([]netip.Addr{}, base.LocalAddresses...)
		tc.edit(&s)
		err := (Config{Services: []Service{s}}).Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate: %v, want %q", err, tc.want)
		}
	}
}

// TestFNATDiffWords: a change of an fnat service's local addresses, and a
// change from nat to fnat, are said in words (Services reads the local
// addresses back from their map), and the same config is no change.
func TestFNATDiffWords(t *testing.T) {
	svc := Service{Name: "web", VIP: mustAddr(vip), Port: 80, Protocol: TCP, Mode: FNAT, Scheduler: Maglev,
		Servers:        []Server{{Address: mustAddr("198.51.100.11"), Port: 8080, Weight: 1}},
		LocalAddresses: []netip.Addr{mustAddr("198.51.100.3"), mustAddr("198.51.100.2")}}
	cfg := Config{Services: []Service{svc}}
	obs := observedFor(t, cfg)
	if d, err := Diff(cfg, obs); err != nil || len(d) != 0 {
		t.Errorf("Diff of a config with its own tables: %v, %v", d, err)
	}
	if got := obs.Services()["web"].LocalAddresses; fmt.Sprint(got) != "[198.51.100.2 198.51.100.3]" {
		t.Errorf("local addresses read back: %v", got)
	}
	moved := svc
	moved.LocalAddresses = []netip.Addr{mustAddr("198.51.100.2"), mustAddr("198.51.100.4")}
	d, err := Diff(Config{Services: []Service{moved}}, obs)
	if err != nil || len(d) != 1 || d[0].Action != Change ||
		d[0].Text != "fnat tcp 203.0.113.100:80 from 198.51.100.2,198.51.100.3, maglev → fnat tcp 203.0.113.100:80 from 198.51.100.2,198.51.100.4, maglev" {
		t.Errorf("Diff after a local address changed: %v, %v", d, err)
	}
	nat := svc
	nat.Mode, nat.LocalAddresses = NAT, nil
	// (The postrouting chain it adds is reported too, as the tables'
	// own, as every base chain a first service of its kind adds.)
	d, err = Diff(cfg, observedFor(t, Config{Services: []Service{nat}}))
	if err != nil || len(d) != 2 || d[0].Action != Change || !strings.Contains(d[0].Text, "nat tcp 203.0.113.100:80, maglev → fnat") ||
		d[1].Text != "base chain inet postrouting missing" {
		t.Errorf("Diff from nat to fnat: %v, %v", d, err)
	}
}
