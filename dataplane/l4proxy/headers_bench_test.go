package l4proxy

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/gitgw/gitgw/dataplane/httpproxy"
)

// BenchmarkHeadersVersusHAProxy: the edge sample's rewrites (the
// client's X-Forwarded-For deleted before forwardfor, X-Real-IP from
// %[src], a header added, the Server header deleted from responses,
// HSTS after every response) in front of one Go HTTP server, in HAProxy
// 2.6 (nbthread 1) and in gitgw's HTTP mode (GOMAXPROCS=1, one shard),
// over keep-alive connections: requests per second and CPU per 1,000
// requests. The load's Authorization header is read by neither.
func BenchmarkHeadersVersusHAProxy(b *testing.B) {
	be := httpBenchBackend(b, "dynamic")
	hBind, gBind := freePort(b), freePort(b)
	hcfg := fmt.Sprintf(`global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend public
    bind %s
    option forwardfor
    http-request del-header x-forwarded-for
    http-request set-header X-Real-IP %%[src]
    http-request add-header X-Via gw
    http-response del-header Server
    http-after-response set-header Strict-Transport-Security "max-age=31536000"
    default_backend dynamic
backend dynamic
    server d1 %s
`, hBind, be)
	hpid := startHAProxyHTTP(b, hcfg, hBind.String())
	g := startHelper(b, Config{BusyPoll: agentBusyPoll, Services: []Service{
		{Name: "public", Binds: []netip.AddrPort{gBind}, Timeouts: Timeouts{Connect: 2 * time.Second},
			Servers: []Server{{Name: "d1", Addr: be, Weight: 1}},
			HTTP: &httpproxy.HTTP{
				ForwardFor: true,
				RequestHeaders: []httpproxy.HeaderAction{
					{Op: httpproxy.HdrDel, Name: "x-forwarded-for"},
					{Op: httpproxy.HdrSet, Name: "X-Real-IP", Value: "%[src]"},
					{Op: httpproxy.HdrAdd, Name: "X-Via", Value: "gw"},
				},
				ResponseHeaders:      []httpproxy.HeaderAction{{Op: httpproxy.HdrDel, Name: "Server"}},
				AfterResponseHeaders: []httpproxy.HeaderAction{{Op: httpproxy.HdrSet, Name: "Strict-Transport-Security", Value: "max-age=31536000"}},
			}},
	}}, "GOMAXPROCS=1", "L4HELPER_SHARDS=1")
	proxies := []benchProxy{{"haproxy", hpid, hBind.String(), ""}, {"gitgw", g.cmd.Process.Pid, gBind.String(), ""}}
	const conc = 20
	d := 2 * time.Second
	s := samples{}
	for round := range benchRounds {
		order := proxies
		if round%2 == 1 {
			order = []benchProxy{proxies[1], proxies[0]}
		}
		for _, p := range order {
			cpu0 := cpuTime(p.pid)
			n, fails := authLoad(p.rr, "alice", "x", conc, d)
			cpu := cpuTime(p.pid) - cpu0
			if fails > n/100 {
				b.Errorf("%s: %d failed requests of %d", p.name, fails, n+fails)
			}
			s.add("rewritten req/s", p.name, float64(n)/d.Seconds())
			if n > 0 {
				s.add("cpu ms per 1000 req", p.name, float64(cpu.Milliseconds())*1000/float64(n))
			}
		}
	}
	s.report(b, []string{"rewritten req/s", "cpu ms per 1000 req"})
}
