package reconcile

import (
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// TestHeaderRewritesBehaveAsHAProxy runs one configuration built from
// the corpus's rewrite lines (haproxy-examples-basic-config-edge.cfg's
// del-header x-forwarded-for before option forwardfor, its alt-svc and
// HSTS; acl-content-sw's Server header replaced; the dataplaneapi
// sample's Set-Cookie replace-header on a condition) and a few more
// (set from %[src], replace-value, a backend's rewrites for the requests
// a use_backend sends it) in HAProxy 2.6 and, imported, in gitgw's proxy,
// side by side in front of the same real HTTP servers, which answer with
// the request headers they got. For each request, the headers the
// server saw and the response's headers must be the same.
func TestHeaderRewritesBehaveAsHAProxy(t *testing.T) {
	lab.RequireCommand(t, "haproxy")
	echo := map[string]string{}
	for _, name := range []string{"app", "img"} {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		name := name
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Server", "nginx/1.22")
			w.Header().Set("X-Powered-By", "PHP/8")
			w.Header().Add("Set-Cookie", "sid=1; Path=/")
			w.Header().Add("Set-Cookie", "pref=dark")
			w.Header().Set("X-Server", name)
			fmt.Fprintf(w, "%s %s\n", r.Method, r.RequestURI)
			if r.Host != "" {
				fmt.Fprintf(w, "Host: %s\n", r.Host)
			}
			for _, k := range slices.Sorted(maps.Keys(r.Header)) {
				switch k {
				case "Connection", "Accept-Encoding":
					// Hop-by-hop, or what the client's transport adds:
					// each proxy manages its own connection.
					continue
				}
				fmt.Fprintf(w, "%s: %s\n", k, strings.Join(r.Header[k], " | "))
			}
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		echo[name] = ln.Addr().String()
	}
	hapBind, gwBind := freeLoopbackPort(t), freeLoopbackPort(t)
	cfg := func(bind string) string {
		return `global
	maxconn 100
defaults
	mode http
	timeout client 30s
	timeout connect 5s
	timeout server 5s
frontend www
	bind ` + bind + `
	option forwardfor
	http-request deny if { path /forbidden }
	http-request del-header x-forwarded-for
	http-request set-header X-Real-IP %[src]
	http-request add-header X-Via gw
	http-request add-header X-Percent 100%%
	http-request replace-header X-A ^a(.*)$ b\1
	http-request replace-value X-List ^old$ new
	http-request set-header X-Internal 1 if { src 127.0.0.0/8 } { hdr(x-probe) yes }
	http-response del-header Server
	http-response add-header Server Apache
	http-response add-header alt-svc 'h3=":443"; ma=90000'
	http-response replace-header Set-Cookie (.*) \1;\ Secure unless { ssl_fc }
	http-after-response set-header Strict-Transport-Security "max-age=31536000"
	use_backend img if { path_beg /img/ }
	default_backend app
backend app
	server s1 ` + echo["app"] + `
backend img
	http-request set-header X-Pool img
	http-request replace-header Host ^www\.(.*) static.\1
	http-response del-header X-Powered-By
	server i1 ` + echo["img"] + `
`
	}
	sideBySide(t, "headers.cfg", cfg(hapBind), cfg(gwBind))

	// The response fields compared: what the rewrites touch, and the
	// server's own.
	fields := []string{"Server", "X-Powered-By", "Set-Cookie", "Alt-Svc", "Strict-Transport-Security", "X-Server"}
	type answer struct {
		status int
		header string
		body   string
	}
	ask := func(addr, path string, hdr http.Header) (answer, error) {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Host = "www.example.org"
		for k, vs := range hdr {
			req.Header[k] = vs
		}
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Do(req)
		if err != nil {
			return answer{}, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var hs []string
		for _, f := range fields {
			hs = append(hs, f+"="+strings.Join(resp.Header.Values(f), " | "))
		}
		a := answer{status: resp.StatusCode, header: strings.Join(hs, "\n")}
		if resp.StatusCode == 200 {
			a.body = string(b) // the proxies' own pages differ in their text
		}
		return a, nil
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, addr := range []string{hapBind, gwBind} {
		for {
			a, err := ask(addr, "/", nil)
			if err == nil && a.status == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never answered: %+v %v", addr, a, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, tc := range []struct {
		path string
		hdr  http.Header
	}{
		{"/", nil},
		{"/", http.Header{"X-Forwarded-For": {"6.6.6.6", "7.7.7.7"}, "X-Real-Ip": {"6.6.6.6"}}},
		{"/a", http.Header{"X-A": {"abc", "xyz", "a"}, "X-List": {"old, keep,old ,  old", "older", `"old,old", old`}}},
		{"/p", http.Header{"X-Probe": {"yes"}, "X-Internal": {"0"}}},
		{"/img/logo.png", http.Header{"X-Pool": {"spoofed"}}},
		{"/forbidden", http.Header{"X-Forwarded-For": {"6.6.6.6"}}},
	} {
		h, herr := ask(hapBind, tc.path, tc.hdr)
		g, gerr := ask(gwBind, tc.path, tc.hdr)
		if herr != nil || gerr != nil {
			t.Errorf("%s %v: HAProxy %v, gitgw %v", tc.path, tc.hdr, herr, gerr)
			continue
		}
		if h != g {
			t.Errorf("%s %v:\nHAProxy %d\n%s\n%s\ngitgw %d\n%s\n%s", tc.path, tc.hdr, h.status, h.header, h.body, g.status, g.header, g.body)
		}
	}
}
