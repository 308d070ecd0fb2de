package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/vrrp"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// VRRPOptions configure the VRRP driver.
type VRRPOptions struct {
	// StateDir receives the engine's mastership file for `gitgw vrrp
	// release` (the agent's --state-dir).
	StateDir string
	// ServiceHealthy answers track_services: whether a proxy service has a
	// healthy server. Nil: every tracked service counts as failing.
	ServiceHealthy func(name string) bool
	// Resume lets the engine resume mastership kept by the previous
	// agent's restart (vrrp.Options.Resume): the agent's driver only.
	Resume bool
	// Engine, when set, is used instead of a kernel-backed engine (tests).
	// The driver then does not run or stop it.
	Engine *vrrp.Engine
	Logger *slog.Logger
}

// VRRPDriver adapts the VRRP engine to the Driver interface. The engine
// runs continuously on its own timers; Apply only hands it a new config,
// and every transition is an Event that asks the agent for a pass (and a
// status commit).
type VRRPDriver struct {
	e       *vrrp.Engine
	log     *slog.Logger
	own     bool
	closeFn func() error
	cancel  context.CancelFunc
	runDone chan struct{}
	events  chan Event
	fwdDone chan struct{}
	once    sync.Once
	// restart: Close keeps mastership for the next agent (KeepMastership).
	restart atomic.Bool

	// places are the applied instances' segments and family, for the
	// status section (status_sections.go).
	mu     sync.Mutex
	places map[string]place
}

var (
	_ Driver      = (*VRRPDriver)(nil)
	_ Closer      = (*VRRPDriver)(nil)
	_ EventSource = (*VRRPDriver)(nil)
)

// NewVRRPDriver starts the engine (raw sockets, netlink, GARP in the
// calling thread's network namespace) with no instances: nothing on the
// node changes until Apply.
func NewVRRPDriver(o VRRPOptions) (*VRRPDriver, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &VRRPDriver{log: log.With("component", "vrrp-driver"), events: make(chan Event, 64), fwdDone: make(chan struct{}), runDone: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	if o.Engine != nil {
		d.e = o.Engine
		close(d.runDone)
	} else {
		opts, closeFn, err := vrrp.KernelOptions(o.StateDir, log)
		if err != nil {
			cancel()
			return nil, err
		}
		opts.ServiceHealthy = o.ServiceHealthy
		opts.Resume = o.Resume
		d.e, d.own, d.closeFn = vrrp.New(log, opts), true, closeFn
		go func() {
			defer close(d.runDone)
			if err := d.e.Run(ctx); err != nil {
				d.log.Error("vrrp engine stopped", "err", err)
			}
		}()
	}
	go d.forward(ctx)
	return d, nil
}

// forward turns engine transitions into agent events.
func (d *VRRPDriver) forward(ctx context.Context) {
	defer close(d.fwdDone)
	for {
		select {
		case <-ctx.Done():
			return
		case t := <-d.e.Events():
			d.send(Event{Driver: plan.FamilyVRRP.String(), Kind: plan.EventTransition, Message: fmt.Sprintf("%s %s -> %s (%s)", t.Instance, t.From, t.To, t.Reason)})
		case dr := <-d.e.Drifts():
			what := map[string]string{
				"restored": "VIP %s removed by hand while master: restored",
				"removed":  "VIP %s added by hand while not master: removed",
				"missing":  "VIP %s removed by hand while master: left out (drift mode report)",
				"extra":    "VIP %s added by hand while not master: left in place (drift mode report)",
			}[dr.Action]
			if what == "" {
				what = "VIP %s changed by hand: " + dr.Action
			}
			d.send(Event{Driver: plan.FamilyVRRP.String(), Kind: plan.EventDrift, Message: dr.Instance + ": " + fmt.Sprintf(what, dr.VIP)})
		}
	}
}

func (d *VRRPDriver) send(ev Event) {
	select {
	case d.events <- ev:
	default: // the agent is behind; one pending pass is enough
	}
}

// Name implements Driver.
func (d *VRRPDriver) Name() string { return plan.FamilyVRRP.String() }

// Events implements EventSource.
func (d *VRRPDriver) Events() <-chan Event { return d.events }

// Engine exposes the engine for status pages and metrics (Status()).
func (d *VRRPDriver) Engine() *vrrp.Engine { return d.e }

// KeepMastership makes Close keep this node's mastership and VIPs for the
// next agent (vrrp.Engine.StopForRestart): the agent is being restarted.
func (d *VRRPDriver) KeepMastership() { d.restart.Store(true) }

// Close implements Closer: every instance this node is master of leaves
// with priority 0 and its VIPs are removed, unless KeepMastership was
// called.
func (d *VRRPDriver) Close(ctx context.Context) error {
	var err error
	d.once.Do(func() {
		switch {
		case d.own && d.restart.Load():
			err = d.e.StopForRestart(ctx)
		case d.own:
			err = d.e.Stop(ctx)
		}
		d.cancel()
		<-d.runDone
		<-d.fwdDone
		if d.closeFn != nil {
			err = errors.Join(err, d.closeFn())
		}
	})
	return err
}

// Apply implements Driver: the engine's idempotent Set. Unchanged
// instances keep their state and timers; changed ones are updated without
// a transition.
func (d *VRRPDriver) Apply(ctx context.Context, desired *spec.Node) error {
	cfg, err := VRRPConfig(desired)
	if err != nil {
		return err
	}
	if err := d.e.Set(ctx, cfg); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.places = placesOf(desired)
	return nil
}

// Plan implements Driver: the engine's Observe against the site, through
// vrrp.Diff. In a `gitgw plan` run, which has no engine running, every
// instance is planned as created unless the caller plans with a running
// agent's observed state (VRRPChanges).
func (d *VRRPDriver) Plan(_ context.Context, desired *spec.Node) ([]plan.Change, error) {
	return VRRPChanges(desired, d.e.Observe())
}

// VRRPChanges plans the node's VRRP instances against an engine's observed
// state: this process's, or a running agent's. One vrrp_instance change
// per instance and one vip change per VIP, with the master after apply in
// the details, predicted from the live roles when the instance runs.
func VRRPChanges(desired *spec.Node, observed vrrp.Observed) ([]plan.Change, error) {
	cfg, err := VRRPConfig(desired)
	if err != nil {
		return nil, err
	}
	want := vrrp.Desired{Node: desired.Name, Config: cfg, Priorities: map[string]map[string]int{}}
	for _, in := range cfg.Instances {
		prios := map[string]int{}
		for node, n := range desired.VRRP[in.Name].Nodes {
			prios[node] = n.Priority
		}
		want.Priorities[in.Name] = prios
	}
	changes := vrrp.Diff(want, observed)
	out := make([]plan.Change, 0, len(changes))
	for _, c := range changes {
		out = append(out, plan.Change{Driver: plan.FamilyVRRP.String(), Kind: c.Kind, ID: c.ID, Action: planAction(c.Op),
			Before: c.Before, After: c.After, Reason: c.Reason, Details: c.Details})
	}
	return out, nil
}

// planAction maps a subsystem's operation onto a plan action: the
// subsystems spell them the same way.
func planAction[O ~string](op O) plan.Action { return plan.Action(op) }

// unicastPeers picks, in the family of the instance's VIPs, this node's
// first address on the instance's interface as the source and every other
// node's first address there as a peer.
func unicastPeers(self string, si spec.VRRPInstance) (netip.Addr, []netip.Addr, error) {
	v6 := len(si.VIPs) > 0 && si.VIPs[0].Address.Addr().Is6()
	first := func(node string) (netip.Addr, bool) {
		for _, p := range si.PeerAddresses[node] {
			if p.Addr().Is6() == v6 {
				return p.Addr(), true
			}
		}
		return netip.Addr{}, false
	}
	src, ok := first(self)
	if !ok {
		return netip.Addr{}, nil, fmt.Errorf("unicast: node %s has no address on %s to send from", self, si.Interface)
	}
	var peers []netip.Addr
	var missing []string
	for _, node := range slices.Sorted(maps.Keys(si.Nodes)) {
		if node == self {
			continue
		}
		a, ok := first(node)
		if !ok {
			missing = append(missing, node)
			continue
		}
		peers = append(peers, a)
	}
	if len(missing) > 0 {
		return netip.Addr{}, nil, fmt.Errorf("unicast: nodes %s have no address on %s (set nodes.NAME.interfaces.%s.addresses)", strings.Join(missing, ", "), si.Interface, si.Interface)
	}
	return src, peers, nil
}

// allowSources is the instance's source allow-list: every node's own
// addresses on the instance's interface in the family of its VIPs, and
// allow_sources; nil (every sender heard) when allow_sources is "any".
// IPv6 adverts leave from a link-local address, so an IPv6 multicast
// instance takes only the nodes' link-local ones. A node with no address
// to take is an error unless allow_sources names senders: the list would
// shut its adverts out and make two masters.
func allowSources(si spec.VRRPInstance) ([]netip.Prefix, error) {
	if si.AllowSources.Any {
		return nil, nil
	}
	v6 := len(si.VIPs) > 0 && si.VIPs[0].Address.Addr().Is6()
	var out []netip.Prefix
	var missing []string
	for _, node := range slices.Sorted(maps.Keys(si.Nodes)) {
		found := false
		for _, p := range si.PeerAddresses[node] {
			a := p.Addr().Unmap()
			if a.Is6() != v6 || (v6 && !si.Unicast && !a.IsLinkLocalUnicast()) {
				continue
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			found = true
		}
		if !found {
			missing = append(missing, node)
		}
	}
	if len(missing) > 0 && len(si.AllowSources.Extra) == 0 {
		what := "IPv4"
		if v6 {
			what = "IPv6"
			if !si.Unicast {
				what = "link-local (IPv6 adverts leave from one)"
			}
		}
		return nil, fmt.Errorf("allowed sources: nodes %s have no %s address on %s in the site: add it to nodes.NAME.interfaces.%s.addresses, "+
			"list the senders in allow_sources, or set allow_sources: \"any\" to hear every sender on the link",
			strings.Join(missing, ", "), what, si.Interface, si.Interface)
	}
	return append(out, si.AllowSources.Extra...), nil
}

// VRRPConfig translates the node's VRRP instances into the engine's
// config. Features the engine refuses rather than half-implements (AH
// authentication, VIPs on another device, unicast without peer addresses in
// the spec) are errors naming the instance.
func VRRPConfig(n *spec.Node) (vrrp.Config, error) {
	var cfg vrrp.Config
	var errs []error
	groups := map[string][]string{}
	for _, name := range slices.Sorted(maps.Keys(n.VRRP)) {
		si := n.VRRP[name]
		me, ok := si.Nodes[n.Name]
		if !ok {
			continue // this node does not take part
		}
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("vrrp instance %s: %s", name, fmt.Sprintf(format, args...)))
		}
		if me.Priority < 1 || me.Priority > 255 {
			bad("priority %d of node %s outside 1..255", me.Priority, n.Name)
			continue
		}
		in := vrrp.Instance{
			Name: name, Interface: si.Interface, VRID: si.VRID, Version: uint8(si.Version),
			Interval: si.AdvertInterval.D(), Priority: uint8(me.Priority),
			NoPreempt: !si.Preempt, PreemptDelay: si.PreemptDelay.D(),
			GARP:  vrrp.GARP{Repeat: si.GARP.Repeat, Delay: si.GARP.Delay.D(), Refresh: si.GARP.Refresh.D()},
			Drift: vrrpDrift(n.Site.Drift.VRRP),
		}
		if si.Auth != nil {
			switch strings.ToUpper(si.Auth.Type) {
			case "PASS":
				pass := si.Auth.Password
				if si.Auth.PasswordFile != "" {
					b, err := os.ReadFile(si.Auth.PasswordFile)
					if err != nil {
						bad("auth password file: %v", err)
					}
					pass = strings.TrimSpace(string(b))
				}
				in.AuthPass = pass
			case "", "NONE":
			default:
				bad("auth type %q refused: only PASS (VRRPv2) is supported; AH is not", si.Auth.Type)
			}
		}
		for _, list := range []struct {
			from []spec.VIP
			to   *[]vrrp.VIP
		}{{si.VIPs, &in.VIPs}, {si.ExcludedVIPs, &in.ExcludedVIPs}} {
			for _, v := range list.from {
				if v.Dev != "" && v.Dev != si.Interface {
					bad("VIP %v on %s: VIPs live on the instance interface %s", v.Address, v.Dev, si.Interface)
				}
				*list.to = append(*list.to, vrrp.VIP{Prefix: v.Address, Label: v.Label})
			}
		}
		in.VMAC = si.VMAC
		allow, err := allowSources(si)
		if err != nil {
			bad("%v", err)
		}
		in.AllowSources = allow
		if si.Unicast {
			src, peers, err := unicastPeers(n.Name, si)
			if err != nil {
				bad("%v", err)
			}
			in.UnicastSrc, in.UnicastPeers = src, peers
		}
		for _, t := range si.TrackInterfaces {
			in.TrackInterfaces = append(in.TrackInterfaces, vrrp.TrackInterface{Name: t.Name, Weight: t.Weight})
		}
		for _, t := range si.TrackChecks {
			c, err := trackCheck(t)
			if err != nil {
				bad("%v", err)
				continue
			}
			in.TrackChecks = append(in.TrackChecks, c)
		}
		for _, s := range si.TrackServices {
			in.TrackChecks = append(in.TrackChecks, vrrp.Check{Name: "service:" + s.Service, Kind: vrrp.CheckService, Target: s.Service,
				Interval: time.Second, Rise: 1, Fall: 1, Weight: s.Weight})
		}
		sh := func(cmd string) []string {
			if cmd == "" {
				return nil
			}
			return []string{"/bin/sh", "-c", cmd}
		}
		in.Notify = vrrp.Notify{Master: sh(si.Notify.Master), Backup: sh(si.Notify.Backup), Fault: sh(si.Notify.Fault), Stop: sh(si.Notify.Stop)}
		if si.SyncGroup != "" {
			groups[si.SyncGroup] = append(groups[si.SyncGroup], name)
		}
		cfg.Instances = append(cfg.Instances, in)
	}
	for _, g := range slices.Sorted(maps.Keys(groups)) {
		cfg.SyncGroups = append(cfg.SyncGroups, vrrp.SyncGroup{Name: g, Instances: groups[g]})
	}
	if err := errors.Join(errs...); err != nil {
		return vrrp.Config{}, err
	}
	return cfg, cfg.Validate()
}

// vrrpDrift maps the site's drift mode for vrrp onto the engine's: the
// engine repairs VIPs on its own, from netlink events, between passes, so
// the Runner's triage alone cannot keep it from restoring one.
func vrrpDrift(m spec.DriftMode) vrrp.DriftMode {
	switch m {
	case spec.DriftReport:
		return vrrp.DriftReport
	case spec.DriftIgnore:
		return vrrp.DriftIgnore
	}
	return vrrp.DriftCorrect
}

// trackCheck maps a site check onto an in-process engine check.
func trackCheck(t spec.TrackCheck) (vrrp.Check, error) {
	c := vrrp.Check{Name: t.Name, Target: t.Target, Interval: t.Interval.D(), Timeout: t.Timeout.D(), Rise: t.Rise, Fall: t.Fall,
		Weight: t.Weight, ExpectStatus: t.ExpectStatus}
	switch t.Kind {
	case "tcp":
		c.Kind = vrrp.CheckTCP
	case "tcp-expect":
		c.Kind, c.Send, c.Expect = vrrp.CheckTCPExpect, t.Send, t.Expect
	case "http":
		c.Kind, c.Method, c.ExpectString = vrrp.CheckHTTP, t.Method, t.ExpectString
		if !strings.Contains(c.Target, "://") {
			host := c.Target
			if host == "" {
				host = t.Host
			} else {
				// The target is where to connect; host names the site
				// asked for (a virtual host behind that address).
				c.Host = t.Host
			}
			c.Target = "http://" + host + t.Path
		}
	case "command":
		c.Kind, c.Command = vrrp.CheckCommand, []string{"/bin/sh", "-c", t.Command}
	case "icmp":
		c.Kind = vrrp.CheckICMP
	default:
		return c, fmt.Errorf("check %s: kind %q unsupported", t.Name, t.Kind)
	}
	return c, nil
}
