package healthcheck

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// TestSMTPCheckIPv6: keepalived's SMTP_CHECK of an IPv6 real server (the
// corpus's acassen-IPv6.conf) passes against an IPv6 SMTP server that
// greets with 220 and answers EHLO with the check's domain, and fails
// against one that refuses (554), in a namespace of its own (::1 there).
func TestSMTPCheckIPv6(t *testing.T) {
	lab.RequireRoot(t)
	lab.SkipShort(t, "network namespaces")
	ns := lab.NewNetns(t, "h6hc")
	serve := func(greeting string) netip.AddrPort {
		var ln net.Listener
		if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp6", "[::1]:0"); return }); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					_ = c.SetDeadline(time.Now().Add(5 * time.Second))
					fmt.Fprintf(c, "%s\r\n", greeting)
					r := bufio.NewReader(c)
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if strings.TrimSpace(line) == "EHLO foo.bar.com" {
						fmt.Fprint(c, "250-mail.example\r\n250 OK\r\n")
					} else {
						fmt.Fprint(c, "500 what?\r\n")
					}
					_, _ = r.ReadString('\n') // QUIT
				}()
			}
		}()
		return netip.MustParseAddrPort(ln.Addr().String())
	}
	ck := (&Check{Type: CheckSMTP, Domain: "foo.bar.com", Timeout: 3 * time.Second}).WithDefaults()
	for _, tc := range []struct {
		greeting string
		ok       bool
	}{{"220 mail.example ESMTP", true}, {"554 no service", false}} {
		target := serve(tc.greeting)
		var ok bool
		var detail string
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		// The probe dials from the calling thread, in the namespace.
		if err := ns.Do(func() error { ok, detail = NewProbe(ck)(ctx, target, "ae00--10-25"); return nil }); err != nil {
			t.Fatal(err)
		}
		cancel()
		if ok != tc.ok {
			t.Errorf("smtp check of %v greeting %q: ok %v (%s), want %v", target, tc.greeting, ok, detail, tc.ok)
		}
	}
}
