package l4proxy

import (
	"context"
	"io"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/dataplane/httpproxy"
	"github.com/gitgw/gitgw/test/lab"
)

// cryptHash makes a password hash with an independent tool: openssl
// passwd for SHA-512 and MD5 crypt, python3's crypt (libxcrypt) for
// bcrypt, at the lowest cost so that the test stays quick.
func cryptHash(t testing.TB, kind, password string) string {
	t.Helper()
	var cmd *exec.Cmd
	switch kind {
	case "bcrypt":
		cmd = exec.Command("python3", "-W", "ignore", "-c",
			"import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))", password)
	default:
		cmd = exec.Command("openssl", "passwd", kind, "-stdin")
		cmd.Stdin = strings.NewReader(password + "\n")
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	h := strings.TrimSpace(string(out))
	if !strings.HasPrefix(h, "$") {
		t.Fatalf("%s: %q is no crypt hash", cmd, h)
	}
	return h
}

// TestHTTPBasicAuth runs HAProxy's userlist with `http-request auth
// realm uat if { path_beg /dev } !{ http_auth_group(L) dev }` and
// `http-request auth if { path_beg /any } !{ http_auth(L) }` in the proxy
// process the agent would run, in a namespace with a real HTTP server,
// the users' hashes made by openssl and python3's crypt: a request
// without credentials, with a wrong password, or of a user outside the
// group gets 401 with the realm (the service's name without one) and
// never reaches the server; the right password of a user in the group
// is forwarded, its Authorization header with it; an Authorization
// header over the bound is no credentials.
func TestHTTPBasicAuth(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "openssl", "python3")
	long := strings.Repeat("d", 4000) // a user name: crypt tools cut long passwords
	list := httpproxy.Userlist{Groups: []string{"dev", "ops"}, Users: map[string]httpproxy.User{
		"alice": {Hash: cryptHash(t, "-6", "dog"), Groups: []string{"dev"}},
		"bob":   {Hash: cryptHash(t, "-1", "cat"), Groups: []string{"ops"}},
		"carol": {Hash: cryptHash(t, "bcrypt", "hello"), Groups: []string{"ops", "dev"}},
		long:    {Hash: cryptHash(t, "-6", "dog"), Groups: []string{"dev"}},
	}}
	ns := lab.NewNetns(t, "h5")
	for _, a := range []string{"203.0.113.100/32", "198.51.100.11/32"} {
		ns.Run(t, "ip", "addr", "add", a, "dev", "lo")
	}
	be := startHTTPBackend(t, ns, "s1", "198.51.100.11:8080")
	bind := netip.MustParseAddrPort("203.0.113.100:80")
	authIn := func(groups ...string) httpproxy.Cond {
		return httpproxy.Cond{Subject: httpproxy.SubjAuth, Userlist: "L", Values: groups, Not: true}
	}
	pathBeg := func(p string) httpproxy.Cond {
		return httpproxy.Cond{Subject: httpproxy.SubjPath, Match: httpproxy.MatchPrefix, Values: []string{p}}
	}
	cfg := Config{Services: []Service{{Name: "web", Binds: []netip.AddrPort{bind},
		Servers: []Server{{Name: "s1", Addr: netip.MustParseAddrPort("198.51.100.11:8080"), Weight: 1}},
		Check:   &Check{Type: CheckTCP, Interval: 100 * time.Millisecond, Rise: 1, Fall: 1},
		HTTP: &httpproxy.HTTP{
			Userlists: map[string]httpproxy.Userlist{"L": list},
			Rules: []httpproxy.Rule{
				{Auth: &httpproxy.Auth{Realm: "uat"}, When: []httpproxy.Cond{pathBeg("/dev"), authIn("dev")}},
				{Auth: &httpproxy.Auth{}, When: []httpproxy.Cond{pathBeg("/any"), authIn()}},
			},
		},
	}}}
	h := startHelperWith(t, func(name string, args ...string) *exec.Cmd {
		return ns.Command(context.Background(), name, args...)
	}, cfg)
	eventually(t, 10*time.Second, "s1 up", func() bool { return serverStatusIn(ns, h.stats, "s1") == StatusUp })
	client := &http.Client{Transport: nsTransport(ns, nil, nil)}
	for _, tc := range []struct {
		name, path, user, password string
		status                     int
		realm                      string
	}{
		{"no credentials", "/dev/x", "", "", 401, "uat"},
		{"wrong password ($6$)", "/dev/x", "alice", "cat", 401, "uat"},
		{"unknown user", "/dev/x", "mallory", "dog", 401, "uat"},
		{"in the group ($6$)", "/dev/x", "alice", "dog", 200, ""},
		{"in the group (bcrypt)", "/dev/x", "carol", "hello", 200, ""},
		{"wrong password (bcrypt)", "/dev/x", "carol", "hell", 401, "uat"},
		{"not in the group ($1$)", "/dev/x", "bob", "cat", 401, "uat"},
		{"any user of the list ($1$)", "/any/x", "bob", "cat", 200, ""},
		{"wrong password ($1$)", "/any/x", "bob", "dog", 401, "web"},
		{"no credentials, default realm", "/any/x", "", "", 401, "web"},
		{"again, the cached check", "/dev/y", "alice", "dog", 200, ""},
		{"a wrong password after a right one", "/dev/y", "alice", "dogs", 401, "uat"},
		{"an Authorization header over the bound", "/dev/x", long, "dog", 401, "uat"},
		{"no rule: no credentials needed", "/open", "", "", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := be.n.Load()
			req, _ := http.NewRequest("GET", "http://"+bind.String()+tc.path, nil)
			if tc.user != "" {
				req.SetBasicAuth(tc.user, tc.password)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			served := be.n.Load() - before
			if tc.status == 401 {
				if got, want := resp.Header.Get("WWW-Authenticate"), `Basic realm="`+tc.realm+`"`; got != want {
					t.Errorf("WWW-Authenticate %q, want %q", got, want)
				}
				if served != 0 {
					t.Errorf("the server got a request the proxy refused")
				}
				return
			}
			if served != 1 {
				t.Errorf("the server got %d requests, want 1", served)
			}
			if tc.user != "" {
				if got := be.header("Authorization"); got != req.Header.Get("Authorization") {
					t.Errorf("the server got Authorization %q, want the client's %q", got, req.Header.Get("Authorization"))
				}
			}
		})
	}
}
