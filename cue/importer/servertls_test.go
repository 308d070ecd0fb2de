package importer

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gitgw/gitgw/cue/spec"
)

// TestHAProxyServerTLS: a server's `ssl` and its settings become the
// server's tls, which loads through the real loader and schema; its checks
// go over TLS too (HAProxy's rule) unless the check goes elsewhere or
// no-check-ssl says otherwise; what the site cannot say refuses the
// service at its line.
func TestHAProxyServerTLS(t *testing.T) {
	const listen = "listen api\n  bind 203.0.113.1:443\n"
	for _, tt := range []struct {
		name, global, cfg string
		want              spec.ServerTLS
		checkTLS          *spec.CheckTLS
	}{
		{name: "verify none", cfg: "  server a 198.51.100.1:443 ssl verify none check\n",
			want: spec.ServerTLS{CheckTLS: spec.CheckTLS{Verify: "none"}, SessionReuse: true}, checkTLS: &spec.CheckTLS{Verify: "none"}},
		{name: "verify required, CA, constant SNI, crt, alpn, no reuse",
			cfg:      "  server a 198.51.100.1:443 ssl verify required ca-file /etc/ca.pem sni str(api.example) crt /etc/gw.pem alpn h2,http/1.1 no-ssl-reuse check check-sni api.example\n",
			want:     spec.ServerTLS{CheckTLS: spec.CheckTLS{Verify: "required", CAFile: "/etc/ca.pem", SNI: "api.example", CertFile: "/etc/gw.pem", KeyFile: "/etc/gw.pem"}, ALPN: []string{"h2", "http/1.1"}},
			checkTLS: &spec.CheckTLS{Verify: "required", SNI: "api.example", CAFile: "/etc/ca.pem", CertFile: "/etc/gw.pem", KeyFile: "/etc/gw.pem"}},
		{name: "global ssl-server-verify none; check on another port stays plain", global: "global\n  ssl-server-verify none\n",
			cfg:  "  server a 198.51.100.1:443 ssl check port 8080\n",
			want: spec.ServerTLS{CheckTLS: spec.CheckTLS{Verify: "none"}, SessionReuse: true}},
		{name: "no-check-ssl", cfg: "  server a 198.51.100.1:443 ssl verify none no-check-ssl check\n",
			want: spec.ServerTLS{CheckTLS: spec.CheckTLS{Verify: "none"}, SessionReuse: true}},
		{name: "verifyhost, system CA", cfg: "  server a 198.51.100.1:443 ssl verify required ca-file @system-ca verifyhost api.example check no-check-ssl\n",
			want: spec.ServerTLS{CheckTLS: spec.CheckTLS{Verify: "required"}, VerifyHost: "api.example", SessionReuse: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, view := loadText(t, "", tt.global+listen+tt.cfg)
			if len(res.Refused) > 0 {
				t.Fatalf("refused: %v", res.Refused)
			}
			s := view.Services["api"]
			got := s.Servers["a"].TLS
			if got == nil {
				t.Fatalf("server a has no tls:\n%s", goldenText(res))
			}
			if d := cmp.Diff(tt.want, *got, checkCmp); d != "" {
				t.Errorf("server tls (-want +got):\n%s", d)
			}
			var ck *spec.CheckTLS
			if s.Check != nil {
				ck = s.Check.TLS
			}
			if d := cmp.Diff(tt.checkTLS, ck, checkCmp); d != "" {
				t.Errorf("check tls (-want +got):\n%s", d)
			}
		})
	}
	for _, tt := range []struct{ name, cfg, want string }{
		{"sni from the client's TLS", "  server a 198.51.100.1:443 ssl verify none sni ssl_fc_sni check\n", "sni ssl_fc_sni"},
		{"sni from a header", "  server a 198.51.100.1:443 ssl verify none sni req.hdr(host) check\n", "sni req.hdr(host)"},
		{"crl-file", "  server a 198.51.100.1:443 ssl ca-file /etc/ca.pem crl-file /etc/crl.pem sni str(a.example) check no-check-ssl\n", "crl-file"},
		{"relative ca-file", "  server a 198.51.100.1:443 ssl ca-file ca.pem check no-check-ssl\n", "ca-file ca.pem (a relative path"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := importText(t, "", listen+tt.cfg)
			found := false
			for _, r := range res.Refused {
				if r.Feature == FeatServerTLS && r.Pos.Line == 3 && strings.Contains(r.String(), tt.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("refused %v; want %s at line 3 naming %q", res.Refused, FeatServerTLS, tt.want)
			}
		})
	}
}
