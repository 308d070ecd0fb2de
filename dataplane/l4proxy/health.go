package l4proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Clock is the time source of health checks, injectable in tests.
type Clock interface {
	Now() time.Time
	// After delivers once d has elapsed (or ctx is done: the channel may then never fire).
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// healthMachine is HAProxy's check state machine: a server goes down after
// Fall consecutive failures and up after Rise consecutive successes; the
// next check comes after FastInterval while a transition is in progress,
// DownInterval while down and Interval otherwise. It is pure: no clock, no I/O.
type healthMachine struct {
	up         bool
	succ, fail int
}

// observe feeds one check result; it reports whether the state flipped.
func (h *healthMachine) observe(ok bool, c *Check) bool {
	if ok {
		h.fail = 0
		if h.up {
			return false
		}
		h.succ++
		if h.succ >= c.Rise {
			h.up, h.succ = true, 0
			return true
		}
		return false
	}
	h.succ = 0
	if !h.up {
		return false
	}
	h.fail++
	if h.fail >= c.Fall {
		h.up, h.fail = false, 0
		return true
	}
	return false
}

// next is the delay before the following check.
func (h *healthMachine) next(c *Check) time.Duration {
	switch {
	case h.up && h.fail > 0, !h.up && h.succ > 0:
		return c.FastInterval
	case !h.up:
		return c.DownInterval
	}
	return c.Interval
}

// checker probes one server.
type checker func(ctx context.Context, target netip.AddrPort, srv *server) (ok bool, detail string)

func checkerFor(c *Check) checker {
	switch c.Type {
	case CheckTCPExpect:
		return func(ctx context.Context, t netip.AddrPort, _ *server) (bool, string) { return tcpExpect(ctx, t, c) }
	case CheckHTTP:
		return func(ctx context.Context, t netip.AddrPort, _ *server) (bool, string) { return httpCheck(ctx, t, c) }
	case CheckCommand:
		return func(ctx context.Context, t netip.AddrPort, s *server) (bool, string) {
			return commandCheck(ctx, t, s.name, c)
		}
	}
	return func(ctx context.Context, t netip.AddrPort, _ *server) (bool, string) { return tcpConnect(ctx, t) }
}

var checkDialer = net.Dialer{KeepAlive: -1}

func tcpConnect(ctx context.Context, t netip.AddrPort) (bool, string) {
	c, err := checkDialer.DialContext(ctx, "tcp", t.String())
	if err != nil {
		return false, "L4 connect: " + shortErr(err)
	}
	_ = c.Close()
	return true, "L4 ok"
}

func tcpExpect(ctx context.Context, t netip.AddrPort, ck *Check) (bool, string) {
	c, err := checkDialer.DialContext(ctx, "tcp", t.String())
	if err != nil {
		return false, "L4 connect: " + shortErr(err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if ck.Send != "" {
		if _, err := io.WriteString(c, ck.Send); err != nil {
			return false, "L7 send: " + shortErr(err)
		}
	}
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 4096)
	for len(buf) < 64<<10 {
		n, err := c.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if strings.Contains(string(buf), ck.Expect) {
			return true, "L7 ok"
		}
		if err != nil {
			return false, fmt.Sprintf("L7 expect %q not found: %s", ck.Expect, shortErr(err))
		}
	}
	return false, fmt.Sprintf("L7 expect %q not found in 64 KiB", ck.Expect)
}

// httpCheck sends one HTTP/1.0-style request (Connection: close) and
// checks the status and, optionally, a string in the body.
func httpCheck(ctx context.Context, t netip.AddrPort, ck *Check) (bool, string) {
	c, err := checkDialer.DialContext(ctx, "tcp", t.String())
	if err != nil {
		return false, "L4 connect: " + shortErr(err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	host := ck.Host
	if host == "" {
		host = t.String()
	}
	req := ck.Method + " " + ck.Path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: gitgw-check\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return false, "L7 send: " + shortErr(err)
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		return false, "L7 response: " + shortErr(err)
	}
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/") {
		return false, "L7 bad status line"
	}
	code, err := strconv.Atoi(f[1])
	if err != nil {
		return false, "L7 bad status code"
	}
	if ck.ExpectStatus != 0 && code != ck.ExpectStatus || ck.ExpectStatus == 0 && (code < 200 || code >= 400) {
		return false, fmt.Sprintf("L7 status %d", code)
	}
	if ck.Expect == "" {
		return true, fmt.Sprintf("L7 status %d", code)
	}
	body, _ := io.ReadAll(io.LimitReader(br, 64<<10))
	if strings.Contains(string(body), ck.Expect) {
		return true, fmt.Sprintf("L7 status %d, body matches", code)
	}
	return false, fmt.Sprintf("L7 status %d, body lacks %q", code, ck.Expect)
}

func commandCheck(ctx context.Context, t netip.AddrPort, name string, ck *Check) (bool, string) {
	cmd := exec.CommandContext(ctx, ck.Command[0], ck.Command[1:]...)
	cmd.Env = append(cmd.Environ(),
		"GITGW_SERVER_NAME="+name,
		"GITGW_SERVER_ADDR="+t.Addr().String(),
		"GITGW_SERVER_PORT="+strconv.Itoa(int(t.Port())))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return false, "command: " + shortErr(err) + ": " + strings.TrimSpace(string(out))
	}
	return true, "command ok"
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && i+2 < len(s) {
		return s[i+2:]
	}
	return s
}

// runChecks is the health-check loop of one server: it owns the state
// machine and tells the service when the server flips.
func (svc *service) runChecks(ctx context.Context, srv *server, ck *Check) {
	clock := svc.pool.clock
	probe := checkerFor(ck)
	h := healthMachine{up: srv.up.Load()}
	if !h.up {
		// A server that was down before a reconfiguration needs Rise successes.
		h.succ = 0
	}
	// Spread the first checks of a service over one interval.
	delay := time.Duration(fnvString(srv.name) % uint64(max(ck.Interval/4, time.Millisecond)))
	for {
		select {
		case <-ctx.Done():
			return
		case <-clock.After(delay):
		}
		cfg := srv.cfg.Load()
		target := cfg.Addr
		if ck.Port != 0 {
			target = netip.AddrPortFrom(target.Addr(), ck.Port)
		}
		start := clock.Now()
		cctx, cancel := context.WithTimeout(ctx, ck.Timeout)
		ok, detail := probe(cctx, target, srv)
		cancel()
		if ctx.Err() != nil {
			return
		}
		now := clock.Now()
		if !ok {
			srv.failedChecks.Add(1)
		}
		srv.mu.Lock()
		srv.checkDesc, srv.checkDur = detail, now.Sub(start)
		srv.lastCheck, srv.lastCheckOK = start, ok
		srv.mu.Unlock()
		if h.observe(ok, ck) {
			svc.serverHealth(srv, h.up, detail, now)
		}
		delay = h.next(ck)
	}
}
