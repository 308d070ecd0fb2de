package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/l4proxy"
	"github.com/gitgw/gitgw/dataplane/vrrp"
	"github.com/gitgw/gitgw/internal/statefile"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// The override actions.
const (
	ActionDrain  = "drain"   // a proxy server takes no new connections
	ActionEnable = "enable"  // a proxy server is back in rotation (even if the site drains or disables it)
	ActionWeight = "weight"  // a proxy server's weight
	ActionGiveUp = "give-up" // a VRRP instance leaves mastership and stays backup (priority 1)
)

// giveUpPriority is the priority a given-up instance runs with: the lowest
// a router may have, so that any peer wins, and the node still takes over
// when nobody else is left.
const giveUpPriority = 1

// Override is one temporary runtime change.
type Override struct {
	// Action is one of drain, enable, weight, give-up.
	Action string `json:"action"`
	// Target is "SERVICE/SERVER" for the proxy actions, the instance
	// name for give-up.
	Target string `json:"target"`
	Weight int    `json:"weight,omitempty"`
	// Commit is the applied commit when the override was set: a pass that
	// applies another one clears it.
	Commit string    `json:"commit"`
	Since  time.Time `json:"since"`
}

// family is the driver an override acts through.
func (o Override) family() string {
	if o.Action == ActionGiveUp {
		return plan.FamilyVRRP.String()
	}
	return plan.FamilyProxy.String()
}

// key identifies the override slot: a server holds one state override and
// one weight override, an instance one give-up.
func (o Override) key() string {
	switch o.Action {
	case ActionWeight:
		return "weight " + o.Target
	case ActionGiveUp:
		return "vrrp " + o.Target
	}
	return "state " + o.Target
}

// String is the override as the CLI spells it.
func (o Override) String() string {
	if o.Action == ActionWeight {
		return fmt.Sprintf("weight %s %d", o.Target, o.Weight)
	}
	return o.Action + " " + o.Target
}

// Options configure a Controller.
type Options struct {
	Node    string
	Version string
	// Kick asks the agent for a pass (buffered, 1).
	Kick chan<- struct{}
	// LastGood returns the commit and the desired state running on the
	// node (the Runner's last good state); "" and nil before anything was
	// applied.
	LastGood func() (commit string, desired *spec.Node)
	// VRRP is the engine an instance gives up mastership through; nil
	// refuses give-up.
	VRRP GiverUp
	// Sources feed status, metrics and the page; each may be nil.
	Engine VRRPStatuser
	Pool   ProxyStatser
	Kernel KernelStatser
	Spread SpreadSource
	// StateDir keeps the overrides (overrides.json), so that an agent
	// restarted during maintenance keeps a server drained or an instance
	// given up. Suspension is not kept: a restarted agent must rebuild its
	// in-process VRRP engine and proxy from the last good state. Empty: not
	// kept.
	StateDir string
	// PlanApply serves `gitgw plan` and `gitgw apply` (planapply.go);
	// nil answers them 501.
	PlanApply *PlanApply
	// Now is the clock (time.Now when nil).
	Now    func() time.Time
	Logger *slog.Logger
}

// OverridesFile is the file in Options.StateDir that keeps the overrides.
const OverridesFile = "overrides.json"

// GiverUp makes a VRRP instance leave mastership (*vrrp.Engine).
type GiverUp interface {
	GiveUp(ctx context.Context, name string) error
}

// VRRPStatuser reports the VRRP instances (*vrrp.Engine).
type VRRPStatuser interface {
	Status() []vrrp.InstanceStatus
}

// KernelStatser reports the kernel load balancer's services and their
// servers' health, in the status's own shape (reconcile.KernLBDriver's
// KernelServices).
type KernelStatser interface {
	KernelServices() []Service
}

// ProxyStatser reports the proxy pool (*l4proxy.Pool).
type ProxyStatser interface {
	Stats() l4proxy.Snapshot
}

var (
	_ GiverUp      = (*vrrp.Engine)(nil)
	_ VRRPStatuser = (*vrrp.Engine)(nil)
	_ ProxyStatser = (*l4proxy.Pool)(nil)
)

// Result is a finished pass as the controller records it: what status, the
// metrics and `gitgw reconcile` show of it. It is the controller's own type
// (reconcile.Result.Control fills it), so that control does not import the
// package that runs the passes.
type Result struct {
	Commit, Subject string
	// Outcome is the pass's outcome as status.json spells it ("applied",
	// "unchanged", "rejected", …); Summary its one-line summary.
	Outcome, Summary string
	// OK is set when the pass left the node as desired (applied or
	// unchanged): an override set on another commit ends, and the
	// last-success metric moves.
	OK bool
	// AppliedCommit is the commit running on the node after the pass.
	AppliedCommit string
	Started       time.Time
	Duration      time.Duration
	// Errors are the revision's positioned errors, Err any other failure.
	Errors []string
	Err    string
	// Plan is every change the pass planned; Drift the changes that undid
	// a change made outside gitgw, Reported the drift left in place,
	// Remaining what still differs.
	Plan                       *plan.Plan
	Drift, Reported, Remaining []plan.Change
}

// Driver is the part of a driver the overlay wraps (reconcile.Driver has
// the same methods): it plans and applies one family's part of the desired
// state.
type Driver interface {
	Name() string
	Plan(ctx context.Context, desired *spec.Node) ([]plan.Change, error)
	Apply(ctx context.Context, desired *spec.Node) error
}

// waiter is a `gitgw reconcile` waiting for a pass that started after it
// asked.
type waiter struct {
	since time.Time
	ch    chan Result
}

// Controller holds the operator's runtime state — suspended or not, the
// overrides — and the last pass, and applies overrides through the drivers
// it wraps.
type Controller struct {
	o       Options
	log     *slog.Logger
	metrics *passMetrics

	mu        sync.Mutex
	suspended bool
	overrides map[string]Override
	last      *Result
	passes    uint64
	corrected int
	waiters   []waiter
	wrapped   map[string]*Overlay
	fetches   Fetches
	reporting Reporting
}

// New returns a Controller.
func New(o Options) *Controller {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Controller{o: o, log: o.Logger.With("component", "control"), overrides: map[string]Override{},
		wrapped: map[string]*Overlay{}, metrics: newPassMetrics()}
	c.load()
	return c
}

// load reads the overrides kept by a previous agent. A corrupt file is
// moved aside: the agent starts with no override, as the site says.
func (c *Controller) load() {
	if c.o.StateDir == "" {
		return
	}
	path := filepath.Join(c.o.StateDir, OverridesFile)
	var ovs []Override
	_, err := statefile.Load(path, func(b []byte) error { return json.Unmarshal(b, &ovs) })
	if errors.Is(err, statefile.ErrCorrupt) {
		c.log.Error("state file corrupt; moved aside, no override restored", "file", OverridesFile, "err", err)
		return
	}
	if err != nil {
		c.log.Error("overrides of the previous agent not restored", "err", err)
		return
	}
	for _, o := range ovs {
		c.overrides[o.key()] = o
		c.log.Warn("override restored", "override", o.String(), "commit", o.Commit)
	}
}

// saveLocked keeps the overrides for a restarted agent; c.mu is held.
func (c *Controller) saveLocked() {
	if c.o.StateDir == "" {
		return
	}
	path := filepath.Join(c.o.StateDir, OverridesFile)
	if len(c.overrides) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			c.log.Error("overrides file not removed", "err", err)
		}
		return
	}
	b, err := json.MarshalIndent(c.sortedOverridesLocked(), "", "  ")
	if err == nil {
		err = statefile.Write(path, append(b, '\n'), 0o600)
	}
	if err != nil {
		c.log.Error("overrides not kept for a restart", "err", err)
	}
}

// Suspended reports whether applying is suspended (RunnerOptions.Suspend).
func (c *Controller) Suspended() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.suspended
}

// Overrides returns the overrides in force, sorted by target and action.
func (c *Controller) Overrides() []Override {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sortedOverridesLocked()
}

func (c *Controller) sortedOverridesLocked() []Override {
	out := slices.Collect(maps.Values(c.overrides))
	slices.SortFunc(out, func(a, b Override) int {
		return strings.Compare(a.Target+" "+a.Action, b.Target+" "+b.Action)
	})
	return out
}

// Last returns the last pass's result; false before the first pass.
func (c *Controller) Last() (Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		return Result{}, false
	}
	return *c.last, true
}

// Observe records a pass (AgentOptions.OnResult). A pass that applied a
// commit other than the one an override was set on clears that override.
func (c *Controller) Observe(ctx context.Context, res Result) {
	c.metrics.observe(res)
	c.mu.Lock()
	r := res
	c.last = &r
	c.passes++
	c.corrected += len(res.Drift)
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		if res.Started.Before(w.since) {
			keep = append(keep, w) // a pass that was already running
			continue
		}
		w.ch <- res
	}
	c.waiters = keep
	var stale []Override
	if res.OK && res.AppliedCommit != "" {
		for k, o := range c.overrides {
			if o.Commit != res.AppliedCommit {
				stale = append(stale, o)
				delete(c.overrides, k)
			}
		}
		if len(stale) > 0 {
			c.saveLocked()
		}
	}
	c.mu.Unlock()
	if len(stale) == 0 {
		return
	}
	for _, o := range stale {
		c.log.Info("override cleared by a new commit", "override", o.String(), "commit", res.AppliedCommit)
	}
	if err := c.reapply(ctx, families(stale)); err != nil {
		c.log.Error("overrides cleared, but applying the site again failed; the next pass retries", "err", err)
	}
	c.kick()
}

// Suspend stops applying: passes go on planning and reporting.
func (c *Controller) Suspend() {
	c.mu.Lock()
	c.suspended = true
	c.mu.Unlock()
	c.log.Warn("applying suspended by the operator; passes only plan and report until resume")
	c.kick()
}

// Resume applies again and clears every override.
func (c *Controller) Resume(ctx context.Context) error {
	c.mu.Lock()
	c.suspended = false
	cleared := c.sortedOverridesLocked()
	clear(c.overrides)
	c.saveLocked()
	c.mu.Unlock()
	c.log.Info("resumed by the operator", "overrides_cleared", len(cleared))
	err := c.reapply(ctx, families(cleared))
	c.kick()
	return err
}

// Reconcile asks for a pass now and, with wait, returns the result of the
// first pass that started after the request.
func (c *Controller) Reconcile(ctx context.Context, wait bool) (Result, error) {
	var ch chan Result
	if wait {
		ch = make(chan Result, 1)
		c.mu.Lock()
		c.waiters = append(c.waiters, waiter{since: time.Now(), ch: ch})
		c.mu.Unlock()
	}
	c.kick()
	if !wait {
		return Result{}, nil
	}
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return Result{}, fmt.Errorf("reconcile: waiting for the pass: %w", ctx.Err())
	}
}

// ErrBadOverride is returned for an override that names nothing this node
// runs, or an unknown action.
var ErrBadOverride = errors.New("bad override")

// Set puts an override in force and applies it at once.
func (c *Controller) Set(ctx context.Context, o Override) (Override, error) {
	commit, desired := c.lastGood()
	if desired == nil {
		return o, fmt.Errorf("override %s: %w: nothing applied yet", o, ErrBadOverride)
	}
	if err := c.check(desired, o); err != nil {
		return o, fmt.Errorf("override %s: %w", o, err)
	}
	if o.family() == plan.FamilyVRRP.String() && c.o.VRRP == nil {
		return o, fmt.Errorf("override %s: %w: no VRRP engine runs here", o, ErrBadOverride)
	}
	o.Commit, o.Since = commit, c.o.Now().UTC()
	c.mu.Lock()
	if o.Action == ActionEnable || o.Action == ActionDrain {
		delete(c.overrides, "state "+o.Target)
	}
	c.overrides[o.key()] = o
	c.saveLocked()
	c.mu.Unlock()
	c.log.Warn("override set", "override", o.String(), "commit", o.Commit)
	err := c.reapply(ctx, []string{o.family()})
	if err == nil && o.Action == ActionGiveUp {
		err = c.o.VRRP.GiveUp(ctx, o.Target)
	}
	c.kick()
	if err != nil {
		return o, fmt.Errorf("override %s: %w", o, err)
	}
	return o, nil
}

// Clear removes the overrides on target ("" for all) and applies the site
// again; it returns what it removed.
func (c *Controller) Clear(ctx context.Context, target string) ([]Override, error) {
	c.mu.Lock()
	var gone []Override
	for k, o := range c.overrides {
		if target == "" || o.Target == target {
			gone = append(gone, o)
			delete(c.overrides, k)
		}
	}
	c.saveLocked()
	c.mu.Unlock()
	if len(gone) == 0 {
		return nil, nil
	}
	err := c.reapply(ctx, families(gone))
	c.kick()
	return gone, err
}

func (c *Controller) check(n *spec.Node, o Override) error {
	switch o.Action {
	case ActionDrain, ActionEnable, ActionWeight:
		svc, srv, ok := strings.Cut(o.Target, "/")
		if !ok {
			return fmt.Errorf("%w: the target of %s is SERVICE/SERVER", ErrBadOverride, o.Action)
		}
		s, ok := n.Services[svc]
		if !ok || (len(s.Nodes) > 0 && !slices.Contains(s.Nodes, n.Name)) {
			return fmt.Errorf("%w: service %q does not run on %s", ErrBadOverride, svc, n.Name)
		}
		if _, ok := s.Servers[srv]; !ok {
			return fmt.Errorf("%w: service %s has no server %q", ErrBadOverride, svc, srv)
		}
		if o.Action == ActionWeight && (o.Weight < 0 || o.Weight > 256) {
			return fmt.Errorf("%w: weight %d outside 0..256", ErrBadOverride, o.Weight)
		}
	case ActionGiveUp:
		in, ok := n.VRRP[o.Target]
		if !ok {
			return fmt.Errorf("%w: no VRRP instance %q", ErrBadOverride, o.Target)
		}
		if _, ok := in.Nodes[n.Name]; !ok {
			return fmt.Errorf("%w: %s does not take part in VRRP instance %s", ErrBadOverride, n.Name, o.Target)
		}
	default:
		return fmt.Errorf("%w: unknown action %q (drain, enable, weight, give-up)", ErrBadOverride, o.Action)
	}
	return nil
}

func (c *Controller) lastGood() (commit string, desired *spec.Node) {
	if c.o.LastGood == nil {
		return "", nil
	}
	return c.o.LastGood()
}

func (c *Controller) kick() {
	if c.o.Kick == nil {
		return
	}
	select {
	case c.o.Kick <- struct{}{}:
	default:
	}
}

func families(os []Override) []string {
	var out []string
	for _, o := range os {
		if !slices.Contains(out, o.family()) {
			out = append(out, o.family())
		}
	}
	slices.Sort(out)
	return out
}

// Apply overlays the overrides in force on desired. It copies what it
// changes; desired itself is never modified.
func (c *Controller) Apply(desired *spec.Node) *spec.Node {
	c.mu.Lock()
	ovs := c.sortedOverridesLocked()
	c.mu.Unlock()
	return overlayNode(desired, ovs)
}

func overlayNode(desired *spec.Node, ovs []Override) *spec.Node {
	if desired == nil || len(ovs) == 0 {
		return desired
	}
	n := *desired
	n.Services = maps.Clone(desired.Services)
	n.VRRP = maps.Clone(desired.VRRP)
	for _, o := range ovs {
		switch o.Action {
		case ActionGiveUp:
			in, ok := n.VRRP[o.Target]
			if !ok {
				continue
			}
			me, ok := in.Nodes[n.Name]
			if !ok {
				continue
			}
			in.Nodes = maps.Clone(in.Nodes)
			me.Priority = giveUpPriority
			in.Nodes[n.Name] = me
			n.VRRP[o.Target] = in
		default:
			svcName, srvName, _ := strings.Cut(o.Target, "/")
			svc, ok := n.Services[svcName]
			if !ok {
				continue
			}
			srv, ok := svc.Servers[srvName]
			if !ok {
				continue
			}
			switch o.Action {
			case ActionDrain:
				srv.Drain = true
			case ActionEnable:
				srv.Drain, srv.Disabled = false, false
			case ActionWeight:
				srv.Weight = o.Weight
			}
			svc.Servers = maps.Clone(svc.Servers)
			svc.Servers[srvName] = srv
			n.Services[svcName] = svc
		}
	}
	return &n
}

// reapply applies the running state, with the overrides now in force,
// through the wrapped drivers of the given families.
func (c *Controller) reapply(ctx context.Context, fams []string) error {
	_, base := c.lastGood()
	var errs []error
	if slices.Contains(fams, "proxy") {
		// A server override names a service, which the proxy or the
		// kernel load balancer carries (its mode).
		fams = append(slices.Clone(fams), "kernlb")
	}
	for _, f := range fams {
		c.mu.Lock()
		w := c.wrapped[f]
		c.mu.Unlock()
		if w == nil {
			continue
		}
		if err := w.reapply(ctx, base); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f, err))
		}
	}
	return errors.Join(errs...)
}

// overlaid are the driver families an override acts through.
var overlaid = []plan.Family{plan.FamilyProxy, plan.FamilyKernLB, plan.FamilyVRRP}

// Overlay puts the override overlay in front of d when overrides act
// through its family (proxy, kernlb, vrrp); false for the others, which the
// Runner gets as they are. The Runner and the Reporter must get the
// overlay in place of d (reconcile.WithOverrides does so, keeping d's
// optional interfaces), and the Reporter the controller's StatusSection.
func (c *Controller) Overlay(d Driver) (*Overlay, bool) {
	if !slices.Contains(overlaid, plan.Family(d.Name())) {
		return nil, false
	}
	w := &Overlay{inner: d, c: c}
	c.mu.Lock()
	c.wrapped[d.Name()] = w
	c.mu.Unlock()
	return w, true
}

// Overlay is a driver that plans and applies its inner driver's part of
// the desired state with the overrides laid over it.
type Overlay struct {
	inner Driver
	c     *Controller

	mu   sync.Mutex // serializes the runner's calls and reapply
	base *spec.Node // the desired state last applied
}

// Name is the inner driver's family.
func (w *Overlay) Name() string { return w.inner.Name() }

// Plan plans the inner driver's part with the overrides in force, and
// marks the resources they hold.
func (w *Overlay) Plan(ctx context.Context, desired *spec.Node) ([]plan.Change, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	changes, err := w.inner.Plan(ctx, w.c.Apply(desired))
	w.c.annotate(w.inner.Name(), changes)
	return changes, err
}

// Apply applies desired with the overrides in force, and keeps desired to
// apply again when an override changes.
func (w *Overlay) Apply(ctx context.Context, desired *spec.Node) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.base = desired
	return w.inner.Apply(ctx, w.c.Apply(desired))
}

func (w *Overlay) reapply(ctx context.Context, fallback *spec.Node) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	base := w.base
	if base == nil {
		base = fallback
	}
	if base == nil {
		return nil
	}
	return w.inner.Apply(ctx, w.c.Apply(base))
}

// annotate marks the planned resources an override holds.
func (c *Controller) annotate(family string, changes []plan.Change) {
	ovs := c.Overrides()
	if len(ovs) == 0 {
		return
	}
	for i := range changes {
		ch := &changes[i]
		for _, o := range ovs {
			if o.family() != family && (family != "kernlb" || o.family() != "proxy") {
				continue
			}
			if (family == plan.FamilyProxy.String() && ch.Kind == plan.KindProxyServer && ch.ID == o.Target) ||
				(family == plan.FamilyKernLB.String() && ch.Kind == plan.KindKernelServer && ch.ID == o.Target) ||
				(family == plan.FamilyVRRP.String() && ch.Kind == plan.KindVRRPInstance && ch.ID == o.Target) {
				ch.Details = append(ch.Details, "override: "+o.String()+" (until resume or a new commit)")
			}
		}
	}
}

// SectionView is the "overrides" section of status.json.
type SectionView struct {
	Suspended bool       `json:"suspended"`
	Overrides []Override `json:"overrides"`
}

// StatusSection is the operator's state (suspended, overrides) for
// status.json's "overrides" section (reconcile.StatusOnly reports it).
func (c *Controller) StatusSection(context.Context) (any, error) {
	v := SectionView{Suspended: c.Suspended(), Overrides: []Override{}}
	for _, o := range c.Overrides() {
		o.Since = time.Time{} // status.json holds no times
		v.Overrides = append(v.Overrides, o)
	}
	return v, nil
}
