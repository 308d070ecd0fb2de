package reconcile

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// TestACLContentSwitchImportBehavesAsHAProxy compares HAProxy's ACL
// sample (corpus haproxy-examples-acl-content-sw.cfg: blocks on src and
// src_port, hdr_cnt, hdr_val, path_dir, url_sub and the predefined
// HTTP_URL_* and METH_OPTIONS ACLs, backend-level blocks, use_backend by
// Host) imported and run by gitgw's proxy with HAProxy 2.6 running the
// same file side by side, in front of the same real HTTP servers on the
// loopback. HAProxy 2.6 runs the file with what 2.6 no longer reads
// spelled as 2.6 does (block as http-request deny, clitimeout and the
// like as timeouts, redispatch as option redispatch) and without what the
// import names as not mapped and gitgw does not do (reqirep, rspirep,
// rspidel, rspadd: header rewrites; the global process settings). Both
// copies lose the reqirep of OPTIONS request lines: with it the import is
// refused, since the backend's blocks read the url it rewrites and
// gitgw's rules see the request as sent. Both copies lose their source
// lines: the loopback servers could not answer
// 192.168.21.2 (l4proxy's TestHTTPFetchesAndSourceNetns compares the
// source addresses in namespaces). For each raw request of a set (the
// client's port included), both must answer the same status from the
// same server; the demo backend is HAProxy's stats page, which gitgw
// answers 503 (the import says so).
func TestACLContentSwitchImportBehavesAsHAProxy(t *testing.T) {
	lab.RequireRoot(t) // a client port below 1024
	lab.RequireCommand(t, "haproxy")
	raw, err := os.ReadFile("../cue/importer/testdata/corpus/haproxy/haproxy-examples-acl-content-sw.cfg")
	if err != nil {
		t.Fatal(err)
	}
	servers := map[string]string{} // corpus address → lab address
	for _, s := range []struct{ name, addr string }{{"www1", "192.168.12.2:80"}, {"back", "192.168.11.2:80"}, {"www2", "192.168.22.2:80"}} {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		name := s.name
		srv := &http.Server{DisableGeneralOptionsHandler: true, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("X-Server", name)
			fmt.Fprintln(w, name)
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		servers[s.addr] = ln.Addr().String()
	}
	hapBind, gwBind := freeLoopbackPort(t), freeLoopbackPort(t)
	// edit rewrites the file a line at a time: fn gets each line's words
	// and returns the line to write ("" drops it).
	edit := func(text string, fn func(ws []string, line string) string) string {
		var out []string
		for _, line := range strings.Split(text, "\n") {
			ws := strings.Fields(line)
			if len(ws) > 0 {
				if line = fn(ws, line); line == "" {
					continue
				}
			}
			out = append(out, line)
		}
		return strings.Join(out, "\n")
	}
	common := func(bind string) func(ws []string, line string) string {
		return func(ws []string, line string) string {
			switch ws[0] {
			case "source", "reqirep":
				return ""
			case "bind":
				return "\tbind " + bind
			case "server":
				return strings.Replace(line, ws[2], servers[ws[2]], 1)
			}
			return line
		}
	}
	gwCfg := edit(string(raw), common(gwBind))
	hapCfg := edit(string(raw), func(ws []string, line string) string {
		line = common(hapBind)(ws, line)
		switch ws[0] {
		case "log", "uid", "gid", "chroot", "pidfile", "daemon", "quiet", "reqirep", "rspirep", "rspidel", "rspadd":
			if ws[0] != "log" || ws[1] != "global" {
				return ""
			}
		case "clitimeout", "contimeout", "srvtimeout":
			return "\ttimeout " + map[string]string{"clitimeout": "client", "contimeout": "connect", "srvtimeout": "server"}[ws[0]] + " " + ws[1]
		case "redispatch":
			return "\toption redispatch"
		case "block":
			return "\thttp-request deny " + strings.Join(ws[1:], " ")
		}
		return line
	})
	sideBySide(t, "acl-content-sw.cfg", hapCfg, gwCfg)

	type answer struct {
		status int
		server string
	}
	// ask sends one raw request, from port lport when not 0.
	ask := func(addr string, lport int, req string) (answer, error) {
		d := &net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			_ = c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1) })
			return serr
		}}
		if lport != 0 {
			d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: lport}
		}
		c, err := d.Dial("tcp4", addr)
		if err != nil {
			return answer{}, err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, req); err != nil {
			return answer{}, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: strings.Fields(req)[0]})
		if err != nil {
			return answer{}, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return answer{resp.StatusCode, resp.Header.Get("X-Server")}, nil
	}
	get := func(method, target, host string, more ...string) string {
		return method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\n" + strings.Join(more, "") + "Connection: close\r\n\r\n"
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, addr := range []string{hapBind, gwBind} {
		for {
			a, err := ask(addr, 0, get("GET", "/", "www.example"))
			if err == nil && a.status == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never answered: %v %v", addr, a, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for i, tc := range []struct {
		name  string
		lport int // gitgw's client port; HAProxy's is the next
		req   string
	}{
		{"plain", 0, get("GET", "/", "www.example")},
		{"www2 by Host", 0, get("GET", "/x", "WWW2.example")},
		{"client port 1000 (src_port 0:1023)", 1000, get("GET", "/", "www.example")},
		{"client port 1022, 1023", 1022, get("GET", "/", "www2.example")},
		{"client port 1024, 1025", 1024, get("GET", "/", "www2.example")},
		{"absolute URL on a wrong domain", 0, get("GET", "http://evil.example/", "evil.example")},
		{"absolute URL on 1wt.eu", 0, get("GET", "http://www.1wt.eu/x", "www.1wt.eu")},
		{"chunked", 0, get("POST", "/", "www.example", "Transfer-Encoding: chunked\r\n") + "3\r\nabc\r\n0\r\n\r\n"},
		{"a body of known length", 0, get("POST", "/", "www.example", "Content-Length: 3\r\n") + "abc"},
		{"Host apache-", 0, get("GET", "/", "Apache-1.example")},
		{"Host localhost", 0, get("GET", "/", "localhost")},
		{"two hosts", 0, get("GET", "/", "a,b")},
		{"Proxy-Authorization", 0, get("GET", "/", "www.example", "Proxy-Authorization: Basic eDp5\r\n")},
		{"dot dot slash", 0, get("GET", "/a/../b", "www.example")},
		{"%2e%2e%2f", 0, get("GET", "/a/%2E%2e%2fb", "www.example")},
		{"%00", 0, get("GET", "/a%00b", "www.example")},
		{"<script", 0, get("GET", "/?q=<SCRIPT>", "www.example")},
		{"path_end .ASP", 0, get("GET", "/x/y.ASP", "www.example")},
		{"path_end /cmd.exe", 0, get("GET", "/scripts/cmd.exe?x", "www.example")},
		{"path_dir chat", 0, get("GET", "/x/chat/y", "www.example")},
		{"path_dir chatroom is not chat", 0, get("GET", "/x/chatroom/y", "www.example")},
		{"path_dir msoffice -i", 0, get("GET", "/msoffice", "www.example")},
		{"path_dir in the query only", 0, get("GET", "/x?d=/horde/", "www.example")},
		{"setmodules", 0, get("GET", "/a.php?setmodules=1", "www.example")},
		{"PUT to www (backend www's block)", 0, get("PUT", "/", "www.example", "Content-Length: 0\r\n")},
		{"PUT to www2 (www's blocks are not www2's)", 0, get("PUT", "/", "www2.example", "Content-Length: 0\r\n")},
		{"HEAD", 0, get("HEAD", "/", "www.example")},
		{"OPTIONS *", 0, get("OPTIONS", "*", "www.example")},
		{"GET * (HTTP_URL_STAR !METH_OPTIONS)", 0, get("GET", "*", "www.example")},
		{"OPTIONS /", 0, get("OPTIONS", "/", "www.example")},
		{"absolute URL with another scheme (HTTP_URL_ABS)", 0, get("GET", "ftp://www.1wt.eu/", "www.1wt.eu")},
	} {
		hp := tc.lport
		if hp != 0 {
			hp++
		}
		h, herr := ask(hapBind, hp, tc.req)
		g, gerr := ask(gwBind, tc.lport, tc.req)
		if herr != nil || gerr != nil || h != g {
			t.Errorf("#%d %s: HAProxy %+v (%v), gitgw %+v (%v)", i, tc.name, h, herr, g, gerr)
		}
	}
	h, herr := ask(hapBind, 0, get("GET", "/", "demo.example"))
	g, gerr := ask(gwBind, 0, get("GET", "/", "demo.example"))
	if herr != nil || gerr != nil || h.status != 200 || h.server != "" || g.status != 503 || g.server != "" {
		t.Errorf("Host demo.: HAProxy %+v (%v), gitgw %+v (%v); want HAProxy's stats page and gitgw's 503, no server asked", h, herr, g, gerr)
	}
}
