package l4proxy

import (
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// tlsListen is a loopback TLS listener with a fresh self-signed ECDSA
// certificate; the Go server resumes sessions (tickets), as both proxies
// ask by default.
func tlsListen(b *testing.B) net.Listener {
	_, _, pair := selfSigned(b, b.TempDir(), "bench")
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{pair}})
}

// rrTLSBackend is rrBackend over TLS.
func rrTLSBackend(b *testing.B) netip.AddrPort {
	ln := tlsListen(b)
	resp := []byte(strings.Repeat("r", respSize-1) + "\n")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req := make([]byte, reqSize)
				for {
					if _, err := io.ReadFull(c, req); err != nil {
						return
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
					if req[0] == 'C' {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// bulkTLSBackend is bulkBackend over TLS.
func bulkTLSBackend(b *testing.B) netip.AddrPort {
	ln := tlsListen(b)
	chunk := make([]byte, 64<<10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for {
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// BenchmarkServerTLSVersusHAProxy: the pool and HAProxy 2.6 (nbthread 1)
// both originating TLS to the same Go TLS servers (`server … ssl verify
// none`, session reuse on, no checks), plain TCP on the client side:
// short-connection rate and CPU, keep-alive rate and CPU, bulk
// throughput and CPU per GB. Rounds alternate the order; the ratio is the
// median of the rounds' gitgw/HAProxy ratios. The TLS servers run in this
// process and take their share of the same 2 cores for both.
func BenchmarkServerTLSVersusHAProxy(b *testing.B) {
	lab.RequireCommand(b, "haproxy")
	rr1, rr2, blk := rrTLSBackend(b), rrTLSBackend(b), bulkTLSBackend(b)
	hRR, hBulk, gRR, gBulk := freePort(b), freePort(b), freePort(b), freePort(b)
	h := lab.StartHAProxy(b, lab.HAProxyConfig{Threads: 1, Services: []lab.HAProxyService{
		{Name: "rr", Bind: hRR.String(), Servers: []string{rr1.String(), rr2.String()}, ServerOptions: "ssl verify none"},
		{Name: "bulk", Bind: hBulk.String(), Servers: []string{blk.String()}, ServerOptions: "ssl verify none"},
	}})
	none := &ServerTLS{Verify: VerifyNone}
	g := startHelper(b, Config{BusyPoll: agentBusyPoll, Services: []Service{
		{Name: "rr", Binds: []netip.AddrPort{gRR}, Retries: 2, Redispatch: true,
			Timeouts: Timeouts{Connect: 2 * time.Second, ClientFin: 5 * time.Second, Tunnel: time.Hour},
			Servers:  []Server{{Name: "s1", Addr: rr1, Weight: 1, TLS: none}, {Name: "s2", Addr: rr2, Weight: 1, TLS: none}}},
		{Name: "bulk", Binds: []netip.AddrPort{gBulk}, Servers: []Server{{Name: "s1", Addr: blk, Weight: 1, TLS: none}}},
	}}, "GOMAXPROCS=1", "L4HELPER_SHARDS=1")
	hap := benchProxy{"haproxy", h.Pid(), hRR.String(), hBulk.String()}
	gw := benchProxy{"gitgw", g.cmd.Process.Pid, gRR.String(), gBulk.String()}
	benchVersusHAProxy(b, "TLS", hap, gw)
}

// benchVersusHAProxy runs benchRounds rounds, taking HAProxy and gitgw in
// turn (the one that goes first alternates), of short connections, kept-
// alive requests and one bulk stream, each with the proxy's CPU, and
// reports them labelled with what is measured (TLS, SOCKS4).
func benchVersusHAProxy(b *testing.B, label string, hap, gw benchProxy) {
	const conc = 50
	d := 2 * time.Second
	s := samples{}
	for i := 0; i < b.N; i++ {
		for r := 0; r < benchRounds; r++ {
			pair := func(test func(p benchProxy)) {
				if r%2 == 0 {
					test(hap)
					test(gw)
				} else {
					test(gw)
					test(hap)
				}
			}
			pair(func(p benchProxy) {
				c0 := cpuTime(p.pid)
				st := requests(p.rr, conc, d, false)
				cpu := cpuTime(p.pid) - c0
				s.add(label+" conn/s (short, c50)", p.name, st.rate())
				s.add("CPU ms per 1k "+label+" conns", p.name, cpu.Seconds()*1e6/float64(max(st.reqs, 1)))
				s.add("failed conns (short)", p.name, float64(st.fails))
			})
			pair(func(p benchProxy) {
				c0 := cpuTime(p.pid)
				st := requests(p.rr, conc, d, true)
				cpu := cpuTime(p.pid) - c0
				s.add(label+" req/s (keep-alive, c50)", p.name, st.rate())
				s.add("CPU µs per ka request", p.name, float64(cpu.Microseconds())/float64(max(st.reqs, 1)))
			})
			pair(func(p benchProxy) {
				c0 := cpuTime(p.pid)
				g1, _ := bulk(p.bulk, 1, d)
				cpu := cpuTime(p.pid) - c0
				s.add(label+" bulk 1 stream Gbit/s", p.name, g1)
				s.add("bulk CPU ms per GB", p.name, float64(cpu.Milliseconds())/max(g1*d.Seconds()/8, 1e-9))
			})
		}
	}
	s.report(b, []string{label + " conn/s (short, c50)", "CPU ms per 1k " + label + " conns", "failed conns (short)",
		label + " req/s (keep-alive, c50)", "CPU µs per ka request", label + " bulk 1 stream Gbit/s", "bulk CPU ms per GB"})
}
