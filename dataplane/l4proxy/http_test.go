package l4proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitgw/gitgw/dataplane/httpproxy"
)

// TestHTTPRulesChangeInPlace: a Set that changes the rules applies to the
// next request, on a connection kept alive across it too; a pool removed
// from the rules and the site is no longer reached.
func TestHTTPRulesChangeInPlace(t *testing.T) {
	name := func(n string) netip.AddrPort {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Server", n)
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return ln.Addr().(*net.TCPAddr).AddrPort()
	}
	a, b := name("a"), name("b")
	bind := freePort(t)
	cfg := func(prefix string) Config {
		return Config{Services: []Service{
			{Name: "web", Binds: []netip.AddrPort{bind}, Servers: []Server{{Name: "a", Addr: a, Weight: 1}},
				HTTP: &httpproxy.HTTP{Rules: []httpproxy.Rule{{Use: "other",
					When: []httpproxy.Cond{{Subject: httpproxy.SubjPath, Match: httpproxy.MatchPrefix, Values: []string{prefix}}}}}}},
			{Name: "other", Servers: []Server{{Name: "b", Addr: b, Weight: 1}}},
		}}
	}
	p := newTestPool(t, Options{}, cfg("/b"))
	var dials atomic.Int64
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}}
	get := func(path string) string {
		t.Helper()
		resp, err := c.Get("http://" + bind.String() + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.Header.Get("X-Server")
	}
	if got := get("/b/1"); got != "b" {
		t.Fatalf("/b/1 from %q, want b", got)
	}
	if err := p.Set(context.Background(), cfg("/c")); err != nil {
		t.Fatal(err)
	}
	if got1, got2 := get("/b/1"), get("/c/1"); got1 != "a" || got2 != "b" {
		t.Errorf("after the rule changed to /c: /b/1 from %q, /c/1 from %q; want a, b", got1, got2)
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("%d client connections, want the one kept alive across Set", n)
	}
	only := cfg("/c")
	only.Services[0].HTTP.Rules = nil
	only.Services = only.Services[:1]
	if err := p.Set(context.Background(), only); err != nil {
		t.Fatal(err)
	}
	if got := get("/c/1"); got != "a" {
		t.Errorf("/c/1 from %q after its pool left the site, want a", got)
	}
}

// TestHTTPServerTimeout: the service's server timeout is an inactivity
// timeout, as HAProxy's: a response whose body stalls is cut, where
// net/http's transport alone would wait for ever.
func TestHTTPServerTimeout(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	defer close(release)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "10")
		_, _ = w.Write([]byte("12345"))
		w.(http.Flusher).Flush()
		<-release // the other half never comes
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	bind := freePort(t)
	newTestPool(t, Options{}, Config{Services: []Service{{Name: "web", Binds: []netip.AddrPort{bind},
		Timeouts: Timeouts{Server: 200 * time.Millisecond},
		Servers:  []Server{{Name: "a", Addr: ln.Addr().(*net.TCPAddr).AddrPort(), Weight: 1}}, HTTP: &httpproxy.HTTP{}}}})
	done := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + bind.String() + "/")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a body cut after 5 of 10 bytes read without error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a stalled response was not cut within 10s (server timeout 200ms)")
	}
}
