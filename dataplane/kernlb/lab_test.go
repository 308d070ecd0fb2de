package kernlb

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// TestDR: a DR service on gateway 1 spreads connections over both servers,
// each of which sees the client's own address and answers it directly
// (the gateway does not route: ip_forward=0).
func TestDR(t *testing.T) {
	l := newKernLab(t, DR)
	l.holdVIP(0)
	l.serve()
	lb := l.lb(0)
	cfg := Config{Services: []Service{l.service(TCP, Maglev)}}
	set(t, lb, cfg)
	if ch := set(t, lb, cfg); len(ch) != 0 {
		t.Errorf("second Set with the same config changed %v", ch)
	}
	seen := map[string]int{}
	for range 40 {
		srv, addr, err := l.once()
		if err != nil {
			t.Fatalf("connection through the VIP: %v", err)
		}
		if !strings.HasPrefix(addr, clientIP+":") {
			t.Fatalf("%s saw %s, want the client's own address %s", srv, addr, clientIP)
		}
		seen[srv]++
	}
	if len(seen) != 2 {
		t.Errorf("40 connections reached %v, want both servers", seen)
	}
	t.Logf("spread: %v", fmt.Sprint(seen))

	// UDP, source hash: one client address, one server, which sees it.
	udp := l.service(UDP, SourceHash)
	udp.Name = "web-udp"
	set(t, lb, Config{Services: []Service{cfg.Services[0], udp}})
	first := ""
	for range 6 {
		ans, err := l.udpOnce()
		if err != nil {
			t.Fatalf("udp through the VIP: %v", err)
		}
		f := strings.Fields(ans)
		if len(f) != 2 || !strings.HasPrefix(f[1], clientIP+":") {
			t.Fatalf("udp answer %q, want a server and the client's own address", ans)
		}
		if first == "" {
			first = f[0]
		} else if f[0] != first {
			t.Errorf("sh sent one client to %s and %s", first, f[0])
		}
	}
}

// TestBackup: a backup server takes flows only when no other server is
// live; a down server is out at once (NAT, and DR where the down server
// needs no MAC).
func TestBackup(t *testing.T) {
	for _, tc := range []struct {
		mode  Mode
		sched Scheduler
	}{{NAT, RoundRobin}, {DR, Maglev}} {
		t.Run(string(tc.mode), func(t *testing.T) {
			l := newKernLab(t, tc.mode)
			l.holdVIP(0)
			l.serve()
			lb := l.lb(0)
			svc := l.service(TCP, tc.sched)
			svc.Servers[1].Backup = true
			only := func(want string) {
				t.Helper()
				for range 6 {
					srv, _, err := l.once()
					if err != nil {
						t.Fatal(err)
					}
					if srv != want {
						t.Fatalf("a connection went to %s, want only %s", srv, want)
					}
				}
			}
			set(t, lb, Config{Services: []Service{svc}})
			only("s1")
			svc.Servers[0].Down = true
			svc.Servers[0].MAC = nil
			set(t, lb, Config{Services: []Service{svc}})
			only("s2")
		})
	}
}

// TestNAT: TCP (rr) and UDP (wrr) services in NAT mode on one VIP. The
// servers, behind the gateway, see the client's own address; rr alternates.
func TestNAT(t *testing.T) {
	l := newKernLab(t, NAT)
	lab.RequireCommand(t, "nft")
	l.holdVIP(0)
	l.serve()
	lb := l.lb(0)
	tcp := l.service(TCP, RoundRobin)
	udp := l.service(UDP, WeightedRoundRobin)
	udp.Name = "web-udp"
	udp.Servers[1].Weight = 3
	cfg := Config{Services: []Service{tcp, udp}}
	set(t, lb, cfg)
	if ch := set(t, lb, cfg); len(ch) != 0 {
		t.Errorf("second Set with the same config changed %v", ch)
	}
	var order []string
	for range 6 {
		srv, addr, err := l.once()
		if err != nil {
			t.Fatalf("tcp through the VIP: %v", err)
		}
		if !strings.HasPrefix(addr, clientIP+":") {
			t.Fatalf("%s saw %s, want the client's own address %s", srv, addr, clientIP)
		}
		order = append(order, srv)
	}
	for i := 1; i < len(order); i++ {
		if order[i] == order[i-1] {
			t.Errorf("rr sent connections %d and %d to %s: %v", i-1, i, order[i], order)
		}
	}
	count := map[string]int{}
	for range 8 {
		ans, err := l.udpOnce()
		if err != nil {
			t.Fatalf("udp through the VIP: %v", err)
		}
		f := strings.Fields(ans)
		if len(f) != 2 || !strings.HasPrefix(f[1], clientIP+":") {
			t.Fatalf("udp answer %q, want a server and the client's own address", ans)
		}
		count[f[0]]++
	}
	if count["s1"] != 2 || count["s2"] != 6 {
		t.Errorf("wrr 1:3 over 8 datagrams gave %v, want s1:2 s2:6", count)
	}

	// One service goes, the other stays, in one edit of the table.
	tcp.Servers[1].Weight = 2
	ch := set(t, lb, Config{Services: []Service{tcp}})
	if len(ch) != 2 || ch[0].Action != Change || ch[1].Action != Remove {
		t.Errorf("changes %v, want a change of web and a removal of web-udp", ch)
	}
	if out := l.gw[0].Run(t, "nft", "list", "table", "inet", "gitgw"); strings.Contains(out, "web-udp") {
		t.Errorf("web-udp left pieces behind:\n%s", out)
	}
	if _, err := l.udpOnce(); err == nil {
		t.Errorf("the removed udp service still answers")
	}
	if _, _, err := l.once(); err != nil {
		t.Errorf("the remaining service: %v", err)
	}
	if ch := set(t, lb, Config{Services: []Service{tcp}}); len(ch) != 0 {
		t.Errorf("Set after the edit changed %v", ch)
	}
}

// TestDrain: weight 0 (LVS's quiescent) keeps a server's established
// connections and gives it no new ones, in NAT (conntrack carries them) and
// in DR (the hold table for packets without SYN, pins for new flows that
// land on a held slot).
func TestDrain(t *testing.T) {
	for _, tc := range []struct {
		mode  Mode
		sched Scheduler
	}{{NAT, RoundRobin}, {DR, Maglev}} {
		t.Run(string(tc.mode), func(t *testing.T) {
			l := newKernLab(t, tc.mode)
			l.holdVIP(0)
			l.serve()
			lb := l.lb(0)
			svc := l.service(TCP, tc.sched)
			set(t, lb, Config{Services: []Service{svc}})
			// Long-lived connections on both servers.
			var conns []net.Conn
			var on []string
			for len(conns) < 12 {
				c, err := l.dial("")
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				ans, err := ask(c)
				if err != nil {
					t.Fatal(err)
				}
				conns, on = append(conns, c), append(on, strings.Fields(ans)[0])
			}
			if !slices.Contains(on, "s1") || !slices.Contains(on, "s2") {
				t.Fatalf("12 connections all on one server: %v", on)
			}
			svc.Servers[0].Weight = 0 // drain s1
			ch := set(t, lb, Config{Services: []Service{svc}})
			if len(ch) != 1 || !strings.Contains(ch[0].String(), "draining") {
				t.Errorf("drain reported as %v, want one change saying the server is draining", ch)
			}
			for i, c := range conns {
				ans, err := ask(c)
				if err != nil {
					t.Fatalf("connection %d on %s after the drain: %v", i, on[i], err)
				}
				if got := strings.Fields(ans)[0]; got != on[i] {
					t.Errorf("connection %d moved from %s to %s", i, on[i], got)
				}
			}
			for range 20 {
				c, err := l.dial("")
				if err != nil {
					t.Fatal(err)
				}
				// Two exchanges: in DR the second packet of a new flow must
				// follow its SYN, not the hold table.
				for range 2 {
					ans, err := ask(c)
					if err != nil {
						t.Fatalf("new connection during the drain: %v", err)
					}
					if srv := strings.Fields(ans)[0]; srv != "s2" {
						t.Fatalf("new connection went to draining %s", srv)
					}
				}
				c.Close()
			}
		})
	}
}

// TestPersistence: with a persistence timeout every connection of a client
// goes to one server (rr would alternate); NAT's persistence entries to a
// server that is drained are dropped, so the client moves to a live one.
func TestPersistence(t *testing.T) {
	for _, tc := range []struct {
		mode  Mode
		sched Scheduler
	}{{NAT, RoundRobin}, {DR, Maglev}} {
		t.Run(string(tc.mode), func(t *testing.T) {
			l := newKernLab(t, tc.mode)
			l.holdVIP(0)
			l.serve()
			lb := l.lb(0)
			svc := l.service(TCP, tc.sched)
			svc.Persistence = time.Minute
			set(t, lb, Config{Services: []Service{svc}})
			sticky := ""
			for i := range 8 {
				srv, _, err := l.once()
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					sticky = srv
				} else if srv != sticky {
					t.Fatalf("connection %d went to %s, the first to %s: not persistent", i, srv, sticky)
				}
			}
			idx := 0
			if sticky == "s2" {
				idx = 1
			}
			svc.Servers[idx].Weight = 0
			set(t, lb, Config{Services: []Service{svc}})
			for range 4 {
				srv, _, err := l.once()
				if err != nil {
					t.Fatal(err)
				}
				if srv == sticky {
					t.Fatalf("a new connection went to %s, drained, through persistence", srv)
				}
			}
		})
	}
}

// TestRestore: a rule, then the whole table, deleted by hand with the nft
// CLI are reported by Diff and restored by the next Set; a table that is
// not gitgw's is never touched.
func TestRestore(t *testing.T) {
	l := newKernLab(t, NAT)
	lab.RequireCommand(t, "nft")
	l.holdVIP(0)
	l.serve()
	gw := l.gw[0]
	gw.Run(t, "nft", "add table inet other; add chain inet other c; add rule inet other c counter")
	lb := l.lb(0)
	cfg := Config{Services: []Service{l.service(TCP, RoundRobin)}}
	set(t, lb, cfg)
	works := func() error { _, _, err := l.once(); return err }
	if err := works(); err != nil {
		t.Fatal(err)
	}

	// Delete the scheduling rule by its handle.
	out := gw.Run(t, "nft", "-a", "list", "chain", "inet", "gitgw", "svc-web")
	m := regexp.MustCompile(`gitgw:web:schedule" # handle (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no schedule rule in:\n%s", out)
	}
	gw.Run(t, "nft", "delete", "rule", "inet", "gitgw", "svc-web", "handle", m[1])
	if works() == nil {
		t.Fatalf("the service still works without its scheduling rule: the deletion did not take")
	}
	obs, err := lb.Observe()
	if err != nil {
		t.Fatal(err)
	}
	d, err := Diff(cfg, obs)
	if err != nil {
		t.Fatal(err)
	}
	if len(d) != 1 || d[0].Action != Restore || !strings.Contains(d[0].Text, "schedule missing") {
		t.Fatalf("Diff after a rule deleted by hand: %v, want one restore of the schedule rule", d)
	}
	if ch := set(t, lb, cfg); len(ch) != 1 {
		t.Errorf("Set restored %v", ch)
	}
	if err := works(); err != nil {
		t.Fatalf("after the restore: %v", err)
	}

	// A map element: rr's slot 0, so every other connection finds no server.
	gw.Run(t, "nft", "delete", "element", "inet", "gitgw", "web-live", "{ 0 }")
	obs, err = lb.Observe()
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := Diff(cfg, obs); len(d) != 1 || !strings.Contains(d[0].Text, "set inet web-live: elements differ") {
		t.Fatalf("Diff after an element deleted by hand: %v", d)
	}
	set(t, lb, cfg)
	for range 4 {
		if err := works(); err != nil {
			t.Fatalf("after restoring the element: %v", err)
		}
	}
	if ch := set(t, lb, cfg); len(ch) != 0 {
		t.Errorf("Set after the element's restore changed %v", ch)
	}

	// The whole table.
	gw.Run(t, "nft", "delete", "table", "inet", "gitgw")
	if ch := set(t, lb, cfg); len(ch) == 0 {
		t.Errorf("Set did not notice the table was gone")
	}
	if err := works(); err != nil {
		t.Fatalf("after restoring the table: %v", err)
	}

	// Removing every service removes gitgw's table, and only it.
	set(t, lb, Config{})
	if out := gw.Run(t, "nft", "list", "tables"); strings.Contains(out, "gitgw") || !strings.Contains(out, "table inet other") {
		t.Errorf("tables after removing every service:\n%s", out)
	}
}

// TestLimits: deny and allow lists, per-source connection and rate limits,
// in NAT. A refused flow's first packet is dropped: the dial times out.
func TestLimits(t *testing.T) {
	l := newKernLab(t, NAT)
	l.holdVIP(0)
	l.serve()
	lb := l.lb(0)
	svc := l.service(TCP, RoundRobin)
	// A refused flow is seen as a dial timeout: short for the refusals,
	// long for the connections that must pass.
	tryFor := func(d time.Duration) error {
		c, err := l.dialTimeout(d)
		if err == nil {
			_, err = ask(c)
			c.Close()
		}
		return err
	}
	try := func() error { return tryFor(300 * time.Millisecond) }
	mustPass := func() error { return tryFor(3 * time.Second) }
	apply := func(edit func(*Service)) {
		s := svc
		edit(&s)
		set(t, lb, Config{Services: []Service{s}})
	}

	apply(func(s *Service) { s.Deny = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/26")} })
	if try() == nil {
		t.Errorf("a client in the deny list got through")
	}
	apply(func(s *Service) { s.Allow = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")} })
	if try() == nil {
		t.Errorf("a client outside the allow list got through")
	}
	apply(func(s *Service) { s.Allow = []netip.Prefix{netip.MustParsePrefix("203.0.113.48/28")} })
	if err := mustPass(); err != nil {
		t.Errorf("a client in the allow list: %v", err)
	}

	apply(func(s *Service) { s.Limits.ConnPerSource = 2 })
	var open []net.Conn
	for range 2 {
		c, err := l.dialTimeout(time.Second)
		if err != nil {
			t.Fatalf("connection within the limit: %v", err)
		}
		defer c.Close()
		open = append(open, c)
	}
	if try() == nil {
		t.Errorf("a third concurrent connection got through a limit of 2")
	}
	for _, c := range open {
		if _, err := ask(c); err != nil {
			t.Errorf("a connection within the limit stopped: %v", err)
		}
	}

	apply(func(s *Service) { s.Limits = Limits{RatePerSource: 1, Burst: 2} })
	ok := 0
	start := time.Now()
	for range 8 {
		if try() == nil {
			ok++
		}
	}
	// The bucket holds 1 + burst at first and gains 1 a second.
	if most := 3 + int(time.Since(start).Seconds()+1); ok == 0 || ok > most || ok == 8 {
		t.Errorf("%d of 8 rapid connections passed a limit of 1/s burst 2 (at most %d in %v)", ok, most, time.Since(start))
	}
}

// TestBadInput: a DR server off the segment and one that does not answer
// ARP are refused by Resolve with their names; a batch the kernel refuses
// (a DR chain on a device name longer than IFNAMSIZ, which only a config
// that skipped Resolve can carry: this kernel accepts hooks on devices
// that do not exist yet, so Resolve's link lookup is what refuses an
// unknown interface) changes nothing: the running service keeps
// forwarding and the tables stay as they were.
func TestBadInput(t *testing.T) {
	l := newKernLab(t, DR)
	l.holdVIP(0)
	l.serve()
	lb := l.lb(0)
	good := l.service(TCP, Maglev)
	set(t, lb, Config{Services: []Service{good}})

	bad := good
	bad.Name, bad.Port = "other", 81
	bad.Servers = []Server{{Address: mustAddr("198.51.100.50"), Weight: 1}, {Address: mustAddr("203.0.113.99"), Weight: 1}}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := lb.Resolve(ctx, Config{Services: []Service{good, bad}})
	for _, want := range []string{
		"service other: servers[0] 198.51.100.50: not on the segment of eth0",
		"service other: servers[1] 203.0.113.99 on eth0: no ARP answer",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Resolve: %v, want an error with %q", err, want)
		}
	}

	resolved, err := lb.Resolve(context.Background(), Config{Services: []Service{good}})
	if err != nil {
		t.Fatal(err)
	}
	ghost := resolved.Services[0]
	// Longer than IFNAMSIZ: only a batch built without Resolve has it.
	ghost.Name, ghost.Port, ghost.Interface = "ghost", 82, "nosuch-device-name-too-long"
	good2 := resolved.Services[0]
	good2.Servers = good2.Servers[:1] // a change that must not happen either
	_, err = lb.Set(context.Background(), Config{Services: []Service{good2, ghost}})
	if err == nil || !strings.Contains(err.Error(), "in one batch") {
		t.Fatalf("Set with a device name longer than IFNAMSIZ: %v, want the kernel's refusal of the batch", err)
	}
	t.Logf("refused: %v", err)
	after, err := lb.Observe()
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := Diff(resolved, after); len(d) != 0 {
		t.Errorf("a refused batch changed the tables: %v", d)
	}
	seen := map[string]bool{}
	for range 20 {
		srv, _, err := l.once()
		if err != nil {
			t.Fatalf("the running service after a refused batch: %v", err)
		}
		seen[srv] = true
	}
	if len(seen) != 2 {
		t.Errorf("after a refused batch the service reached %v, want both servers still", seen)
	}
	// The next batch is applied: nothing of the refused one is left on
	// the way (its error messages, on the transaction's socket).
	if ch := set(t, lb, Config{Services: []Service{good2}}); len(ch) != 1 {
		t.Errorf("the change after a refused batch: %v, want one", ch)
	}
	after, err = lb.Observe()
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := Diff(Config{Services: []Service{good2}}, after); len(d) != 0 {
		t.Errorf("the change after a refused batch was not applied: %v", d)
	}
}
