package l4proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitgw/gitgw/dataplane/httpproxy"
	"github.com/gitgw/gitgw/test/lab"
)

// TestHTTPCookiePersistence runs HAProxy's `cookie SRV insert indirect
// nocache` with servers s1, s2 and a backup b1 (cookie values s1, s2,
// b1), in the proxy process the agent would run, in a namespace with
// real HTTP servers; every request goes over a new connection, so only
// the cookie can keep a client on its server: the first response sets
// the cookie of the server that answered, requests carrying it stay
// there (round robin would alternate), without a new Set-Cookie and
// without the cookie at the server (indirect); a cookie naming the
// backup reaches it while the primaries are up; a cookie of a server
// that is marked down, or of no server, is balanced and set anew.
func TestHTTPCookiePersistence(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip")
	ns := lab.NewNetns(t, "h5")
	for _, a := range []string{"203.0.113.100/32", "198.51.100.11/32", "198.51.100.12/32", "198.51.100.13/32"} {
		ns.Run(t, "ip", "addr", "add", a, "dev", "lo")
	}
	backends := map[string]*httpBackend{
		"s1": startHTTPBackend(t, ns, "s1", "198.51.100.11:8080"),
		"s2": startHTTPBackend(t, ns, "s2", "198.51.100.12:8080"),
		"b1": startHTTPBackend(t, ns, "b1", "198.51.100.13:8080"),
	}
	bind := netip.MustParseAddrPort("203.0.113.100:80")
	srv := func(name, addr string, backup bool) Server {
		return Server{Name: name, Addr: netip.MustParseAddrPort(addr), Weight: 1, Backup: backup, Cookie: name}
	}
	cfg := Config{Services: []Service{{Name: "web", Binds: []netip.AddrPort{bind},
		Servers: []Server{srv("s1", "198.51.100.11:8080", false), srv("s2", "198.51.100.12:8080", false), srv("b1", "198.51.100.13:8080", true)},
		Check:   &Check{Type: CheckTCP, Interval: 100 * time.Millisecond, Rise: 1, Fall: 1},
		HTTP:    &httpproxy.HTTP{},
		Cookie:  &httpproxy.Cookie{Name: "SRV", Indirect: true, NoCache: true},
	}}}
	h := startHelperWith(t, func(name string, args ...string) *exec.Cmd {
		return ns.Command(context.Background(), name, args...)
	}, cfg)
	var dials atomic.Int64
	tr := nsTransport(ns, nil, &dials)
	tr.DisableKeepAlives = true // a new connection per request
	client := &http.Client{Transport: tr}
	// get sends GET / with cookie (none when empty) and another cookie
	// the server must still receive; it returns the server that answered
	// and the response's Set-Cookie and Cache-Control.
	get := func(cookie string) (server, setCookie, cacheControl string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+bind.String()+"/", nil)
		req.Header.Set("Cookie", "lang=en")
		if cookie != "" {
			req.Header.Set("Cookie", "lang=en; SRV="+cookie)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET with SRV=%q: %v", cookie, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET with SRV=%q: status %d", cookie, resp.StatusCode)
		}
		return resp.Header.Get("X-Backend"), strings.Join(resp.Header.Values("Set-Cookie"), " | "), strings.Join(resp.Header.Values("Cache-Control"), ", ")
	}

	first, set, cc := get("")
	if want := "SRV=" + first + "; path=/"; set != want || cc != "private" {
		t.Fatalf("first response from %s: Set-Cookie %q Cache-Control %q, want %q and private", first, set, cc, want)
	}
	t.Run("the cookie keeps the client on its server over new connections", func(t *testing.T) {
		dials.Store(0)
		for i := range 6 {
			got, set, _ := get(first)
			if got != first || set != "" {
				t.Errorf("request %d with SRV=%s: from %s, Set-Cookie %q; want %s and no new cookie (indirect)", i, first, got, set, first)
			}
			if c := backends[first].header("Cookie"); c != "lang=en" {
				t.Errorf("request %d: the server got Cookie %q, want lang=en only (indirect strips SRV)", i, c)
			}
		}
		if n := dials.Load(); n != 6 {
			t.Errorf("%d connections for 6 requests, want one each", n)
		}
		// Without the cookie, round robin moves the client: the
		// persistence above is the cookie's doing.
		seen := map[string]bool{}
		for range 4 {
			got, set, _ := get("")
			seen[got] = true
			if set != "SRV="+got+"; path=/" {
				t.Errorf("a request without cookie answered by %s: Set-Cookie %q", got, set)
			}
		}
		if !seen["s1"] || !seen["s2"] || seen["b1"] {
			t.Errorf("requests without cookie went to %v, want s1 and s2, not the backup", seen)
		}
	})
	t.Run("a cookie naming the backup reaches it while the primaries are up", func(t *testing.T) {
		before := backends["b1"].n.Load()
		for range 3 {
			if got, set, _ := get("b1"); got != "b1" || set != "" {
				t.Errorf("SRV=b1: from %s, Set-Cookie %q; want b1, none", got, set)
			}
		}
		if n := backends["b1"].n.Load() - before; n != 3 {
			t.Errorf("b1 served %d of 3", n)
		}
	})
	t.Run("a cookie of no server is balanced and set anew", func(t *testing.T) {
		got, set, _ := get("nosuch")
		if got != "s1" && got != "s2" || set != "SRV="+got+"; path=/" {
			t.Errorf("SRV=nosuch: from %s, Set-Cookie %q; want a primary and its cookie", got, set)
		}
	})
	t.Run("a cookie of a server marked down is balanced and set anew", func(t *testing.T) {
		other := map[string]string{"s1": "s2", "s2": "s1"}[first]
		backends[first].ln.Close()
		eventually(t, 10*time.Second, first+" marked down", func() bool {
			return serverStatusIn(ns, h.stats, first) == StatusDown
		})
		for range 3 {
			got, set, _ := get(first)
			if got != other || set != "SRV="+other+"; path=/" {
				t.Errorf("SRV=%s (down): from %s, Set-Cookie %q; want %s and SRV=%s", first, got, set, other, other)
			}
		}
	})
}

// serverStatusIn reads a server's status from the pool's status page,
// from inside ns; "" when it cannot be read.
func serverStatusIn(ns *lab.Netns, stats, name string) Health {
	var s Snapshot
	err := ns.Do(func() error {
		c, err := net.Dial("tcp4", stats)
		if err != nil {
			return err
		}
		defer c.Close()
		fmt.Fprintf(c, "GET / HTTP/1.0\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(&s)
	})
	if err != nil {
		return ""
	}
	for _, svc := range s.Services {
		for _, sv := range svc.Servers {
			if sv.Name == name {
				return sv.Status
			}
		}
	}
	return ""
}
