package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/l4proxy"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// ProxyDriver adapts the L4 proxy pool (dataplane/l4proxy) to the Driver
// interface. The pool lives in the agent's process, so what it runs is
// exactly what was last applied: Plan compares the site with the pool's
// applied configuration, and adds the servers' live health as details.
type ProxyDriver struct {
	pool *l4proxy.Pool
	log  *slog.Logger
}

var (
	_ Driver = (*ProxyDriver)(nil)
	_ Closer = (*ProxyDriver)(nil)
)

// NewProxyDriver returns the proxy driver over pool (built by the caller
// with l4proxy.New, possibly adopting listening sockets handed over by the
// previous agent process). log may be nil.
func NewProxyDriver(pool *l4proxy.Pool, log *slog.Logger) *ProxyDriver {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ProxyDriver{pool: pool, log: log.With("component", plan.FamilyProxy.String())}
}

// Name implements Driver.
func (d *ProxyDriver) Name() string { return plan.FamilyProxy.String() }

// Close stops the pool, draining connections until ctx is done.
func (d *ProxyDriver) Close(ctx context.Context) error { return d.pool.Close(ctx) }

// ProxyConfig translates the node's services (those that name this node,
// or no node) into the pool's config, sorted by name so that it compares
// deterministically.
func ProxyConfig(n *spec.Node) (l4proxy.Config, error) {
	cfg := l4proxy.Config{BusyPoll: n.Node.Tuning.ProxyBusyPoll.D()}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(n.Services)) {
		s := n.Services[name]
		if len(s.Nodes) > 0 && !slices.Contains(s.Nodes, n.Name) || s.Kernel() {
			continue // kernel modes: KernLBDriver
		}
		svc := l4proxy.Service{
			Name:        name,
			Balance:     l4proxy.Balance(s.Balance),
			Persistence: s.Persistence.D(),
			MaxConn:     s.MaxConn,
			Timeouts: l4proxy.Timeouts{
				Connect: s.Timeouts.Connect.D(), Client: s.Timeouts.Client.D(), Server: s.Timeouts.Server.D(),
				Tunnel: s.Timeouts.Tunnel.D(), ClientFin: s.Timeouts.ClientFin.D(), ServerFin: s.Timeouts.ServerFin.D(),
				Queue: s.Timeouts.Queue.D(),
			},
			Retries:    s.Retries,
			Redispatch: s.Redispatch,
		}
		if s.Protocol == "udp" {
			svc.Protocol = l4proxy.ProtoUDP
		}
		svc.Transparent = s.Transparent
		var err error
		if svc.TransparentAddr, err = optAddr(s.TransparentAddress); err != nil {
			errs = append(errs, fmt.Errorf("service %s: transparent_address: %w", name, err))
		}
		if svc.SourceAddr, err = optAddr(s.SourceAddress); err != nil {
			errs = append(errs, fmt.Errorf("service %s: source_address: %w", name, err))
		}
		if s.Retries == 0 {
			svc.Retries = -1 // the site's 0 means no retry; the pool's 0 means its default
		}
		switch s.ProxyProtocol {
		case "v1":
			svc.ProxyProtocol = 1
		case "v2":
			svc.ProxyProtocol = 2
		}
		if s.TCPKeepalive {
			svc.KeepAlive = time.Minute
		}
		for _, b := range s.Binds {
			ap, err := netip.ParseAddrPort(b)
			if err != nil {
				errs = append(errs, fmt.Errorf("service %s: bind %q: %w", name, b, err))
				continue
			}
			svc.Binds = append(svc.Binds, ap)
		}
		for _, sn := range slices.Sorted(maps.Keys(s.Servers)) {
			sv := s.Servers[sn]
			srv, err := serverAddress(sv.Address)
			if err != nil {
				errs = append(errs, fmt.Errorf("service %s: server %s: address %q: %w", name, sn, sv.Address, err))
				continue
			}
			st := l4proxy.Ready
			switch {
			case sv.Disabled:
				st = l4proxy.Maint
			case sv.Drain:
				st = l4proxy.Drain
			}
			srv.Name, srv.Weight, srv.MaxConn, srv.Backup, srv.State = sn, sv.Weight, sv.MaxConn, sv.Backup, st
			own, err := serverCheck(sv)
			if err != nil {
				errs = append(errs, fmt.Errorf("service %s: server %s: %w", name, sn, err))
			}
			srv.CheckPort, srv.CheckAddr, srv.CheckTargets, srv.Unchecked = own.Port, own.Addr, own.Targets, own.Unchecked
			srv.TLS = serverTLS(sv.TLS)
			if srv.SourceAddr, err = optAddr(sv.SourceAddress); err != nil {
				errs = append(errs, fmt.Errorf("service %s: server %s: source_address: %w", name, sn, err))
			}
			if v := sv.Via; v != nil {
				ap, err := netip.ParseAddrPort(v.SOCKS4)
				if err != nil {
					errs = append(errs, fmt.Errorf("service %s: server %s: via socks4 %q: %w", name, sn, v.SOCKS4, err))
				}
				srv.SOCKS4, srv.CheckViaSOCKS4 = ap, v.Check
			}
			svc.Servers = append(svc.Servers, srv)
		}
		svc.ResolveInterval = s.ResolveInterval.D()
		if c := s.Check; c != nil {
			ck, err := proxyCheck(c)
			if err != nil {
				errs = append(errs, fmt.Errorf("service %s: %w", name, err))
			}
			svc.Check = ck
			svc.ShutdownOnDown = c.ShutdownSessions
		}
		if s.Source != nil {
			src, err := sourceRules(s.Source)
			if err != nil {
				errs = append(errs, fmt.Errorf("service %s: source: %w", name, err))
			}
			svc.Source = src
		}
		if s.HTTP != nil {
			h, err := proxyHTTP(s.HTTP, n.Site.Userlists)
			if err != nil {
				errs = append(errs, fmt.Errorf("service %s: %w", name, err))
			}
			svc.HTTP = h
		}
		if s.SNI != nil {
			svc.SNI = proxySNI(s.SNI)
		}
		proxyCookie(s, &svc)
		cfg.Services = append(cfg.Services, svc)
	}
	return cfg, errors.Join(errs...)
}

// serverAddress reads a server's "IP:port" or "name:port" (a host name
// the pool resolves).
func serverAddress(a string) (l4proxy.Server, error) {
	ap, ipErr := netip.ParseAddrPort(a)
	if ipErr == nil {
		return l4proxy.Server{Addr: ap}, nil
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return l4proxy.Server{}, err
	}
	if strings.Trim(host, "0123456789.") == "" || strings.Contains(host, ":") {
		return l4proxy.Server{}, ipErr // meant as an address, not a name
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return l4proxy.Server{}, fmt.Errorf("port %q: want 1 to 65535", port)
	}
	return l4proxy.Server{Host: host, Port: uint16(p)}, nil
}

// serverTLS translates a server's TLS (nil: plain TCP); the pool reads
// the files when it applies them.
func serverTLS(t *spec.ServerTLS) *l4proxy.ServerTLS {
	if t == nil {
		return nil
	}
	return &l4proxy.ServerTLS{Verify: t.Verify, CAFile: t.CAFile, SNI: t.SNI, VerifyHost: t.VerifyHost,
		CertFile: t.CertFile, KeyFile: t.KeyFile, ALPN: slices.Clone(t.ALPN), NoReuse: !t.SessionReuse}
}

// sourceRules translates a service's source rules (the schema has
// validated the CIDRs and the rate; errors here are for hand-built specs).
func sourceRules(s *spec.SourceRules) (*l4proxy.SourceRules, error) {
	r := &l4proxy.SourceRules{MaxConnPerSource: s.MaxConnPerSource}
	var errs []error
	parse := func(list string, cidrs []string) []netip.Prefix {
		var out []netip.Prefix
		for i, c := range cidrs {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s[%d]: %w", list, i, err))
				continue
			}
			out = append(out, p.Masked())
		}
		return out
	}
	r.Allow, r.Deny = parse("allow", s.Allow), parse("deny", s.Deny)
	if s.MaxRatePerSource != "" {
		n, per, err := spec.ParseRate(s.MaxRatePerSource)
		if err != nil {
			errs = append(errs, fmt.Errorf("max_rate_per_source: %w", err))
		}
		r.MaxRatePerSource, r.RatePeriod = n, per
	}
	return r, errors.Join(errs...)
}

// Apply implements Driver: the pool's idempotent, in-place Set.
func (d *ProxyDriver) Apply(ctx context.Context, desired *spec.Node) error {
	cfg, err := ProxyConfig(desired)
	if err != nil {
		return err
	}
	return d.pool.Set(ctx, cfg)
}

// Plan implements Driver: the pool's Observe against the site, through
// l4proxy.Diff (one change per service, bind and server, the differences
// spelled out, the servers' live health as details).
func (d *ProxyDriver) Plan(_ context.Context, desired *spec.Node) ([]plan.Change, error) {
	return ProxyChanges(desired, d.pool.Observe())
}

// ProxyChanges plans the node's services against a pool's observed state:
// this process's, or a running agent's.
func ProxyChanges(desired *spec.Node, observed l4proxy.Observed) ([]plan.Change, error) {
	want, err := ProxyConfig(desired)
	if err != nil {
		return nil, err
	}
	return proxyPlan(l4proxy.Diff(want, observed)), nil
}

// proxyPlan translates the pool's changes into plan changes.
func proxyPlan(changes []l4proxy.Change) []plan.Change {
	out := make([]plan.Change, 0, len(changes))
	for _, c := range changes {
		out = append(out, plan.Change{Driver: plan.FamilyProxy.String(), Kind: c.Kind, ID: c.ID, Action: planAction(c.Op),
			Before: c.Before, After: c.After, Reason: c.Reason, Details: c.Details})
	}
	return out
}

// optAddr reads an optional address of the site: "" is none (the zero
// Addr).
func optAddr(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	return netip.ParseAddr(s)
}
