package importer

import (
	"strings"
	"testing"

	"github.com/gitgw/gitgw/cue/spec"
)

// TestSOCKS4Import: HAProxy's socks4 becomes the server's via, with
// check-via-socks4 as via.check (and from default-server too); a server
// without socks4 stays direct, and check-via-socks4 alone is warned, as
// HAProxy then checks the server directly.
func TestSOCKS4Import(t *testing.T) {
	const listen = "listen smtp\n  mode tcp\n  bind 203.0.113.1:25\n  timeout client 30s\n  timeout server 30s\n  timeout connect 5s\n  option tcp-check\n"
	for _, tt := range []struct {
		name, hap string
		want      map[string]*spec.ServerVia
		warn      string
	}{
		{"socks4 with and without its checks", listen +
			"  server a 198.51.100.1:25 check socks4 127.0.0.1:1080 check-via-socks4\n" +
			"  server b 198.51.100.2:25 socks4 127.0.0.1:1081 check\n" +
			"  server c 198.51.100.3:25 check backup\n",
			map[string]*spec.ServerVia{"a": {SOCKS4: "127.0.0.1:1080", Check: true}, "b": {SOCKS4: "127.0.0.1:1081"}, "c": nil}, ""},
		{"from default-server", listen + "  default-server socks4 127.0.0.1:1080 check-via-socks4\n" +
			"  server a 198.51.100.1:25 check\n",
			map[string]*spec.ServerVia{"a": {SOCKS4: "127.0.0.1:1080", Check: true}}, ""},
		{"ssl inside the tunnel", listen + "  server a 198.51.100.1:443 ssl verify none socks4 127.0.0.1:1080 check\n",
			map[string]*spec.ServerVia{"a": {SOCKS4: "127.0.0.1:1080"}}, ""},
		{"check-via-socks4 without socks4", listen + "  server a 198.51.100.1:25 check check-via-socks4\n",
			map[string]*spec.ServerVia{"a": nil}, "hap:8: server a check-via-socks4 without socks4: not mapped (HAProxy checks the server directly)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, view := loadText(t, "", tt.hap)
			if len(res.Refused) > 0 {
				t.Fatalf("refused: %v", res.Refused)
			}
			s, ok := view.Services["smtp"]
			if !ok {
				t.Fatalf("no service smtp:\n%s", goldenText(res))
			}
			for name, want := range tt.want {
				got := s.Servers[name].Via
				if (got == nil) != (want == nil) || got != nil && *got != *want {
					t.Errorf("server %s: via %+v, want %+v\n%s", name, got, want, goldenText(res))
				}
			}
			text := goldenText(res)
			if tt.warn != "" && !strings.Contains(text, tt.warn) {
				t.Errorf("no warning %q in\n%s", tt.warn, text)
			}
			if strings.Contains(text, "check-via-socks4: not mapped") {
				t.Errorf("a socks4 keyword was dropped:\n%s", text)
			}
		})
	}
}
