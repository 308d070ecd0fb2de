package l4proxy

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// checkBackends are the three servers every checked server points at: a
// plain TCP port, an HTTP port and an HTTPS port (a self-signed
// certificate, checked with verify none on both sides). They count what
// they serve, so that the benchmark shows both proxies really check.
type checkBackends struct {
	tcp, http, https    netip.AddrPort
	tcpConns, httpReqs  atomic.Int64
	httpsReqs, failures atomic.Int64
}

func newCheckBackends(b testing.TB) *checkBackends {
	cb := &checkBackends{}
	cb.tcp = fakeServer(b, func(c net.Conn) { cb.tcpConns.Add(1) })
	health := func(n *atomic.Int64) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/health" {
				cb.failures.Add(1)
				http.NotFound(w, r)
				return
			}
			n.Add(1)
			io.WriteString(w, "ok\n")
		})
	}
	h := httptest.NewServer(health(&cb.httpReqs))
	h.Config.ErrorLog = log.New(io.Discard, "", 0)
	b.Cleanup(h.Close)
	_, _, pair := selfSigned(b, b.TempDir(), "bench")
	hs := httptest.NewUnstartedServer(health(&cb.httpsReqs))
	hs.Config.ErrorLog = log.New(io.Discard, "", 0)
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	hs.StartTLS()
	b.Cleanup(hs.Close)
	cb.http = h.Listener.Addr().(*net.TCPAddr).AddrPort()
	cb.https = hs.Listener.Addr().(*net.TCPAddr).AddrPort()
	return cb
}

func (cb *checkBackends) counts() (int64, int64, int64) {
	return cb.tcpConns.Load(), cb.httpReqs.Load(), cb.httpsReqs.Load()
}

// BenchmarkChecks1000 runs 1,000 servers' checks every second in gitgw's
// pool (GOMAXPROCS=1) and in HAProxy (nbthread 1), one after the other,
// and compares the CPU each spends on them: a mix of a third each of tcp,
// http (GET /health, status 200) and http over TLS (verify none), then
// each kind alone. The backends count the http and https checks they
// answer; HAProxy resets a tcp check's connection before the backend
// accepts it, so tcp checks are counted for gitgw only.
func BenchmarkChecks1000(b *testing.B) {
	lab.RequireCommand(b, "haproxy")
	cb := newCheckBackends(b)
	for _, mix := range []struct {
		name            string
		tcp, http, tlsN int
	}{{"mixed", 333, 333, 334}, {"tcp", 1000, 0, 0}, {"http", 0, 1000, 0}, {"https", 0, 0, 1000}} {
		b.Run(mix.name, func(b *testing.B) { benchChecks(b, cb, mix.tcp, mix.http, mix.tlsN) })
	}
}

func benchChecks(b *testing.B, cb *checkBackends, nTCP, nHTTP, nTLS int) {
	const window = 8 * time.Second
	servers := func(n int, a netip.AddrPort) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = a.String()
		}
		return s
	}
	gwServers := func(n int, a netip.AddrPort) []Server {
		s := make([]Server, n)
		for i := range s {
			s[i] = Server{Name: fmt.Sprintf("s%d", i+1), Addr: a, Weight: 1}
		}
		return s
	}
	every := func(ck Check) *Check {
		ck.Interval, ck.Timeout, ck.Rise, ck.Fall = time.Second, time.Second, 2, 3
		return &ck
	}
	const hapCheck = "check inter 1s fall 3 rise 2"
	httpchk := []string{"option httpchk GET /health", "http-check expect status 200"}
	var hsvc []lab.HAProxyService
	var gsvc []Service
	if nTCP > 0 {
		hsvc = append(hsvc, lab.HAProxyService{Name: "tcp", Bind: freePort(b).String(), Servers: servers(nTCP, cb.tcp), ServerOptions: hapCheck})
		gsvc = append(gsvc, Service{Name: "tcp", Binds: []netip.AddrPort{freePort(b)}, Servers: gwServers(nTCP, cb.tcp), Check: every(Check{Type: CheckTCP})})
	}
	if nHTTP > 0 {
		hsvc = append(hsvc, lab.HAProxyService{Name: "http", Bind: freePort(b).String(), Servers: servers(nHTTP, cb.http), ServerOptions: hapCheck, Options: httpchk})
		gsvc = append(gsvc, Service{Name: "http", Binds: []netip.AddrPort{freePort(b)}, Servers: gwServers(nHTTP, cb.http),
			Check: every(Check{Type: CheckHTTP, Path: "/health", ExpectStatus: 200})})
	}
	if nTLS > 0 {
		hsvc = append(hsvc, lab.HAProxyService{Name: "https", Bind: freePort(b).String(), Servers: servers(nTLS, cb.https),
			ServerOptions: hapCheck + " check-ssl verify none", Options: httpchk})
		gsvc = append(gsvc, Service{Name: "https", Binds: []netip.AddrPort{freePort(b)}, Servers: gwServers(nTLS, cb.https),
			Check: every(Check{Type: CheckHTTP, Path: "/health", ExpectStatus: 200, TLS: &CheckTLS{Verify: "none"}})})
	}
	s := samples{}
	var tcpRates []float64 // gitgw's only: see above
	for i := 0; i < b.N; i++ {
		for r := 0; r < 3; r++ {
			for _, name := range []string{"haproxy", "gitgw"} {
				var pid int
				var stop func()
				if name == "haproxy" {
					h := lab.StartHAProxy(b, lab.HAProxyConfig{Threads: 1, Services: hsvc})
					pid = h.Pid()
					stop = func() { _ = syscall.Kill(pid, syscall.SIGKILL); _ = h.Cmd.Wait() }
				} else {
					g := startHelper(b, Config{Services: gsvc}, "GOMAXPROCS=1", "L4HELPER_SHARDS=1")
					pid = g.cmd.Process.Pid
					stop = func() { _ = g.cmd.Process.Signal(syscall.SIGKILL); _ = g.cmd.Wait() }
				}
				time.Sleep(3 * time.Second) // warm up: the first checks are spread over an interval; a measurement window, not a synchronisation
				t0, h0, s0 := cb.counts()
				f0 := cb.failures.Load()
				cpu0 := cpuTime(pid)
				time.Sleep(window)
				cpu1 := cpuTime(pid)
				t1, h1, s1 := cb.counts()
				stop()
				sec := window.Seconds()
				cpu := float64((cpu1 - cpu0).Microseconds())
				s.add("CPU ms per s", name, cpu/1e3/sec)
				if nTCP > 0 && name == "gitgw" {
					tcpRates = append(tcpRates, float64(t1-t0)/sec)
				}
				if nHTTP > 0 {
					s.add("http checks per s", name, float64(h1-h0)/sec)
				}
				if nTLS > 0 {
					s.add("https checks per s", name, float64(s1-s0)/sec)
				}
				if nTCP == 0 && h1+s1 > h0+s0 {
					s.add("CPU µs per check", name, cpu/float64(h1+s1-h0-s0))
				}
				if f := cb.failures.Load() - f0; f != 0 {
					b.Errorf("%s: %d requests for a wrong path", name, f)
				}
			}
		}
	}
	var metrics []string
	for _, m := range []string{"CPU ms per s", "CPU µs per check", "http checks per s", "https checks per s"} {
		if s[m] != nil {
			metrics = append(metrics, m)
		}
	}
	s.report(b, metrics)
	if len(tcpRates) > 0 {
		fmt.Printf("%-38s gitgw %.1f (HAProxy's are reset before the backend accepts them)\n", "tcp checks per s", median(tcpRates))
	}
}
