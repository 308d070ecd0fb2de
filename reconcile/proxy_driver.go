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
	return &ProxyDriver{pool: pool, log: log.With("component", "proxy")}
}

// Name implements Driver.
func (d *ProxyDriver) Name() string { return "proxy" }

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
		if len(s.Nodes) > 0 && !slices.Contains(s.Nodes, n.Name) {
			continue
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
		n, per, err := l4proxy.ParseRate(s.MaxRatePerSource)
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

// serviceView and serverView are what a plan shows of a service and a
// server (deterministic JSON).
type serviceView struct {
	Balance     string `json:"balance"`
	Persistence string `json:"persistence,omitempty"`
	MaxConn     int    `json:"maxconn,omitempty"`
	Timeouts    string `json:"timeouts"`
	Retries     int    `json:"retries"`
	Redispatch  bool   `json:"redispatch,omitempty"`
	Check       string `json:"check,omitempty"`
	Proxy       int    `json:"proxy_protocol,omitempty"`
	KeepAlive   bool   `json:"tcp_keepalive,omitempty"`
	Source      string `json:"source,omitempty"`
	Resolve     string `json:"resolve_interval,omitempty"` // set in the site only
	Protocol    string `json:"protocol,omitempty"`         // "udp"; empty for tcp
	Transparent bool   `json:"transparent,omitempty"`
}

type serverView struct {
	Address string `json:"address"`
	Weight  int    `json:"weight"`
	MaxConn int    `json:"maxconn,omitempty"`
	Backup  bool   `json:"backup,omitempty"`
	State   string `json:"state"`
}

func viewService(s l4proxy.Service) serviceView {
	t := s.Timeouts
	v := serviceView{
		Balance: string(s.Balance), MaxConn: s.MaxConn, Retries: max(s.Retries, 0), Redispatch: s.Redispatch,
		Timeouts: durations{{"connect", t.Connect}, {"client", t.Client}, {"server", t.Server}, {"tunnel", t.Tunnel},
			{"client-fin", t.ClientFin}, {"server-fin", t.ServerFin}, {"queue", t.Queue}}.String(),
		Proxy: s.ProxyProtocol, KeepAlive: s.KeepAlive > 0,
	}
	if v.Balance == "" {
		v.Balance = string(l4proxy.RoundRobin)
	}
	if s.Protocol == l4proxy.ProtoUDP {
		v.Protocol = string(s.Protocol)
	}
	v.Transparent = s.Transparent
	if s.Persistence > 0 {
		v.Persistence = s.Persistence.String()
	}
	if s.Source != nil {
		v.Source = viewSource(s.Source)
	}
	if s.ResolveInterval > 0 {
		v.Resolve = s.ResolveInterval.String()
	}
	if c := s.Check; c != nil {
		v.Check = c.Describe()
		if s.ShutdownOnDown {
			v.Check += " shutdown-sessions"
		}
	}
	return v
}

func viewServer(s l4proxy.Server) serverView {
	st := string(s.State)
	if st == "" {
		st = string(l4proxy.Ready)
	}
	addr := s.Addr.String()
	if s.Host != "" {
		addr = net.JoinHostPort(s.Host, strconv.Itoa(int(s.Port)))
	}
	return serverView{Address: addr, Weight: s.Weight, MaxConn: s.MaxConn, Backup: s.Backup, State: st}
}

// Plan implements Driver: one change per service, bind and server, the
// differences spelled out ("weight 100 → 50", "drained").
func (d *ProxyDriver) Plan(_ context.Context, desired *spec.Node) ([]plan.Change, error) {
	want, err := ProxyConfig(desired)
	if err != nil {
		return nil, err
	}
	have := d.pool.Applied()
	live := map[string]l4proxy.ServerStats{}
	for _, s := range d.pool.Stats().Services {
		for _, sv := range s.Servers {
			live[s.Name+"/"+sv.Name] = sv
		}
	}
	return proxyChanges(have, want, live), nil
}

func proxyChanges(have, want l4proxy.Config, live map[string]l4proxy.ServerStats) []plan.Change {
	var out []plan.Change
	if have.BusyPoll != want.BusyPoll && (len(have.Services) > 0 || len(want.Services) > 0) {
		out = append(out, plan.Change{Driver: "proxy", Kind: "proxy_pool", ID: "busy_poll", Action: plan.Update,
			Before: busyPoll(have.BusyPoll), After: busyPoll(want.BusyPoll)})
	}
	haveSvc := map[string]l4proxy.Service{}
	for _, s := range have.Services {
		haveSvc[s.Name] = s
	}
	wantSvc := map[string]bool{}
	for _, w := range want.Services {
		wantSvc[w.Name] = true
		h, existed := haveSvc[w.Name]
		wv := viewService(w)
		c := plan.Change{Driver: "proxy", Kind: "proxy_service", ID: w.Name, After: wv}
		if !existed {
			c.Action, c.Reason = plan.Create, "new in site"
		} else {
			hv := viewService(h)
			c.Before = hv
			c.Details = diffService(hv, wv)
			c.Action = plan.NoOp
			if len(c.Details) > 0 {
				c.Action = plan.Update
			}
		}
		out = append(out, c)
		out = append(out, bindChanges(w.Name, h.Binds, w.Binds)...)
		out = append(out, serverChanges(w.Name, h.Servers, w.Servers, live)...)
	}
	for _, h := range have.Services {
		if wantSvc[h.Name] {
			continue
		}
		out = append(out, plan.Change{Driver: "proxy", Kind: "proxy_service", ID: h.Name, Action: plan.Delete,
			Before: viewService(h), Reason: "gone from site; connections drain for " + drainGrace(h)})
		out = append(out, bindChanges(h.Name, h.Binds, nil)...)
		out = append(out, serverChanges(h.Name, h.Servers, nil, live)...)
	}
	return out
}

// busyPoll shows the pool's busy-poll window the way the site spells it.
func busyPoll(d time.Duration) string {
	if d == 0 {
		return "off"
	}
	return d.String()
}

func drainGrace(s l4proxy.Service) string {
	if s.DrainGrace > 0 {
		return s.DrainGrace.String()
	}
	return "30s"
}

func diffService(h, w serviceView) []string {
	var d []string
	add := func(name string, a, b any) {
		if a != b {
			d = append(d, fmt.Sprintf("%s %v → %v", name, a, b))
		}
	}
	add("balance", h.Balance, w.Balance)
	add("protocol", h.Protocol, w.Protocol)
	add("transparent", h.Transparent, w.Transparent)
	add("persistence", h.Persistence, w.Persistence)
	add("maxconn", h.MaxConn, w.MaxConn)
	add("timeouts", h.Timeouts, w.Timeouts)
	add("retries", h.Retries, w.Retries)
	add("redispatch", h.Redispatch, w.Redispatch)
	add("check", h.Check, w.Check)
	add("proxy protocol", h.Proxy, w.Proxy)
	add("tcp keepalive", h.KeepAlive, w.KeepAlive)
	add("source", h.Source, w.Source)
	add("resolve interval", h.Resolve, w.Resolve)
	return d
}

// viewSource spells a service's source rules in words: "allow only
// 198.51.100.0/24; deny 198.51.100.66/32 (deny wins); at most 10
// connections per source; at most 100 new connections per source per 1s;
// refused connections are reset". Long lists show their first prefixes
// and a count.
func viewSource(r *l4proxy.SourceRules) string {
	list := func(ps []netip.Prefix) string {
		const show = 5
		var parts []string
		for _, p := range ps[:min(len(ps), show)] {
			parts = append(parts, p.String())
		}
		s := strings.Join(parts, ", ")
		if len(ps) > show {
			s += fmt.Sprintf(" and %d more (%d CIDRs)", len(ps)-show, len(ps))
		}
		return s
	}
	var parts []string
	if len(r.Allow) > 0 {
		parts = append(parts, "allow only "+list(r.Allow))
	}
	if len(r.Deny) > 0 {
		d := "deny " + list(r.Deny)
		if len(r.Allow) > 0 {
			d += " (deny wins)"
		}
		parts = append(parts, d)
	}
	if r.MaxConnPerSource > 0 {
		parts = append(parts, fmt.Sprintf("at most %d connections per source", r.MaxConnPerSource))
	}
	if r.MaxRatePerSource > 0 {
		per := r.RatePeriod
		if per == 0 {
			per = time.Second
		}
		parts = append(parts, fmt.Sprintf("at most %d new connections per source per %v", r.MaxRatePerSource, per))
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, "; ") + "; refused connections are reset"
}

func bindChanges(svc string, have, want []netip.AddrPort) []plan.Change {
	var out []plan.Change
	for _, b := range want {
		c := plan.Change{Driver: "proxy", Kind: "proxy_bind", ID: svc + "/" + b.String(), After: b.String(), Action: plan.NoOp}
		if slices.Contains(have, b) {
			c.Before = b.String()
		} else {
			c.Action, c.Reason = plan.Create, "new listener"
		}
		out = append(out, c)
	}
	for _, b := range have {
		if !slices.Contains(want, b) {
			out = append(out, plan.Change{Driver: "proxy", Kind: "proxy_bind", ID: svc + "/" + b.String(), Before: b.String(),
				Action: plan.Delete, Reason: "listener closed; its established connections are kept"})
		}
	}
	return out
}

func serverChanges(svc string, have, want []l4proxy.Server, live map[string]l4proxy.ServerStats) []plan.Change {
	var out []plan.Change
	hm := map[string]l4proxy.Server{}
	for _, s := range have {
		hm[s.Name] = s
	}
	wm := map[string]bool{}
	for _, w := range want {
		wm[w.Name] = true
		id := svc + "/" + w.Name
		wv := viewServer(w)
		c := plan.Change{Driver: "proxy", Kind: "proxy_server", ID: id, After: wv}
		if h, ok := hm[w.Name]; ok {
			hv := viewServer(h)
			c.Before = hv
			c.Details = diffServer(w.Name, hv, wv)
			c.Action = plan.NoOp
			if len(c.Details) > 0 {
				c.Action = plan.Update
				c.Reason = c.Details[0]
			}
		} else {
			c.Action, c.Reason = plan.Create, "new in site"
		}
		if st, ok := live[id]; ok {
			c.Details = append(c.Details, fmt.Sprintf("now %s, %d connections, check %q", st.Status, st.Current, st.Check))
			if st.Host != "" && st.Host == w.Host {
				c.Details = append(c.Details, resolution(st))
			}
		}
		out = append(out, c)
	}
	for _, h := range have {
		if wm[h.Name] {
			continue
		}
		id := svc + "/" + h.Name
		c := plan.Change{Driver: "proxy", Kind: "proxy_server", ID: id, Before: viewServer(h), Action: plan.Delete,
			Reason: "server " + h.Name + ": removed; its connections drain"}
		if st, ok := live[id]; ok {
			c.Details = append(c.Details, fmt.Sprintf("%d connections to drain", st.Current))
		}
		out = append(out, c)
	}
	return out
}

// resolution spells what a server given by name resolves to now:
// "app.example → 198.51.100.11:8080 (resolved at 10:04:05)", "unresolved
// (…)", or the last address "stale since 10:04:05 (…)".
func resolution(st l4proxy.ServerStats) string {
	at := func(t time.Time) string { return t.UTC().Format(time.TimeOnly) }
	switch st.Resolve {
	case "unresolved":
		return fmt.Sprintf("%s unresolved: %s", st.Host, st.ResolveError)
	case "stale":
		return fmt.Sprintf("%s → %s, stale since %s: %s", st.Host, st.Addr, at(st.StaleSince), st.ResolveError)
	}
	return fmt.Sprintf("%s → %s (resolved at %s)", st.Host, st.Addr, at(st.ResolvedAt))
}

func diffServer(name string, h, w serverView) []string {
	var d []string
	if h.State != w.State {
		switch w.State {
		case string(l4proxy.Drain):
			d = append(d, "server "+name+": drained")
		case string(l4proxy.Maint):
			d = append(d, "server "+name+": maintenance")
		default:
			d = append(d, "server "+name+": back in rotation (was "+h.State+")")
		}
	}
	if h.Weight != w.Weight {
		if w.Weight == 0 {
			d = append(d, fmt.Sprintf("weight %d → 0 (drained)", h.Weight))
		} else {
			d = append(d, fmt.Sprintf("weight %d → %d", h.Weight, w.Weight))
		}
	}
	if h.Address != w.Address {
		d = append(d, fmt.Sprintf("address %s → %s", h.Address, w.Address))
	}
	if h.MaxConn != w.MaxConn {
		d = append(d, fmt.Sprintf("maxconn %d → %d", h.MaxConn, w.MaxConn))
	}
	if h.Backup != w.Backup {
		d = append(d, fmt.Sprintf("backup %v → %v", h.Backup, w.Backup))
	}
	return d
}

// durations are named settings spelled "connect 2s queue 5s", the unset
// (zero) ones left out: the plan shows what is configured, not every knob.
type durations []struct {
	name string
	d    time.Duration
}

func (ds durations) String() string {
	var parts []string
	for _, x := range ds {
		if x.d != 0 {
			parts = append(parts, x.name+" "+x.d.String())
		}
	}
	return strings.Join(parts, " ")
}
