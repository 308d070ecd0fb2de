package vrrp

import (
	"bufio"
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// serveTCP runs handle on every connection to a new loopback listener
// (with a 30 s deadline, closed after) until the test ends; it returns
// the listener's address.
func serveTCP(t *testing.T, handle func(c net.Conn)) string {
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
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// readRequest reads a request's head and returns its first line and Host.
func readRequest(c net.Conn) (line, host string) {
	br := bufio.NewReader(c)
	for {
		l, err := br.ReadString('\n')
		if line == "" {
			line = l
		}
		if h, ok := strings.CutPrefix(l, "Host: "); ok {
			host = strings.TrimSpace(h)
		}
		if err != nil || l == "\r\n" {
			return line, host
		}
	}
}

// rawHTTP answers every request with the bytes resp gives for its
// request line: a backend that sends what it likes.
func rawHTTP(t *testing.T, resp func(reqLine string) string) string {
	return "http://" + serveTCP(t, func(c net.Conn) {
		line, _ := readRequest(c)
		_, _ = io.WriteString(c, resp(line))
	}) + "/health"
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

// TestHTTPCheckMethodHostExpectString: an http track check sends the
// site's method and Host, and with an expect_string passes only when the
// string is in the first maxCheckBody bytes of the body.
func TestHTTPCheckMethodHostExpectString(t *testing.T) {
	type seen struct{ line, host string }
	got := make(chan seen, 16)
	body := map[string]string{
		"/ok":   "status: ready\n",
		"/late": strings.Repeat("x", maxCheckBody) + "ready",
		"/no":   "status: starting\n",
	}
	addr := serveTCP(t, func(c net.Conn) {
		var s seen
		s.line, s.host = readRequest(c)
		s.line = strings.TrimSpace(s.line)
		got <- s
		b := body[strings.Fields(s.line + " x x")[1]]
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(b))+"\r\n\r\n"+b)
	})
	base := "http://" + addr
	for _, c := range []struct {
		name       string
		check      Check
		ok         bool
		line, host string
	}{
		{"GET, status only", Check{Target: base + "/no"}, true, "GET /no HTTP/1.1", addr},
		{"HEAD with a virtual host", Check{Target: base + "/ok", Method: "HEAD", Host: "api.example.net"}, true, "HEAD /ok HTTP/1.1", "api.example.net"},
		{"POST", Check{Target: base + "/ok", Method: "POST"}, true, "POST /ok HTTP/1.1", addr},
		{"expect_string found", Check{Target: base + "/ok", ExpectString: "ready"}, true, "GET /ok HTTP/1.1", addr},
		{"expect_string missing", Check{Target: base + "/no", ExpectString: "ready"}, false, "GET /no HTTP/1.1", addr},
		{"expect_string past the bound", Check{Target: base + "/late", ExpectString: "ready"}, false, "GET /late HTTP/1.1", addr},
	} {
		ch := c.check
		ch.Kind, ch.ExpectStatus = CheckHTTP, 200
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := probe(ctx, ch, nil)
		cancel()
		if (err == nil) != c.ok {
			t.Errorf("%s: probe err = %v, want ok=%v", c.name, err, c.ok)
		}
		s := <-got
		if s.line != c.line || s.host != c.host {
			t.Errorf("%s: backend saw %q Host %q, want %q Host %q", c.name, s.line, s.host, c.line, c.host)
		}
	}
}

// TestTCPExpectCheck: a tcp-expect track check sends its line and passes
// only on the expected answer.
func TestTCPExpectCheck(t *testing.T) {
	addr := serveTCP(t, func(c net.Conn) {
		line, _ := bufio.NewReader(c).ReadString('\n')
		if line == "PING\r\n" {
			_, _ = io.WriteString(c, "+PONG\r\n")
		} else {
			_, _ = io.WriteString(c, "-ERR unknown\r\n")
		}
	})
	for _, c := range []struct {
		name, send, expect string
		ok                 bool
	}{
		{"answer matches", "PING\r\n", "+PONG", true},
		{"wrong answer", "HELLO\r\n", "+PONG", false},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := probe(ctx, Check{Kind: CheckTCPExpect, Target: addr, Send: c.send, Expect: c.expect}, nil)
		cancel()
		if (err == nil) != c.ok {
			t.Errorf("%s: probe err = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}
