package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/kernlb"
	"github.com/gitgw/gitgw/internal/statefile"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// RealServerHost is what the real-server driver needs from
// dataplane/kernlb (a kernlb.RealServerHost): the state read back with the
// knobs of the interfaces asked about, what gitgw saved there, and Set.
type RealServerHost interface {
	Observe(ifaces ...string) (kernlb.RealServerState, error)
	LoadSaved() (kernlb.RealServerSaved, error)
	Set(want kernlb.RealServer) ([]kernlb.RealServerChange, error)
	Close() error
}

var _ RealServerHost = kernlb.RealServerHost{}

// RealServerDriver makes this node a DR real server of the site's dr
// services that name one of its addresses as a server (spec.Node's
// RealServer roles, derived by the loader): the services' VIPs on lo and
// the ARP knobs that keep the server from answering for them. It undoes
// what it set when the node is no longer one (kernlb saves the knobs'
// previous values). What it set and finds changed is drift, corrected or
// reported as the site's drift mode for services says.
type RealServerDriver struct {
	host   RealServerHost
	log    *slog.Logger
	events chan Event
	stop   func()

	mu sync.Mutex // one Plan, Apply or poll at a time: Set reads and writes one state file
	// applied is the setup last applied; applyValid once Apply ran.
	applied    kernlb.RealServer
	applyValid bool
}

var (
	_ Driver      = (*RealServerDriver)(nil)
	_ Closer      = (*RealServerDriver)(nil)
	_ EventSource = (*RealServerDriver)(nil)
)

// NewRealServerDriver returns the driver over host. With poll > 0 it
// compares the server with what it last applied that often, and a
// difference (a VIP deleted, a knob reset by hand) is a "drift" event: the
// agent's pass then corrects or reports it, as the drift mode says. A poll
// reads a few sysctl files and lo's addresses, and nothing on a node that
// is no real server.
func NewRealServerDriver(host RealServerHost, log *slog.Logger, poll time.Duration) *RealServerDriver {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &RealServerDriver{host: host, log: log.With("component", plan.FamilyRealServer.String()), events: make(chan Event, 4), stop: func() {}}
	if poll > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); d.pollDrift(ctx, poll) }()
		d.stop = func() { cancel(); <-done }
	}
	return d
}

// Name implements Driver.
func (d *RealServerDriver) Name() string { return plan.FamilyRealServer.String() }

// Events implements EventSource: the server moved away from what was
// applied.
func (d *RealServerDriver) Events() <-chan Event { return d.events }

// Close implements Closer. What the driver set stays: the server keeps
// answering while the agent restarts.
func (d *RealServerDriver) Close(context.Context) error {
	d.stop()
	return d.host.Close()
}

// pollDrift reports, once per difference, a server that no longer matches
// what was last applied.
func (d *RealServerDriver) pollDrift(ctx context.Context, every time.Duration) {
	pollDrift(ctx, every, plan.FamilyRealServer.String(), d.events, d.driftNow)
}

// driftNow is what differs from the setup last applied.
func (d *RealServerDriver) driftNow() ([]kernlb.RealServerChange, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.applyValid || len(d.applied.VIPs) == 0 {
		return nil, nil
	}
	saved, have, err := d.observeLocked(d.applied)
	if err != nil {
		return nil, err
	}
	var out []kernlb.RealServerChange
	for _, c := range kernlb.DiffRealServer(d.applied, have, saved) {
		if c.Action != kernlb.RSNone {
			out = append(out, c)
		}
	}
	return out, nil
}

// observeLocked reads the saved state and the server, the knobs of want's
// interfaces and of those the saved state holds. Called with mu held.
func (d *RealServerDriver) observeLocked(want kernlb.RealServer) (kernlb.RealServerSaved, kernlb.RealServerState, error) {
	saved, err := d.loadSavedLocked()
	if err != nil {
		return saved, kernlb.RealServerState{}, err
	}
	ifaces := slices.Clone(want.Interfaces)
	for _, i := range kernlb.SavedKnobs(want, saved) {
		if i != "all" && !slices.Contains(ifaces, i) {
			ifaces = append(ifaces, i)
		}
	}
	have, err := d.host.Observe(ifaces...)
	return saved, have, err
}

// RealServerConfig is the real server's setup for n: every VIP of its roles
// once, and the interfaces holding its server addresses.
func RealServerConfig(n *spec.Node) kernlb.RealServer {
	var rs kernlb.RealServer
	for _, r := range n.RealServer {
		if !slices.Contains(rs.VIPs, r.VIP) {
			rs.VIPs = append(rs.VIPs, r.VIP)
		}
		if r.Interface != "" && !slices.Contains(rs.Interfaces, r.Interface) {
			rs.Interfaces = append(rs.Interfaces, r.Interface)
		}
	}
	slices.SortFunc(rs.VIPs, netip.Addr.Compare)
	slices.Sort(rs.Interfaces)
	return rs
}

// loadSavedLocked reads what the driver took over. A corrupt state file
// has been moved aside: it is logged, and the driver goes on from an empty
// state (what it finds now is what an undo restores).
func (d *RealServerDriver) loadSavedLocked() (kernlb.RealServerSaved, error) {
	saved, err := d.host.LoadSaved()
	if errors.Is(err, statefile.ErrCorrupt) {
		d.log.Error("state file corrupt; moved aside, the knobs' values before gitgw are lost: they stay as they are when undone", "file", "realserver.json", "err", err)
		return kernlb.RealServerSaved{}, nil
	}
	return saved, err
}

// Plan implements Driver: one change per knob and VIP, in words, with the
// services each VIP is held for; what gitgw set and the site no longer
// asks for is undone.
func (d *RealServerDriver) Plan(_ context.Context, desired *spec.Node) ([]plan.Change, error) {
	want := RealServerConfig(desired)
	d.mu.Lock()
	defer d.mu.Unlock()
	saved, err := d.loadSavedLocked()
	if err != nil {
		return nil, err
	}
	if len(want.VIPs) == 0 && len(saved.Knobs) == 0 && len(saved.VIPs) == 0 {
		return nil, nil // no real server, and nothing to undo
	}
	saved, have, err := d.observeLocked(want)
	if err != nil {
		return nil, err
	}
	return realServerChanges(desired.RealServer, kernlb.DiffRealServer(want, have, saved)), nil
}

// realServerChanges words kernlb's diff as plan changes.
func realServerChanges(roles []spec.RealServerRole, diff []kernlb.RealServerChange) []plan.Change {
	var out []plan.Change
	for _, c := range diff {
		pc := plan.Change{Driver: plan.FamilyRealServer.String(), ID: c.ID, Drift: c.Drift}
		if c.Before != "" {
			pc.Before = c.Before
		}
		if c.After != "" {
			pc.After = c.After
		}
		switch c.Kind {
		case kernlb.RSKindKnob:
			pc.Kind = plan.KindRealServerSysctl
			switch {
			case c.Action == kernlb.RSRestore:
			case strings.HasSuffix(c.ID, ".arp_ignore"):
				pc.Details = []string{"1: answer ARP only for addresses of the receiving interface, never for a VIP on lo"}
			default:
				pc.Details = []string{"2: use the interface's own address as ARP source, never a VIP"}
			}
		case kernlb.RSKindVIP:
			pc.Kind = plan.KindRealServerVIP
			vip, _, _ := strings.Cut(c.ID, "/")
			for _, r := range roles {
				if r.VIP.String() == vip {
					pc.Details = append(pc.Details, fmt.Sprintf("dr service %s: server %s is this node's %s on %s", r.Service, r.Server, r.Address, r.Interface))
				}
			}
		}
		switch c.Action {
		case kernlb.RSNone:
			pc.Action = plan.NoOp
		case kernlb.RSSet:
			pc.Action, pc.Reason = plan.Update, "a DR real server must not answer ARP for its VIPs"
			if c.Drift {
				pc.Reason = "changed by hand"
			}
		case kernlb.RSAdd:
			pc.Action, pc.Reason = plan.Create, "a VIP of a dr service this node serves: it accepts the gateway's frames for it and answers from it"
			if c.Drift {
				pc.Reason = "removed by hand"
			}
		case kernlb.RSRemove:
			pc.Action, pc.Reason = plan.Delete, "no dr service names this node for it any more"
		case kernlb.RSRestore:
			pc.Action, pc.Reason = plan.Update, "back to its value before gitgw: the node is no longer a DR real server"
		}
		out = append(out, pc)
	}
	return out
}

// Apply implements Driver: kernlb's Set, which saves before it writes and
// joins every failure.
func (d *RealServerDriver) Apply(_ context.Context, desired *spec.Node) error {
	want := RealServerConfig(desired)
	d.mu.Lock()
	defer d.mu.Unlock()
	done, err := d.host.Set(want)
	d.applied, d.applyValid = want, true
	for _, c := range done {
		d.log.Info("real server", "action", c.String())
	}
	return err
}
