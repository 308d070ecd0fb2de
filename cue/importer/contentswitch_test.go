package importer

import (
	"strings"
	"testing"
)

// TestContentSwitching: a proxy whose traffic HAProxy sends to another
// backend or server by what a request holds, or answers itself, in a way
// the site's HTTP rules cannot say (haphttp_test.go has those they can),
// is refused at the rule's line; imported as its one pool, that traffic
// would reach servers the original does not send it to.
func TestContentSwitching(t *testing.T) {
	const fe = "frontend www\n  mode http\n  bind 203.0.113.1:80\n"
	const be = "backend app\n  mode http\n  server a 198.51.100.1:80 check\n"
	const other = "backend img\n  mode http\n  server i 198.51.100.9:80 check\n"
	for _, tt := range []struct {
		name, hap string
		line      int
	}{
		{"use_backend without default_backend in mode tcp", "frontend www\n  mode tcp\n  bind 203.0.113.1:80\n  use_backend img if { src 198.51.100.0/24 }\n" + other, 4},
		{"use_backend in a listen", "listen www\n  bind 203.0.113.1:80\n  use_backend img if { src 198.51.100.0/24 }\n  server a 198.51.100.1:80 check\n" + other, 3},
		{"reqisetbe in mode tcp", "frontend www\n  mode tcp\n  bind 203.0.113.1:80\n  reqisetbe ^Host:\\ img img\n  default_backend app\nbackend app\n  mode tcp\n  server a 198.51.100.1:80 check\n" + other, 4},
		{"SNI routing to mode http backends", "frontend f\n  mode tcp\n  bind 203.0.113.1:443\n  tcp-request inspect-delay 5s\n  use_backend img if { req_ssl_sni -i img.example }\n  default_backend app\n" + be + other, 5},
		{"use_backend on a fetch the rules lack", fe + "  use_backend img if { dst_port 80 }\n  default_backend app\n" + be + other, 4},
		{"use_backend to a backend that is refused", fe + "  use_backend img if { path_beg /img }\n  default_backend app\n" + be + "backend img\n  mode http\n  server i 198.51.100.9:80 check\n  use-server i if { path_beg /i }\n", 4},
		{"redirect with an option the rules lack", fe + "  redirect prefix https://www.example.net drop-query\n  default_backend app\n" + be, 4},
		{"use-server", fe + "  default_backend app\n" + be + "  server b 198.51.100.2:80 check\n  use-server b if { path_beg /b }\n", 9},
		{"http-request return", fe + "  http-request return status 200 if { path /health }\n  default_backend app\n" + be, 4},
		{"tcp-request content use-service", "listen l\n  bind 203.0.113.1:80\n  tcp-request content use-service lua.svc\n  server a 198.51.100.1:80 check\n", 3},
		{"option http_proxy", "listen l\n  mode http\n  bind 203.0.113.1:3128\n  option http_proxy\n  server a 0.0.0.0:0\n", 4},
		{"http-response redirect", fe + "  http-response redirect location /moved if { status 404 }\n  default_backend app\n" + be, 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := importText(t, "", tt.hap)
			var got []string
			found := false
			for _, r := range res.Refused {
				got = append(got, r.String())
				found = found || (r.Feature == FeatContentSwitching && r.Pos.Line == tt.line)
			}
			if !found {
				t.Errorf("refused:\n%s\nwant content-switching at line %d", strings.Join(got, "\n"), tt.line)
			}
			for _, f := range res.Files {
				if f.Name == "services.cue" {
					t.Errorf("a refused proxy was written:\n%s", f.Data)
				}
			}
		})
	}
}

// TestNoContentSwitching: cookie persistence (mapped, cookie_test.go),
// a cookie in mode tcp (HAProxy ignores it) and a backup server without
// a cookie route nothing elsewhere: imported.
func TestNoContentSwitching(t *testing.T) {
	for _, hap := range []string{
		"listen l\n  mode http\n  bind 203.0.113.1:80\n  cookie SRV insert\n  server a 198.51.100.1:80 check cookie a\n  server b 198.51.100.2:80 check cookie b\n",
		"listen l\n  mode tcp\n  bind 203.0.113.1:80\n  cookie SRV\n  server a 198.51.100.1:80 check cookie a\n  server b 198.51.100.2:80 check cookie b backup\n",
		"listen l\n  mode http\n  bind 203.0.113.1:80\n  cookie SRV insert\n  server a 198.51.100.1:80 check cookie a\n  server b 198.51.100.2:80 check backup\n",
	} {
		_, view := loadText(t, "", hap)
		if len(view.Services["l"].Servers) != 2 {
			t.Errorf("%q: servers %v, want a and b", hap, view.Services["l"].Servers)
		}
	}
}

// TestOldKeywords: HAProxy 1.x's redispatch is option redispatch, and a
// dispatch address in a proxy without servers is its one server.
func TestOldKeywords(t *testing.T) {
	res, view := loadText(t, "", "listen l 203.0.113.1:80\n  redispatch\n  dispatch 198.51.100.7:80\n")
	s, ok := view.Services["l"]
	if !ok {
		t.Fatalf("no service l:\n%s", goldenText(res))
	}
	if !s.Redispatch {
		t.Errorf("redispatch false, want true")
	}
	if len(s.Servers) != 1 || s.Servers["dispatch"].Address != "198.51.100.7:80" {
		t.Errorf("servers %+v, want dispatch 198.51.100.7:80", s.Servers)
	}
}

// TestHTTPWithoutDefaultBackend: an HTTP frontend without default_backend
// becomes a service of its rules alone, without servers or check; HAProxy
// answers a request no rule takes with 503, and so does a service
// without servers of its own. The written site validates.
func TestHTTPWithoutDefaultBackend(t *testing.T) {
	const hap = "defaults\n  option httpchk GET /\nfrontend www\n  mode http\n  bind 203.0.113.1:80\n  use_backend img if { path_beg /img }\n" +
		"backend img\n  mode http\n  server i 198.51.100.9:80 check\n"
	res := importText(t, "", hap)
	if bad, unbuilt := guardrailErrors(t, res); len(res.Refused) > 0 || len(res.Missing) > 0 || len(bad) > 0 || unbuilt > 0 {
		t.Fatalf("not a valid site: %v\n%s", bad, goldenText(res))
	}
	var svc string
	for _, f := range res.Files {
		if f.Name == "services.cue" {
			svc = string(f.Data)
		}
	}
	www, _, _ := strings.Cut(svc[strings.Index(svc, "www: {"):], "\n\t}\n")
	if !strings.Contains(www, "servers: {\n\t\t}") || strings.Contains(www, "check") || !strings.Contains(www, `use: "img"`) {
		t.Errorf("service www:\n%s", www)
	}
}
