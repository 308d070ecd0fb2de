package l4proxy

import (
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"
)

// BenchmarkL4ProfileShort profiles the pool process under short
// connections (or keep-alive requests with L4PROF_KA=1; L4PROF_C sets the concurrency;
// L4PROF_UDP=1 for UDP requests, a new flow each or, with L4PROF_KA, long flows): a tool behind the
// CPU-per-connection and per-request figures, with the agent's default
// busy polling, run on demand
// (L4PROF=/path/to/cpu.prof go test -run '^$' -bench L4ProfileShort;
// L4PROF=off measures without the profiler, e.g. under strace or perf).
func BenchmarkL4ProfileShort(b *testing.B) {
	path := os.Getenv("L4PROF")
	if path == "" {
		b.Skip("set L4PROF=/path/to/cpu.prof")
	}
	t := b
	rr := rrBackendT(t)
	bind := freePort(t)
	env := []string{"GOMAXPROCS=1", "L4HELPER_SHARDS=1"}
	if path != "off" {
		env = append(env, "L4HELPER_CPUPROFILE="+path)
	}
	svc := Service{Name: "p", Binds: []netip.AddrPort{bind}, Servers: []Server{{Name: "s", Addr: rr, Weight: 1}}}
	udp := os.Getenv("L4PROF_UDP") != ""
	if udp {
		svc.Protocol = ProtoUDP
		svc.Servers[0].Addr = udpEchoServer(b)
	}
	h := startHelper(t, Config{BusyPoll: agentBusyPoll, Services: []Service{svc}}, env...)
	c0 := cpuTime(h.cmd.Process.Pid)
	ka := os.Getenv("L4PROF_KA") != ""
	conc := 50
	if c, err := strconv.Atoi(os.Getenv("L4PROF_C")); err == nil && c > 0 {
		conc = c
	}
	var st loadStats
	if udp {
		st = udpRequests(bind, conc, 5*time.Second, !ka)
	} else {
		st = requests(bind.String(), conc, 5*time.Second, ka)
	}
	cpu := cpuTime(h.cmd.Process.Pid) - c0
	t.Logf("keep-alive %v, c%d: %.0f req/s, %d failed, %.1f µs CPU per request, p50 %v p99 %v", ka, conc, st.rate(), st.fails,
		float64(cpu.Microseconds())/float64(st.reqs), st.pct(0.5), st.pct(0.99))
}
