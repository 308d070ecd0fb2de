package l4proxy

import (
	"context"
	"net/netip"

	"github.com/gitgw/gitgw/dataplane/healthcheck"
)

// The health checks live in package healthcheck, shared with the kernel
// load balancer; these names keep the proxy's API as it was.
type (
	// Clock is the time source of health checks, injectable in tests.
	Clock       = healthcheck.Clock
	CheckTLS    = healthcheck.CheckTLS
	CheckStep   = healthcheck.CheckStep
	HTTPRequest = healthcheck.HTTPRequest
	Header      = healthcheck.Header
	StatusRange = healthcheck.StatusRange
)

// The protocol checks and the bounds on what a check reads.
const (
	CheckSequence = healthcheck.CheckSequence
	CheckSMTP     = healthcheck.CheckSMTP
	CheckMySQL    = healthcheck.CheckMySQL
	CheckPgSQL    = healthcheck.CheckPgSQL
	CheckRedis    = healthcheck.CheckRedis
	CheckLDAP     = healthcheck.CheckLDAP

	MaxCheckLine     = healthcheck.MaxCheckLine
	MaxCheckHeaders  = healthcheck.MaxCheckHeaders
	DefaultCheckRead = healthcheck.DefaultCheckRead
	MaxCheckRead     = healthcheck.MaxCheckRead
)

type realClock = healthcheck.RealClock

// checker probes one server.
type checker func(ctx context.Context, target netip.AddrPort, srv *server) (ok bool, detail string)

// checkerFor builds the probe of one server's check loop.
func checkerFor(c *Check) checker {
	p := healthcheck.NewProbe(c)
	return func(ctx context.Context, t netip.AddrPort, s *server) (bool, string) { return p(ctx, t, s.name) }
}

// checkTarget is where a server's check connects (healthcheck.Target),
// without a per-server check port.
func checkTarget(addr netip.AddrPort, ck *Check) netip.AddrPort {
	return healthcheck.Target(addr, ck, 0)
}

// runChecks is the health-check loop of one server (healthcheck.Loop): it
// records every result on the server and tells the service when the
// server flips.
func (svc *service) runChecks(ctx context.Context, srv *server, ck *Check) {
	healthcheck.Loop{
		Check: ck,
		Clock: svc.pool.clock,
		Name:  srv.name,
		Up:    srv.up.Load(),
		Target: func() ([]netip.AddrPort, bool) {
			cfg := srv.cfg.Load()
			return cfg.ownCheck().Where(cfg.Addr, ck), !cfg.unresolved
		},
		Via: func() netip.AddrPort { return srv.cfg.Load().checkVia() },
		Report: func(r healthcheck.Result) {
			if !r.OK {
				srv.failedChecks.Add(1)
			}
			srv.mu.Lock()
			srv.checkDesc, srv.checkDur = r.Detail, r.Took
			srv.lastCheck, srv.lastCheckOK = r.Start, r.OK
			srv.mu.Unlock()
			if r.Flipped {
				svc.serverHealth(ctx, srv, r.Up, r.Detail, r.Start.Add(r.Took))
			}
		},
	}.Run(ctx)
}
