package importer

import "testing"

// TestHAProxyAddrPort: HAProxy's ADDR[:PORT] as source lines write it;
// the last colon starts the port unless the IPv6 address is in brackets.
func TestHAProxyAddrPort(t *testing.T) {
	for _, tt := range []struct {
		in, addr, port string
		bad            bool
	}{
		{in: "10.0.3.1", addr: "10.0.3.1"},
		{in: "192.168.21.2:0", addr: "192.168.21.2"},
		{in: "ipv4@198.51.100.2", addr: "198.51.100.2"},
		{in: "0.0.0.0", addr: "0.0.0.0"},
		{in: "*", addr: "0.0.0.0"},
		{in: "198.51.100.2:1025-65000", addr: "198.51.100.2", port: "1025-65000"},
		{in: "198.51.100.2:4000", addr: "198.51.100.2", port: "4000"},
		{in: "[2001:db8::2]", addr: "2001:db8::2"},
		{in: "[2001:db8::2]:0", addr: "2001:db8::2"},
		{in: "ipv6@[2001:db8::2]:80", addr: "2001:db8::2", port: "80"},
		{in: "2001:db8::2", bad: true}, // HAProxy reads "2001:db8:" and port 2
		{in: "${SRC}", bad: true},
		{in: "[2001:db8::2", bad: true},
		{in: "fe80::1%eth0", bad: true},
	} {
		a, port, err := hapAddrPort(tt.in)
		switch {
		case tt.bad && err == nil:
			t.Errorf("%s: read as %v port %q, want an error", tt.in, a, port)
		case !tt.bad && (err != nil || a.String() != tt.addr || port != tt.port):
			t.Errorf("%s: %v port %q (%v), want %s port %q", tt.in, a, port, err, tt.addr, tt.port)
		}
	}
}
