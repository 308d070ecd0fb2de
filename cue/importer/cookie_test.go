package importer

import (
	"strings"
	"testing"

	"github.com/gitgw/gitgw/cue/spec"
)

// TestCookiePersistence: HAProxy's cookie line and servers' cookie values
// become the service's cookie and the servers' values, in a listen and
// in a pool that a rule sends to, a cookie naming a backup server
// included (HAProxy serves it there while the others are up, and so does
// gitgw's proxy); a cookie HAProxy ignores (mode tcp) is not mapped; what
// the proxy does not build refuses the service at the cookie line.
func TestCookiePersistence(t *testing.T) {
	const listen = "listen l\n  mode http\n  bind 203.0.113.1:80\n  timeout client 30s\n  timeout server 30s\n  timeout connect 5s\n"
	const servers = "  server a 198.51.100.1:80 check cookie a\n  server b 198.51.100.2:80 check cookie b backup\n  server c 198.51.100.3:80 check\n"
	for _, tt := range []struct {
		name, hap string
		svc       string
		want      *spec.ServiceCookie
		values    map[string]string
		refuse    int // the line of a cookie refusal; 0: imported
	}{
		{"insert with every option built", listen + "  cookie SRV insert indirect nocache httponly secure domain .example.com\n" + servers, "l",
			&spec.ServiceCookie{Name: "SRV", Mode: "insert", Indirect: true, NoCache: true, HTTPOnly: true, Secure: true, Domain: ".example.com"},
			map[string]string{"a": "a", "b": "b"}, 0},
		{"passive, a backup named by its cookie", listen + "  cookie SERVERID\n" + servers, "l",
			&spec.ServiceCookie{Name: "SERVERID", Mode: "passive"}, map[string]string{"a": "a", "b": "b"}, 0},
		{"passive: insert's attributes have no effect", listen + "  cookie SERVERID indirect secure\n" + servers, "l",
			&spec.ServiceCookie{Name: "SERVERID", Mode: "passive", Indirect: true}, map[string]string{"a": "a", "b": "b"}, 0},
		{"in a pool a rule sends to", "frontend www\n  mode http\n  bind 203.0.113.1:80\n  timeout client 30s\n  use_backend app if { path_beg /app }\n  default_backend web\n" +
			"backend web\n  mode http\n  timeout server 30s\n  timeout connect 5s\n  server w 198.51.100.9:80 check\n" +
			"backend app\n  mode http\n  timeout server 30s\n  timeout connect 5s\n  cookie APP insert indirect\n" + servers, "app",
			&spec.ServiceCookie{Name: "APP", Mode: "insert", Indirect: true}, map[string]string{"a": "a", "b": "b"}, 0},
		{"mode tcp: HAProxy ignores it", strings.Replace(listen, "http", "tcp", 1) + "  cookie SRV insert\n" + servers, "l", nil, nil, 0},
		{"rewrite", listen + "  cookie SRV rewrite\n" + servers, "l",
			&spec.ServiceCookie{Name: "SRV", Mode: "rewrite"}, map[string]string{"a": "a", "b": "b"}, 0},
		{"prefix", listen + "  cookie JSESSIONID prefix nocache\n" + servers, "", nil, nil, 7},
		{"maxidle", listen + "  cookie SRV insert indirect maxidle 30m\n" + servers, "", nil, nil, 7},
		{"postonly", listen + "  cookie SRV insert postonly\n" + servers, "", nil, nil, 7},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.refuse != 0 {
				res := importText(t, "", tt.hap)
				var got []string
				found := false
				for _, r := range res.Refused {
					got = append(got, r.String())
					found = found || r.Feature == FeatCookie && r.Pos.Line == tt.refuse
				}
				if !found {
					t.Errorf("refused:\n%s\nwant cookie at line %d", strings.Join(got, "\n"), tt.refuse)
				}
				return
			}
			res, view := loadText(t, "", tt.hap)
			s, ok := view.Services[tt.svc]
			if !ok {
				t.Fatalf("no service %s:\n%s", tt.svc, goldenText(res))
			}
			switch {
			case tt.want == nil && s.Cookie != nil:
				t.Errorf("cookie %+v, want none", *s.Cookie)
			case tt.want != nil && (s.Cookie == nil || *s.Cookie != *tt.want):
				t.Errorf("cookie %+v, want %+v\n%s", s.Cookie, *tt.want, goldenText(res))
			}
			for name, sv := range s.Servers {
				if sv.Cookie != tt.values[name] {
					t.Errorf("server %s: cookie %q, want %q", name, sv.Cookie, tt.values[name])
				}
			}
			if len(res.Refused) > 0 {
				t.Errorf("refused: %v", res.Refused)
			}
		})
	}
}
