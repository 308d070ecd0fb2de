package l4proxy

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitgw/gitgw/dataplane/httpproxy"
	"github.com/gitgw/gitgw/test/lab"
)

// authLoad runs conc keep-alive clients for d, each sending GET / with
// the user's credentials; an answer other than 200 counts as failed.
func authLoad(addr, user, password string, conc int, d time.Duration) (reqs, fails int64) {
	var nreq, nfail atomic.Int64
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	req := []byte("GET / HTTP/1.1\r\nHost: www.example\r\nAuthorization: Basic " +
		base64.StdEncoding.EncodeToString([]byte(user+":"+password)) + "\r\n\r\n")
	for range conc {
		wg.Go(func() {
			var c net.Conn
			var br *bufio.Reader
			for time.Now().Before(end) {
				if c == nil {
					var err error
					if c, err = net.DialTimeout("tcp", addr, 5*time.Second); err != nil {
						nfail.Add(1)
						continue
					}
					br = bufio.NewReader(c)
				}
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write(req); err != nil {
					nfail.Add(1)
					c.Close()
					c = nil
					continue
				}
				resp, err := http.ReadResponse(br, nil)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != 200 {
					nfail.Add(1)
					c.Close()
					c = nil
					continue
				}
				nreq.Add(1)
			}
			if c != nil {
				c.Close()
			}
		})
	}
	wg.Wait()
	return nreq.Load(), nfail.Load()
}

// BenchmarkAuthVersusHAProxy: basic authentication against a SHA-512
// crypt hash (5000 rounds, made by openssl) in front of one Go HTTP
// server, in HAProxy 2.6 (`http-request auth unless { http_auth(L) }`,
// nbthread 1) and in gitgw's HTTP mode (GOMAXPROCS=1, one shard), every
// request carrying the right credentials over keep-alive connections:
// requests per second and CPU per 1,000 requests. HAProxy runs crypt(3)
// on every request; gitgw checks once and remembers the success.
func BenchmarkAuthVersusHAProxy(b *testing.B) {
	lab.RequireCommand(b, "openssl")
	hash := cryptHash(b, "-6", "s3cret")
	be := httpBenchBackend(b, "dynamic")
	hBind, gBind := freePort(b), freePort(b)
	hcfg := fmt.Sprintf(`global
    nbthread 1
    maxconn 4096
userlist L
    user alice password %s
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend public
    bind %s
    http-request auth unless { http_auth(L) }
    default_backend dynamic
backend dynamic
    server d1 %s
`, hash, hBind, be)
	hpid := startHAProxyHTTP(b, hcfg, hBind.String())
	g := startHelper(b, Config{BusyPoll: agentBusyPoll, Services: []Service{
		{Name: "public", Binds: []netip.AddrPort{gBind}, Timeouts: Timeouts{Connect: 2 * time.Second},
			Servers: []Server{{Name: "d1", Addr: be, Weight: 1}},
			HTTP: &httpproxy.HTTP{
				Userlists: map[string]httpproxy.Userlist{"L": {Users: map[string]httpproxy.User{"alice": {Hash: hash}}}},
				Rules:     []httpproxy.Rule{{Auth: &httpproxy.Auth{}, When: []httpproxy.Cond{{Subject: httpproxy.SubjAuth, Userlist: "L", Not: true}}}},
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
			n, fails := authLoad(p.rr, "alice", "s3cret", conc, d)
			cpu := cpuTime(p.pid) - cpu0
			if fails > n/100 {
				b.Errorf("%s: %d failed requests of %d", p.name, fails, n+fails)
			}
			s.add("authenticated req/s", p.name, float64(n)/d.Seconds())
			if n > 0 {
				s.add("cpu ms per 1000 req", p.name, float64(cpu.Milliseconds())*1000/float64(n))
			}
		}
	}
	s.report(b, []string{"authenticated req/s", "cpu ms per 1000 req"})
}
