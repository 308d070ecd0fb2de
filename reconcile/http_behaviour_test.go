package reconcile

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// TestHTTPImportBehavesAsHAProxy is issue #17's behaviour comparison for
// HAProxy's content-switching sample (corpus
// haproxy-examples-content-sw-sample.cfg): the file run by HAProxy 2.6,
// and the site `gitgw import` makes of it run by gitgw's proxy, side by
// side in front of the same real HTTP servers. For every request of a set
// (hosts and paths that the rules do and do not switch, the monitor URI),
// both must answer the same status from the same pool; once a static
// server stops, both must send the static requests to the other one.
//
// The copy differs from the corpus file only in addresses (the lab's
// loopback ports), in the lines of the machine it ran on (stats socket,
// chroot, uid, gid, daemon), and in a global maxconn of 9000 instead of
// 10000 (the lab's fd limit). Not compared: /admin/stats, HAProxy's
// own stats page, which the import answers 503 (warned; compared in
// TestRequestFiltersImportBehaveAsHAProxy).
func TestHTTPImportBehavesAsHAProxy(t *testing.T) {
	lab.RequireCommand(t, "haproxy")
	raw, err := os.ReadFile("../cue/importer/testdata/corpus/haproxy/haproxy-examples-content-sw-sample.cfg")
	if err != nil {
		t.Fatal(err)
	}
	servers := map[string]string{} // corpus address → lab address
	stop := map[string]func(){}
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
		stop[name] = func() { srv.Close() }
		servers[s.addr] = ln.Addr().String()
	}
	hapBind, gwBind := freeLoopbackPort(t), freeLoopbackPort(t)
	cfg := string(raw)
	rewrite := func(s, old, new string) string {
		if !strings.Contains(s, old) {
			t.Fatalf("rewrite %q matches nothing", old)
		}
		return strings.ReplaceAll(s, old, new)
	}
	for _, l := range []string{"stats socket", "uid ", "gid ", "chroot", "daemon"} {
		for _, line := range strings.Split(cfg, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), l) {
				cfg = rewrite(cfg, line, "#"+line)
			}
		}
	}
	// HAProxy wants about 2×maxconn fds, more than the lab's limit for
	// the file's global 10000; the frontend's own maxconn (8000) is what
	// either proxy applies to it.
	cfg = rewrite(cfg, "maxconn         10000", "maxconn         9000")
	for old, new := range servers {
		cfg = rewrite(cfg, old+" ", new+" ")
	}
	hapCfg := rewrite(cfg, "192.168.1.10:80 ", hapBind+" ")
	gwCfg := rewrite(cfg, "192.168.1.10:80 ", gwBind+" ")

	// The original, run as it is.
	sideBySide(t, "content-sw-sample.cfg", hapCfg, gwCfg)

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
		p := strings.TrimRight(resp.Header.Get("X-Server"), "0123456789")
		return answer{resp.StatusCode, p}, nil
	}
	// Both up: HAProxy's first checks pass after its start.
	deadline := time.Now().Add(20 * time.Second)
	for _, addr := range []string{hapBind, gwBind} {
		for {
			a, err := ask(addr, "www.example", "/")
			if err == nil && a.status == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never answered: %v %v", addr, a, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, host := range []string{"www.example", "img.example", "IMG.example", "static.example"} {
		for _, path := range []string{"/", "/img/a.png", "/css/site.css", "/imgs", "/js/app.js", "/login.php?u=1", "/monitoruri"} {
			h, herr := ask(hapBind, host, path)
			g, gerr := ask(gwBind, host, path)
			if herr != nil || gerr != nil || h != g {
				t.Errorf("Host %s %s: HAProxy %+v (%v), gitgw %+v (%v)", host, path, h, herr, g, gerr)
			}
		}
	}
	// A static server stops: in both, static requests then go to the
	// other one only (a refused connect is redispatched at once, the
	// check takes the server out after).
	stop["statsrv2"]()
	for _, addr := range []string{hapBind, gwBind} {
		streak := 0
		deadline := time.Now().Add(30 * time.Second)
		for streak < 10 {
			req, _ := http.NewRequest("GET", "http://"+addr+"/img/x", nil)
			resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
			if err == nil {
				if resp.Header.Get("X-Server") == "statsrv1" {
					streak++
				} else {
					streak = 0
				}
				resp.Body.Close()
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: static requests still reach another server than statsrv1 after 30s", addr)
			}
		}
	}
}

func freeLoopbackPort(t *testing.T) string {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return netip.MustParseAddrPort(ln.Addr().String()).String()
}
