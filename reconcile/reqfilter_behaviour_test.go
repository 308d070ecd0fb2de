package reconcile

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// TestRequestFiltersImportBehaveAsHAProxy compares, for HAProxy's
// tcp-splicing sample (corpus haproxy-examples-tcp-splicing-sample.cfg:
// reqisetbe by the Host line and by the request line), the site `gitgw
// import` makes of it, run by gitgw's proxy, with HAProxy 2.6 running the
// same proxies side by side in front of the same real HTTP servers.
// HAProxy 2.6 no longer reads the 1.x filters, so it runs the sample
// translated by hand into the ACLs that say the same thing: a line "Host:
// img…" is the Host header's value starting with img, a request line
// "METHOD /img/…" is the URL starting with /img/, both -i as reqisetbe.
// Also translated: clitimeout and the other 1.x spellings, option
// tcpsplice dropped (2.6 refuses both). For each request of a set, both
// must answer the same status from the same pool, except the stats
// backend: HAProxy answers with its stats page, gitgw with 503 (the
// import says so), and neither asks a server.
func TestRequestFiltersImportBehaveAsHAProxy(t *testing.T) {
	lab.RequireCommand(t, "haproxy")
	raw, err := os.ReadFile("../cue/importer/testdata/corpus/haproxy/haproxy-examples-tcp-splicing-sample.cfg")
	if err != nil {
		t.Fatal(err)
	}
	servers := map[string]string{} // corpus address → lab address
	for _, s := range []struct{ name, addr string }{
		{"dynsrv1", "192.168.1.1:80"}, {"dynsrv2", "192.168.1.2:80"}, {"dynsrv3", "192.168.1.3:80"},
		{"dynsrv4", "192.168.1.4:80"}, {"statsrv1", "192.168.1.8:80"}, {"statsrv2", "192.168.1.9:80"},
	} {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		name := s.name
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Server", name)
			fmt.Fprintln(w, name)
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		servers[s.addr] = ln.Addr().String()
	}
	hapBind, gwBind := freeLoopbackPort(t), freeLoopbackPort(t)
	rewrite := func(s, old, new string) string {
		if !strings.Contains(s, old) {
			t.Fatalf("rewrite %q matches nothing", old)
		}
		return strings.ReplaceAll(s, old, new)
	}
	// The sample as HAProxy 2.6 reads it.
	hapCfg := `global
	maxconn 9000
defaults
	mode http
	timeout client 30s
	timeout connect 5s
	timeout server 5s
frontend public
	bind 192.168.1.10:80
	option httpclose
	monitor-uri /monitoruri
	maxconn 8000
	use_backend static if { req.hdr(host) -i -m reg ^img }
	use_backend static if { url_reg -i ^/(img|css)/ }
	use_backend stats if { url_reg -i ^/admin/stats }
	default_backend dynamic
backend static
	balance roundrobin
	option redispatch
	retries 2
	option httpchk HEAD /favicon.ico
	server statsrv1 192.168.1.8:80 check inter 1000
	server statsrv2 192.168.1.9:80 check inter 1000
backend dynamic
	balance roundrobin
	timeout connect 30s
	timeout server 30s
	option redispatch
	retries 2
	option httpchk HEAD /login.php
	cookie DYNSRV insert indirect nocache
	server dynsrv1 192.168.1.1:80 maxconn 500 cookie s1 check inter 1000
	server dynsrv2 192.168.1.2:80 maxconn 500 cookie s2 check inter 1000
	server dynsrv3 192.168.1.3:80 maxconn 500 cookie s3 check inter 1000
	server dynsrv4 192.168.1.4:80 maxconn 500 cookie s4 check inter 1000
backend stats
	stats uri /
`
	gwCfg := string(raw)
	for old, new := range servers {
		hapCfg = rewrite(hapCfg, old+" ", new+" ")
		gwCfg = rewrite(gwCfg, old+" ", new+" ")
	}
	hapCfg = rewrite(hapCfg, "192.168.1.10:80", hapBind)
	gwCfg = rewrite(gwCfg, "192.168.1.10:80", gwBind)

	sideBySide(t, "tcp-splicing-sample.cfg", hapCfg, gwCfg)

	type answer struct {
		status int
		pool   string
	}
	ask := func(addr, host, path string) (answer, error) {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Host = host
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Do(req)
		if err != nil {
			return answer{}, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return answer{resp.StatusCode, strings.TrimRight(resp.Header.Get("X-Server"), "0123456789")}, nil
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, addr := range []string{hapBind, gwBind} {
		for _, path := range []string{"/", "/img/x"} {
			for {
				a, err := ask(addr, "www.example", path)
				if err == nil && a.status == 200 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s %s never answered: %v %v", addr, path, a, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	for _, host := range []string{"www.example", "img.example", "IMG.example", "imgs.example", "www.img.example"} {
		for _, path := range []string{"/", "/img/a.png", "/IMG/a.png", "/css/site.css", "/imgs", "/x?/img/", "/login.php?u=1", "/monitoruri"} {
			h, herr := ask(hapBind, host, path)
			g, gerr := ask(gwBind, host, path)
			if herr != nil || gerr != nil || h != g {
				t.Errorf("Host %s %s: HAProxy %+v (%v), gitgw %+v (%v)", host, path, h, herr, g, gerr)
			}
		}
	}
	for _, path := range []string{"/admin/stats", "/ADMIN/stats;csv", "/admin/statsx"} {
		h, herr := ask(hapBind, "www.example", path)
		g, gerr := ask(gwBind, "www.example", path)
		if herr != nil || gerr != nil || h.status != 200 || h.pool != "" || g.status != 503 || g.pool != "" {
			t.Errorf("%s: HAProxy %+v (%v), gitgw %+v (%v); want HAProxy's stats page and gitgw's 503, no server asked", path, h, herr, g, gerr)
		}
	}
}

// TestTarpitImportBehavesAsHAProxy compares HAProxy's tarpit sample
// (corpus haproxy-examples-tarpit.cfg) imported and run by gitgw's proxy
// with HAProxy 2.6 running it translated by hand (its reqtarpit lines as
// http-request tarpit on the URL, which is what their request-line
// regexes test; clitimeout and the other 1.x spellings as timeouts):
// both answer the same to the requests the sample forwards, and hold the
// ones it tarpits for the tarpit timeout (timeout connect, shortened to
// 300ms in both copies) before a 500, without asking the server. The
// stats page: HAProxy asks for its password (401), gitgw answers 503.
func TestTarpitImportBehavesAsHAProxy(t *testing.T) {
	lab.RequireCommand(t, "haproxy")
	raw, err := os.ReadFile("../cue/importer/testdata/corpus/haproxy/haproxy-examples-tarpit.cfg")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var served atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.Header().Set("X-Server", "apache1")
		fmt.Fprintln(w, "apache1")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	hapBind, gwBind := freeLoopbackPort(t), freeLoopbackPort(t)
	rewrite := func(s, old, new string) string {
		if !strings.Contains(s, old) {
			t.Fatalf("rewrite %q matches nothing", old)
		}
		return strings.ReplaceAll(s, old, new)
	}
	const hold = 300 * time.Millisecond
	hapCfg := `defaults
	mode http
	timeout client 20s
	timeout server 20s
	timeout connect 300ms
listen frontend
	bind 0.0.0.0:80
	maxconn 10000
	option httpclose
	balance roundrobin
	server apache1 127.0.0.1:80 maxconn 150
	retries 1
	option forwardfor
	stats uri /stat
	stats auth stat:stat
	http-request tarpit if { url_reg ^/invalid_req1 }
	http-request tarpit if { url_reg ^/cgi-bin/.*\.pl\? }
	http-request tarpit if { url_reg -i ^/.*\.(dll|exe|asp) }
`
	gwCfg := rewrite(string(raw), "contimeout      20000", "contimeout      300")
	hapCfg = rewrite(rewrite(hapCfg, "127.0.0.1:80", ln.Addr().String()), "0.0.0.0:80", hapBind)
	gwCfg = rewrite(rewrite(gwCfg, "127.0.0.1:80", ln.Addr().String()), "0.0.0.0:80", gwBind)

	sideBySide(t, "tarpit.cfg", hapCfg, gwCfg)

	type answer struct {
		status int
		server string
	}
	ask := func(addr, path string) (answer, time.Duration, error) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		start := time.Now()
		resp, err := c.Get("http://" + addr + path)
		if err != nil {
			return answer{}, 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return answer{resp.StatusCode, resp.Header.Get("X-Server")}, time.Since(start), nil
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, addr := range []string{hapBind, gwBind} {
		for {
			a, _, err := ask(addr, "/")
			if err == nil && a.status == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never answered: %v %v", addr, a, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, path := range []string{"/", "/index.html", "/cgi-bin/a.pl", "/cgi-bin/a.cgi?x", "/exe", "/invalid_req2"} {
		h, _, herr := ask(hapBind, path)
		g, _, gerr := ask(gwBind, path)
		if herr != nil || gerr != nil || h != g || h.status != 200 {
			t.Errorf("%s: HAProxy %+v (%v), gitgw %+v (%v), want both from the server", path, h, herr, g, gerr)
		}
	}
	for _, path := range []string{"/invalid_req1", "/cgi-bin/a.pl?x=1", "/scripts/root.EXE", "/a/b.asp?c"} {
		before := served.Load()
		for _, addr := range []string{hapBind, gwBind} {
			least := hold
			if addr == hapBind {
				least -= time.Millisecond // HAProxy's clock counts whole milliseconds
			}
			a, held, err := ask(addr, path)
			if err != nil || a.status != 500 || held < least {
				t.Errorf("%s via %s: %+v after %v (%v), want 500 no sooner than %v", path, addr, a, held, err, least)
			}
		}
		if n := served.Load() - before; n != 0 {
			t.Errorf("%s: the server got %d tarpitted requests", path, n)
		}
	}
	before := served.Load()
	h, _, herr := ask(hapBind, "/stat")
	g, _, gerr := ask(gwBind, "/stat")
	if herr != nil || gerr != nil || h.status != 401 || g.status != 503 || served.Load() != before {
		t.Errorf("/stat: HAProxy %+v (%v), gitgw %+v (%v); want HAProxy's stats login and gitgw's 503, no server asked", h, herr, g, gerr)
	}
}
