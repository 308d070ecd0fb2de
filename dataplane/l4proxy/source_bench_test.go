package l4proxy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// randomPrefixes returns n random IPv4 prefixes, /24 to /32, none inside
// 127.0.0.0/8 (the benchmark clients' addresses).
func randomPrefixes(n int, seed uint64) []netip.Prefix {
	r := rand.New(rand.NewPCG(seed, seed))
	ps := make([]netip.Prefix, 0, n)
	for len(ps) < n {
		var b [4]byte
		v := r.Uint32()
		b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		if b[0] == 127 {
			continue
		}
		ps = append(ps, netip.PrefixFrom(netip.AddrFrom4(b), 24+r.IntN(9)).Masked())
	}
	return ps
}

// BenchmarkSourceLookup is the cost of the allow/deny check alone on a
// client address, by list size (the accept path does one per list).
func BenchmarkSourceLookup(b *testing.B) {
	for _, n := range []int{0, 10, 10000, 100000} {
		b.Run(fmt.Sprintf("cidrs=%d", n), func(b *testing.B) {
			rules := compileSource(&SourceRules{Deny: randomPrefixes(n, 1)})
			r := rand.New(rand.NewPCG(2, 2))
			addrs := make([]netip.Addr, 1024)
			for i := range addrs {
				v := r.Uint32()
				addrs[i] = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
			}
			// A fixed batch per iteration: `make bench` runs -benchtime 1x.
			const batch = 1 << 20
			hits := 0
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				for i := range batch {
					if rules.check(addrs[i&1023]) != admitted {
						hits++
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/lookup")
			_ = hits
		})
	}
}

// BenchmarkL4SourceRules is the new-connection rate (accept → connect
// a loopback backend → one request → close) through two services of one
// pool (a separate process, GOMAXPROCS=1), one without source rules and
// one with 10,000 deny CIDRs that do not match the client, loaded in
// alternating rounds; it prints the median of the rounds' ratios (goal
// ≥ 0.97) for the rate and the process's CPU per connection. One process
// for both sides: two processes on a shared box differed by up to 10 %
// with identical configurations.
func BenchmarkL4SourceRules(b *testing.B) {
	rr := rrBackend(b)
	plainBind, rulesBind := freePort(b), freePort(b)
	svc := func(name string, bind netip.AddrPort, src *SourceRules) Service {
		return Service{Name: name, Binds: []netip.AddrPort{bind}, Servers: []Server{{Name: "s1", Addr: rr, Weight: 1}}, Source: src}
	}
	h := startHelper(b, Config{Services: []Service{
		svc("none", plainBind, nil),
		svc("rules", rulesBind, &SourceRules{Deny: randomPrefixes(10000, 7)}),
	}}, "GOMAXPROCS=1", "L4HELPER_SHARDS=1")
	pid := h.cmd.Process.Pid
	// Many short rounds: the two halves of a pair are measured a second
	// apart, so the drifting load of a shared box cancels in their ratio.
	const conc, rounds = 32, 15
	d := time.Second
	s := samples{}
	run := func(name string, addr string) {
		c0 := cpuTime(pid)
		l := requests(addr, conc, d, false)
		cpu := cpuTime(pid) - c0
		if l.fails > 0 {
			b.Errorf("%s: %d failed connections", name, l.fails)
		}
		s.add("conn/s", name, l.rate())
		if l.reqs > 0 {
			s.add("cpu µs/conn", name, float64(cpu.Microseconds())/float64(l.reqs))
		}
	}
	requests(plainBind.String(), conc, d/4, false) // warm-up
	requests(rulesBind.String(), conc, d/4, false)
	for range b.N {
		for round := range rounds {
			if round%2 == 0 {
				run("none", plainBind.String())
				run("10k", rulesBind.String())
			} else {
				run("10k", rulesBind.String())
				run("none", plainBind.String())
			}
		}
	}
	fmt.Printf("\n%-30s %10s %10s %10s   %s\n", b.Name(), "0 cidrs", "10k cidrs", "10k/0", "ratio min..max per round")
	for _, m := range []string{"conn/s", "cpu µs/conn"} {
		rs := pairedRatios(s[m]["10k"], s[m]["none"])
		lo, hi := 0.0, 0.0
		if len(rs) > 0 {
			lo, hi = rs[0], rs[0]
			for _, r := range rs {
				lo, hi = min(lo, r), max(hi, r)
			}
		}
		fmt.Printf("%-30s %10.1f %10.1f %10.3f   %.3f..%.3f\n", m, median(s[m]["none"]), median(s[m]["10k"]), median(rs), lo, hi)
	}
	b.ReportMetric(median(pairedRatios(s["conn/s"]["10k"], s["conn/s"]["none"])), "ratio_conn/s")
}

// BenchmarkSourceLimiter is one admit and release in the per-source table
// (both limits on) over 4,096 sources.
func BenchmarkSourceLimiter(b *testing.B) {
	rules := compileSource(&SourceRules{MaxConnPerSource: 100, MaxRatePerSource: 1 << 20})
	var tb srcTable
	addrs := make([]netip.Addr, 4096)
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
	}
	const batch = 1 << 18
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for i := range batch {
			a := addrs[i&4095]
			now := monoNow()
			if _, held := tb.admit(rules, a, now); held {
				tb.release(a, now)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/conn")
}
