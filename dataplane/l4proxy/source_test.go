package l4proxy

import (
	"bufio"
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

func prefixes(ss ...string) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range ss {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}

func TestPrefixSet(t *testing.T) {
	tests := []struct {
		name   string
		set    []string
		ranges int // after merging
		in     []string
		out    []string
	}{
		{"empty", nil, 0, nil, []string{"0.0.0.0", "::", "10.0.0.1"}},
		{"v4 /0", []string{"0.0.0.0/0"}, 1,
			[]string{"0.0.0.0", "255.255.255.255", "10.1.2.3", "::ffff:10.1.2.3"},
			[]string{"::", "::fffe:ffff:ffff", "::1:0:0:0", "2001:db8::1", "fe80::1"}},
		{"v6 /0", []string{"::/0"}, 1,
			[]string{"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8::1", "10.0.0.1"}, nil},
		{"/32", []string{"198.51.100.7/32"}, 1,
			[]string{"198.51.100.7", "::ffff:198.51.100.7"},
			[]string{"198.51.100.6", "198.51.100.8", "::c633:6407"}},
		{"/128", []string{"2001:db8::7/128"}, 1,
			[]string{"2001:db8::7"}, []string{"2001:db8::6", "2001:db8::8", "0.0.0.7"}},
		{"host bits masked", []string{"203.0.113.77/24"}, 1,
			[]string{"203.0.113.0", "203.0.113.255"}, []string{"203.0.112.255", "203.0.114.0"}},
		{"v4-mapped v6 prefix matches v4", []string{"::ffff:10.0.0.0/104"}, 1,
			[]string{"10.0.0.0", "10.255.255.255", "::ffff:10.9.9.9"}, []string{"11.0.0.0", "9.255.255.255"}},
		{"overlapping", []string{"10.0.0.0/8", "10.1.0.0/16", "10.200.3.4/32"}, 1,
			[]string{"10.0.0.0", "10.1.2.3", "10.255.255.255"}, []string{"11.0.0.0"}},
		{"adjacent merged", []string{"192.0.2.0/25", "192.0.2.128/25"}, 1,
			[]string{"192.0.2.0", "192.0.2.127", "192.0.2.128", "192.0.2.255"}, []string{"192.0.3.0", "192.0.1.255"}},
		{"disjoint", []string{"198.51.100.0/24", "2001:db8::/32", "203.0.113.0/25"}, 3,
			[]string{"198.51.100.1", "2001:db8:ffff::1", "203.0.113.127"},
			[]string{"203.0.113.128", "2001:db9::", "198.51.101.0", "0.0.0.0"}},
		{"top of the space", []string{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0/124"}, 1,
			[]string{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, []string{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:feff"}},
		{"bits across the 64-bit halves", []string{"2001:db8:0:8000::/49"}, 1,
			[]string{"2001:db8:0:8000::", "2001:db8:0:ffff:ffff:ffff:ffff:ffff"}, []string{"2001:db8:0:7fff:ffff:ffff:ffff:ffff", "2001:db8:1::"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newPrefixSet(prefixes(tt.set...))
			if s.len() != tt.ranges {
				t.Errorf("%d ranges, want %d", s.len(), tt.ranges)
			}
			for _, a := range tt.in {
				if !s.contains(netip.MustParseAddr(a)) {
					t.Errorf("%s not in %v", a, tt.set)
				}
			}
			for _, a := range tt.out {
				if s.contains(netip.MustParseAddr(a)) {
					t.Errorf("%s in %v", a, tt.set)
				}
			}
			if s.contains(netip.Addr{}) {
				t.Error("the zero address matched")
			}
		})
	}
}

func TestSourceVerdict(t *testing.T) {
	r := compileSource(&SourceRules{
		Allow: prefixes("198.51.100.0/24", "2001:db8::/32"),
		Deny:  prefixes("198.51.100.66/32", "2001:db8:bad::/48"),
	})
	for a, want := range map[string]srcVerdict{
		"198.51.100.1":    admitted,
		"198.51.100.66":   denyList, // deny wins over allow
		"203.0.113.1":     notAllowed,
		"2001:db8::1":     admitted,
		"2001:db8:bad::1": denyList,
		"::1":             notAllowed,
	} {
		if got := r.check(netip.MustParseAddr(a)); got != want {
			t.Errorf("%s: verdict %d, want %d", a, got, want)
		}
	}
	open := compileSource(&SourceRules{Deny: prefixes("203.0.113.0/24")})
	if open.check(netip.MustParseAddr("192.0.2.1")) != admitted || open.check(netip.MustParseAddr("203.0.113.9")) != denyList {
		t.Error("empty allow list: everything not denied must pass")
	}
}

// TestSourceLimiter drives the per-source table with explicit times.
func TestSourceLimiter(t *testing.T) {
	a, b := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2")
	const sec = int64(time.Second)

	t.Run("concurrency", func(t *testing.T) {
		r := compileSource(&SourceRules{MaxConnPerSource: 2})
		var tb srcTable
		for i := range 2 {
			if v, held := tb.admit(r, a, 0); v != admitted || !held {
				t.Fatalf("connection %d: verdict %d held %v", i, v, held)
			}
		}
		if v, _ := tb.admit(r, a, 0); v != connLimit {
			t.Fatalf("third connection: verdict %d, want connLimit", v)
		}
		if v, _ := tb.admit(r, b, 0); v != admitted {
			t.Fatalf("other source: verdict %d", v)
		}
		tb.release(a, 1)
		if v, _ := tb.admit(r, a, 1); v != admitted {
			t.Fatalf("after a release: verdict %d", v)
		}
		tb.release(a, 2)
		tb.release(a, 2)
		tb.release(b, 2)
		if n := tb.len(); n != 0 {
			t.Fatalf("%d entries left with no connection and no rate", n)
		}
	})

	t.Run("rate", func(t *testing.T) {
		r := compileSource(&SourceRules{MaxRatePerSource: 4}) // 4/s: a burst of 4, then one per 250ms
		var tb srcTable
		for i := range 4 {
			if v, held := tb.admit(r, a, 0); v != admitted || held {
				t.Fatalf("burst connection %d: verdict %d held %v", i, v, held)
			}
		}
		if v, _ := tb.admit(r, a, 0); v != rateLimit {
			t.Fatalf("fifth at once: verdict %d, want rateLimit", v)
		}
		if v, _ := tb.admit(r, b, 0); v != admitted {
			t.Fatalf("other source limited: %d", v)
		}
		if v, _ := tb.admit(r, a, sec/4-1); v != rateLimit {
			t.Fatalf("before a token is back: verdict %d", v)
		}
		if v, _ := tb.admit(r, a, sec/4); v != admitted {
			t.Fatalf("one token back after 250ms: verdict %d", v)
		}
		if v, _ := tb.admit(r, a, sec/4); v != rateLimit {
			t.Fatalf("only one token came back: verdict %d", v)
		}
		// Sustained: one per interval passes forever.
		for i := int64(2); i < 40; i++ {
			if v, _ := tb.admit(r, a, i*sec/4); v != admitted {
				t.Fatalf("steady rate at step %d: verdict %d", i, v)
			}
		}
		// Refused attempts do not consume tokens: after a full period
		// of silence the whole burst is back.
		now := 40*sec/4 + sec
		for i := range 4 {
			if v, _ := tb.admit(r, a, now); v != admitted {
				t.Fatalf("burst after idle, %d: verdict %d", i, v)
			}
		}
	})

	t.Run("bounded table", func(t *testing.T) {
		r := compileSource(&SourceRules{MaxRatePerSource: 1, RatePeriod: time.Minute, MaxConnPerSource: 1, MaxSources: 64})
		var tb srcTable
		addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}) }
		// Sources that hold a connection are never evicted.
		for i := range 8 {
			if v, _ := tb.admit(r, addr(i), 0); v != admitted {
				t.Fatalf("holder %d: %d", i, v)
			}
		}
		// A flood of fresh sources (one connection each, closed at once):
		// the table stays within its cap.
		for i := 8; i < 5000; i++ {
			now := int64(i)
			v, held := tb.admit(r, addr(i), now)
			if v != admitted {
				t.Fatalf("fresh source %d refused (verdict %d): the table did not make room", i, v)
			}
			if held {
				tb.release(addr(i), now)
			}
			if n := tb.len(); n > 64 {
				t.Fatalf("%d entries after %d sources, cap 64", n, i)
			}
		}
		for i := range 8 {
			if v, _ := tb.admit(r, addr(i), 5000); v != connLimit {
				t.Fatalf("holder %d lost its entry: verdict %d", i, v)
			}
		}
		// A table full of holders refuses a new source instead of growing.
		full := compileSource(&SourceRules{MaxConnPerSource: 1, MaxSources: 4})
		var tf srcTable
		for i := range 4 {
			tf.admit(full, addr(i), 0)
		}
		if v, _ := tf.admit(full, addr(99), 0); v != connLimit || tf.len() != 4 {
			t.Fatalf("full table: verdict %d, %d entries", v, tf.len())
		}
		tf.release(addr(0), 1)
		if v, _ := tf.admit(full, addr(99), 1); v != admitted {
			t.Fatalf("after a holder left: verdict %d", v)
		}
		// The same with a rate limit: a holder that leaves keeps its rate
		// history (not idle yet), and still makes room for a new source.
		fullRate := compileSource(&SourceRules{MaxConnPerSource: 1, MaxRatePerSource: 1, RatePeriod: time.Hour, MaxSources: 4})
		var tr srcTable
		for i := range 4 {
			tr.admit(fullRate, addr(i), 0)
		}
		if v, _ := tr.admit(fullRate, addr(99), 0); v != connLimit {
			t.Fatalf("full table with rates: verdict %d", v)
		}
		tr.release(addr(0), 1)
		if v, _ := tr.admit(fullRate, addr(99), 2); v != admitted {
			t.Fatalf("after a rate-limited holder left: verdict %d", v)
		}
	})
}

// dialFrom connects from a loopback source address (Linux's lo answers
// for all of 127.0.0.0/8, so any 127.x.y.z can be bound).
func dialFrom(src string, to netip.AddrPort) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return d.Dial("tcp4", to.String())
}

// servedFrom reports whether a connection from src gets the backend's
// greeting (served) or is reset (refused); anything else is an error.
func servedFrom(t *testing.T, src string, to netip.AddrPort) (net.Conn, bool) {
	t.Helper()
	c, err := dialFrom(src, to)
	if errors.Is(err, syscall.ECONNRESET) {
		return nil, false // the reset can beat connect's own completion
	}
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err == nil {
		_ = c.SetDeadline(time.Time{})
		return c, strings.TrimSpace(line) == "a"
	}
	c.Close()
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("from %s: %v, want a greeting or a reset", src, err)
	}
	return nil, false
}

// TestSourceRulesLoopback runs real connections from several loopback
// source addresses through a pool with source rules.
func TestSourceRulesLoopback(t *testing.T) {
	t.Parallel()
	a := newBackend(t, "a")
	bind := freePort(t)
	svc := Service{
		Name: "src", Binds: []netip.AddrPort{bind}, Servers: []Server{srvCfg(a, 1)},
		Source: &SourceRules{
			Allow: prefixes("127.0.0.0/8"),
			Deny:  prefixes("127.0.0.66/32"),
		},
	}
	p := newTestPool(t, Options{}, Config{Services: []Service{svc}})
	denied := func() DeniedStats { return p.Stats().Services[0].Denied }

	if c, ok := servedFrom(t, "127.0.0.66", bind); ok {
		c.Close()
		t.Fatal("denied source served")
	}
	if c, ok := servedFrom(t, "127.0.0.65", bind); !ok {
		t.Fatal("allowed source refused")
	} else {
		c.Close()
	}
	if d := denied(); d.DenyList != 1 || d.NotAllowed != 0 {
		t.Fatalf("denied %+v, want one by the deny list", d)
	}
	before := a.accept.Load()

	// Only 127.0.0.64/30 allowed now: reconfigured in place.
	svc.Source = &SourceRules{Allow: prefixes("127.0.0.64/30"), MaxConnPerSource: 2}
	held, ok := servedFrom(t, "127.0.0.65", bind)
	if !ok {
		t.Fatal("source refused before the change")
	}
	defer held.Close()
	if err := p.Set(t.Context(), Config{Services: []Service{svc}}); err != nil {
		t.Fatal(err)
	}
	if c, ok := servedFrom(t, "127.0.0.70", bind); ok {
		c.Close()
		t.Fatal("source outside the new allow list served")
	}
	if denied().NotAllowed != 1 {
		t.Fatalf("denied %+v, want one not allowed", denied())
	}
	// The connection accepted before the change still works.
	if _, err := held.Write([]byte("still\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := held.Read(buf); err != nil || string(buf) != "still\n" {
		t.Fatalf("held connection after reconfiguration: %q %v", buf, err)
	}

	// Per-source concurrency, 2: the third connection of a source is
	// refused while two are open, served again once one closes.
	c1, ok1 := servedFrom(t, "127.0.0.67", bind)
	c2, ok2 := servedFrom(t, "127.0.0.67", bind)
	if !ok1 || !ok2 {
		t.Fatal("first two connections of a source refused")
	}
	defer c2.Close()
	if c, ok := servedFrom(t, "127.0.0.67", bind); ok {
		c.Close()
		t.Fatal("third concurrent connection of a source served, limit 2")
	}
	if c, ok := servedFrom(t, "127.0.0.66", bind); !ok {
		t.Fatal("another source refused while the first is at its limit")
	} else {
		c.Close()
	}
	if denied().ConnLimit != 1 {
		t.Fatalf("denied %+v, want one by conn limit", denied())
	}
	c1.Close()
	eventually(t, 10*time.Second, "closed connections finished", func() bool { return p.Stats().Services[0].Current == 2 })
	if c, ok := servedFrom(t, "127.0.0.67", bind); !ok {
		t.Fatal("source refused after one of its connections closed")
	} else {
		c.Close()
	}
	if a.accept.Load()-before < 5 {
		t.Fatalf("backend saw %d connections", a.accept.Load()-before)
	}

	// Per-source rate: 3 per hour (a token every 20 minutes), so the fourth
	// is refused however slow the machine.
	svc.Source = &SourceRules{MaxRatePerSource: 3, RatePeriod: time.Hour}
	if err := p.Set(t.Context(), Config{Services: []Service{svc}}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		c, ok := servedFrom(t, "127.0.0.80", bind)
		if !ok {
			t.Fatalf("connection %d within the rate refused", i)
		}
		c.Close()
	}
	if c, ok := servedFrom(t, "127.0.0.80", bind); ok {
		c.Close()
		t.Fatal("fourth connection within the hour served, rate 3/h")
	}
	if c, ok := servedFrom(t, "127.0.0.81", bind); !ok {
		t.Fatal("another source rate-limited")
	} else {
		c.Close()
	}
	if d := denied(); d.RateLimit != 1 || d.DenyList != 1 || d.NotAllowed != 1 || d.ConnLimit != 1 {
		t.Fatalf("denied %+v", d)
	}
}

func TestSourceRulesValidate(t *testing.T) {
	base := Service{Name: "v", Binds: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1")}}
	for _, tc := range []struct {
		src  SourceRules
		want string
	}{
		{SourceRules{Allow: []netip.Prefix{{}}}, "invalid prefix"},
		{SourceRules{MaxConnPerSource: -1}, "negative limit"},
		{SourceRules{MaxRatePerSource: 2000, RatePeriod: time.Microsecond}, "rate 2000 per 1µs is too high"},
	} {
		s := base
		s.Source = &tc.src
		err := Config{Services: []Service{s}}.Validate()
		if err == nil || !strings.Contains(err.Error(), `service "v": source rules: `+tc.want) {
			t.Errorf("%+v: %v, want %q", tc.src, err, tc.want)
		}
	}
	s := base
	s.Source = &SourceRules{Allow: prefixes("10.0.0.0/8"), MaxConnPerSource: 1, MaxRatePerSource: 10}
	if err := (Config{Services: []Service{s}}).Validate(); err != nil {
		t.Errorf("valid rules: %v", err)
	}
}
