package vrrp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gitgw/gitgw/dataplane/vip"
)

// instance runs one Machine on its own goroutine: every packet, timer,
// tracking change and config update is handled there, in order.
type instance struct {
	e       *Engine
	link    *link
	primary netip.Addr
	ifindex int    // of the interface holding the VIPs
	vmac    string // the VMAC macvlan holding the VIPs, if any
	// parentLink is the parent's link, where an IPv6 VMAC instance hears
	// adverts while its macvlan is down (vip.EnsureVMAC).
	parentLink *link
	// vmacUp: the IPv6 VMAC is up (only while master, or sending).
	vmacUp atomic.Bool

	in   chan Received
	ctrl chan func()
	quit chan string
	done chan struct{}

	// Owned by the goroutine (cfg is also read by Set under e.setMu before
	// the goroutine starts and through update).
	cfg       Instance
	advCache  map[uint8][][]byte // encoded adverts by priority, per destination
	wanted    Instance           // the last config given by Set; guarded by e.setMu
	m         *Machine
	garpAt    []time.Time
	refreshAt time.Time
	linkUp    map[string]bool
	checkOK   map[string]bool
	// ownFault: the instance is in fault for a reason of its own (not
	// its sync group's). Its sync-group peers read it from their own
	// goroutines, hence atomic.
	ownFault atomic.Bool
	// toldFault is the own fault the peers were last told to re-evaluate.
	toldFault bool
	faults    []string
	counters  Counters
	lastConf  netip.Addr
	// lastRefused is the last sender dropped by the allow-list that was
	// logged, at refusedLogged.
	lastRefused   netip.Addr
	refusedLogged time.Time
	lastTrans     time.Time
	checks        *checkSet
	notify        *notifier
	// resume: start as master (restart.go); hold: stop without leaving
	// mastership, set by holdForRestart.
	resume, hold bool

	// mu is held by the goroutine while it handles an event, and by
	// status.
	mu sync.Mutex
}

func newInstance(e *Engine, cfg Instance, primary netip.Addr, l *link) *instance {
	in := &instance{
		e: e, link: l, primary: primary, cfg: cfg, wanted: cfg,
		in:      make(chan Received, 64),
		ctrl:    make(chan func(), 64),
		quit:    make(chan string, 1),
		done:    make(chan struct{}),
		linkUp:  map[string]bool{},
		checkOK: map[string]bool{},
	}
	in.setVIPIf(cfg.Interface)
	in.counters.Drops = map[DropReason]uint64{}
	in.m = NewMachine(in.params())
	in.notify = newNotifier(e.log, cfg.Name)
	return in
}

func (in *instance) sameIdentity(c Instance) bool { return sameIdentity(in.wanted, c) }

func (in *instance) params() Params {
	prio, _ := in.effective()
	return Params{
		Version: in.cfg.Version, Priority: prio, Interval: in.cfg.Interval,
		Preempt: !in.cfg.NoPreempt, PreemptDelay: in.cfg.PreemptDelay, Primary: in.primary,
		Epoch: in.e.epoch,
	}
}

func (in *instance) start() {
	for _, n := range in.trackedLinks() {
		in.linkUp[n] = in.e.opts.LinkUp == nil || in.e.opts.LinkUp(n)
	}
	in.checks = startChecks(in)
	go in.run()
}

// do runs f on the instance's goroutine; it is dropped if the instance
// has stopped.
func (in *instance) do(f func()) {
	select {
	case in.ctrl <- f:
	case <-in.done:
	}
}

func (in *instance) deliver(r Received) {
	select {
	case in.in <- r:
	default: // overloaded: dropping is what the wire would do
	}
}

// update hands the instance a config of the same identity and waits until
// its goroutine has taken it (VIPs installed or removed, priority
// re-tracked): whoever observes after Set returns sees the new config, not
// the one still queued. The goroutine never waits for Set, so waiting here
// cannot deadlock; a stopped instance is not waited for.
func (in *instance) update(cfg Instance) {
	in.wanted = cfg
	applied := make(chan struct{})
	in.do(func() { in.apply(cfg); close(applied) })
	select {
	case <-applied:
	case <-in.done:
	}
}

func (in *instance) stop(ctx context.Context, reason string) {
	in.quit <- reason
	select {
	case <-in.done:
	case <-ctx.Done():
		// The goroutine is stuck (a hung netlink call?): leave it and its
		// checks and hooks to finish on their own rather than race them.
		in.e.log.Error("instance did not stop in time", "instance", in.wanted.Name, "err", ctx.Err())
		return
	}
	in.checks.stop()
	in.notify.close(ctx)
}

func (in *instance) run() {
	defer close(in.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	in.mu.Lock()
	in.begin(in.e.opts.Now())
	in.mu.Unlock()
	for {
		// Go ≥ 1.23 timers: Reset discards a stale expiry, no drain needed.
		if next := in.nextDeadline(); !next.IsZero() {
			timer.Reset(next.Sub(in.e.opts.Now()))
		} else {
			timer.Reset(time.Hour)
		}
		select {
		case r := <-in.in:
			in.mu.Lock()
			in.receive(r)
			in.mu.Unlock()
		case f := <-in.ctrl:
			in.mu.Lock()
			f()
			in.mu.Unlock()
			if in.hold {
				return
			}
		case <-timer.C:
			in.mu.Lock()
			now := in.e.opts.Now()
			in.exec(now, in.m.Tick(now))
			in.garpTick(now)
			in.mu.Unlock()
		case reason := <-in.quit:
			in.mu.Lock()
			in.exec(in.e.opts.Now(), in.m.Shutdown(reason))
			in.mu.Unlock()
			return
		}
	}
}

func (in *instance) nextDeadline() time.Time {
	next := in.m.Deadline()
	earlier := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if len(in.garpAt) > 0 {
		earlier(in.garpAt[0])
	}
	earlier(in.refreshAt)
	return next
}

// receive applies the receive checks of RFC 5798 §7.1 (and keepalived's
// address-list equality) and feeds the machine.
func (in *instance) receive(r Received) {
	drop := func(reason DropReason) { in.counters.Drops[reason]++ }
	c := in.cfg
	if !c.SourceAllowed(r.Src) {
		drop(DropSource)
		// One line per new sender, at most one a minute: a LAN host
		// spoofing a new source per packet must not flood the journal.
		if now := in.e.opts.Now(); in.lastRefused != r.Src && now.Sub(in.refusedLogged) >= time.Minute {
			in.e.log.Warn("advert from a sender outside the allowed sources dropped (allow_sources in the site lets it in)",
				"instance", c.Name, "from", r.Src, "dropped", in.counters.Drops[DropSource])
			in.lastRefused, in.refusedLogged = r.Src, now
		}
		return
	}
	if r.TTL != 255 {
		drop(DropTTL)
		return
	}
	p, form, err := Decode(r.Payload, r.Src, r.Dst)
	if err != nil {
		drop(ReasonOf(err))
		return
	}
	if p.Version != c.Version {
		drop(DropVersion)
		return
	}
	if p.Version == 2 {
		var want Packet
		want.SetPassword(c.AuthPass)
		if p.AuthType != want.AuthType || p.AuthData != want.AuthData {
			drop(DropAuth)
			return
		}
		if p.Interval != c.Interval {
			drop(DropInterval)
			return
		}
	}
	if !sameAddrs(p.Addrs, in.advertised()) {
		if !overlap(p.Addrs, in.advertised()) {
			// Nothing in common: another virtual router on our VRID.
			drop(DropAddrList)
			in.counters.Conflicts++
			if in.lastConf != r.Src {
				in.e.log.Warn("foreign router on our VRID: address lists differ", "instance", c.Name, "from", r.Src, "addrs", p.Addrs)
			}
			in.lastConf = r.Src
			return
		}
		// Same router, other VIP list: the site changed and the peer has
		// not applied it yet (or we have not). keepalived drops such
		// adverts, which makes both nodes master for the length of a
		// rollout; we count it and keep the election going.
		in.counters.AddrListMismatch++
	}
	if form == ChecksumMessage {
		in.counters.ChecksumMessageOnly++
	}
	in.counters.AdvertsIn++
	now := in.e.opts.Now()
	in.exec(now, in.m.Advert(now, r.Src, p.Priority, p.Interval))
}

func overlap(a, b []netip.Addr) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

func sameAddrs(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	x, y := slices.Clone(a), slices.Clone(b)
	slices.SortFunc(x, netip.Addr.Compare)
	slices.SortFunc(y, netip.Addr.Compare)
	return slices.Equal(x, y)
}

func (in *instance) advertised() []netip.Addr {
	out := make([]netip.Addr, len(in.cfg.VIPs))
	for i, v := range in.cfg.VIPs {
		out[i] = v.Prefix.Addr()
	}
	return out
}

func (in *instance) allVIPs() []vip.Address {
	var out []vip.Address
	for _, v := range append(slices.Clone(in.cfg.VIPs), in.cfg.ExcludedVIPs...) {
		out = append(out, vip.Address{Prefix: v.Prefix, Label: v.Label, Scope: v.Scope})
	}
	return out
}

func (in *instance) destinations() []netip.Addr {
	if len(in.cfg.UnicastPeers) > 0 {
		return in.cfg.UnicastPeers
	}
	if in.cfg.IPv6() {
		return []netip.Addr{GroupV6}
	}
	return []netip.Addr{GroupV4}
}

func (in *instance) packet(prio uint8) *Packet {
	p := &Packet{Version: in.cfg.Version, VRID: in.cfg.VRID, Priority: prio, Interval: in.cfg.Interval, Addrs: in.advertised()}
	if p.Version == 2 {
		p.SetPassword(in.cfg.AuthPass)
	}
	return p
}

func (in *instance) form() ChecksumForm {
	if in.cfg.ChecksumMessageOnly {
		return ChecksumMessage
	}
	return ChecksumPseudo
}

func (in *instance) send(prio uint8) {
	in.setVMACUp(true) // a router that sends is master: its adverts carry the VMAC
	msgs, ok := in.advCache[prio]
	if !ok {
		p := in.packet(prio)
		for _, dst := range in.destinations() {
			b, err := p.Marshal(in.primary, dst, in.form())
			if err != nil {
				in.counters.Errors++
				in.e.log.Error("encode advert", "instance", in.cfg.Name, "err", err)
				return
			}
			msgs = append(msgs, b)
		}
		if in.advCache == nil {
			in.advCache = map[uint8][][]byte{}
		}
		in.advCache[prio] = msgs
	}
	for i, dst := range in.destinations() {
		err := in.link.conn.Write(msgs[i], in.primary, dst)
		if err != nil {
			in.counters.Errors++
			in.e.log.Warn("send advert", "instance", in.cfg.Name, "err", err)
			continue
		}
		in.counters.AdvertsOut++
	}
}

func (in *instance) exec(now time.Time, outs []Output) {
	for _, o := range outs {
		switch o.Kind {
		case OutSend:
			in.send(o.Priority)
		case OutTransition:
			in.transition(now, o)
		case OutAnnounce:
			in.e.log.Info("contested mastership: re-asserting", "instance", in.cfg.Name, "reason", o.Reason)
			in.announce()
			in.scheduleGARP(now)
		}
	}
}

func (in *instance) transition(now time.Time, o Output) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := in.cfg
	in.counters.Transitions++
	in.lastTrans = now
	if o.To == StateMaster {
		in.setVMACUp(true)
		if in.e.opts.VIPs != nil {
			if err := in.e.opts.VIPs.Add(ctx, in.vipIf(), in.allVIPs()); err != nil {
				in.counters.Errors++
				in.e.log.Error("install VIPs", "instance", c.Name, "err", err)
			}
		}
		in.announce()
		in.scheduleGARP(now)
		if c.GARP.Refresh > 0 {
			in.refreshAt = now.Add(c.GARP.Refresh)
		}
		in.e.state.set(in.stateEntry())
	}
	if o.From == StateMaster {
		in.garpAt, in.refreshAt = nil, time.Time{}
		// Down first: the VIPs go with the link, without the MLD leave
		// a removal from an up IPv6 VMAC would send with the shared MAC.
		in.setVMACUp(false)
		if in.e.opts.VIPs != nil {
			if err := in.e.opts.VIPs.Remove(ctx, in.vipIf(), in.allVIPs()); err != nil {
				in.counters.Errors++
				in.e.log.Error("remove VIPs", "instance", c.Name, "err", err)
			}
		}
		in.e.state.remove(c.Name)
	}
	prio := in.m.Params().Priority
	in.e.log.Info("transition", "instance", c.Name, "from", o.From, "to", o.To, "reason", o.Reason, "priority", prio)
	in.notify.run(c, o.To, prio)
	in.e.emit(Transition{Instance: c.Name, From: o.From, To: o.To, Reason: o.Reason, Priority: prio, At: now})
	in.syncGroup(o)
}

// syncGroup makes the other members of the instance's sync group follow.
func (in *instance) syncGroup(o Output) {
	peers := in.e.syncPeers(in.cfg.Name)
	if len(peers) == 0 {
		return
	}
	name := in.cfg.Name
	for _, p := range peers {
		p := p
		g := func() {
			now := p.e.opts.Now()
			switch o.To {
			case StateMaster, StateBackup:
				p.exec(now, p.m.Force(now, o.To, "sync group member "+name+" is "+o.To.String()))
			}
		}
		// Asynchronously: two members may be forcing each other.
		go p.do(g)
	}
}

func (in *instance) announce() {
	if in.e.opts.Announce == nil {
		return
	}
	var addrs []netip.Addr
	for _, v := range in.allVIPs() {
		addrs = append(addrs, v.Prefix.Addr())
	}
	var err error
	if in.vmac != "" && in.cfg.IPv6() {
		// From the macvlan itself: its MAC is the target link-layer
		// address and the Ethernet source, and the VIP it holds is the
		// IPv6 source (it has no link-local).
		err = in.e.opts.Announce.Announce(in.vmac, addrs)
	} else if af, ok := in.e.opts.Announce.(announcerFrom); ok && in.vmac != "" {
		err = af.AnnounceFrom(in.cfg.Interface, vip.VMACAddr(in.cfg.VRID), addrs)
	} else {
		err = in.e.opts.Announce.Announce(in.cfg.Interface, addrs)
	}
	if err != nil {
		in.counters.Errors++
		in.e.log.Warn("announce VIPs", "instance", in.cfg.Name, "err", err)
		return
	}
	in.counters.Announcements++
}

func (in *instance) scheduleGARP(now time.Time) {
	g := in.cfg.GARP
	in.garpAt = in.garpAt[:0]
	for i := 1; i < g.Repeat; i++ {
		in.garpAt = append(in.garpAt, now.Add(time.Duration(i)*g.Spacing))
	}
	if g.Delay > 0 {
		for i := 0; i < g.Repeat; i++ {
			in.garpAt = append(in.garpAt, now.Add(g.Delay+time.Duration(i)*g.Spacing))
		}
	}
}

func (in *instance) garpTick(now time.Time) {
	if in.m.State() != StateMaster {
		return
	}
	due := false
	for len(in.garpAt) > 0 && !in.garpAt[0].After(now) {
		in.garpAt = in.garpAt[1:]
		due = true
	}
	if !in.refreshAt.IsZero() && !in.refreshAt.After(now) {
		in.refreshAt = now.Add(in.cfg.GARP.Refresh)
		due = true
	}
	if due {
		in.announce()
	}
}

// apply takes a new configuration of the same identity: no transition,
// VIP changes applied at once if master.
func (in *instance) apply(cfg Instance) {
	old := in.cfg
	in.cfg = cfg
	in.advCache = nil
	now := in.e.opts.Now()
	if in.m.State() == StateMaster && in.e.opts.VIPs != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		oldSet := (&instance{cfg: old}).allVIPs()
		newSet := in.allVIPs()
		var gone []vip.Address
		for _, a := range oldSet {
			if !slices.ContainsFunc(newSet, func(b vip.Address) bool { return b.Prefix == a.Prefix }) {
				gone = append(gone, a)
			}
		}
		add := newSet
		if cfg.Drift != DriftCorrect {
			// A config change is not a repair: install only the VIPs new
			// in it, leaving one removed by hand missing.
			add = slices.DeleteFunc(slices.Clone(newSet), func(a vip.Address) bool {
				return slices.ContainsFunc(oldSet, func(b vip.Address) bool { return b.Prefix == a.Prefix })
			})
		}
		if err := in.e.opts.VIPs.Add(ctx, in.vipIf(), add); err != nil {
			in.counters.Errors++
			in.e.log.Error("install VIPs", "instance", cfg.Name, "err", err)
		}
		if err := in.e.opts.VIPs.Remove(ctx, in.vipIf(), gone); err != nil {
			in.counters.Errors++
			in.e.log.Error("remove VIPs", "instance", cfg.Name, "err", err)
		}
		cancel()
		if !reflect.DeepEqual(oldSet, newSet) {
			in.announce()
		}
		in.e.state.set(in.stateEntry())
		if cfg.GARP.Refresh != old.GARP.Refresh {
			in.refreshAt = time.Time{}
			if cfg.GARP.Refresh > 0 {
				in.refreshAt = now.Add(cfg.GARP.Refresh)
			}
		}
	}
	if !reflect.DeepEqual(old.TrackChecks, cfg.TrackChecks) || !reflect.DeepEqual(old.TrackInterfaces, cfg.TrackInterfaces) {
		in.checks.stop()
		for _, n := range in.trackedLinks() {
			if _, ok := in.linkUp[n]; !ok {
				in.linkUp[n] = in.e.opts.LinkUp == nil || in.e.opts.LinkUp(n)
			}
		}
		for n := range in.checkOK {
			if !slices.ContainsFunc(cfg.TrackChecks, func(c Check) bool { return c.Name == n }) {
				delete(in.checkOK, n)
			}
		}
		in.checks = startChecks(in)
	}
	in.retrack("configuration changed")
}

func (in *instance) trackedLinks() []string {
	out := []string{in.cfg.Interface}
	for _, t := range in.cfg.TrackInterfaces {
		out = append(out, t.Name)
	}
	return out
}

// effective computes the priority after tracking weights and the fault
// reasons (keepalived's arithmetic: weight 0 → fault; a positive weight is
// added while healthy, a negative one while failing; result clamped to
// 1..254 unless unchanged).
func (in *instance) effective() (uint8, []string) {
	c := in.cfg
	var faults []string
	prio := int(c.Priority)
	apply := func(what string, ok bool, weight int) {
		switch {
		case weight == 0 && !ok:
			faults = append(faults, what)
		case weight > 0 && ok, weight < 0 && !ok:
			prio += weight
		}
	}
	if up, ok := in.linkUp[c.Interface]; ok && !up {
		faults = append(faults, "interface "+c.Interface+" down")
	}
	for _, t := range c.TrackInterfaces {
		up, ok := in.linkUp[t.Name]
		apply("interface "+t.Name+" down", !ok || up, t.Weight)
	}
	for _, ch := range c.TrackChecks {
		good, ok := in.checkOK[ch.Name]
		apply("check "+ch.Name+" failing", !ok || good, ch.Weight)
	}
	in.ownFault.Store(len(faults) > 0)
	// keepalived's sync group: in fault while any member is in fault of
	// its own. Not while a member is in fault only because of the group:
	// a flag set by a member's entering fault and cleared by its leaving
	// it was never cleared once every member was in fault (each held the
	// others'), so the group stayed in fault after the link came back.
	if peer := in.e.syncPeerInFault(c.Name); peer != "" {
		faults = append(faults, "sync group member "+peer+" in fault")
	}
	if prio != int(c.Priority) {
		prio = max(1, min(254, prio))
	}
	return uint8(prio), faults
}

func (in *instance) faultReasons() []string {
	_, f := in.effective()
	return f
}

// retrack re-evaluates priority and fault after a tracking change.
func (in *instance) retrack(why string) {
	now := in.e.opts.Now()
	p := in.params()
	if p != in.m.Params() {
		in.exec(now, in.m.Update(now, p))
	}
	_, faults := in.effective()
	in.faults = faults
	if own := in.ownFault.Load(); own != in.toldFault {
		// The peers re-evaluate with this member's new own fault.
		in.toldFault = own
		name := in.cfg.Name
		for _, p := range in.e.syncPeers(name) {
			go p.do(func() {
				p.retrack("sync group member " + name + map[bool]string{true: " in fault", false: " left fault"}[own])
			})
		}
	}
	reason := why
	if len(faults) > 0 {
		reason = faults[0]
	}
	in.exec(now, in.m.SetFault(now, len(faults) > 0, reason))
}

func (in *instance) linkEvent(ifname string, up bool) {
	in.do(func() {
		if !slices.Contains(in.trackedLinks(), ifname) || in.linkUp[ifname] == up {
			return
		}
		in.linkUp[ifname] = up
		in.retrack(fmt.Sprintf("interface %s %s", ifname, map[bool]string{true: "up", false: "down"}[up]))
	})
}

func (in *instance) checkResult(name string, ok bool) {
	in.do(func() {
		if prev, seen := in.checkOK[name]; seen && prev == ok {
			return
		}
		in.checkOK[name] = ok
		in.retrack(fmt.Sprintf("check %s %s", name, map[bool]string{true: "healthy", false: "failing"}[ok]))
	})
}

// announcerFrom is implemented by *vip.Announcer: announcing a virtual MAC
// through its parent.
type announcerFrom interface {
	AnnounceFrom(ifname string, hw net.HardwareAddr, addrs []netip.Addr) error
}

// setVMACUp sets an IPv6 VMAC up or down (see vip.EnsureVMAC); nothing
// for other instances.
func (in *instance) setVMACUp(up bool) {
	if in.parentLink == nil || in.vmacUp.Load() == up || in.e.opts.VMAC == nil {
		return
	}
	if err := in.e.opts.VMAC.SetVMACUp(in.vmac, up); err != nil {
		in.counters.Errors++
		in.e.log.Error("set VMAC up/down", "instance", in.cfg.Name, "enabled", up, "err", err)
		return
	}
	in.vmacUp.Store(up)
}

// vipIf is the interface holding the VIPs: the VMAC macvlan if any.
func (in *instance) vipIf() string {
	if in.vmac != "" {
		return in.vmac
	}
	return in.cfg.Interface
}

// setVIPIf records the interface (and index, for drift events) holding the
// VIPs.
func (in *instance) setVIPIf(name string) {
	if name != in.cfg.Interface {
		in.vmac = name
	}
	in.ifindex = 0
	if ifi, err := net.InterfaceByName(name); err == nil {
		in.ifindex = ifi.Index
	}
}

// presenter is implemented by *vip.Manager: used to confirm drift.
type presenter interface {
	Present(ifname string, addrs []vip.Address) (map[netip.Prefix]bool, error)
}

// addrEvent puts back a VIP deleted while master and removes one that
// appears while not master.
func (in *instance) addrEvent(ev vip.Event) {
	if ev.Ifindex != in.ifindex {
		return
	}
	in.do(func() {
		mine := slices.ContainsFunc(in.allVIPs(), func(a vip.Address) bool { return a.Prefix == ev.Prefix })
		if !mine || in.e.opts.VIPs == nil {
			return
		}
		master := in.m.State() == StateMaster
		if master == ev.Added {
			return
		}
		// Events queue up behind our own changes: confirm with the kernel.
		if pr, ok := in.e.opts.VIPs.(presenter); ok {
			have, err := pr.Present(in.vipIf(), in.allVIPs())
			if err == nil && have[ev.Prefix] == master {
				return
			}
		}
		switch in.cfg.Drift {
		case DriftIgnore:
			return
		case DriftReport:
			in.counters.Drift++
			action := map[bool]string{true: "missing", false: "extra"}[master]
			in.e.emitDrift(DriftEvent{Instance: in.cfg.Name, VIP: ev.Prefix, Action: action, At: in.e.opts.Now()})
			in.e.log.Warn("drift: VIP changed behind our back, left as found (drift mode report)", "instance", in.cfg.Name, "vip", ev.Prefix, "action", action)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		in.counters.Drift++
		action := map[bool]string{true: "restored", false: "removed"}[master]
		in.e.emitDrift(DriftEvent{Instance: in.cfg.Name, VIP: ev.Prefix, Action: action, At: in.e.opts.Now()})
		if master {
			in.e.log.Warn("drift: VIP removed behind our back, restoring", "instance", in.cfg.Name, "vip", ev.Prefix)
			if err := in.e.opts.VIPs.Add(ctx, in.vipIf(), in.allVIPs()); err != nil {
				in.counters.Errors++
			}
			in.announce()
		} else {
			in.e.log.Warn("drift: VIP present while not master, removing", "instance", in.cfg.Name, "vip", ev.Prefix)
			if err := in.e.opts.VIPs.Remove(ctx, in.vipIf(), in.allVIPs()); err != nil {
				in.counters.Errors++
			}
		}
	})
}

// status builds a snapshot; the goroutine holds in.mu while it changes
// anything a snapshot shows.
func (in *instance) status() InstanceStatus {
	in.mu.Lock()
	defer in.mu.Unlock()
	addr, mp := in.m.Master()
	prio, _ := in.effective()
	var vips []netip.Prefix
	for _, v := range in.allVIPs() {
		vips = append(vips, v.Prefix)
	}
	c := in.counters
	c.Drops = make(map[DropReason]uint64, len(in.counters.Drops))
	for k, v := range in.counters.Drops {
		c.Drops[k] = v
	}
	return InstanceStatus{
		Name: in.cfg.Name, Interface: in.cfg.Interface, VRID: in.cfg.VRID, Version: in.cfg.Version,
		State: in.m.State(), BasePriority: in.cfg.Priority, Priority: prio,
		MasterAddr: addr, MasterPriority: mp, MasterAdverInterval: in.m.MasterAdverInterval(),
		VIPs: vips, Faults: slices.Clone(in.faults), LastConflict: in.lastConf, LastTransition: in.lastTrans,
		Counters: c,
	}
}
