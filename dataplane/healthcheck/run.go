package healthcheck

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Clock is the time source of health checks, injectable in tests.
type Clock interface {
	Now() time.Time
	// After delivers once d has elapsed (or ctx is done: the channel may then never fire).
	After(d time.Duration) <-chan time.Time
}

// RealClock is the system's clock.
type RealClock struct{}

// Now implements Clock.
func (RealClock) Now() time.Time { return time.Now() }

// After implements Clock.
func (RealClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Machine is HAProxy's check state machine: a server goes down after
// Fall consecutive failures and up after Rise consecutive successes; the
// next check comes after FastInterval while a transition is in progress,
// DownInterval while down and Interval otherwise. It is pure: no clock, no
// I/O. Up is the state to start from; a server that starts down needs
// Rise successes.
type Machine struct {
	Up         bool
	succ, fail int
}

// Observe feeds one check result; it reports whether the state flipped.
func (h *Machine) Observe(ok bool, c *Check) bool {
	if ok {
		h.fail = 0
		if h.Up {
			return false
		}
		h.succ++
		if h.succ >= c.Rise {
			h.Up, h.succ = true, 0
			return true
		}
		return false
	}
	h.succ = 0
	if !h.Up {
		return false
	}
	h.fail++
	if h.fail >= c.Fall {
		h.Up, h.fail = false, 0
		return true
	}
	return false
}

// Next is the delay before the following check.
func (h *Machine) Next(c *Check) time.Duration {
	switch {
	case h.Up && h.fail > 0, !h.Up && h.succ > 0:
		return c.FastInterval
	case !h.Up:
		return c.DownInterval
	}
	return c.Interval
}

// Probe runs one check against target; name is the server's (a command
// check gets it in GITGW_SERVER_NAME). It returns the verdict and a short
// reason for the status ("L4 ok", "L7 status 503").
type Probe func(ctx context.Context, target netip.AddrPort, name string) (ok bool, detail string)

// NewProbe builds the probe of one server's check loop: its TLS settings
// and predefined sequences are prepared once, not at every check. A probe
// belongs to one loop: it is not safe for concurrent use.
func NewProbe(c *Check) Probe { return probeWith(c, newProber(c)) }

// probeWith is the probe of c whose connections p makes.
func probeWith(c *Check, p *prober) Probe {
	switch c.Type {
	case CheckHTTP:
		return func(ctx context.Context, t netip.AddrPort, _ string) (bool, string) { return p.http(ctx, t) }
	case CheckCommand:
		return func(ctx context.Context, t netip.AddrPort, name string) (bool, string) {
			return commandCheck(ctx, t, name, c)
		}
	case CheckTCP:
		return func(ctx context.Context, t netip.AddrPort, _ string) (bool, string) { return p.connectOnly(ctx, t) }
	}
	// tcp-expect, tcp-check and the protocol checks are sequences.
	steps, err := stepsFor(c)
	if err != nil {
		return func(context.Context, netip.AddrPort, string) (bool, string) { return false, "check: " + err.Error() }
	}
	if len(steps) == 0 {
		return func(ctx context.Context, t netip.AddrPort, _ string) (bool, string) { return p.connectOnly(ctx, t) }
	}
	return func(ctx context.Context, t netip.AddrPort, _ string) (bool, string) {
		return p.sequence(ctx, t, steps)
	}
}

var checkDialer = net.Dialer{KeepAlive: -1}

// freeBind sets IP_FREEBIND on a check's socket before it binds its
// Source.
func freeBind(network, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		if network == "tcp6" {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
		}
	})
	return cmp.Or(err, serr)
}

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

// Target is where a server's check connects: the server's own address and
// port unless overridden. The port is, in order, the server's own check
// port (serverPort, the site's servers.X.check_port), the check's port,
// the server's port; the address is the check's, else the server's.
func Target(addr netip.AddrPort, ck *Check, serverPort uint16) netip.AddrPort {
	if ck.Address.IsValid() {
		addr = netip.AddrPortFrom(ck.Address, addr.Port())
	}
	switch {
	case serverPort != 0:
		addr = netip.AddrPortFrom(addr.Addr(), serverPort)
	case ck.Port != 0:
		addr = netip.AddrPortFrom(addr.Addr(), ck.Port)
	}
	return addr
}

// ServerCheck is one server's own part in its service's check: whether
// the check applies to it at all, and where it is checked when not at the
// place Target gives.
type ServerCheck struct {
	// Unchecked: the check never takes the server out; no loop runs for
	// it and it is always up (NOCHECK), as keepalived keeps a real server
	// without a checker.
	Unchecked bool
	// Addr and Port, when set, are where the server is checked, before the
	// check's own Address and Port (keepalived's connect_ip and
	// connect_port, HAProxy's per-server addr and port).
	Addr netip.Addr
	Port uint16
	// Targets, when set, replace Addr and Port: the server is checked at
	// each in turn and is up only while the check passes at all of them
	// (keepalived's SMTP_CHECK host blocks).
	Targets []netip.AddrPort
}

// Where lists the places a server at addr is checked: its Targets, else
// the one Target gives with the server's own Addr and Port laid over it.
func (o ServerCheck) Where(addr netip.AddrPort, ck *Check) []netip.AddrPort {
	if len(o.Targets) > 0 {
		return slices.Clone(o.Targets)
	}
	t := Target(addr, ck, o.Port)
	if o.Addr.IsValid() {
		t = netip.AddrPortFrom(o.Addr, t.Port())
	}
	return []netip.AddrPort{t}
}

// Describe is the server's own check in words for a plan ("" when it has
// none): "unchecked", "checked on address 198.51.100.9 port 8008",
// "checked at 198.51.100.9:25 and 192.0.2.1:25".
func (o ServerCheck) Describe() string {
	switch {
	case o.Unchecked:
		return "unchecked"
	case len(o.Targets) > 0:
		ts := make([]string, len(o.Targets))
		for i, t := range o.Targets {
			ts[i] = t.String()
		}
		return "checked at " + strings.Join(ts, " and ")
	}
	var parts []string
	if o.Addr.IsValid() {
		parts = append(parts, "address "+o.Addr.String())
	}
	if o.Port != 0 {
		parts = append(parts, "port "+strconv.Itoa(int(o.Port)))
	}
	if len(parts) == 0 {
		return ""
	}
	return "checked on " + strings.Join(parts, " ")
}

// Result is one check of one server, as a Loop reports it.
type Result struct {
	OK     bool
	Detail string
	// Start is when the check began, Took how long it ran.
	Start time.Time
	Took  time.Duration
	// Up is the server's state after this check; Flipped tells whether
	// this check changed it.
	Up, Flipped bool
}

// Loop is the health-check loop of one server: it owns the state machine,
// probes on the schedule the machine gives and reports every result. Both
// data planes run it: the proxy (which takes a DOWN server out of its
// balancing) and the kernel load balancer (which takes it out of its
// nftables maps).
type Loop struct {
	Check *Check // with its defaults (WithDefaults)
	Clock Clock  // nil: RealClock
	// Name is the server's name: it spreads the first checks of a service
	// over one interval, and a command check gets it.
	Name string
	// Up is the state to start from: a server that was down before a
	// reconfiguration needs Rise successes.
	Up bool
	// Target is read before every check, so that a re-resolved address or
	// a new check port applies at the next check: the addresses to probe
	// (ServerCheck.Where; the check must pass at each, in turn, each
	// within the check's timeout), and false when the server has none (a
	// name not resolved yet: the check fails "unresolved").
	Target func() ([]netip.AddrPort, bool)
	// Via, when set, is read before every check as Target is: a valid
	// address is a SOCKS4 proxy every connection of the check goes
	// through (HAProxy's check-via-socks4: a server reached only through
	// the proxy is checked the way its traffic reaches it); the zero
	// address connects directly. A command check is not affected.
	Via func() netip.AddrPort
	// Report is called after every check, from the loop's goroutine.
	Report func(Result)
}

// Run checks until ctx is done.
func (l Loop) Run(ctx context.Context) {
	clock, ck := l.Clock, l.Check
	if clock == nil {
		clock = RealClock{}
	}
	pr := newProber(ck)
	probe := probeWith(ck, pr)
	h := Machine{Up: l.Up}
	// Spread the first checks of a service over one interval.
	delay := time.Duration(fnvString(l.Name) % uint64(max(ck.Interval/4, time.Millisecond)))
	for {
		select {
		case <-ctx.Done():
			return
		case <-clock.After(delay):
		}
		targets, ok := l.Target()
		if l.Via != nil {
			pr.via = l.Via()
		}
		start := clock.Now()
		detail := "unresolved"
		if ok { // a name without an address: nothing to probe
			ok, detail = l.probeAll(ctx, probe, targets)
		}
		if ctx.Err() != nil {
			return
		}
		now := clock.Now()
		flipped := h.Observe(ok, ck)
		l.Report(Result{OK: ok, Detail: detail, Start: start, Took: now.Sub(start), Up: h.Up, Flipped: flipped})
		delay = h.Next(ck)
	}
}

// probeAll probes each target in turn, each within the check's timeout,
// and stops at the first that fails: the server passes only when all do.
// With several targets the detail names the one that failed, or counts
// those that passed.
func (l Loop) probeAll(ctx context.Context, probe Probe, targets []netip.AddrPort) (bool, string) {
	if len(targets) == 0 {
		return false, "no check target"
	}
	var detail string
	for _, t := range targets {
		cctx, cancel := context.WithTimeout(ctx, l.Check.Timeout)
		ok, d := probe(cctx, t, l.Name)
		cancel()
		if len(targets) == 1 {
			return ok, d
		}
		if !ok {
			return false, "at " + t.String() + ": " + d
		}
		detail = d
	}
	return true, fmt.Sprintf("%s at all %d targets", detail, len(targets))
}

func fnvString(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}
