package vrrp

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// rawHTTP answers every request with the bytes resp gives for its
// request line: a backend that sends what it likes.
func rawHTTP(t *testing.T, resp func(reqLine string) string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				br := bufio.NewReader(c)
				first := ""
				for {
					line, err := br.ReadString('\n')
					if first == "" {
						first = line
					}
					if err != nil || line == "\r\n" {
						break
					}
				}
				_, _ = io.WriteString(c, resp(first))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return "http://" + ln.Addr().String() + "/health"
}

// TestHTTPCheckBounded: an http check reads no more than maxCheckHeader of
// status line and headers from a backend, follows no redirect, and still
// passes on an ordinary answer.
func TestHTTPCheckBounded(t *testing.T) {
	ok := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	for _, c := range []struct {
		name, resp string
		ok         bool
	}{
		{"plain 200", ok, true},
		{"200 with a 1 MiB body, unread", "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n" + strings.Repeat("x", 1<<20), true},
		{"256 KiB status line", "HTTP/1.1 200 OK" + strings.Repeat("K", 256<<10) + "\r\nContent-Length: 0\r\n\r\n", false},
		{"1 MiB of headers", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("p", 1000)+"\r\n", 1<<10) + "Content-Length: 0\r\n\r\n", false},
		{"redirect to a 200", "HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 0\r\n\r\n", false},
	} {
		target := rawHTTP(t, func(reqLine string) string {
			if strings.HasPrefix(reqLine, "GET /ok ") {
				return ok
			}
			return c.resp
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := probe(ctx, Check{Kind: CheckHTTP, Target: target, ExpectStatus: 200}, nil)
		cancel()
		if (err == nil) != c.ok {
			t.Errorf("%s: probe err = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}
