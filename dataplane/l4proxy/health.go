package l4proxy

import (
	"context"
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

// checkerFor builds the probe of one server's check loop: its TLS settings
// and predefined sequences are prepared once, not at every check.
func checkerFor(c *Check) checker {
	p := newProber(c)
	switch c.Type {
	case CheckHTTP:
		return func(ctx context.Context, t netip.AddrPort, _ *server) (bool, string) { return p.http(ctx, t) }
	case CheckCommand:
		return func(ctx context.Context, t netip.AddrPort, s *server) (bool, string) {
			return commandCheck(ctx, t, s.name, c)
		}
	case CheckTCP:
		return func(ctx context.Context, t netip.AddrPort, _ *server) (bool, string) { return p.connectOnly(ctx, t) }
	}
	// tcp-expect, tcp-check and the protocol checks are sequences.
	steps, err := stepsFor(c)
	if err != nil {
		return func(context.Context, netip.AddrPort, *server) (bool, string) { return false, "check: " + err.Error() }
	}
	if len(steps) == 0 {
		return func(ctx context.Context, t netip.AddrPort, _ *server) (bool, string) { return p.connectOnly(ctx, t) }
	}
	return func(ctx context.Context, t netip.AddrPort, _ *server) (bool, string) {
		return p.sequence(ctx, t, steps)
	}
}

var checkDialer = net.Dialer{KeepAlive: -1}

func commandCheck(ctx context.Context, t netip.AddrPort, name string, ck *Check) (bool, string) {
	cmd := exec.CommandContext(ctx, ck.Command[0], ck.Command[1:]...)
	cmd.Env = append(cmd.Environ(),
		"GITGW_SERVER_NAME="+name,
		"GITGW_SERVER_ADDR="+t.Addr().String(),
		"GITGW_SERVER_PORT="+strconv.Itoa(int(t.Port())))
	// Only the start of the output goes into the status: a command that
	// prints without end does not grow the agent.
	var out cappedBuffer
	out.max = 1024
	cmd.Stdout, cmd.Stderr = &out, &out
	// A child left holding the output pipe must not hold the check loop
	// past its timeout.
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return false, "command: " + shortErr(err) + ": " + strings.TrimSpace(string(out.b))
	}
	return true, "command ok"
}

// cappedBuffer keeps the first max bytes written to it and drops the rest.
type cappedBuffer struct {
	b   []byte
	max int
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if room := c.max - len(c.b); room > 0 {
		c.b = append(c.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
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
		target := checkTarget(cfg.Addr, ck)
		start := clock.Now()
		cctx, cancel := context.WithTimeout(ctx, ck.Timeout)
		ok, detail := false, "unresolved"
		if !cfg.unresolved { // a name without an address: nothing to probe
			ok, detail = probe(cctx, target, srv)
		}
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

// checkTarget is where a server's check connects: its own address and
// port unless the check overrides either.
func checkTarget(addr netip.AddrPort, ck *Check) netip.AddrPort {
	if ck.Address.IsValid() {
		addr = netip.AddrPortFrom(ck.Address, addr.Port())
	}
	if ck.Port != 0 {
		addr = netip.AddrPortFrom(addr.Addr(), ck.Port)
	}
	return addr
}
