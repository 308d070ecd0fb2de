package l4proxy

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/dataplane/httpproxy"
	"github.com/google/go-cmp/cmp"
)

func TestDiff(t *testing.T) {
	ap := netip.MustParseAddrPort
	web := func(mut ...func(*Service)) Service {
		s := Service{Name: "web", Binds: []netip.AddrPort{ap("203.0.113.100:80")}, Timeouts: Timeouts{Connect: 2 * time.Second},
			Servers: []Server{{Name: "a", Addr: ap("198.51.100.11:8080"), Weight: 100}, {Name: "b", Addr: ap("198.51.100.12:8080"), Weight: 100}}}
		for _, m := range mut {
			m(&s)
		}
		return s
	}
	cfg := func(s ...Service) Config { return Config{Services: s} }
	type row struct {
		Kind, ID string
		Op       Op
	}
	converged := []row{{KindService, "web", OpNoOp}, {KindBind, "web/203.0.113.100:80", OpNoOp},
		{KindServer, "web/a", OpNoOp}, {KindServer, "web/b", OpNoOp}}
	for _, c := range []struct {
		name       string
		want, have Config
		live       map[string]ServerStats
		rows       []row
		// detail is looked for in the details (or reason) of the change
		// with id detailOf.
		detailOf, detail string
	}{
		{name: "nothing", rows: nil},
		{name: "new service", want: cfg(web()),
			rows: []row{{KindService, "web", OpCreate}, {KindBind, "web/203.0.113.100:80", OpCreate},
				{KindServer, "web/a", OpCreate}, {KindServer, "web/b", OpCreate}},
			detailOf: "web", detail: "new in site"},
		{name: "converged, live health shown", want: cfg(web()), have: cfg(web()),
			live: map[string]ServerStats{"web/a": {Name: "a", Status: StatusUp, Current: 2, Check: "L4OK"}},
			rows: converged, detailOf: "web/a", detail: `now UP, 2 connections, check "L4OK"`},
		{name: "weight lowered", want: cfg(web(func(s *Service) { s.Servers[0].Weight = 50 })), have: cfg(web()),
			rows:     []row{{KindService, "web", OpNoOp}, {KindBind, "web/203.0.113.100:80", OpNoOp}, {KindServer, "web/a", OpUpdate}, {KindServer, "web/b", OpNoOp}},
			detailOf: "web/a", detail: "weight 100 → 50"},
		{name: "server drained", want: cfg(web(func(s *Service) { s.Servers[1].State = Drain })), have: cfg(web()),
			rows:     []row{{KindService, "web", OpNoOp}, {KindBind, "web/203.0.113.100:80", OpNoOp}, {KindServer, "web/a", OpNoOp}, {KindServer, "web/b", OpUpdate}},
			detailOf: "web/b", detail: "server b: drained"},
		{name: "server back from maintenance", want: cfg(web()), have: cfg(web(func(s *Service) { s.Servers[1].State = Maint })),
			rows:     []row{{KindService, "web", OpNoOp}, {KindBind, "web/203.0.113.100:80", OpNoOp}, {KindServer, "web/a", OpNoOp}, {KindServer, "web/b", OpUpdate}},
			detailOf: "web/b", detail: "server b: back in rotation (was maint)"},
		{name: "server removed, its connections drain", want: cfg(web(func(s *Service) { s.Servers = s.Servers[:1] })), have: cfg(web()),
			live:     map[string]ServerStats{"web/b": {Name: "b", Status: StatusUp, Current: 3}},
			rows:     []row{{KindService, "web", OpNoOp}, {KindBind, "web/203.0.113.100:80", OpNoOp}, {KindServer, "web/a", OpNoOp}, {KindServer, "web/b", OpDelete}},
			detailOf: "web/b", detail: "3 connections to drain"},
		{name: "http rule changed", want: cfg(web(func(s *Service) {
			s.HTTP = &httpproxy.HTTP{Rules: []httpproxy.Rule{{Deny: 403, When: []httpproxy.Cond{{Subject: httpproxy.SubjPath, Match: httpproxy.MatchPrefix, Values: []string{"/admin"}}}}}}
		})), have: cfg(web(func(s *Service) {
			s.HTTP = &httpproxy.HTTP{Rules: []httpproxy.Rule{{Deny: 403, When: []httpproxy.Cond{{Subject: httpproxy.SubjPath, Match: httpproxy.MatchPrefix, Values: []string{"/adm"}}}}}}
		})),
			rows:     []row{{KindService, "web", OpUpdate}, {KindBind, "web/203.0.113.100:80", OpNoOp}, {KindServer, "web/a", OpNoOp}, {KindServer, "web/b", OpNoOp}},
			detailOf: "web", detail: "http http; deny 403 if { path -m prefix /adm } → http; deny 403 if { path -m prefix /admin }"},
		{name: "bind moved", want: cfg(web(func(s *Service) { s.Binds = []netip.AddrPort{ap("203.0.113.101:80")} })), have: cfg(web()),
			rows: []row{{KindService, "web", OpNoOp}, {KindBind, "web/203.0.113.101:80", OpCreate}, {KindBind, "web/203.0.113.100:80", OpDelete},
				{KindServer, "web/a", OpNoOp}, {KindServer, "web/b", OpNoOp}},
			detailOf: "web/203.0.113.100:80", detail: "listener closed; its established connections are kept"},
		{name: "balance changed", want: cfg(web(func(s *Service) { s.Balance = LeastConn })), have: cfg(web()),
			rows:     []row{{KindService, "web", OpUpdate}, {KindBind, "web/203.0.113.100:80", OpNoOp}, {KindServer, "web/a", OpNoOp}, {KindServer, "web/b", OpNoOp}},
			detailOf: "web", detail: "balance roundrobin → leastconn"},
		{name: "service removed", have: cfg(web(func(s *Service) { s.DrainGrace = 5 * time.Second })),
			rows: []row{{KindService, "web", OpDelete}, {KindBind, "web/203.0.113.100:80", OpDelete},
				{KindServer, "web/a", OpDelete}, {KindServer, "web/b", OpDelete}},
			detailOf: "web", detail: "gone from site; connections drain for 5s"},
		{name: "busy poll switched on", want: Config{Services: []Service{web()}, BusyPoll: 50 * time.Microsecond}, have: cfg(web()),
			rows:     append([]row{{KindPool, "busy_poll", OpUpdate}}, converged...),
			detailOf: "busy_poll", detail: "off → 50µs"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := Diff(c.want, Observed{Applied: c.have, Servers: c.live})
			var rows []row
			for _, ch := range got {
				rows = append(rows, row{ch.Kind, ch.ID, ch.Op})
			}
			if d := cmp.Diff(c.rows, rows); d != "" {
				t.Fatalf("changes (-want +got):\n%s", d)
			}
			if c.detailOf == "" {
				return
			}
			for _, ch := range got {
				if ch.ID != c.detailOf {
					continue
				}
				words := append([]string{ch.Reason}, ch.Details...)
				if ch.Kind == KindPool {
					words = append(words, ch.Before.(string)+" → "+ch.After.(string))
				}
				if !strings.Contains(strings.Join(words, "\n"), c.detail) {
					t.Errorf("%s: %q, want %q", ch.ID, words, c.detail)
				}
				return
			}
			t.Errorf("no change %s", c.detailOf)
		})
	}
}

// The plan spells a service's timeouts and check like HAProxy's
// configuration: what is checked first, and only the settings that are set.
func TestViewServiceSpelling(t *testing.T) {
	for _, tc := range []struct {
		name          string
		svc           Service
		timeouts, chk string
	}{
		{
			name: "http check, defaults left out",
			svc: Service{
				Timeouts: Timeouts{Connect: 2 * time.Second, Client: 30 * time.Second, Server: 30 * time.Second, Queue: 5 * time.Second},
				Check: &Check{Type: CheckHTTP, Path: "/health", ExpectStatus: 200, Expect: "Still alive",
					Interval: 500 * time.Millisecond, Timeout: time.Second, Rise: 2, Fall: 2},
			},
			timeouts: "connect 2s client 30s server 30s queue 5s",
			chk:      `http GET /health expect status 200 expect string "Still alive" inter 500ms timeout 1s rise 2 fall 2`,
		},
		{
			name: "every knob set",
			svc: Service{
				Timeouts: Timeouts{Connect: time.Second, Client: time.Minute, Server: time.Minute, Tunnel: time.Hour,
					ClientFin: time.Second, ServerFin: 2 * time.Second, Queue: 3 * time.Second},
				ShutdownOnDown: true,
				Check: &Check{Type: CheckHTTP, Method: "HEAD", Path: "/", Host: "app.example",
					Interval: 2 * time.Second, FastInterval: 500 * time.Millisecond, DownInterval: 5 * time.Second,
					Timeout: time.Second, Rise: 3, Fall: 2},
			},
			timeouts: "connect 1s client 1m0s server 1m0s tunnel 1h0m0s client-fin 1s server-fin 2s queue 3s",
			chk:      "http HEAD / host app.example inter 2s fast 500ms down 5s timeout 1s rise 3 fall 2 shutdown-sessions",
		},
		{
			name: "send/expect",
			svc: Service{Check: &Check{Type: CheckTCPExpect, Send: "PING\r\n", Expect: "+PONG",
				Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1}},
			chk: `tcp-expect send "PING\r\n" expect "+PONG" inter 1s timeout 1s rise 1 fall 1`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := ViewService(tc.svc)
			if v.Timeouts != tc.timeouts {
				t.Errorf("timeouts %q, want %q", v.Timeouts, tc.timeouts)
			}
			if v.Check != tc.chk {
				t.Errorf("check %q, want %q", v.Check, tc.chk)
			}
		})
	}
}

// TestDiffServerCheckPort: a server's own check port reads in the plan.
func TestDiffServerCheckPort(t *testing.T) {
	w := ViewServer(Server{Name: "db1", Addr: netip.MustParseAddrPort("198.51.100.21:5432"), Weight: 1, CheckPort: 8008})
	h := w
	h.CheckPort = 0
	if d := diffServer("db1", h, w); len(d) != 1 || d[0] != "check port the check's → 8008" {
		t.Errorf("plan of a new check port: %q", d)
	}
}

// TestDiffServerOwnCheck: a server's own check address, targets and
// unchecked read in the plan.
func TestDiffServerOwnCheck(t *testing.T) {
	base := Server{Name: "mx1", Addr: netip.MustParseAddrPort("198.51.100.21:25"), Weight: 1}
	h := ViewServer(base)
	for _, tt := range []struct {
		srv  Server
		want string
	}{
		{Server{CheckAddr: netip.MustParseAddr("192.0.2.1")}, "check address the check's → 192.0.2.1"},
		{Server{CheckTargets: []netip.AddrPort{netip.MustParseAddrPort("198.51.100.21:25"), netip.MustParseAddrPort("192.0.2.1:587")}},
			"check targets none → 198.51.100.21:25 and 192.0.2.1:587"},
		{Server{Unchecked: true}, "unchecked: the check no longer takes it out"},
		{Server{SOCKS4: netip.MustParseAddrPort("127.0.0.1:1080"), CheckViaSOCKS4: true}, "via direct → socks4 127.0.0.1:1080 check-via-socks4"},
	} {
		s := tt.srv
		s.Name, s.Addr, s.Weight = base.Name, base.Addr, base.Weight
		if d := diffServer("mx1", h, ViewServer(s)); len(d) != 1 || d[0] != tt.want {
			t.Errorf("plan of %+v: %q, want %q", tt.srv, d, tt.want)
		}
	}
}
