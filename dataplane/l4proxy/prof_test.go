package l4proxy

import (
	"net/netip"
	"os"
	"testing"
	"time"
)

// BenchmarkL4ProfileShort profiles the pool process under short
// connections: a tool behind the CPU-per-connection figure, run on demand
// (L4PROF=/path/to/cpu.prof go test -run '^$' -bench L4ProfileShort).
func BenchmarkL4ProfileShort(b *testing.B) {
	path := os.Getenv("L4PROF")
	if path == "" {
		b.Skip("set L4PROF=/path/to/cpu.prof")
	}
	t := b
	rr := rrBackendT(t)
	bind := freePort(t)
	h := startHelper(t, Config{Services: []Service{{Name: "p", Binds: []netip.AddrPort{bind}, Servers: []Server{{Name: "s", Addr: rr, Weight: 1}}}}},
		"GOMAXPROCS=1", "L4HELPER_SHARDS=1", "L4HELPER_CPUPROFILE="+path)
	c0 := cpuTime(h.cmd.Process.Pid)
	st := requests(bind.String(), 50, 5*time.Second, false)
	cpu := cpuTime(h.cmd.Process.Pid) - c0
	t.Logf("%.0f conn/s, %d failed, %.1f µs CPU per connection", st.rate(), st.fails, float64(cpu.Microseconds())/float64(st.reqs))
}
