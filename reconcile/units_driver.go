package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile/plan"
	"github.com/gitgw/gitgw/units"
)

// UnitsOptions configure the units driver.
type UnitsOptions struct {
	// UnitDir is where template files go (default /etc/systemd/system).
	UnitDir string
	// Socket is a systemd private socket to use instead of the system bus
	// (test/systemd's Socket()); empty: the system bus, then
	// /run/systemd/private.
	Socket string
	// Healthy, when set, gates each step of a rolling restart ("healthy in
	// the proxy pool"); it gets the unit name, e.g. "app@8080.service".
	Healthy func(ctx context.Context, unit string, restarted time.Time) error
	// Manager tunes timeouts; its Logger and Healthy are set from here.
	Manager units.Options
	Logger  *slog.Logger
}

// UnitsDriver adapts the units manager (systemd template instances) to the
// Driver interface. Plan always shows drift as actionable (the Runner
// decides what a drift mode means for a pass); Apply honours the site's
// drift mode for units, so that a pass applying a change of the site does
// not undo hand-made changes the site asked to only report.
type UnitsDriver struct {
	m       *units.Manager
	unitDir string
	log     *slog.Logger
	closeFn func()

	events chan Event
	done   chan struct{}
}

var (
	_ Driver      = (*UnitsDriver)(nil)
	_ Closer      = (*UnitsDriver)(nil)
	_ EventSource = (*UnitsDriver)(nil)
)

// NewUnitsDriver connects to systemd and returns the units driver. The
// connection lives until Close.
func NewUnitsDriver(o UnitsOptions) (*UnitsDriver, error) {
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := units.Dial(ctx, o.Socket)
	if err != nil {
		cancel()
		return nil, err
	}
	d, err := NewUnitsDriverConn(ctx, conn, o)
	if err != nil {
		conn.Close()
		cancel()
		return nil, err
	}
	d.closeFn = func() {
		conn.Close()
		cancel()
	}
	return d, nil
}

// NewUnitsDriverConn returns the units driver over an existing connection
// (a test's fake, or a shared one); Close does not close conn.
func NewUnitsDriverConn(ctx context.Context, conn units.Conn, o UnitsOptions) (*UnitsDriver, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mo := o.Manager
	mo.Logger = log
	if o.Healthy != nil {
		mo.Healthy = o.Healthy
	}
	m, err := units.New(ctx, conn, mo)
	if err != nil {
		return nil, err
	}
	d := &UnitsDriver{m: m, unitDir: o.UnitDir, log: log.With("component", plan.FamilyUnits.String()),
		events: make(chan Event, 16), done: make(chan struct{}), closeFn: func() {}}
	go d.forward()
	return d, nil
}

// Name implements Driver.
func (d *UnitsDriver) Name() string { return plan.FamilyUnits.String() }

// Events implements EventSource: an instance stopped, failed or masked by
// hand, or one of the site's unit files edited or removed by hand, asks for
// a pass.
func (d *UnitsDriver) Events() <-chan Event { return d.events }

func (d *UnitsDriver) forward() {
	defer close(d.done)
	defer close(d.events)
	for ev := range d.m.Events() {
		msg := "systemd reloaded or unit files changed (or signals lost): resync"
		switch {
		case ev.File != "":
			msg = fmt.Sprintf("unit file %s %s by hand", ev.File, ev.Change)
		case ev.Unit != "":
			msg = fmt.Sprintf("%s %s/%s", ev.Unit, ev.ActiveState, ev.SubState)
			if ev.LoadState != "" {
				msg += " (" + ev.LoadState + ")"
			}
		}
		select {
		case d.events <- Event{Driver: plan.FamilyUnits.String(), Kind: plan.EventDrift, Message: msg}:
		default: // a pass is already asked for
		}
	}
}

// Close implements Closer.
func (d *UnitsDriver) Close(context.Context) error {
	err := d.m.Close()
	<-d.done
	d.closeFn()
	return err
}

// Plan implements Driver.
func (d *UnitsDriver) Plan(ctx context.Context, n *spec.Node) ([]plan.Change, error) {
	cfg, err := UnitsConfig(n, d.unitDir)
	if err != nil {
		return nil, err
	}
	cfg.Drift = units.DriftCorrect
	for i := range cfg.Templates {
		cfg.Templates[i].Drift = ""
	}
	acts, err := d.m.Plan(ctx, cfg)
	if err != nil {
		return nil, err
	}
	out := make([]plan.Change, 0, len(acts))
	for _, a := range acts {
		out = append(out, UnitsChange(a))
	}
	return out, nil
}

// Apply implements Driver.
func (d *UnitsDriver) Apply(ctx context.Context, n *spec.Node) error {
	cfg, err := UnitsConfig(n, d.unitDir)
	if err != nil {
		return err
	}
	return d.m.Set(ctx, cfg)
}

// UnitsChange turns one units action into a plan change. A blocked action
// (a file gitgw does not own, a masked instance) is listed as pending with
// its reason: shown, never forced.
func UnitsChange(a units.Action) plan.Change {
	ch := plan.Change{Driver: plan.FamilyUnits.String(), Kind: a.Kind, ID: a.ID, Before: a.Before, After: a.After,
		Reason: a.Reason, Details: a.Diff, Drift: a.Drift}
	switch a.Op {
	case units.OpCreate:
		ch.Action = plan.Create
	case units.OpUpdate:
		ch.Action = plan.Update
	case units.OpDelete:
		ch.Action = plan.Delete
	case units.OpBlocked:
		ch.Action = plan.Pending
	default:
		ch.Action = plan.NoOp
	}
	if a.Do != "" && a.Kind == units.KindInstance {
		ch.Details = append([]string{"systemctl " + a.Do}, ch.Details...)
	}
	return ch
}

// UnitsConfig translates the node's units into the units driver's config.
// Instances come from InstancesFor(node), in sorted order (the roll order);
// hardening options and the raw extras become directives of their section.
func UnitsConfig(n *spec.Node, unitDir string) (units.Config, error) {
	cfg := units.Config{UnitDir: unitDir, Drift: unitsDrift(n.Site.Drift.Units)}
	var errs []error
	names := make([]string, 0, len(n.Units))
	for name := range n.Units {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		u := n.Units[name]
		t := units.Template{
			Name: name,
			Unit: units.UnitSection{Description: u.Description, After: u.After, Wants: u.Wants, Requires: u.Requires},
			Service: units.ServiceSection{
				Type: u.Type, ExecStart: u.ExecStart, ExecReload: u.ExecReload,
				User: u.User, Group: u.Group, WorkingDirectory: u.WorkingDirectory,
				Environment: u.Environment, EnvironmentFile: u.EnvironmentFiles,
				Restart: u.Restart, RestartDelay: u.RestartSec.D(),
				CPUQuota: u.CPUQuota, MemoryMax: u.MemoryMax, Slice: u.Slice,
			},
			Install:     units.InstallSection{WantedBy: u.WantedBy},
			Instances:   u.InstancesFor(n.Name),
			RollTimeout: u.RollTimeout.D(),
			Drift:       unitsDrift(u.Drift),
		}
		limits := map[string]string{}
		if u.LimitNOFILE != nil {
			limits["NOFILE"] = strconv.Itoa(*u.LimitNOFILE)
		}
		if u.LimitNPROC != nil {
			limits["NPROC"] = strconv.Itoa(*u.LimitNPROC)
		}
		if len(limits) > 0 {
			t.Service.Limits = limits
		}
		hk := make([]string, 0, len(u.Hardening))
		for k := range u.Hardening {
			hk = append(hk, k)
		}
		slices.Sort(hk)
		for _, k := range hk {
			t.Extra = append(t.Extra, units.Directive{Section: "Service", Key: k, Value: u.Hardening[k]})
		}
		for _, sec := range []struct {
			name  string
			lines []string
		}{{"Unit", u.Extra.Unit}, {"Service", u.Extra.Service}, {"Install", u.Extra.Install}} {
			for _, l := range sec.lines {
				k, v, ok := strings.Cut(l, "=")
				if !ok {
					errs = append(errs, fmt.Errorf("units: %s@.service: extra [%s] %q: want Key=Value", name, sec.name, l))
					continue
				}
				t.Extra = append(t.Extra, units.Directive{Section: sec.name, Key: strings.TrimSpace(k), Value: strings.TrimSpace(v)})
			}
		}
		cfg.Templates = append(cfg.Templates, t)
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// unitsDrift maps the site's drift mode: "ignore" is the Runner's business
// (it never applies drift); for the units driver it means "leave it", as
// "report" does.
func unitsDrift(m spec.DriftMode) units.DriftMode {
	switch m {
	case spec.DriftReport, spec.DriftIgnore:
		return units.DriftReport
	case spec.DriftCorrect:
		return units.DriftCorrect
	}
	return ""
}
