package httpproxy

import (
	"net/http"
	"strings"
	"testing"
)

// TestCookieRequest: the server a request's cookie names, and what the
// server receives of the Cookie header (insert with indirect strips the
// persistence cookie, and only it).
func TestCookieRequest(t *testing.T) {
	values := map[string]string{"s1": "a", "s2": "b"}
	for _, tt := range []struct {
		name   string
		ck     Cookie
		header []string
		prefer string
		sent   []string
	}{
		{"insert indirect strips", Cookie{Name: "SRV", Indirect: true}, []string{"lang=en; SRV=b; x=1"}, "s2", []string{"lang=en; x=1"}},
		{"insert keeps without indirect", Cookie{Name: "SRV"}, []string{"SRV=a"}, "s1", []string{"SRV=a"}},
		{"passive indirect keeps", Cookie{Name: "SRV", Mode: CookiePassive, Indirect: true}, []string{"SRV=a"}, "s1", []string{"SRV=a"}},
		{"rewrite indirect keeps", Cookie{Name: "SRV", Mode: CookieRewrite, Indirect: true}, []string{"SRV=b"}, "s2", []string{"SRV=b"}},
		{"first occurrence counts", Cookie{Name: "SRV", Indirect: true}, []string{"SRV=zz; SRV=a"}, "", nil},
		{"another name alike", Cookie{Name: "SRV", Indirect: true}, []string{"SRVX=a", "SRV=a"}, "s1", []string{"SRVX=a"}},
		{"no cookie", Cookie{Name: "SRV", Indirect: true}, nil, "", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pc := newPoolCookie(&tt.ck, values)
			req, _ := http.NewRequest("GET", "http://x/", nil)
			for _, h := range tt.header {
				req.Header.Add("Cookie", h)
			}
			if got := pc.preferred(req); got != tt.prefer {
				t.Errorf("preferred %q, want %q", got, tt.prefer)
			}
			if got := req.Header.Values("Cookie"); strings.Join(got, "|") != strings.Join(tt.sent, "|") {
				t.Errorf("Cookie sent %q, want %q", got, tt.sent)
			}
		})
	}
}

// TestCookieResponse: the Set-Cookie and Cache-Control a response gets,
// as HAProxy writes them.
func TestCookieResponse(t *testing.T) {
	values := map[string]string{"s1": "a"}
	for _, tt := range []struct {
		name          string
		ck            Cookie
		server        string
		direct        bool
		fromServer    []string
		set, cacheCtl string
	}{
		{"insert, balanced", Cookie{Name: "SRV", NoCache: true, HTTPOnly: true, Secure: true, Domain: ".example.com"}, "s1", false,
			[]string{"sid=1", "SRV=own"}, "sid=1|SRV=a; path=/; domain=.example.com; HttpOnly; Secure", "private"},
		{"insert, directed", Cookie{Name: "SRV", NoCache: true}, "s1", true, []string{"SRV=own"}, "", ""},
		{"insert, a server without a value clears it", Cookie{Name: "SRV"}, "s9", false, nil, "SRV=; Expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/", ""},
		{"passive keeps the server's", Cookie{Name: "SRV", Mode: CookiePassive}, "s1", true, []string{"SRV=a"}, "SRV=a", ""},
		{"passive indirect, directed, drops the server's", Cookie{Name: "SRV", Mode: CookiePassive, Indirect: true}, "s1", true, []string{"SRV=a", "o=1"}, "o=1", ""},
		{"rewrite, balanced", Cookie{Name: "SRV", Mode: CookieRewrite}, "s1", false, []string{"SRV=own; Path=/app", "o=1"}, "SRV=a; Path=/app|o=1", ""},
		{"rewrite indirect, directed, drops it", Cookie{Name: "SRV", Mode: CookieRewrite, Indirect: true}, "s1", true, []string{"SRV=own"}, "", ""},
		{"rewrite, a server without a value keeps its own", Cookie{Name: "SRV", Mode: CookieRewrite}, "s9", false, []string{"SRV=own"}, "SRV=own", ""},
		{"passive indirect, balanced, keeps it", Cookie{Name: "SRV", Mode: CookiePassive, Indirect: true}, "s1", false, []string{"SRV=a"}, "SRV=a", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pc := newPoolCookie(&tt.ck, values)
			resp := &http.Response{Header: http.Header{}}
			for _, v := range tt.fromServer {
				resp.Header.Add("Set-Cookie", v)
			}
			pc.respond(resp, tt.server, tt.direct)
			if got := strings.Join(resp.Header.Values("Set-Cookie"), "|"); got != tt.set {
				t.Errorf("Set-Cookie %q, want %q", got, tt.set)
			}
			if got := resp.Header.Get("Cache-Control"); got != tt.cacheCtl {
				t.Errorf("Cache-Control %q, want %q", got, tt.cacheCtl)
			}
		})
	}
}

// TestCookieValidate: errors name the field.
func TestCookieValidate(t *testing.T) {
	c := &Cookie{Name: "S R V", Mode: CookiePassive, Secure: true, Domain: "a b"}
	errs := c.Validate(map[string]string{"s1": "x", "s2": "x", "s3": "a;b"})
	var all []string
	for _, e := range errs {
		all = append(all, e.Error())
	}
	got := strings.Join(all, "\n")
	for _, want := range []string{`name "S R V"`, "for insert mode", `domain "a b"`, `server "s2": cookie "x" already names server "s1"`, `server "s3": cookie "a;b"`} {
		if !strings.Contains(got, want) {
			t.Errorf("errors:\n%s\nwant one with %q", got, want)
		}
	}
	if errs := (&Cookie{Name: "SRV"}).Validate(map[string]string{"s1": "a", "s2": "b"}); len(errs) > 0 {
		t.Errorf("a valid cookie: %v", errs)
	}
}
