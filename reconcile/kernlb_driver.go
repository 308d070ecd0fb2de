package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/healthcheck"
	"github.com/gitgw/gitgw/dataplane/kernlb"
	"github.com/gitgw/gitgw/dataplane/l4proxy"
	"github.com/gitgw/gitgw/reconcile/control"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// KernLB is what the kernel driver needs from dataplane/kernlb (an *LB):
// the node's facts a DR table needs (Resolve), the tables read back
// (Observe), what would change (Diff, whose rendering Set reuses) and one
// atomic batch (Set). It is not safe for concurrent use: the driver calls
// it under its lock.
type KernLB interface {
	Resolve(ctx context.Context, cfg kernlb.Config) (kernlb.Config, error)
	Observe() (kernlb.Observed, error)
	Diff(desired kernlb.Config, observed kernlb.Observed) ([]kernlb.ChangeItem, error)
	Set(ctx context.Context, cfg kernlb.Config) ([]kernlb.ChangeItem, error)
	Close() error
}

// KernLBDriver adapts the kernel load balancer (dataplane/kernlb: nftables
// NAT and direct routing) to the Driver interface, for the site's services
// with mode nat or dr. Unlike the proxy, what runs is in the kernel: Plan
// reads the tables back, so a rule deleted by hand shows as a difference
// (drift), restored or reported as the drift mode says.
//
// It also runs the services' health checks (package healthcheck, the
// proxy's own), and drives the tables from them between passes: a server
// whose check fails is marked down (out of every table at once), one that
// recovers comes back. That is one batch per flip, under the same lock as
// Apply, with the last applied site.
type KernLBDriver struct {
	lb     KernLB
	log    *slog.Logger
	checks bool // run health checks (the agent, apply); plan only observes
	clock  healthcheck.Clock
	events chan Event

	mu      sync.Mutex
	applied []KernService // the last applied site, before health
	// set is the last configuration Set wrote, resolved: what the tables
	// hold unless someone else changed them.
	set      kernlb.Config
	setValid bool
	stopPoll func()
	ct       *ctSync // conntrack replication; nil: off
	loops    map[string]*kernCheck
	// arpWait bounds the ARP resolution of DR servers' MACs per pass.
	arpWait time.Duration
}

// kernCheck is one server's health-check loop and its latest verdict.
type kernCheck struct {
	key    string // what starts a new loop when it changes: check, target
	cancel func()
	done   chan struct{}
	up     bool // guarded by the driver's mu
	detail string
	at     time.Time
}

var (
	_ Driver      = (*KernLBDriver)(nil)
	_ Closer      = (*KernLBDriver)(nil)
	_ EventSource = (*KernLBDriver)(nil)
)

// KernLBOptions configure the kernel driver.
type KernLBOptions struct {
	// Checks runs the services' health checks (set for the agent and
	// apply; a plan only observes, and takes the servers' health from the
	// tables).
	Checks bool
	Clock  healthcheck.Clock // nil: the real clock
	Logger *slog.Logger
	// ARPWait bounds how long a pass waits for a DR server's MAC (default 1s):
	// a server that does not answer ARP is down.
	ARPWait time.Duration
	// DriftPoll is how often the tables are compared with what was last
	// set (with Checks; default 1s): a difference is a "drift" event, and
	// the agent's pass then restores or reports it, as the drift mode says.
	// The comparison reads the tables only when the ruleset's generation
	// moved: one netlink request per poll otherwise.
	DriftPoll time.Duration
}

// NewKernLBDriver returns the driver over lb (kernlb.Open).
func NewKernLBDriver(lb KernLB, o KernLBOptions) *KernLBDriver {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = healthcheck.RealClock{}
	}
	if o.ARPWait == 0 {
		o.ARPWait = time.Second
	}
	if o.DriftPoll == 0 {
		o.DriftPoll = time.Second
	}
	d := &KernLBDriver{lb: lb, log: o.Logger.With("component", "kernlb"), checks: o.Checks, clock: o.Clock,
		events: make(chan Event, 16), loops: map[string]*kernCheck{}, arpWait: o.ARPWait}
	if o.Checks {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); d.pollDrift(ctx, o.DriftPoll) }()
		d.stopPoll = func() { cancel(); <-done }
	}
	return d
}

// pollDrift watches the tables for changes made by someone else.
func (d *KernLBDriver) pollDrift(ctx context.Context, every time.Duration) {
	pollDrift(ctx, every, "kernlb", d.events, func() ([]kernlb.ChangeItem, error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		if !d.setValid {
			return nil, errors.New("nothing set yet")
		}
		obs, err := d.lb.Observe()
		if err != nil {
			return nil, err
		}
		return d.lb.Diff(d.set, obs)
	})
}

// Name implements Driver.
func (d *KernLBDriver) Name() string { return "kernlb" }

// Events implements EventSource: a server's health flipped (the tables
// have already followed).
func (d *KernLBDriver) Events() <-chan Event { return d.events }

// Close stops the health checks. The tables stay: the kernel forwards on
// while the agent restarts, and the next agent adopts them as they are.
func (d *KernLBDriver) Close(context.Context) error {
	if d.stopPoll != nil {
		d.stopPoll()
	}
	d.mu.Lock()
	var stopped []*kernCheck
	for k, l := range d.loops {
		l.cancel()
		stopped = append(stopped, l)
		delete(d.loops, k)
	}
	if d.ct != nil {
		d.ct.stop()
		d.ct = nil
	}
	d.mu.Unlock()
	// Wait outside the lock: a loop may be waiting for it to report.
	for _, l := range stopped {
		<-l.done
	}
	return d.lb.Close()
}

// serverKey names one server's check loop: service, server.
func serverKey(ks KernService, i int) string { return ks.LB.Name + "/" + ks.Servers[i] }

// desired is the kernlb config for svcs with the servers' health laid over
// it: a server whose check says DOWN is Down. A checked server without a
// verdict of this driver (plan only, or before its loop started) keeps the
// state the tables have, so that a restarted agent does not bring a down
// server back until its check says so.
func (d *KernLBDriver) desired(svcs []KernService, have map[string]kernlb.Service) kernlb.Config {
	var cfg kernlb.Config
	for _, ks := range svcs {
		s := ks.LB
		s.Servers = slices.Clone(s.Servers)
		for i := range s.Servers {
			if ks.Disabled[i] || ks.Check == nil || ks.Own[i].Unchecked {
				continue
			}
			if l := d.loops[serverKey(ks, i)]; l != nil {
				s.Servers[i].Down = !l.up
				continue
			}
			s.Servers[i].Down = wasDown(have, s, s.Servers[i])
		}
		cfg.Services = append(cfg.Services, s)
	}
	return cfg
}

// resolve fills the DR MACs. A server that does not answer ARP within
// arpWait is taken as down for this pass (it cannot be forwarded to), not
// as an error of the whole configuration; any other error (an interface
// that does not exist, a server off the segment) is the site's.
func (d *KernLBDriver) resolve(ctx context.Context, cfg kernlb.Config) (kernlb.Config, error) {
	rctx, cancel := context.WithTimeout(ctx, d.arpWait)
	defer cancel()
	out, err := d.lb.Resolve(rctx, cfg)
	if err == nil {
		return out, nil
	}
	// Find the servers at fault one by one.
	var errs []error
	for i, s := range cfg.Services {
		if s.Mode != kernlb.DR {
			continue
		}
		for j, srv := range s.Servers {
			if srv.Down {
				continue
			}
			one := s
			one.Servers = []kernlb.Server{srv}
			r, err := d.lb.Resolve(rctx, kernlb.Config{Services: []kernlb.Service{one}})
			switch {
			case err == nil:
				cfg.Services[i].Servers[j].MAC = r.Services[0].Servers[0].MAC
			case errors.Is(err, context.DeadlineExceeded):
				d.log.Warn("DR server does not answer ARP: down for this pass", "service", s.Name, "server", srv.Address, "err", err)
				cfg.Services[i].Servers[j].Down = true
			default:
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return cfg, errors.Join(errs...)
	}
	return d.lb.Resolve(ctx, cfg)
}

// Apply implements Driver: the checks follow the site (loops started,
// restarted when their check changes, stopped), then one Set.
func (d *KernLBDriver) Apply(ctx context.Context, desired *spec.Node) error {
	svcs, err := KernLBConfig(desired)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	have, err := d.lb.Observe()
	if err != nil {
		return err
	}
	if d.checks {
		d.syncChecks(svcs, have.Services())
	}
	d.applied = svcs
	err = d.setLocked(ctx)
	if d.checks {
		err = errors.Join(err, d.syncConntrack(desired.Node.ConntrackSync, svcs))
	}
	return err
}

// setLocked makes the tables forward the last applied site with the
// servers' current health. Called with mu held.
func (d *KernLBDriver) setLocked(ctx context.Context) error {
	cfg := d.desired(d.applied, nil)
	if err := cfg.Validate(); err != nil {
		return err
	}
	res, err := d.resolve(ctx, cfg)
	if err != nil {
		return err
	}
	d.setValid = false
	if _, err = d.lb.Set(ctx, res); err != nil {
		return err
	}
	d.set, d.setValid = res, true
	return nil
}

// syncChecks starts, restarts and stops the health-check loops so that
// exactly the checked servers of svcs have one. Called with mu held.
func (d *KernLBDriver) syncChecks(svcs []KernService, have map[string]kernlb.Service) {
	want := map[string]bool{}
	for _, ks := range svcs {
		if ks.Check == nil {
			continue
		}
		for i := range ks.Servers {
			if ks.Disabled[i] || ks.Own[i].Unchecked {
				continue
			}
			key := serverKey(ks, i)
			srv := ks.LB.Servers[i]
			port := srv.Port
			if port == 0 {
				port = ks.LB.Port
			}
			target := netip.AddrPortFrom(srv.Address, port)
			targets := ks.Own[i].Where(target, ks.Check)
			loopKey := fmt.Sprintf("%s|%v", ks.Check.Describe(), targets)
			want[key] = true
			old := d.loops[key]
			if old != nil && old.key == loopKey {
				continue
			}
			// A new server starts up, as in the proxy, unless the tables
			// (a previous agent) hold it down.
			up := !wasDown(have, ks.LB, srv)
			if old != nil {
				old.cancel()
				up = old.up
			}
			d.loops[key] = d.startCheck(key, loopKey, ks.Check, ks.Servers[i], targets, up)
		}
	}
	for k, l := range d.loops {
		if !want[k] {
			l.cancel() // not waited for: it may be waiting for mu
			delete(d.loops, k)
		}
	}
}

func (d *KernLBDriver) startCheck(key, loopKey string, ck *healthcheck.Check, name string, targets []netip.AddrPort, up bool) *kernCheck {
	ctx, cancel := context.WithCancel(context.Background())
	kc := &kernCheck{key: loopKey, up: up, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(kc.done)
		healthcheck.Loop{Check: ck, Clock: d.clock, Name: name, Up: up,
			Target: func() ([]netip.AddrPort, bool) { return targets, true },
			Report: func(r healthcheck.Result) { d.report(ctx, key, kc, r) },
		}.Run(ctx)
	}()
	return kc
}

// report records a check's result; a flip re-applies the tables at once.
func (d *KernLBDriver) report(ctx context.Context, key string, kc *kernCheck, r healthcheck.Result) {
	d.mu.Lock()
	if ctx.Err() != nil || d.loops[key] != kc { // stopped or replaced meanwhile
		d.mu.Unlock()
		return
	}
	kc.up, kc.detail, kc.at = r.Up, r.Detail, r.Start
	if !r.Flipped {
		d.mu.Unlock()
		return
	}
	state := "DOWN"
	if r.Up {
		state = "UP"
	}
	d.log.Info("server health", "server", key, "state", state, "check", r.Detail)
	err := d.setLocked(ctx)
	d.mu.Unlock()
	if err != nil {
		d.log.Error("server health: tables not updated", "server", key, "state", state, "err", err)
	}
	select {
	case d.events <- Event{Driver: "kernlb", Kind: "health", Message: fmt.Sprintf("%s %s (%s)", key, state, r.Detail)}:
	default:
	}
}

// Plan implements Driver: one change per kernel service and server, in
// words ("dr tcp 203.0.113.10:80 on eth1, maglev"), with kernlb's Diff as
// the details; what the tables hold and the site does not name is deleted.
func (d *KernLBDriver) Plan(ctx context.Context, desired *spec.Node) ([]plan.Change, error) {
	svcs, err := KernLBConfig(desired)
	if err != nil {
		return nil, err
	}
	// Under the lock throughout: the LB is not safe for concurrent use,
	// and a health flip re-applies through it.
	d.mu.Lock()
	defer d.mu.Unlock()
	observed, err := d.lb.Observe()
	if err != nil {
		return nil, err
	}
	have := observed.Services()
	cfg := d.desired(svcs, have)
	health := d.healthLocked()
	wrote := map[string]bool{}
	if d.setValid {
		for _, s := range d.set.Services {
			wrote[s.Name] = true
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	res, err := d.resolve(ctx, cfg)
	if err != nil {
		return nil, err
	}
	items, err := d.lb.Diff(res, observed)
	if err != nil {
		return nil, err
	}
	return kernChanges(svcs, res, have, items, health, wrote), nil
}

// healthLocked is every checked server's latest verdict, by serverKey.
func (d *KernLBDriver) healthLocked() map[string]string {
	out := map[string]string{}
	for k, l := range d.loops {
		st := "UP"
		if !l.up {
			st = "DOWN"
		}
		if l.detail != "" {
			st += ", check " + fmt.Sprintf("%q", l.detail)
		}
		out[k] = st
	}
	return out
}

// kernChanges builds the plan from the desired services (svcs, resolved
// as want), the services the tables forward (have), kernlb's worded diff,
// the servers' health and the services this driver wrote last (whose
// absence from the tables is a change by hand, not a new service).
func kernChanges(svcs []KernService, want kernlb.Config, have map[string]kernlb.Service, items []kernlb.ChangeItem,
	health map[string]string, wrote map[string]bool) []plan.Change {
	byName := map[string][]kernlb.ChangeItem{}
	for _, it := range items {
		byName[it.Service] = append(byName[it.Service], it)
	}
	var out []plan.Change
	wantNames := map[string]bool{}
	for i, ks := range svcs {
		w := want.Services[i]
		wantNames[w.Name] = true
		h, existed := have[w.Name]
		c := plan.Change{Driver: "kernlb", Kind: "kernel_service", ID: w.Name, After: w.Describe(), Action: plan.NoOp}
		switch {
		case ks.Site == w.Name:
		case ks.Mark != 0:
			c.Details = append(c.Details, fmt.Sprintf("site service %s, fwmark %d", ks.Site, ks.Mark))
		default:
			c.Details = append(c.Details, fmt.Sprintf("site service %s, bind %d", ks.Site, ks.Bind))
		}
		if existed {
			c.Before = h.Describe()
		}
		for _, it := range byName[w.Name] {
			switch it.Action {
			case kernlb.Add:
				c.Action, c.Reason = plan.Create, "new in site"
				if wrote[w.Name] {
					c.Reason = "missing from the tables: changed by hand"
				}
			case kernlb.Restore:
				c.Action, c.Reason = plan.Update, "changed by hand: "+it.Text
			default:
				c.Action = plan.Update
				// The servers have their own changes, and the words of
				// the service are Before → After.
				for _, d := range strings.Split(it.Text, "; ") {
					if !strings.HasPrefix(d, "server ") && !strings.HasPrefix(d, "add server ") &&
						!strings.HasPrefix(d, "remove server ") && !strings.Contains(d, h.Describe()+" → ") {
						c.Details = append(c.Details, d)
					}
				}
			}
		}
		if c.Action == plan.Create {
			c.Details = append(c.Details, kernSourceWords(w)...)
		}
		out = append(out, c)
		out = append(out, kernServerChanges(ks, w, h, existed, health, wrote[w.Name])...)
	}
	for _, name := range slices.Sorted(maps.Keys(have)) {
		if wantNames[name] {
			continue
		}
		h := have[name]
		out = append(out, plan.Change{Driver: "kernlb", Kind: "kernel_service", ID: name, Before: h.Describe(), Action: plan.Delete,
			Reason: "gone from site; its flows stop at once"})
		for _, srv := range h.Servers {
			out = append(out, plan.Change{Driver: "kernlb", Kind: "kernel_server", ID: name + "/" + serverAddr(h, srv),
				Before: h.DescribeServer(srv), Action: plan.Delete, Reason: "its service is removed"})
		}
	}
	// A table missing on a node that forwards nothing yet is not a change
	// by hand: the services' creation makes it.
	for _, it := range byName[""] {
		if len(have) == 0 && len(wrote) == 0 {
			continue
		}
		out = append(out, plan.Change{Driver: "kernlb", Kind: "kernel_table", ID: kernlb.TableName, Action: plan.Update,
			Before: it.Text, After: "as gitgw wrote them", Reason: "changed by hand"})
	}
	return out
}

func serverAddr(s kernlb.Service, srv kernlb.Server) string {
	p := srv.Port
	if p == 0 {
		p = s.Port
	}
	if p == 0 {
		return srv.Address.String() // a mark service's: the client's port
	}
	return netip.AddrPortFrom(srv.Address, p).String()
}

// kernServerChanges lists a service's servers: new, changed (weight,
// drain, backup, health), removed; the live check verdict as a detail.
func kernServerChanges(ks KernService, w, h kernlb.Service, existed bool, health map[string]string, wrote bool) []plan.Change {
	var out []plan.Change
	hs := map[string]kernlb.Server{}
	for _, srv := range h.Servers {
		hs[serverAddr(h, srv)] = srv
	}
	seen := map[string]bool{}
	for i, srv := range w.Servers {
		addr := serverAddr(w, srv)
		seen[addr] = true
		words := kernServerWords(w, srv, ks.Disabled[i])
		c := plan.Change{Driver: "kernlb", Kind: "kernel_server", ID: w.Name + "/" + ks.Servers[i], After: words, Action: plan.NoOp}
		if old, ok := hs[addr]; ok {
			c.Before = kernServerWords(h, old, false)
			if old.Weight != srv.Weight || old.Backup != srv.Backup || old.Down != srv.Down {
				c.Action = plan.Update
				c.Reason = kernServerReason(old, srv, ks.Disabled[i])
			}
		} else {
			c.Action, c.Reason = plan.Create, "new in site"
			if wrote && !existed {
				c.Reason = "missing from the tables: changed by hand"
			}
		}
		if w := ks.Own[i].Describe(); w != "" {
			c.Details = append(c.Details, w)
		}
		if st, ok := health[serverKey(ks, i)]; ok {
			c.Details = append(c.Details, "now "+st)
		}
		out = append(out, c)
	}
	if existed {
		for _, srv := range h.Servers {
			if addr := serverAddr(h, srv); !seen[addr] {
				out = append(out, plan.Change{Driver: "kernlb", Kind: "kernel_server", ID: h.Name + "/" + addr,
					Before: h.DescribeServer(srv), Action: plan.Delete, Reason: "removed from site; its flows move"})
			}
		}
	}
	return out
}

// kernSourceWords are a service's source rules in words.
func kernSourceWords(s kernlb.Service) []string {
	var out []string
	if len(s.Allow) > 0 {
		out = append(out, fmt.Sprintf("allow only %v", s.Allow))
	}
	if len(s.Deny) > 0 {
		out = append(out, fmt.Sprintf("deny %v", s.Deny))
	}
	if n := s.Limits.ConnPerSource; n > 0 {
		out = append(out, fmt.Sprintf("at most %d connections per source", n))
	}
	if n := s.Limits.RatePerSource; n > 0 {
		out = append(out, fmt.Sprintf("at most %d new connections per source per second (burst %d)", n, s.Limits.Burst))
	}
	return out
}

// kernServerWords is a server in words: "198.51.100.11:80 weight 100",
// "… draining (weight 0)", "… down", "… disabled".
func kernServerWords(s kernlb.Service, srv kernlb.Server, disabled bool) string {
	if disabled {
		w := serverAddr(s, srv) + " disabled"
		if srv.Backup {
			w += " backup"
		}
		return w
	}
	return s.DescribeServer(srv)
}

func kernServerReason(old, srv kernlb.Server, disabled bool) string {
	switch {
	case disabled && !old.Down:
		return "disabled (maintenance): out of every table"
	case srv.Down && !old.Down:
		return "health check failed: out of every table, its flows move"
	case !srv.Down && old.Down:
		return "back in the tables"
	case srv.Weight == 0 && old.Weight > 0:
		return fmt.Sprintf("weight %d → 0: draining, existing flows stay", old.Weight)
	case srv.Weight != old.Weight:
		return fmt.Sprintf("weight %d → %d", old.Weight, srv.Weight)
	}
	return fmt.Sprintf("backup %v → %v", old.Backup, srv.Backup)
}

// wasDown reports whether the tables (have) hold srv of s down.
func wasDown(have map[string]kernlb.Service, s kernlb.Service, srv kernlb.Server) bool {
	h := have[s.Name]
	for _, o := range h.Servers {
		if serverAddr(h, o) == serverAddr(s, srv) {
			return o.Down
		}
	}
	return false
}

// KernServiceStats is one kernel service as the status shows it: what the
// tables were last set to, and each server's health by its check.
type KernServiceStats struct {
	Name     string // the kernlb name (the site's, "-N" per bind when several)
	Mode     string // nat or dr
	Protocol string
	Bind     string // VIP:port, or "fwmark N"
	Balance  string // the kernel scheduler: wrr, sh, maglev
	// Status is UP when a server takes new flows.
	Status  string
	Servers []KernServerStats
	// Unchecked: the service has no health check (its servers NOCHECK).
	Unchecked bool
}

// KernServerStats is one server of a kernel service.
type KernServerStats struct {
	Name   string
	Addr   string
	Weight int
	Backup bool
	// Status is UP, DOWN (its check failed), NOCHECK (no check: never
	// taken out), DRAIN (weight 0 or drain) or
	// MAINT (disabled): the proxy's words.
	Status    l4proxy.Health
	Check     string // the last check's result
	LastCheck time.Time
}

// KernStats reports the services last applied with their servers' health
// (the status page, gitgw status).
func (d *KernLBDriver) KernStats() []KernServiceStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	cfg := d.desired(d.applied, nil)
	var out []KernServiceStats
	for i, ks := range d.applied {
		s := cfg.Services[i]
		bind := netip.AddrPortFrom(s.VIP, s.Port).String()
		if s.Mark != 0 {
			bind = fmt.Sprintf("fwmark %d", s.Mark)
		}
		st := KernServiceStats{Name: s.Name, Mode: string(s.Mode), Protocol: string(s.Protocol),
			Bind: bind, Balance: string(s.Scheduler), Status: "DOWN", Unchecked: ks.Check == nil}
		for j, srv := range s.Servers {
			sv := KernServerStats{Name: ks.Servers[j], Addr: serverAddr(s, srv), Weight: srv.Weight, Backup: srv.Backup, Status: l4proxy.StatusUp}
			switch {
			case ks.Disabled[j]:
				sv.Status = l4proxy.StatusMaint
			case srv.Down:
				sv.Status = l4proxy.StatusDown
			case srv.Weight == 0:
				sv.Status = l4proxy.StatusDrain
			case ks.Check == nil || ks.Own[j].Unchecked:
				sv.Status, st.Status = l4proxy.StatusNoCheck, "UP"
			default:
				st.Status = "UP"
			}
			if l := d.loops[serverKey(ks, j)]; l != nil {
				sv.Check, sv.LastCheck = l.detail, l.at
			}
			st.Servers = append(st.Servers, sv)
		}
		out = append(out, st)
	}
	return out
}

// KernelServices are the kernel services in the status's shape
// (control.KernelStatser): `gitgw status`, the page and the metrics.
func (d *KernLBDriver) KernelServices() []control.Service {
	var out []control.Service
	for _, s := range d.KernStats() {
		cs := control.Service{Name: s.Name, Mode: s.Mode, Binds: []string{s.Protocol + " " + s.Bind}, Balance: s.Balance, Status: s.Status,
			Unchecked: s.Unchecked, Servers: []control.Server{}}
		for _, sv := range s.Servers {
			cs.Servers = append(cs.Servers, control.Server{Name: sv.Name, Addr: sv.Addr, Weight: sv.Weight, Backup: sv.Backup,
				Admin: "ready", Status: string(sv.Status), Check: sv.Check, LastCheck: sv.LastCheck})
		}
		out = append(out, cs)
	}
	return out
}
