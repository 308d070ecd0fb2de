package reconcile

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/nic"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// TuningDriver adapts dataplane/nic (RPS, RFS, XPS, IRQ affinity, sysctls)
// to the Driver interface. It remembers what it last brought each knob to,
// so that a knob that differs while the site still asks for the same value
// is planned as drift ("changed outside gitgw"), a queue re-created by a
// driver reset included. The drift mode (correct/report/ignore) is the
// Runner's business: Apply always brings every knob to the site's value.
type TuningDriver struct {
	tuner *nic.Tuner
	log   *slog.Logger

	mu sync.Mutex
	// applied maps "kind id" to the value last written or found in sync
	// by Apply (nic.Change.Write).
	applied map[string]string
	// irqs are each configured interface's queue IRQs, as last observed.
	irqs map[string][]int

	// stopSampling ends the sampler loop StartSampling started, and
	// sampled is closed when it has.
	stopSampling context.CancelFunc
	sampled      chan struct{}
}

var (
	_ Driver = (*TuningDriver)(nil)
	_ Closer = (*TuningDriver)(nil)
)

// NewTuningDriver returns the tuning driver over tuner (nil: the real
// /sys and /proc). log may be nil.
func NewTuningDriver(tuner *nic.Tuner, log *slog.Logger) *TuningDriver {
	if tuner == nil {
		tuner = &nic.Tuner{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", plan.FamilyTuning.String())
	if tuner.Log == nil {
		tuner.Log = log
	}
	if tuner.Window == nil {
		// Empty until StartSampling: the spread is since boot till then.
		tuner.Window = nic.NewSampler(tuner.ProcRoot, nic.DefaultSpan)
	}
	return &TuningDriver{tuner: tuner, log: log, applied: map[string]string{}}
}

// Name implements Driver.
func (d *TuningDriver) Name() string { return plan.FamilyTuning.String() }

// StartSampling reads the softirq and interrupt counters now and every
// every (0: nic.DefaultEvery) until Close, so that the plan's spread lines
// and the metrics cover the last minute rather than the time since boot.
// It does nothing when sampling is already on.
func (d *TuningDriver) StartSampling(every time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopSampling != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.stopSampling, d.sampled = cancel, make(chan struct{})
	go func(w *nic.Sampler, done chan<- struct{}) {
		defer close(done)
		w.Run(ctx, every)
	}(d.tuner.Window, d.sampled)
}

// Close implements Closer: it stops the sampling loop and waits for it.
func (d *TuningDriver) Close(ctx context.Context) error {
	d.mu.Lock()
	stop, done := d.stopSampling, d.sampled
	d.stopSampling, d.sampled = nil, nil
	d.mu.Unlock()
	if stop == nil {
		return nil
	}
	stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ReceiveSpread is the spread of receive work the metrics export: the
// sampler's window and each configured interface's queue IRQs.
type ReceiveSpread = nic.ReceiveSpread

// ReceiveSpread returns the figures over the last minute; ok is false
// before sampling has two readings (or when it is off).
func (d *TuningDriver) ReceiveSpread() (ReceiveSpread, bool) {
	r, ok := d.tuner.Window.Recent()
	if !ok {
		return ReceiveSpread{}, false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return ReceiveSpread{Recent: r, IRQs: maps.Clone(d.irqs)}, true
}

// rememberIRQs keeps the interfaces' IRQs of st for ReceiveSpread. d.mu
// is held.
func (d *TuningDriver) rememberIRQs(st nic.State) {
	d.irqs = map[string][]int{}
	for name, is := range st.Interfaces {
		for _, q := range is.IRQs {
			d.irqs[name] = append(d.irqs[name], q.Num)
		}
	}
}

// TuningConfig translates the node's tuning into the nic driver's config.
// The schema's irq_cpus spreads the NIC's queue IRQs round robin over the
// CPUs listed, which nic spells "spread:LIST".
func TuningConfig(n *spec.Node) nic.Config {
	t := n.Node.Tuning
	cfg := nic.Config{RPSSockFlowEntries: t.RPSSockFlowEntries}
	names := make([]string, 0, len(t.Interfaces))
	for name := range t.Interfaces {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		it := t.Interfaces[name]
		irq := it.IRQCPUs
		if irq != "" && !strings.HasPrefix(irq, nic.CPUsSpread) {
			irq = nic.CPUsSpread + ":" + irq
		}
		cfg.Interfaces = append(cfg.Interfaces, nic.Interface{
			Name: name, RPSCPUs: it.RPSCPUs, RPSFlowCnt: it.RPSFlowCnt, XPSCPUs: it.XPSCPUs, IRQCPUs: irq,
		})
	}
	if len(t.Sysctls) > 0 {
		cfg.Sysctls = make(map[string]string, len(t.Sysctls))
		for k, v := range t.Sysctls {
			cfg.Sysctls[k] = string(v)
		}
	}
	return cfg
}

// netRX is the node-wide detail: the NET_RX softirq spread and whatever
// could not be observed.
func netRX(st nic.State) []string {
	var out []string
	if len(st.NetRX.PerCPU) > 0 {
		out = append(out, st.NetRX.String())
	}
	for _, w := range st.Warnings {
		out = append(out, "warning: "+w)
	}
	return out
}

// isQueueKind tells the per-interface knobs from the global ones.
func isQueueKind(kind string) bool {
	return kind != nic.KindSysctl && kind != nic.KindRPSSockFlowEntries
}

func knobKey(c nic.Change) string { return c.Kind + " " + c.ID }

// isDrift reports whether a differing knob moved away from a value this
// driver had applied, the site asking for the same value still.
func (d *TuningDriver) isDrift(c nic.Change) bool {
	v, ok := d.applied[knobKey(c)]
	return ok && c.Differs && c.Err == nil && v == c.Write
}

// Plan implements Driver: one change per knob (no-ops included), knobs
// this node cannot have listed as pending, and the spread of NET_RX
// softirqs and of the NIC's interrupts as detail lines.
func (d *TuningDriver) Plan(ctx context.Context, desired *spec.Node) ([]plan.Change, error) {
	cfg := TuningConfig(desired)
	st, err := d.tuner.Observe(ctx, cfg)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rememberIRQs(st)
	var out []plan.Change
	detailed := map[string]bool{}
	for _, c := range nic.Diff(cfg, st) {
		pc := plan.Change{Driver: plan.FamilyTuning.String(), Kind: c.Kind, ID: c.ID, After: c.Desired, Reason: c.Reason}
		if c.Current != "" {
			pc.Before = c.Current
		}
		switch {
		case c.Unavailable:
			pc.Action = plan.Pending
		case !c.Differs:
			pc.Action = plan.NoOp
		case c.Err != nil:
			pc.Action = plan.Update
			if pc.Reason == "" {
				pc.Reason = c.Err.Error()
			}
		case d.isDrift(c):
			pc.Action, pc.Drift, pc.Reason = plan.Update, true, nic.DriftReason(c)
		default:
			pc.Action = plan.Update
			if pc.Reason == "" {
				pc.Reason = "differs from the site"
			}
		}
		// The spread figures go under the first change of each interface,
		// the NET_RX one with the first interface (or the first change).
		if iface, _, _ := strings.Cut(c.ID, "/"); isQueueKind(c.Kind) && !detailed[iface] {
			detailed[iface] = true
			if !detailed[""] {
				detailed[""] = true
				pc.Details = append(pc.Details, netRX(st)...)
			}
			if is := st.Interfaces[iface]; is != nil && len(is.IRQs) > 0 {
				pc.Details = append(pc.Details, is.Interrupts.String())
			}
		}
		out = append(out, pc)
	}
	if rx := netRX(st); !detailed[""] && len(rx) > 0 {
		// No interface is tuned: the node-wide figures are a row of their
		// own, not details of whatever knob came first (a sysctl such as
		// net.ipv4.ip_forward has nothing to do with them).
		out = append(out, plan.Change{Driver: plan.FamilyTuning.String(), Kind: plan.KindReceiveSpread, ID: "node",
			Action: plan.NoOp, Details: rx})
	}
	return out, nil
}

// Apply implements Driver: nic.Set, which writes only the knobs that
// differ and joins every failure. Errors are returned bare: the Runner
// prefixes "tuning: apply:".
func (d *TuningDriver) Apply(ctx context.Context, desired *spec.Node) error {
	cfg := TuningConfig(desired)
	d.mu.Lock()
	defer d.mu.Unlock()
	st, setErr := d.tuner.Set(ctx, cfg)
	if st.CPUs.Online.Empty() { // Observe failed: nothing is known
		return setErr
	}
	for _, c := range nic.Diff(cfg, st) {
		switch k := knobKey(c); {
		case c.Unavailable:
		case !c.Differs:
			d.applied[k] = c.Write
		default:
			delete(d.applied, k)
		}
	}
	return setErr
}
