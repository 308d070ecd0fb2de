package kernlb

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// resolved returns a DR and a NAT service as Resolve would leave them.
func resolvedConfig() Config {
	dr := Service{Name: "web", VIP: netip.MustParseAddr("203.0.113.100"), Port: 80, Protocol: TCP, Mode: DR,
		Scheduler: Maglev, Interface: "eth0", ifindex: 2, ifMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}}
	for i, a := range []string{"203.0.113.21", "203.0.113.22", "203.0.113.23"} {
		dr.Servers = append(dr.Servers, Server{Address: netip.MustParseAddr(a), Weight: 1, MAC: net.HardwareAddr{2, 0, 0, 0, 1, byte(i)}})
	}
	nat := Service{Name: "dns", VIP: netip.MustParseAddr("203.0.113.100"), Port: 53, Protocol: UDP, Mode: NAT,
		Scheduler: WeightedRoundRobin, Persistence: time.Minute,
		Deny: []netip.Prefix{netip.MustParsePrefix("203.0.113.128/25"), netip.MustParsePrefix("198.51.100.0/24")}}
	for _, a := range []string{"198.51.100.11", "198.51.100.12"} {
		nat.Servers = append(nat.Servers, Server{Address: netip.MustParseAddr(a), Port: 5353, Weight: 2})
	}
	return Config{Services: []Service{dr, nat}}
}

func observedFor(t testing.TB, c Config) Observed {
	t.Helper()
	p, err := render(c)
	if err != nil {
		t.Fatal(err)
	}
	return observedOf(p)
}

func TestDiffWords(t *testing.T) {
	cfg := resolvedConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d, err := Diff(cfg, Observed{})
	if err != nil {
		t.Fatal(err)
	}
	text := ""
	for _, c := range d {
		text += c.String() + "\n"
	}
	for _, want := range []string{
		"add service dns: nat udp 203.0.113.100:53, wrr, persistence 1m0s; servers 198.51.100.11:5353 weight 2, 198.51.100.12:5353 weight 2",
		"add service web: dr tcp 203.0.113.100:80 on eth0, maglev; servers 203.0.113.21:80 weight 1",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("Diff against empty tables:\n%s\nwant a line with %q", text, want)
		}
	}
	if d, _ := Diff(cfg, observedFor(t, cfg)); len(d) != 0 {
		t.Errorf("Diff of a config with its own tables: %v, want nothing", d)
	}

	next := resolvedConfig()
	next.Services[0].Servers[1].Weight = 0
	next.Services[0].Servers = next.Services[0].Servers[:2]
	next.Services[0].Servers = append(next.Services[0].Servers, Server{Address: netip.MustParseAddr("203.0.113.24"), Weight: 3, Backup: true, MAC: net.HardwareAddr{2, 0, 0, 0, 1, 9}})
	next.Services[1].Mode, next.Services[1].Scheduler = NAT, Maglev
	next.Services[1].Deny = next.Services[1].Deny[:1]
	d, err = Diff(next, observedFor(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	got := ""
	for _, c := range d {
		got += c.String() + "\n"
	}
	want := "change service dns: nat udp 203.0.113.100:53, wrr, persistence 1m0s → nat udp 203.0.113.100:53, maglev, persistence 1m0s; deny [198.51.100.0/24 203.0.113.128/25] → [203.0.113.128/25]\n" +
		"change service web: server 203.0.113.22:80 weight 1 → draining (weight 0); add server 203.0.113.24:80 weight 3 backup; remove server 203.0.113.23:80\n"
	if got != want {
		t.Errorf("Diff in words:\n%s\nwant:\n%s", got, want)
	}

	gone, _ := Diff(Config{}, observedFor(t, cfg))
	if len(gone) != 2 || gone[0].Action != Remove || gone[0].Text != "nat udp 203.0.113.100:53, wrr, persistence 1m0s" {
		t.Errorf("Diff to nothing: %v", gone)
	}
}

// TestDiffDrift: a table that differs from what gitgw wrote, with the same
// services, is a restore, attributed to its service.
func TestDiffDrift(t *testing.T) {
	cfg := resolvedConfig()
	obs := observedFor(t, cfg)
	nd := obs.Tables[1]
	delete(nd.Sets, "web-live")
	nd.Chains["svc-web"].Rules = nil
	nd.Chains["foreign"] = &ChainState{}
	d, err := Diff(cfg, obs)
	if err != nil {
		t.Fatal(err)
	}
	if len(d) != 2 || d[0].Action != Restore || d[0].Service != "web" || d[1].Service != "" {
		t.Fatalf("Diff with drift: %v, want a restore of web and one of the table", d)
	}
	for _, want := range []string{"set netdev web-live missing", "rule schedule missing"} {
		if !strings.Contains(d[0].Text, want) {
			t.Errorf("restore %q lacks %q", d[0].Text, want)
		}
	}
	if want := "restore: chain netdev foreign not written by gitgw"; d[1].String() != want {
		t.Errorf("table drift %q, want %q", d[1], want)
	}
}

func TestValidate(t *testing.T) {
	good := resolvedConfig()
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Services[0].Scheduler = RoundRobin }, "services[0] (web): scheduler: rr is per packet in dr mode"},
		{func(c *Config) { c.Services[0].Interface = "" }, "interface: dr mode needs the segment's interface"},
		{func(c *Config) { c.Services[0].Limits.ConnPerSource = 3 }, "conn_per_source: dr mode keeps no connection state"},
		{func(c *Config) { c.Services[0].Servers[0].Port = 8080 }, "servers[0] (203.0.113.21): port: 8080: dr mode cannot change the port"},
		{func(c *Config) { c.Services[1].Name = "web" }, "services[1] (web): name: same as services[0]"},
		// NAT64 is not NAT: an IPv6 VIP to IPv4 servers is refused.
		{func(c *Config) { c.Services[1].VIP = netip.MustParseAddr("2001:db8::1") }, "servers[0] (198.51.100.11): address: not of the VIP's family (IPv6)"},
		{func(c *Config) { c.Services[1].Servers[1].Address = netip.MustParseAddr("2001:db8::12") }, "servers[1] (2001:db8::12): address: not of the VIP's family (IPv4)"},
		{func(c *Config) { c.Services[0].VIP = netip.MustParseAddr("2001:db8::1") }, "servers[0] (203.0.113.21): address: not of the VIP's family (IPv6)"},
		{func(c *Config) { c.Services[1].VIP = netip.MustParseAddr("::ffff:203.0.113.1") }, "not IPv4-mapped"},
		{func(c *Config) { c.Services[1].TableSize = 1000 }, "table_size: 1000 must be a prime"},
		{func(c *Config) { c.Services[1].Servers[0].Weight = 300 }, "weight: 300 must be 0-256"},
		{func(c *Config) { c.Services[1].Protocol = "sctp" }, `protocol: "sctp" must be tcp or udp`},
		{func(c *Config) { c.Services[1].Limits.Rate = -1 }, "limits: {ConnPerSource:0 RatePerSource:0 Rate:-1 Burst:0}: each must be 0-1000000000"},
		{func(c *Config) { c.Services[1].Mode = "tun" }, `mode: "tun" must be nat, fnat or dr`},
		{func(c *Config) { c.Services[1].Persistence = time.Millisecond }, "persistence: 1ms: between 1s and 720h"},
	} {
		c := resolvedConfig()
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want an error with %q", err, tc.want)
		}
	}
	if err := good.Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

func TestIntervals(t *testing.T) {
	in := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/25"), netip.MustParsePrefix("10.0.0.128/25"),
		netip.MustParsePrefix("10.0.1.7/32"), netip.MustParsePrefix("0.0.0.0/1"), netip.MustParsePrefix("192.0.0.0/2")}
	got := prefixesOf(intervalElems(in))
	want := "[0.0.0.0/1 192.0.0.0/2]"
	if fmtPrefixes(got) != want {
		t.Errorf("merged %v into %v, want %s", in, got, want)
	}
	in6 := []netip.Prefix{netip.MustParsePrefix("2001:db8::/33"), netip.MustParsePrefix("2001:db8:8000::/33"),
		netip.MustParsePrefix("2001:db9::1/128"), netip.MustParsePrefix("2001:db9::2/127"), netip.MustParsePrefix("8000::/1")}
	got = prefixesOf(intervalElems(in6))
	want = "[2001:db8::/32 2001:db9::1/128 2001:db9::2/127 8000::/1]"
	if fmtPrefixes(got) != want {
		t.Errorf("merged %v into %v, want %s", in6, got, want)
	}
	// The last range has no end element (it reaches ffff:…): three
	// ranges, the middle one merged from adjacent /128 and /127.
	if e := intervalElems(in6); len(e) != 5 || e[4].IntervalEnd {
		t.Errorf("elements %v, want 3 ranges, the last without an end", e)
	}
}

func fmtPrefixes(p []netip.Prefix) string {
	var s []string
	for _, x := range p {
		s = append(s, x.String())
	}
	return "[" + strings.Join(s, " ") + "]"
}

// BenchmarkRenderDiff100 is the CPU a Set spends before the kernel: render
// 100 nat maglev services of 10 servers (1,021-slot tables), fingerprint
// them and diff against the previous generation. No root needed.
func BenchmarkRenderDiff100(b *testing.B) {
	build := func(gen int) Config {
		var c Config
		for i := range 100 {
			s := Service{Name: fmt.Sprintf("svc%03d", i), VIP: netip.MustParseAddr("203.0.113.100"), Port: uint16(1000 + i),
				Protocol: TCP, Mode: NAT, Scheduler: Maglev}
			for j := range 10 {
				s.Servers = append(s.Servers, Server{Address: netip.AddrFrom4([4]byte{198, 51, 100, byte(20 + (j+gen)%200)}), Port: 8080, Weight: 1})
			}
			c.Services = append(c.Services, s)
		}
		return c
	}
	prev := observedFor(b, build(0))
	next := build(1)
	cpu := func() time.Duration {
		var ru unix.Rusage
		_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	// The box may be shared: CPU time per op says more than wall time.
	c0 := cpu()
	b.ResetTimer()
	defer func() { b.ReportMetric(float64((cpu()-c0).Microseconds())/1000/float64(b.N), "cpu_ms/op") }()
	for range b.N {
		p, err := render(next)
		if err != nil {
			b.Fatal(err)
		}
		if d := diffProgram(observedOf(p), next, prev); len(d) != 100 {
			b.Fatalf("%d changes", len(d))
		}
	}
}
