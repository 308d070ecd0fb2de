package l4proxy

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// BenchmarkSOCKS4VersusHAProxy: the pool and HAProxy 2.6 (nbthread 1)
// both reaching the same servers through the same SOCKS4 proxy (`server …
// socks4 ADDR`, no checks): short-connection rate and CPU (a CONNECT per
// connection), keep-alive rate and CPU, bulk throughput and CPU per GB.
// The proxy is the tests' Go SOCKS4 server in this process: it copies
// every byte with io.Copy and takes its share of the 2 cores for both, so
// the rates measure the pair, the CPU columns each proxy alone. Rounds
// alternate the order; the ratio is the median of the rounds'
// gitgw/HAProxy ratios.
func BenchmarkSOCKS4VersusHAProxy(b *testing.B) {
	lab.RequireCommand(b, "haproxy")
	rr1, rr2, blk := rrBackend(b), rrBackend(b), bulkBackend(b)
	socks := newSOCKSPeer(b, false)
	hRR, hBulk, gRR, gBulk := freePort(b), freePort(b), freePort(b), freePort(b)
	via := "socks4 " + socks.addr.String()
	h := lab.StartHAProxy(b, lab.HAProxyConfig{Threads: 1, Services: []lab.HAProxyService{
		{Name: "rr", Bind: hRR.String(), Servers: []string{rr1.String(), rr2.String()}, ServerOptions: via},
		{Name: "bulk", Bind: hBulk.String(), Servers: []string{blk.String()}, ServerOptions: via},
	}})
	g := startHelper(b, Config{BusyPoll: agentBusyPoll, Services: []Service{
		{Name: "rr", Binds: []netip.AddrPort{gRR}, Retries: 2, Redispatch: true,
			Timeouts: Timeouts{Connect: 2 * time.Second, ClientFin: 5 * time.Second, Tunnel: time.Hour},
			Servers: []Server{{Name: "s1", Addr: rr1, Weight: 1, SOCKS4: socks.addr},
				{Name: "s2", Addr: rr2, Weight: 1, SOCKS4: socks.addr}}},
		{Name: "bulk", Binds: []netip.AddrPort{gBulk}, Servers: []Server{{Name: "s1", Addr: blk, Weight: 1, SOCKS4: socks.addr}}},
	}}, "GOMAXPROCS=1", "L4HELPER_SHARDS=1")
	hap := benchProxy{"haproxy", h.Pid(), hRR.String(), hBulk.String()}
	gw := benchProxy{"gitgw", g.cmd.Process.Pid, gRR.String(), gBulk.String()}
	benchVersusHAProxy(b, "SOCKS4", hap, gw)
	socks.mu.Lock()
	b.Logf("SOCKS4 user ids sent: %v", socks.users)
	socks.mu.Unlock()
}
