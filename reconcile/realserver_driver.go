package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/kernlb"
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
	host RealServerHost
	log  *slog.Logger
	mu   sync.Mutex // one Plan or Apply at a time: Set reads and writes one state file
}

var (
	_ Driver = (*RealServerDriver)(nil)
	_ Closer = (*RealServerDriver)(nil)
)

// NewRealServerDriver returns the driver over host.
func NewRealServerDriver(host RealServerHost, log *slog.Logger) *RealServerDriver {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &RealServerDriver{host: host, log: log.With("component", plan.FamilyRealServer.String())}
}

// Name implements Driver.
func (d *RealServerDriver) Name() string { return plan.FamilyRealServer.String() }

// Close implements Closer. What the driver set stays: the server keeps
// answering while the agent restarts.
func (d *RealServerDriver) Close(context.Context) error { return d.host.Close() }

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

// Plan implements Driver: one change per knob and VIP, in words, with the
// services each VIP is held for; what gitgw set and the site no longer
// asks for is undone.
func (d *RealServerDriver) Plan(_ context.Context, desired *spec.Node) ([]plan.Change, error) {
	want := RealServerConfig(desired)
	d.mu.Lock()
	defer d.mu.Unlock()
	saved, err := d.host.LoadSaved()
	if err != nil {
		return nil, err
	}
	if len(want.VIPs) == 0 && len(saved.Knobs) == 0 && len(saved.VIPs) == 0 {
		return nil, nil // no real server, and nothing to undo
	}
	ifaces := slices.Clone(want.Interfaces)
	for _, i := range kernlb.SavedKnobs(want, saved) {
		if i != "all" && !slices.Contains(ifaces, i) {
			ifaces = append(ifaces, i)
		}
	}
	have, err := d.host.Observe(ifaces...)
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
	for _, c := range done {
		d.log.Info("real server", "action", c.String())
	}
	return err
}
