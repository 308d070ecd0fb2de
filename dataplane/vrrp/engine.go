package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/gitgw/gitgw/dataplane/vip"
)

// VIPSet is what the engine needs to install and remove addresses;
// *vip.Manager implements it.
type VIPSet interface {
	Add(ctx context.Context, ifname string, addrs []vip.Address) error
	Remove(ctx context.Context, ifname string, addrs []vip.Address) error
}

// Announcer announces addresses on a link; *vip.Announcer implements it.
type Announcer interface {
	Announce(ifname string, addrs []netip.Addr) error
}

// Options are the engine's seams and settings. Zero fields get the real
// kernel: raw sockets, netlink, mdlayher/arp.
type Options struct {
	// StateDir receives vrrp-state.json (what this node is master of) on
	// every transition, for Release. Empty: no state file.
	StateDir string
	// Listen opens the packet connection of one interface and family.
	Listen func(ifname string, v6 bool) (Conn, error)
	VIPs   VIPSet
	// Announce sends gratuitous ARP / NA.
	Announce Announcer
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// ServiceHealthy answers CheckService checks (the proxy's view).
	ServiceHealthy func(name string) bool
	// PrimaryAddr returns the interface's advert source for a family.
	PrimaryAddr func(ifname string, v6 bool) (netip.Addr, error)
	// WatchAddrs, when set, is started by Run to learn about addresses
	// changed behind the engine's back (vip.Watch).
	WatchAddrs func(ctx context.Context, fn func(vip.Event)) error
	// WatchLinks, when set, is started by Run to learn link state changes.
	WatchLinks func(ctx context.Context, fn func(ifname string, up bool)) error
	// LinkUp reports an interface's current link state (tracking's start).
	LinkUp func(ifname string) bool
	// VMAC creates and removes virtual-MAC macvlans (*vip.Manager).
	VMAC VMACs
	// Resume lets the engine take over mastership kept by a restart
	// (restart.go): only the agent's engine, not one built for a plan,
	// which must leave the record to the agent.
	Resume bool
	// RestartHold bounds how long mastership kept by a restart is
	// advertised before Set claims it (DefaultRestartHold when zero).
	RestartHold time.Duration
}

// VMACs manages the macvlans of instances with a virtual MAC;
// *vip.Manager implements it.
type VMACs interface {
	EnsureVMAC(parent string, vrid uint8, v6 bool, sysctlRoot string) (string, error)
	// SetVMACUp sets an IPv6 VMAC up (master) or down (anything else).
	SetVMACUp(name string, up bool) error
	RemoveVMAC(name string) error
}

// Transition is one state change, sent on Events.
type Transition struct {
	Instance string    `json:"instance"`
	From     State     `json:"from"`
	To       State     `json:"to"`
	Reason   string    `json:"reason"`
	Priority uint8     `json:"priority"`
	At       time.Time `json:"at"`
}

// DriftEvent is a VIP changed behind the engine's back and repaired: put
// back while master ("restored") or taken away while not ("removed"); or,
// with DriftReport, left as found: missing while master ("missing") or
// present while not ("extra").
type DriftEvent struct {
	Instance string       `json:"instance"`
	VIP      netip.Prefix `json:"vip"`
	Action   string       `json:"action"`
	At       time.Time    `json:"at"`
}

// Counters are per-instance statistics.
type Counters struct {
	AdvertsIn   uint64                `json:"adverts_in"`
	AdvertsOut  uint64                `json:"adverts_out"`
	Transitions uint64                `json:"transitions"`
	Drops       map[DropReason]uint64 `json:"drops,omitempty"`
	// ChecksumMessageOnly counts v3/IPv4 adverts accepted in the
	// message-only checksum form.
	ChecksumMessageOnly uint64 `json:"checksum_message_only"`
	// Conflicts counts adverts from a router whose address list has
	// nothing in common with ours: a foreign virtual router on our VRID
	// (dropped).
	Conflicts uint64 `json:"conflicts"`
	// AddrListMismatch counts adverts whose address list differs from ours
	// but overlaps it: a site change half rolled out (accepted).
	AddrListMismatch uint64 `json:"addr_list_mismatch"`
	// Drift counts VIPs put back (removed by hand while master) or taken
	// away (present while not master).
	Drift         uint64 `json:"drift"`
	Announcements uint64 `json:"announcements"`
	Errors        uint64 `json:"errors"`
}

// InstanceStatus is a snapshot of one instance.
type InstanceStatus struct {
	Name                string         `json:"name"`
	Interface           string         `json:"interface"`
	VRID                uint8          `json:"vrid"`
	Version             uint8          `json:"version"`
	State               State          `json:"state"`
	BasePriority        uint8          `json:"base_priority"`
	Priority            uint8          `json:"priority"`
	MasterAddr          netip.Addr     `json:"master_addr,omitzero"`
	MasterPriority      uint8          `json:"master_priority"`
	MasterAdverInterval time.Duration  `json:"master_adver_interval"`
	VIPs                []netip.Prefix `json:"vips"`
	Faults              []string       `json:"faults,omitempty"`
	LastConflict        netip.Addr     `json:"last_conflict,omitzero"`
	LastTransition      time.Time      `json:"last_transition,omitzero"`
	Counters            Counters       `json:"counters"`
}

// Engine runs VRRP instances. Create it with New, configure it with Set,
// stop it with Stop (priority 0 for everything it is master of).
type Engine struct {
	log    *slog.Logger
	opts   Options
	events chan Transition
	drifts chan DriftEvent

	// setMu serializes Set and Stop; regMu guards the instances and
	// groups maps for readers (Status, sync groups, watchers) and is never
	// held while waiting for an instance.
	setMu     sync.Mutex
	regMu     sync.RWMutex
	instances map[string]*instance
	links     map[linkKey]*link
	groups    map[string][]string // instance → other members
	cfg       Config
	stopped   bool
	state     *stateFile
	// epoch aligns every master's adverts (Params.Epoch).
	epoch time.Time
	// held is the mastership kept by a restart, until Set claims it
	// (restart_hold.go).
	held holders
}

type linkKey struct {
	ifname string
	v6     bool
}

// New returns an engine with no instances.
func New(logger *slog.Logger, opts Options) *Engine {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Listen == nil {
		opts.Listen = func(ifname string, v6 bool) (Conn, error) { return Listen(ifname, v6) }
	}
	if opts.PrimaryAddr == nil {
		opts.PrimaryAddr = interfaceAddr
	}
	e := &Engine{
		log:       logger.With("component", "vrrp"),
		opts:      opts,
		events:    make(chan Transition, 256),
		drifts:    make(chan DriftEvent, 64),
		instances: map[string]*instance{},
		links:     map[linkKey]*link{},
		groups:    map[string][]string{},
	}
	e.state = openStateFile(opts.StateDir, e.log)
	e.epoch = opts.Now().Truncate(time.Second)
	e.startHolders()
	return e
}

// Events delivers every transition; if nobody reads, the oldest are lost
// rather than the protocol blocked.
func (e *Engine) Events() <-chan Transition { return e.events }

// Run starts the address and link watchers (when configured) and blocks
// until ctx ends, then stops the engine with a fresh 5 s context.
func (e *Engine) Run(ctx context.Context) error {
	if e.opts.WatchAddrs != nil {
		if err := e.opts.WatchAddrs(ctx, e.addrEvent); err != nil {
			return fmt.Errorf("vrrp: watch addresses: %w", err)
		}
	}
	if e.opts.WatchLinks != nil {
		if err := e.opts.WatchLinks(ctx, e.linkEvent); err != nil {
			return fmt.Errorf("vrrp: watch links: %w", err)
		}
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return e.Stop(sctx)
}

// Set makes the running instances match cfg: new instances start, removed
// ones leave with priority 0, changed ones are updated in place (no
// transition) unless their identity (interface, VRID, version, family,
// transport) changed, in which case they are restarted. Unchanged instances
// are not touched. Setting the same config twice does nothing.
func (e *Engine) Set(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	e.setMu.Lock()
	defer e.setMu.Unlock()
	if e.stopped {
		return errors.New("vrrp: engine stopped")
	}
	want := map[string]Instance{}
	for _, in := range cfg.Instances {
		want[in.Name] = in.withDefaults()
	}
	groups := map[string][]string{}
	for _, g := range cfg.SyncGroups {
		for _, n := range g.Instances {
			groups[n] = slices.DeleteFunc(slices.Clone(g.Instances), func(o string) bool { return o == n })
		}
	}
	e.regMu.Lock()
	e.groups = groups
	e.regMu.Unlock()
	var errs []error
	// Add and update before removing.
	for _, name := range slices.Sorted(maps.Keys(want)) {
		in := want[name]
		cur, ok := e.instances[name]
		switch {
		case !ok:
			if err := e.startLocked(ctx, in); err != nil {
				errs = append(errs, err)
			}
		case reflect.DeepEqual(cur.wanted, in):
		case cur.sameIdentity(in):
			cur.update(in)
		default:
			e.removeLocked(ctx, name, "identity changed")
			if err := e.startLocked(ctx, in); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(e.instances)) {
		if _, ok := want[name]; !ok {
			e.removeLocked(ctx, name, "removed from config")
		}
	}
	e.releaseHolders(want)
	e.cfg = cfg
	return errors.Join(errs...)
}

// Stop shuts every instance down (priority 0 from masters, VIPs removed)
// and closes the sockets. The engine cannot be restarted.
func (e *Engine) Stop(ctx context.Context) error {
	e.setMu.Lock()
	defer e.setMu.Unlock()
	if e.stopped {
		return nil
	}
	e.stopped = true
	for _, name := range slices.Sorted(maps.Keys(e.instances)) {
		e.removeLocked(ctx, name, "engine stopped")
	}
	e.releaseHolders(nil)
	return nil
}

// Status returns a snapshot of every instance, sorted by name.
func (e *Engine) Status() []InstanceStatus {
	e.regMu.RLock()
	insts := slices.Collect(maps.Values(e.instances))
	e.regMu.RUnlock()
	out := make([]InstanceStatus, 0, len(insts))
	for _, in := range insts {
		out = append(out, in.status())
	}
	slices.SortFunc(out, func(a, b InstanceStatus) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

func (e *Engine) startLocked(ctx context.Context, cfg Instance) error {
	v6 := cfg.IPv6()
	primary := cfg.UnicastSrc
	if !primary.IsValid() {
		var err error
		if primary, err = e.opts.PrimaryAddr(cfg.Interface, v6); err != nil {
			return fmt.Errorf("vrrp: instance %q: %w", cfg.Name, err)
		}
	}
	// With a VMAC the instance speaks on the macvlan: adverts leave with
	// the virtual MAC, and a peer's adverts, which carry that same source
	// MAC, are delivered by the kernel to the local macvlan only. An IPv6
	// macvlan is up only while master (see vip.EnsureVMAC): the rest of
	// the time the peer's adverts reach the parent, so the instance
	// listens there too, and its adverts name the parent's link-local
	// (primary) as source.
	ifname, vmacName := cfg.Interface, ""
	if cfg.VMAC {
		if e.opts.VMAC == nil {
			return fmt.Errorf("vrrp: instance %q: VMAC requested but no VMAC manager", cfg.Name)
		}
		var err error
		if vmacName, err = e.opts.VMAC.EnsureVMAC(cfg.Interface, cfg.VRID, v6, ""); err != nil {
			return fmt.Errorf("vrrp: instance %q: %w", cfg.Name, err)
		}
		ifname = vmacName
	}
	l, err := e.openLink(linkKey{ifname, v6})
	if err != nil {
		return fmt.Errorf("vrrp: instance %q: %w", cfg.Name, err)
	}
	var parent *link
	if cfg.VMAC && v6 {
		if parent, err = e.openLink(linkKey{cfg.Interface, v6}); err != nil {
			if l.idle() {
				delete(e.links, l.key)
				l.close()
			}
			return fmt.Errorf("vrrp: instance %q: %w", cfg.Name, err)
		}
	}
	in := newInstance(e, cfg, primary, l)
	in.parentLink = parent
	in.resume = e.claimHolder(cfg)
	if vmacName != "" {
		in.setVIPIf(vmacName)
		// Leftovers on the parent (VMAC switched on) go too.
		if e.opts.VIPs != nil {
			_ = e.opts.VIPs.Remove(ctx, cfg.Interface, in.allVIPs())
		}
	}
	l.attach(in)
	if parent != nil {
		parent.attach(in)
	}
	e.regMu.Lock()
	e.instances[cfg.Name] = in
	e.regMu.Unlock()
	// A crash may have left our VIPs behind: we start as Backup, so they go
	// (unless a restart kept them for us to resume).
	if e.opts.VIPs != nil && !in.resume {
		if err := e.opts.VIPs.Remove(ctx, in.vipIf(), in.allVIPs()); err != nil {
			e.log.Error("removing stale VIPs", "instance", cfg.Name, "err", err)
		}
	}
	in.start()
	return nil
}

// openLink returns the link of k, opening it if none is open.
func (e *Engine) openLink(k linkKey) (*link, error) {
	if l := e.links[k]; l != nil {
		return l, nil
	}
	c, err := e.opts.Listen(k.ifname, k.v6)
	if err != nil {
		return nil, err
	}
	l := newLink(e, k, c)
	e.links[k] = l
	go l.readLoop()
	return l, nil
}

func (e *Engine) removeLocked(ctx context.Context, name, reason string) {
	in := e.instances[name]
	if in == nil {
		return
	}
	e.regMu.Lock()
	delete(e.instances, name)
	e.regMu.Unlock()
	in.stop(ctx, reason)
	for _, l := range []*link{in.link, in.parentLink} {
		if l != nil && l.detach(in) == 0 {
			delete(e.links, l.key)
			l.close()
		}
	}
	if in.vmac != "" && e.opts.VMAC != nil {
		if err := e.opts.VMAC.RemoveVMAC(in.vmac); err != nil {
			e.log.Error("remove VMAC", "instance", name, "err", err)
		}
	}
}

// syncPeers returns the other members of name's sync group.
func (e *Engine) syncPeers(name string) []*instance {
	e.regMu.RLock()
	defer e.regMu.RUnlock()
	var out []*instance
	for _, n := range e.groups[name] {
		if in := e.instances[n]; in != nil {
			out = append(out, in)
		}
	}
	return out
}

// syncPeerInFault names a member of name's sync group that is in fault
// for a reason of its own, or returns "".
func (e *Engine) syncPeerInFault(name string) string {
	e.regMu.RLock()
	defer e.regMu.RUnlock()
	for _, n := range e.groups[name] {
		if in := e.instances[n]; in != nil && in.ownFault.Load() {
			return n
		}
	}
	return ""
}

// Drifts delivers every VIP drift repaired (lost when nobody reads).
func (e *Engine) Drifts() <-chan DriftEvent { return e.drifts }

func (e *Engine) emitDrift(d DriftEvent) {
	select {
	case e.drifts <- d:
	default:
	}
}

func (e *Engine) emit(t Transition) {
	select {
	case e.events <- t:
	default:
		e.log.Warn("transition event dropped: nobody reads Events", "instance", t.Instance)
	}
}

func (e *Engine) addrEvent(ev vip.Event) {
	e.regMu.RLock()
	insts := slices.Collect(maps.Values(e.instances))
	e.regMu.RUnlock()
	for _, in := range insts {
		in.addrEvent(ev)
	}
}

func (e *Engine) linkEvent(ifname string, up bool) {
	e.regMu.RLock()
	insts := slices.Collect(maps.Values(e.instances))
	e.regMu.RUnlock()
	for _, in := range insts {
		in.linkEvent(ifname, up)
	}
}

// interfaceAddr returns the first IPv4 address, or the IPv6 link-local
// address, of ifname.
func interfaceAddr(ifname string, v6 bool) (netip.Addr, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("interface %s: %w", ifname, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("addresses of %s: %w", ifname, err)
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if !v6 && ip.Is4() {
			return ip, nil
		}
		if v6 && ip.Is6() && ip.IsLinkLocalUnicast() {
			return ip, nil
		}
	}
	fam := "IPv4"
	if v6 {
		fam = "IPv6 link-local"
	}
	return netip.Addr{}, fmt.Errorf("no %s address on %s", fam, ifname)
}
