package healthcheck

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestSOCKS4Request(t *testing.T) {
	got, err := SOCKS4Request(netip.MustParseAddrPort("198.51.100.10:443"))
	want := [SOCKS4RequestLen]byte{4, 1, 0x01, 0xbb, 198, 51, 100, 10, 0}
	if err != nil || got != want {
		t.Errorf("request: % x %v, want % x", got, err, want)
	}
	if _, err := SOCKS4Request(netip.MustParseAddrPort("[2001:db8::1]:443")); !errors.Is(err, ErrSOCKS4IPv6) {
		t.Errorf("IPv6 destination: %v, want ErrSOCKS4IPv6", err)
	}
	if got, err := SOCKS4Request(netip.MustParseAddrPort("[::ffff:198.51.100.10]:25")); err != nil || got[7] != 10 {
		t.Errorf("v4-mapped destination: % x %v", got, err)
	}
}

func TestSOCKS4Reply(t *testing.T) {
	for code, want := range map[byte]string{0x5a: "", 0x5b: "0x5b (request rejected or failed)", 0x5c: "identd", 0x05: "not a SOCKS4 reply"} {
		err := SOCKS4Reply([SOCKS4ReplyLen]byte{0, code})
		if (want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), want) {
			t.Errorf("code 0x%02x: %v, want %q", code, err, want)
		}
	}
}

// TestDialSOCKS4Closed: a proxy that hangs up before its reply (OpenSSH's
// answer to a CONNECT it could not make) is a failed dial, and the check
// says so.
func TestDialSOCKS4Closed(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			var req [SOCKS4RequestLen]byte
			_, _ = c.Read(req[:])
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	proxy := ln.Addr().(*net.TCPAddr).AddrPort()
	if _, err := DialSOCKS4(ctx, &net.Dialer{}, proxy, netip.MustParseAddrPort("198.51.100.10:25")); !errors.Is(err, ErrSOCKS4Closed) {
		t.Errorf("dial: %v, want ErrSOCKS4Closed", err)
	}
	p := newProber(&Check{Type: CheckTCP})
	p.via = proxy
	ok, detail := p.connectOnly(ctx, netip.MustParseAddrPort("198.51.100.10:25"))
	if ok || !strings.Contains(detail, "via socks4 "+proxy.String()) || !strings.Contains(detail, "closed the connection before its reply") {
		t.Errorf("check through the proxy: %v %q", ok, detail)
	}
}
