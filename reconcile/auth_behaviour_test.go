package reconcile

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// TestAuthImportBehavesAsHAProxy compares HAProxy's basic authentication
// sample (corpus haproxy-examples-auth.cfg) run by HAProxy 2.6 with the
// site `gitgw import` makes of it run by gitgw's proxy, side by side in
// front of the same real HTTP servers: frontend c2 (`http-request auth
// unless auth_ok`, `acl auth_ok http_auth(customer2)`, users with
// insecure-password, use_backend c2b1 if host b1.local, default c2b0).
// For every request of a set (no credentials, each user's right
// password, wrong ones, an unknown user, a malformed header; with and
// without the switched host) both must answer the same status, from the
// same server, asking for the same realm.
//
// The copy differs from the corpus file only in addresses (the lab's
// loopback ports; c2b0 and c2b1 each get a server of their own, where the
// file gives both the same address) and in its log lines (commented out:
// they send syslog to an address of the file's network). Frontend c1 has
// no default_backend (a request no rule takes is answered 503 by both)
// and asks for credentials of a group per host; its requests for the
// stats page (stats.local) are not compared: HAProxy answers them with
// its page, gitgw with 503 (the import warns).
func TestAuthImportBehavesAsHAProxy(t *testing.T) {
	lab.RequireCommand(t, "haproxy")
	raw, err := os.ReadFile("../cue/importer/testdata/corpus/haproxy/haproxy-examples-auth.cfg")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	section := ""
	srvAddr := map[string]string{}
	for _, name := range []string{"c2b0", "c2b1", "c1dev", "c1uat"} {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Server", name)
			fmt.Fprintln(w, name)
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		srvAddr[name] = ln.Addr().String()
	}
	// A closed port for the servers of the sections not compared.
	closed := freeLoopbackPort(t)
	hapC1, gwC1 := freeLoopbackPort(t), freeLoopbackPort(t)
	hapC2, gwC2 := freeLoopbackPort(t), freeLoopbackPort(t)
	hapLines, gwLines := make([]string, len(lines)), make([]string, len(lines))
	rewrites := 0
	for i, l := range lines {
		ws := strings.Fields(l)
		if len(ws) >= 2 && (ws[0] == "frontend" || ws[0] == "backend") {
			section = ws[1]
		}
		hapLines[i], gwLines[i] = l, l
		switch {
		case len(ws) > 0 && ws[0] == "log":
			hapLines[i], gwLines[i] = "#"+l, "#"+l
		case len(ws) >= 2 && ws[0] == "bind":
			hap, gw := hapC1, gwC1
			if section == "c2" {
				hap, gw = hapC2, gwC2
			}
			hapLines[i] = strings.Replace(l, ws[1], hap, 1)
			gwLines[i] = strings.Replace(l, ws[1], gw, 1)
			rewrites++
		case len(ws) >= 3 && ws[0] == "server":
			a := closed
			if s, ok := srvAddr[section]; ok {
				a = s
			}
			hapLines[i] = strings.Replace(l, ws[2], a, 1)
			gwLines[i] = hapLines[i]
			rewrites++
		}
	}
	if rewrites != 2+6 {
		t.Fatalf("%d bind and server lines rewritten, want 8: the corpus file changed", rewrites)
	}

	sideBySide(t, "auth.cfg", strings.Join(hapLines, "\n"), strings.Join(gwLines, "\n"))

	type answer struct {
		status        int
		server, realm string
	}
	ask := func(addr, host, authz string) (answer, error) {
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		req.Host = host
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Do(req)
		if err != nil {
			return answer{}, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return answer{resp.StatusCode, resp.Header.Get("X-Server"), resp.Header.Get("WWW-Authenticate")}, nil
	}
	basic := func(user, password string) string {
		req, _ := http.NewRequest("GET", "http://x/", nil)
		req.SetBasicAuth(user, password)
		return req.Header.Get("Authorization")
	}
	// Both up: HAProxy answers once it has started.
	deadline := time.Now().Add(20 * time.Second)
	for _, addr := range []string{hapC2, gwC2} {
		for {
			a, err := ask(addr, "www.example", basic("peter", "peter"))
			if err == nil && a.status == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never answered: %v %v", addr, a, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	seen := map[answer]bool{}
	for _, host := range []string{"www.example", "b1.local", "B1.LOCAL"} {
		for _, authz := range []string{"", basic("peter", "peter"), basic("monica", "monica"), basic("peter", "monica"),
			basic("monica", ""), basic("nobody", "peter"), basic("Peter", "peter"), "Basic !!!", "Bearer peter", basic("peter", "peter") + " "} {
			h, herr := ask(hapC2, host, authz)
			g, gerr := ask(gwC2, host, authz)
			if herr != nil || gerr != nil || h != g {
				t.Errorf("Host %s Authorization %q: HAProxy %+v (%v), gitgw %+v (%v)", host, authz, h, herr, g, gerr)
			}
			seen[h] = true
		}
	}
	// The comparison covered both outcomes and both pools.
	for _, a := range []answer{{401, "", `Basic realm="c2"`}, {200, "c2b0", ""}, {200, "c2b1", ""}} {
		if !seen[a] {
			t.Errorf("no request answered %+v; answers: %v", a, seen)
		}
	}

	// Frontend c1: no default_backend, a realm per host, groups.
	for _, addr := range []string{hapC1, gwC1} {
		for {
			a, err := ask(addr, "dev.local", basic("scott", "cat"))
			if err == nil && a.status == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never answered: %v %v", addr, a, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	seen = map[answer]bool{}
	for _, host := range []string{"www.example", "dev.local", "uat.local", "UAT.local", "dev.localdomain"} {
		for _, authz := range []string{"", basic("scott", "cat"), basic("tiger", "dog"), basic("xdb", "hello"),
			basic("scott", "dog"), basic("boss", "cat"), basic("nobody", "cat"), "Basic !!!"} {
			h, herr := ask(hapC1, host, authz)
			g, gerr := ask(gwC1, host, authz)
			if herr != nil || gerr != nil || h != g {
				t.Errorf("c1: Host %s Authorization %q: HAProxy %+v (%v), gitgw %+v (%v)", host, authz, h, herr, g, gerr)
			}
			seen[h] = true
		}
	}
	for _, a := range []answer{{503, "", ""}, {401, "", `Basic realm="uat"`}, {401, "", `Basic realm="c1dev"`}, {200, "c1dev", ""}, {200, "c1uat", ""}} {
		if !seen[a] {
			t.Errorf("c1: no request answered %+v; answers: %v", a, seen)
		}
	}
}
