package reconcile

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/vrrp"
)

// TestTrackCheckCarriesEverything: every field a site gives a track check
// reaches the engine's check (method, Host, expect_string and tcp-expect
// were once dropped in silence).
func TestTrackCheckCarriesEverything(t *testing.T) {
	for _, c := range []struct {
		name string
		in   spec.TrackCheck
		want vrrp.Check
	}{
		{"http to an address with a virtual host",
			spec.TrackCheck{Name: "api", Target: "127.0.0.1:6443", Check: spec.Check{Kind: "http", Method: "HEAD", Path: "/readyz", Host: "api.example.net", ExpectStatus: 200, ExpectString: "ok"}},
			vrrp.Check{Name: "api", Kind: vrrp.CheckHTTP, Target: "http://127.0.0.1:6443/readyz", Method: "HEAD", Host: "api.example.net", ExpectStatus: 200, ExpectString: "ok"}},
		{"http to the host alone",
			spec.TrackCheck{Name: "web", Check: spec.Check{Kind: "http", Path: "/", Host: "198.51.100.10:80", ExpectStatus: 204}},
			vrrp.Check{Name: "web", Kind: vrrp.CheckHTTP, Target: "http://198.51.100.10:80/", ExpectStatus: 204}},
		{"tcp-expect",
			spec.TrackCheck{Name: "redis", Target: "127.0.0.1:6379", Check: spec.Check{Kind: "tcp-expect", Send: "PING\r\n", Expect: "+PONG"}},
			vrrp.Check{Name: "redis", Kind: vrrp.CheckTCPExpect, Target: "127.0.0.1:6379", Send: "PING\r\n", Expect: "+PONG"}},
	} {
		got, err := trackCheck(c.in)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if d := cmp.Diff(c.want, got); d != "" {
			t.Errorf("%s: (-want +got)\n%s", c.name, d)
		}
	}
}
