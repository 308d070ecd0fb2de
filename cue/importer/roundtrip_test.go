package importer

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gitgw/gitgw/cue/spec"
)

var prefixEq = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

// The seeds' configurations, imported and loaded, say what they said.

func TestRoundTripSeed003(t *testing.T) {
	views := load(t, "seed003")
	for node, prio := range map[string]int{"gw1": 100, "gw2": 90} {
		v := views[node]
		in, ok := v.VRRP["VI_1"]
		if !ok {
			t.Fatalf("%s: no VI_1 in %v", node, v.VRRP)
		}
		if in.Nodes[node].Priority != prio {
			t.Errorf("%s: priority %d, want %d", node, in.Nodes[node].Priority, prio)
		}
		if in.Interface != "eth0" || in.VRID != 51 || in.Version != 2 || in.AdvertInterval.D() != time.Second || !in.Preempt {
			t.Errorf("%s: VI_1 = %+v", node, in)
		}
		if want := []spec.VIP{{Address: netip.MustParsePrefix("192.168.1.100/24")}}; !cmp.Equal(in.VIPs, want, prefixEq) {
			t.Errorf("%s: VIPs %v, want %v", node, in.VIPs, want)
		}
		if in.Auth == nil || in.Auth.Password != "1111" {
			t.Errorf("%s: auth %+v", node, in.Auth)
		}
		if want := []spec.TrackInterface{{Name: "eth0"}}; !cmp.Equal(in.TrackInterfaces, want) {
			t.Errorf("%s: track_interfaces %v", node, in.TrackInterfaces)
		}
		wantCheck := spec.TrackCheck{Name: "chk_http_port", Weight: -20, Check: spec.Check{
			Kind: "command", Command: "/etc/keepalived/check_http.sh",
			Interval: spec.Duration(2 * time.Second), Timeout: spec.Duration(2 * time.Second), Rise: 2, Fall: 3,
		}}
		if d := cmp.Diff([]spec.TrackCheck{wantCheck}, in.TrackChecks); d != "" {
			t.Errorf("%s: track_checks (-want +got):\n%s", node, d)
		}
		if in.GARP.Delay.D() != time.Second || in.GARP.Repeat != 5 {
			t.Errorf("%s: garp %+v", node, in.GARP)
		}
		// web_front terminates TLS on one of its binds and denies a
		// path: HTTP mode, with both.
		want := &spec.ServiceHTTP{
			TLS:   &spec.HTTPTLS{CertFiles: []string{"/etc/ssl/cert.pem"}, Binds: []string{"192.168.1.100:443"}},
			Rules: []spec.HTTPRule{{Deny: 403, When: []spec.HTTPCond{{Subject: "path", Match: "exact", Values: []string{"/health"}}}}},
		}
		if d := cmp.Diff(want, v.Services["web_front"].HTTP); d != "" {
			t.Errorf("%s: web_front http (-want +got):\n%s", node, d)
		}
	}
}

func TestRoundTripSeed004(t *testing.T) {
	views := load(t, "seed004")
	for node, prio := range map[string]int{"master": 100, "backup": 50} {
		in := views[node].VRRP["VI_1"]
		if in.Nodes[node].Priority != prio || in.VRID != 51 || in.Version != 2 {
			t.Errorf("%s: VI_1 = %+v", node, in)
		}
		// keepalived truncates auth_pass to 8 characters.
		if in.Auth == nil || in.Auth.Password != "mypasswo" {
			t.Errorf("%s: auth %+v", node, in.Auth)
		}
		if len(in.TrackChecks) != 1 || in.TrackChecks[0].Weight != -20 || in.TrackChecks[0].Interval.D() != 5*time.Second ||
			in.TrackChecks[0].Rise != 1 || in.TrackChecks[0].Fall != 1 {
			t.Errorf("%s: track_checks %+v", node, in.TrackChecks)
		}
		// keepalived's second round of gratuitous ARPs after 5 s.
		if in.GARP.Delay.D() != 5*time.Second {
			t.Errorf("%s: garp %+v", node, in.GARP)
		}
	}
}

func TestRoundTripSeed001(t *testing.T) {
	views := load(t, "seed001")
	lb1 := views["lb1"]
	in := lb1.VRRP["VI_1"]
	if in.Nodes["lb1"].Priority != 100 || in.Nodes["lb2"].Priority != 99 {
		t.Errorf("priorities %+v", in.Nodes)
	}
	if want := []spec.VIP{{Address: netip.MustParsePrefix("192.168.1.200/32")}}; !cmp.Equal(in.VIPs, want, prefixEq) {
		t.Errorf("VIPs %v", in.VIPs)
	}
	// The frontend routes by Host (use_backend): HTTP mode, so the
	// HAProxy check script is replaced by tracking its services.
	if len(in.TrackServices) != 2 || len(in.TrackChecks) != 0 {
		t.Errorf("track_services %v, track_checks %v", in.TrackServices, in.TrackChecks)
	}
	if got := lb1.Node.Interfaces["eth0"].Addresses; !cmp.Equal(got, []netip.Prefix{netip.MustParsePrefix("192.168.1.192/28")}, prefixEq) {
		t.Errorf("lb1 eth0 addresses %v", got)
	}
	wantRules := []spec.HTTPRule{
		{Use: "domain", When: []spec.HTTPCond{{Subject: "host", Match: "suffix", Values: []string{"test.domain.com"}, IgnoreCase: true}}},
		{Use: "http-in", When: []spec.HTTPCond{{Subject: "host", Match: "suffix", Values: []string{"test.com"}, IgnoreCase: true}}},
	}
	if h := lb1.Services["http-in"].HTTP; h == nil || !cmp.Equal(h.Rules, wantRules) {
		t.Errorf("http-in, which routes by Host: http %+v, want rules %+v", h, wantRules)
	}
	if d := lb1.Services["domain"]; len(d.Binds) != 0 || d.Servers["web2"].Address != "192.168.1.187:8000" {
		t.Errorf("pool domain: %+v, want no binds and web2", d)
	}
	if _, ok := lb1.Services["stats"]; ok {
		t.Error("the stats listener was imported as a service")
	}
}

func TestRoundTripFull(t *testing.T) {
	views := load(t, "full")
	gw1, gw2 := views["gw1"], views["gw2"]
	ext := gw1.VRRP["EXT"]
	if ext.Version != 3 || ext.AdvertInterval.D() != 100*time.Millisecond || ext.Preempt || ext.PreemptDelay.D() != 30*time.Second ||
		!ext.Unicast || !ext.VMAC || ext.SyncGroup != "G1" || ext.Nodes["gw1"].Priority != 150 || ext.Nodes["gw2"].Priority != 100 {
		t.Errorf("EXT = %+v", ext)
	}
	wantVIPs := []spec.VIP{
		{Address: netip.MustParsePrefix("203.0.113.100/24"), Label: "eth0:vip"},
		{Address: netip.MustParsePrefix("203.0.113.101/24")},
		{Address: netip.MustParsePrefix("2001:db8::100/64")},
	}
	if d := cmp.Diff(wantVIPs, ext.VIPs, prefixEq); d != "" {
		t.Errorf("VIPs (-want +got):\n%s", d)
	}
	if ext.Notify.Master != "/usr/local/bin/notify master" || ext.Notify.Backup != "/usr/local/bin/notify backup" {
		t.Errorf("notify %+v", ext.Notify)
	}
	if ext.GARP.Delay.D() != 2*time.Second || ext.GARP.Repeat != 3 || ext.GARP.Refresh.D() != time.Minute {
		t.Errorf("garp %+v", ext.GARP)
	}
	if got := gw2.Node.Interfaces["eth0"].Addresses; !cmp.Equal(got, []netip.Prefix{netip.MustParsePrefix("203.0.113.12/24")}, prefixEq) {
		t.Errorf("gw2 eth0 %v", got)
	}
	smtp := gw1.Services["smtp"]
	if smtp.Check == nil || smtp.Check.Kind != "tcp-expect" || smtp.Check.Send != "EHLO gitgw\r\n" || smtp.Check.Expect != "250" ||
		!smtp.Check.ShutdownSessions || smtp.ProxyProtocol != "v2" || smtp.Balance != "leastconn" || smtp.MaxConn != 5000 {
		t.Errorf("smtp = %+v check %+v", smtp, smtp.Check)
	}
	if !smtp.Servers["mx3"].Disabled || smtp.Servers["mx2"].Weight != 50 {
		t.Errorf("smtp servers %+v", smtp.Servers)
	}
	// HAProxy's weight of a server without one is 1, not the schema's 100.
	if smtp.Servers["mx1"].Weight != 1 {
		t.Errorf("smtp mx1 weight %d, want HAProxy's 1", smtp.Servers["mx1"].Weight)
	}
	// db: one server checks another port (check_port), one is given by
	// name.
	db := gw2.Services["db"]
	if db.Servers["pg1"].CheckPort != 8008 || db.Servers["pg2"].CheckPort != 0 || db.Check == nil || db.Check.Port != 0 ||
		db.Servers["pg3"].Address != "pg3.example.net:5432" || db.Persistence.D() != 30*time.Minute {
		t.Errorf("db = %+v check %+v", db, db.Check)
	}
	// The virtual_servers: kernel forwarding. DR takes the interface of
	// the instance holding the VIP, and a hash of the flow for wlc (gitgw's
	// dr keeps no connection state); UDP without a checker stays up, as in
	// keepalived: unchecked, said in the site.
	mx := gw2.Services["vs-203.0.113.100-25"]
	if mx.Mode != spec.ModeDR || mx.Interface != "eth0" || mx.Balance != "maglev" || mx.Persistence.D() != 300*time.Second ||
		mx.Protocol != "tcp" || mx.Servers["198.51.100.21-25"].Weight != 3 {
		t.Errorf("vs-203.0.113.100-25 = %+v", mx)
	}
	dns := gw2.Services["vs-203.0.113.100-53"]
	if dns.Mode != spec.ModeNAT || dns.Protocol != "udp" || dns.Balance != "roundrobin" || dns.Check != nil || !dns.Unchecked {
		t.Errorf("vs-203.0.113.100-53 = %+v check %+v", dns, dns.Check)
	}
}

// Without unicast_src_ip, a node's address is found in its peer's
// unicast_peer list, with the VIP's prefix length.
func TestRoundTripUnicastPeers(t *testing.T) {
	views := load(t, "unicast")
	for node, addr := range map[string]string{"gw1": "203.0.113.11/24", "gw2": "203.0.113.12/24"} {
		v := views[node]
		if got := v.Node.Interfaces["eth0"].Addresses; !cmp.Equal(got, []netip.Prefix{netip.MustParsePrefix(addr)}, prefixEq) {
			t.Errorf("%s: eth0 addresses %v, want %s", node, got, addr)
		}
		if in := v.VRRP["VI_1"]; !in.Unicast || in.Nodes["gw1"].Priority != 150 || in.Nodes["gw2"].Priority != 100 {
			t.Errorf("%s: VI_1 %+v", node, in)
		}
	}
}
