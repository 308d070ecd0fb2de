package kernlb

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// TestFwmark: a service by firewall mark (LVS's fwmark service) takes the
// packets that the operator's firewall marks, here to the VIP's ports 80
// and 443, and forwards each to a server on the port the client asked
// (the servers have none). With persistence, one client's connections to
// both ports go to one server (rr would alternate), IPVS's reason for
// fwmark services. Without the mark, nothing is forwarded. In nat the
// firewall marks in an inet prerouting chain before dstnat; in dr, whose
// hook is the interface's ingress, in a netdev ingress chain before it.
func TestFwmark(t *testing.T) {
	for _, tc := range []struct {
		mode  Mode
		sched Scheduler
		fw    string // the operator's firewall
	}{
		{NAT, RoundRobin, "add table inet opfw; add chain inet opfw pre { type filter hook prerouting priority mangle; }; " +
			"add rule inet opfw pre ip daddr " + vip + " tcp dport { 80, 443 } meta mark set 7"},
		{DR, Maglev, "add table netdev opfw; add chain netdev opfw in { type filter hook ingress device eth0 priority -10; }; " +
			"add rule netdev opfw in ip daddr " + vip + " tcp dport { 80, 443 } meta mark set 7"},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			l := newKernLab(t, tc.mode)
			lab.RequireCommand(t, "nft")
			l.holdVIP(0)
			l.servePort("80")
			l.servePort("443")
			gw := l.gw[0]
			gw.Run(t, "nft", tc.fw)
			lb := l.lb(0)
			svc := l.service(TCP, tc.sched)
			svc.VIP, svc.Port, svc.Mark = netip.Addr{}, 0, 7
			for i := range svc.Servers {
				svc.Servers[i].Port = 0
			}
			svc.Persistence = time.Minute
			cfg := Config{Services: []Service{svc}}
			set(t, lb, cfg)
			if ch := set(t, lb, cfg); len(ch) != 0 {
				t.Errorf("second Set with the same config changed %v", ch)
			}
			obs, err := lb.Observe()
			if err != nil {
				t.Fatal(err)
			}
			if got := obs.Services()["web"]; got.Mark != 7 || got.VIP.IsValid() || len(got.Servers) != 2 || got.Servers[0].Port != 0 {
				t.Errorf("observed %+v, want the mark service with its two servers without ports", got)
			}
			sticky := ""
			for i := range 8 {
				port := []string{"80", "443"}[i%2]
				srv, addr, err := l.onceTo(port)
				if err != nil {
					t.Fatalf("connection %d to port %s through the mark service: %v", i, port, err)
				}
				if !strings.HasPrefix(addr, clientIP+":") {
					t.Fatalf("%s saw %s, want the client's own address %s", srv, addr, clientIP)
				}
				if sticky == "" {
					sticky = srv
				} else if srv != sticky {
					t.Fatalf("connection %d (port %s) went to %s, the first to %s: not persistent across the marked ports", i, port, srv, sticky)
				}
			}
			// The service's chain flushed by hand is seen and restored.
			family := map[Mode]string{NAT: "inet", DR: "netdev"}[tc.mode]
			gw.Run(t, "nft", "flush chain "+family+" gitgw svc-web")
			if ch := set(t, lb, cfg); len(ch) != 1 || ch[0].Action != Restore {
				t.Errorf("Set after a flush by hand: %v, want the service restored", ch)
			}
			if _, _, err := l.onceTo("443"); err != nil {
				t.Errorf("after the restore: %v", err)
			}
			// Unmarked, the same packets are not the service's.
			gw.Run(t, "nft", "delete table "+strings.Fields(tc.fw)[2]+" opfw")
			if c, err := l.dialPort("", "443", time.Second); err == nil {
				c.Close()
				t.Errorf("a connection without the mark went through")
			}
		})
	}
}

// markConfig is a nat service by mark whose servers keep the client's
// port, beside a service by address named to sort before it.
func markConfig() Config {
	byMark := Service{Name: "web", Mark: 7, Protocol: TCP, Mode: NAT, Scheduler: WeightedRoundRobin, Persistence: time.Minute}
	for _, a := range []string{"198.51.100.11", "198.51.100.12"} {
		byMark.Servers = append(byMark.Servers, Server{Address: netip.MustParseAddr(a), Weight: 1})
	}
	byAddr := Service{Name: "api", VIP: netip.MustParseAddr("203.0.113.100"), Port: 80, Protocol: TCP, Mode: NAT,
		Scheduler: WeightedRoundRobin, Servers: []Server{{Address: netip.MustParseAddr("198.51.100.13"), Port: 8080, Weight: 1}}}
	return Config{Services: []Service{byAddr, byMark}}
}

// TestFwmarkProgram: a mark service validates, reads in words, is
// dispatched before the services by address, and reads back from its
// tables as it was written (no drift).
func TestFwmarkProgram(t *testing.T) {
	cfg := markConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d, err := Diff(cfg, Observed{})
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, c := range d {
		text.WriteString(c.String() + "\n")
	}
	want := "add service web: nat tcp fwmark 7, wrr, persistence 1m0s; servers 198.51.100.11 (client's port) weight 1, 198.51.100.12 (client's port) weight 1"
	if !strings.Contains(text.String(), want) {
		t.Errorf("Diff against empty tables:\n%s\nwant a line with %q", text.String(), want)
	}
	if d, _ := Diff(cfg, observedFor(t, cfg)); len(d) != 0 {
		t.Errorf("Diff against its own tables: %v", d)
	}
	got := observedFor(t, cfg).Services()["web"]
	if got.Mark != 7 || got.VIP.IsValid() || got.Port != 0 || len(got.Servers) != 2 || got.Servers[0].Port != 0 {
		t.Errorf("observed %+v, want mark 7, no vip or port, two servers without ports", got)
	}
	p, err := render(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rules := p.inet().chains[0].rules; len(rules) != 2 || rules[0].svc != "web" {
		t.Errorf("dispatch rules %v, want the mark service's first", rules)
	}
}

func TestFwmarkValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(s *Service)
		want string
	}{
		{"vip beside the mark", func(s *Service) { s.VIP, s.Port = netip.MustParseAddr("203.0.113.100"), 80 }, "mark: 7: a service by mark has no vip and port"},
		{"ports mixed", func(s *Service) { s.Servers[1].Port = 8080 }, "servers[1] (198.51.100.12): port: servers of a mark service either all have a port or none"},
		{"dr port", func(s *Service) { s.Mode, s.Interface, s.Scheduler, s.Servers[0].Port = DR, "eth0", Maglev, 80 }, "dr mode cannot change the port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := markConfig()
			tc.edit(&cfg.Services[1])
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate: %v, want an error with %q", err, tc.want)
			}
		})
	}
}
