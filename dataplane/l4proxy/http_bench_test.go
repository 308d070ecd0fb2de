package l4proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gitgw/gitgw/dataplane/httpproxy"
	"github.com/gitgw/gitgw/test/lab"
)

// httpBenchBackend is a Go HTTP server answering 64 bytes, naming its
// pool in X-Pool.
func httpBenchBackend(b testing.TB, pool string) netip.AddrPort {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(strings.Repeat("r", respSize-1) + "\n")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Pool", pool)
		_, _ = w.Write(body)
	})}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// startHAProxyHTTP runs HAProxy 2.6 with a raw configuration (nbthread 1)
// and waits until bind accepts; it is killed by PID at the end.
func startHAProxyHTTP(b testing.TB, cfg, bind string) int {
	lab.RequireCommand(b, "haproxy")
	bin, _ := lab.LookPath("haproxy")
	path := b.TempDir() + "/haproxy.cfg"
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput(); err != nil {
		b.Fatalf("haproxy -c: %v\n%s\n%s", err, out, cfg)
	}
	cmd := exec.Command(bin, "-db", "-f", path)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", bind, time.Second)
		if err == nil {
			c.Close()
			return cmd.Process.Pid
		}
		if time.Now().After(deadline) {
			b.Fatalf("haproxy never accepted on %s: %v", bind, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// httpLoad runs conc clients for d, each sending GETs alternately for /
// (the default pool) and /img/a.png (the static pool, by path_beg); with
// keepalive false every request is a new connection (Connection: close).
// Each answer must come from the pool its path names, else it counts as
// failed.
func httpLoad(addr string, conc int, d time.Duration, keepalive bool) (reqs, fails int64) {
	var nreq, nfail atomic.Int64
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	conn := "keep-alive"
	if !keepalive {
		conn = "close"
	}
	reqFor := [2][]byte{
		[]byte("GET / HTTP/1.1\r\nHost: www.example\r\nConnection: " + conn + "\r\n\r\n"),
		[]byte("GET /img/a.png HTTP/1.1\r\nHost: www.example\r\nConnection: " + conn + "\r\n\r\n"),
	}
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var c net.Conn
			var br *bufio.Reader
			for i := w; time.Now().Before(end); i++ {
				if c == nil {
					var err error
					if c, err = net.DialTimeout("tcp", addr, 5*time.Second); err != nil {
						nfail.Add(1)
						continue
					}
					br = bufio.NewReader(c)
				}
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write(reqFor[i%2]); err != nil {
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
				if err != nil || resp.StatusCode != 200 || resp.Header.Get("X-Pool") != [2]string{"dynamic", "static"}[i%2] {
					nfail.Add(1)
					c.Close()
					c = nil
					continue
				}
				nreq.Add(1)
				if !keepalive {
					c.Close()
					c = nil
				}
			}
			if c != nil {
				c.Close()
			}
		}(w)
	}
	wg.Wait()
	return nreq.Load(), nfail.Load()
}

// BenchmarkHTTPVersusHAProxy: the same content switching (path_beg /img
// /css and Host img* to a static pool, else the dynamic one; option
// forwardfor) in HAProxy 2.6 (mode http, nbthread 1, http-keep-alive,
// http-reuse safe by default) and in gitgw's HTTP mode (GOMAXPROCS=1, one
// listener shard), in front of the same Go HTTP servers: requests per
// second over keep-alive connections and over a new connection each, and
// the proxy's CPU per 1,000 requests, rounds alternating the order.
func BenchmarkHTTPVersusHAProxy(b *testing.B) {
	d1, d2 := httpBenchBackend(b, "dynamic"), httpBenchBackend(b, "dynamic")
	s1, s2 := httpBenchBackend(b, "static"), httpBenchBackend(b, "static")
	hBind, gBind := freePort(b), freePort(b)
	hcfg := fmt.Sprintf(`global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 2
    option redispatch
frontend public
    bind %s
    option forwardfor
    use_backend static if { hdr_beg(host) -i img }
    use_backend static if { path_beg /img /css }
    default_backend dynamic
backend static
    balance roundrobin
    server s1 %s check inter 2s
    server s2 %s check inter 2s
backend dynamic
    balance roundrobin
    server d1 %s check inter 2s
    server d2 %s check inter 2s
`, hBind, s1, s2, d1, d2)
	hpid := startHAProxyHTTP(b, hcfg, hBind.String())
	check := &Check{Type: CheckTCP}
	g := startHelper(b, Config{BusyPoll: agentBusyPoll, Services: []Service{
		{Name: "public", Binds: []netip.AddrPort{gBind}, Check: check, Retries: 2, Redispatch: true,
			Timeouts: Timeouts{Connect: 2 * time.Second},
			Servers:  []Server{{Name: "d1", Addr: d1, Weight: 1}, {Name: "d2", Addr: d2, Weight: 1}},
			HTTP: &httpproxy.HTTP{ForwardFor: true, Rules: []httpproxy.Rule{
				{Use: "static", When: []httpproxy.Cond{{Subject: httpproxy.SubjHost, Match: httpproxy.MatchPrefix, IgnoreCase: true, Values: []string{"img"}}}},
				{Use: "static", When: []httpproxy.Cond{{Subject: httpproxy.SubjPath, Match: httpproxy.MatchPrefix, Values: []string{"/img", "/css"}}}},
			}}},
		{Name: "static", Check: check, Retries: 2, Redispatch: true, Timeouts: Timeouts{Connect: 2 * time.Second},
			Servers: []Server{{Name: "s1", Addr: s1, Weight: 1}, {Name: "s2", Addr: s2, Weight: 1}}},
	}}, "GOMAXPROCS=1", "L4HELPER_SHARDS=1")
	proxies := []benchProxy{{"haproxy", hpid, hBind.String(), ""}, {"gitgw", g.cmd.Process.Pid, gBind.String(), ""}}
	const conc = 50
	d := 2 * time.Second
	s := samples{}
	for round := range benchRounds {
		order := proxies
		if round%2 == 1 {
			order = []benchProxy{proxies[1], proxies[0]}
		}
		for _, p := range order {
			for _, ka := range []bool{true, false} {
				cpu0 := cpuTime(p.pid)
				n, fails := httpLoad(p.rr, conc, d, ka)
				cpu := cpuTime(p.pid) - cpu0
				if fails > n/100 {
					b.Errorf("%s keepalive=%v: %d failed requests of %d", p.name, ka, fails, n+fails)
				}
				metric := "keep-alive req/s"
				cpuMetric := "cpu ms per 1000 keep-alive req"
				if !ka {
					metric, cpuMetric = "new conn req/s", "cpu ms per 1000 new conn req"
				}
				s.add(metric, p.name, float64(n)/d.Seconds())
				if n > 0 {
					s.add(cpuMetric, p.name, float64(cpu.Milliseconds())*1000/float64(n))
				}
			}
		}
	}
	s.report(b, []string{"keep-alive req/s", "new conn req/s", "cpu ms per 1000 keep-alive req", "cpu ms per 1000 new conn req"})
}
