package l4proxy

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// BenchmarkL4TwoCoresVersusHAProxy: the pool given two cores (GOMAXPROCS=2,
// two listener shards, so two event loops) against HAProxy with nbthread
// 2, same backends: new-connection rate, keep-alive rate and CPU per
// request, back to back in alternating order for benchRounds rounds. The
// load generator shares the machine: on a two-core box both proxies and
// the clients compete for the same two cores, so the ratio is the figure
// to read, not the rates.
func BenchmarkL4TwoCoresVersusHAProxy(b *testing.B) {
	lab.RequireCommand(b, "haproxy")
	rr1, rr2 := rrBackend(b), rrBackend(b)
	hRR, gRR := freePort(b), freePort(b)
	h := lab.StartHAProxy(b, lab.HAProxyConfig{Threads: 2, Services: []lab.HAProxyService{
		{Name: "rr", Bind: hRR.String(), Servers: []string{rr1.String(), rr2.String()}, Check: true},
	}})
	g := startHelper(b, Config{BusyPoll: agentBusyPoll, Services: []Service{{
		Name: "rr", Binds: []netip.AddrPort{gRR}, Servers: []Server{{Name: "s1", Addr: rr1, Weight: 1}, {Name: "s2", Addr: rr2, Weight: 1}},
		Check: &Check{Type: CheckTCP}, Retries: 2, Redispatch: true,
	}}}, "GOMAXPROCS=2", "L4HELPER_SHARDS=2")
	proxies := []benchProxy{{"haproxy", h.Pid(), hRR.String(), ""}, {"gitgw", g.cmd.Process.Pid, gRR.String(), ""}}
	const conc = 50
	d := 2 * time.Second
	s := samples{}
	for i := 0; i < b.N; i++ {
		for r := 0; r < benchRounds; r++ {
			order := proxies
			if r%2 == 1 {
				order = []benchProxy{proxies[1], proxies[0]}
			}
			for _, p := range order {
				c0 := cpuTime(p.pid)
				st := requests(p.rr, conc, d, false)
				s.add("conn/s (short, c50, 2 cores)", p.name, st.rate())
				s.add("CPU s per 100k conns (2 cores)", p.name, (cpuTime(p.pid)-c0).Seconds()*1e5/float64(max(st.reqs, 1)))
				c0 = cpuTime(p.pid)
				st = requests(p.rr, conc, d, true)
				s.add("req/s (keep-alive, c50, 2 cores)", p.name, st.rate())
				s.add("CPU µs per ka request (2 cores)", p.name, float64((cpuTime(p.pid)-c0).Microseconds())/float64(max(st.reqs, 1)))
			}
		}
	}
	s.report(b, []string{"conn/s (short, c50, 2 cores)", "CPU s per 100k conns (2 cores)", "req/s (keep-alive, c50, 2 cores)", "CPU µs per ka request (2 cores)"})
}
