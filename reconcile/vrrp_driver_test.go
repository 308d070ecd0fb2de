package reconcile

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/vip"
	"github.com/gitgw/gitgw/dataplane/vrrp"
	"github.com/gitgw/gitgw/reconcile/plan"
	"github.com/google/go-cmp/cmp"
)

func labNode(t *testing.T, name string) *spec.Node {
	t.Helper()
	_, n, err := loader.Load(context.Background(), "../examples/lab", name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestVRRPConfigFromLabSite(t *testing.T) {
	for _, c := range []struct {
		node string
		prio uint8
	}{{"gw1", 150}, {"gw2", 100}} {
		cfg, err := VRRPConfig(labNode(t, c.node))
		if err != nil {
			t.Fatal(err)
		}
		want := vrrp.Config{Instances: []vrrp.Instance{{
			Name: "VI_1", Interface: "eth0", VRID: 51, Version: 3, Interval: 100 * time.Millisecond, Priority: c.prio,
			VIPs: []vrrp.VIP{{Prefix: netip.MustParsePrefix("203.0.113.100/24")}},
			GARP: vrrp.GARP{Repeat: 5}, // the schema's default
			// Adverts heard from the site's two gateways only.
			AllowSources: []netip.Prefix{netip.MustParsePrefix("203.0.113.11/32"), netip.MustParsePrefix("203.0.113.12/32")},
		}}}
		if diff := cmp.Diff(want, cfg, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.node, diff)
		}
	}
}

// TestVRRPConfigDriftMode: the site's drift mode for vrrp reaches the
// engine, which repairs VIPs on its own between passes.
func TestVRRPConfigDriftMode(t *testing.T) {
	for _, c := range []struct {
		site spec.DriftMode
		want vrrp.DriftMode
	}{{"", vrrp.DriftCorrect}, {spec.DriftCorrect, vrrp.DriftCorrect}, {spec.DriftReport, vrrp.DriftReport}, {spec.DriftIgnore, vrrp.DriftIgnore}} {
		n := labNode(t, "gw1")
		n.Site.Drift.VRRP = c.site
		cfg, err := VRRPConfig(n)
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Instances[0].Drift; got != c.want {
			t.Errorf("site drift %q: engine drift %q, want %q", c.site, got, c.want)
		}
	}
}

func TestVRRPConfigRefusals(t *testing.T) {
	base := func() *spec.Node {
		return &spec.Node{Name: "gw1", VRRP: map[string]spec.VRRPInstance{"VI_1": {
			Interface: "eth0", VRID: 51, Version: 2, AdvertInterval: spec.Duration(time.Second), Preempt: true,
			Nodes: map[string]spec.VRRPNode{"gw1": {Priority: 150}, "gw2": {Priority: 100}},
			VIPs:  []spec.VIP{{Address: netip.MustParsePrefix("203.0.113.100/24")}},
			PeerAddresses: map[string][]netip.Prefix{"gw1": {netip.MustParsePrefix("203.0.113.11/24")},
				"gw2": {netip.MustParsePrefix("203.0.113.12/24")}},
		}}}
	}
	for _, c := range []struct {
		name string
		mut  func(*spec.VRRPInstance)
		want string
	}{
		{"AH", func(i *spec.VRRPInstance) { i.Auth = &spec.VRRPAuth{Type: "AH"} }, "AH is not"},
		{"unicast without addresses", func(i *spec.VRRPInstance) { i.Unicast, i.PeerAddresses = true, nil }, "has no address on eth0"},
		{"vip dev", func(i *spec.VRRPInstance) { i.VIPs[0].Dev = "eth1" }, "instance interface"},
		{"check kind", func(i *spec.VRRPInstance) {
			i.TrackChecks = []spec.TrackCheck{{Name: "x", Check: spec.Check{Kind: "smtp"}}}
		}, "unsupported"},
	} {
		n := base()
		in := n.VRRP["VI_1"]
		in.VIPs = append([]spec.VIP(nil), in.VIPs...)
		c.mut(&in)
		n.VRRP["VI_1"] = in
		if _, err := VRRPConfig(n); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// An IPv6 VMAC instance is no longer refused.
	n := base()
	in := n.VRRP["VI_1"]
	in.VMAC, in.Version = true, 3
	in.VIPs = []spec.VIP{{Address: netip.MustParsePrefix("2001:db8::100/64")}}
	in.AllowSources = spec.AllowSources{Any: true}
	n.VRRP["VI_1"] = in
	if cfg, err := VRRPConfig(n); err != nil || !cfg.Instances[0].VMAC {
		t.Errorf("IPv6 VMAC: %+v, %v", cfg, err)
	}
	// PASS, checks, services, notify and sync groups translate.
	n = base()
	in = n.VRRP["VI_1"]
	in.Auth = &spec.VRRPAuth{Type: "PASS", Password: "secret"}
	in.TrackChecks = []spec.TrackCheck{{Name: "web", Target: "127.0.0.1:80", Weight: -60, Check: spec.Check{Kind: "http", Path: "/health", ExpectStatus: 200}}}
	in.TrackServices = []spec.TrackService{{Service: "web", Weight: 0}}
	in.Notify = spec.Notify{Master: "logger master"}
	in.SyncGroup = "edge"
	in.VMAC = true
	n.VRRP["VI_1"] = in
	cfg, err := VRRPConfig(n)
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Instances[0]
	if got.AuthPass != "secret" || got.TrackChecks[0].Target != "http://127.0.0.1:80/health" || got.TrackChecks[1].Kind != vrrp.CheckService ||
		len(got.Notify.Master) != 3 || len(cfg.SyncGroups) != 1 || !got.VMAC {
		t.Errorf("translated %+v groups %+v", got, cfg.SyncGroups)
	}
}

// nullConn is a packet connection on which nobody else speaks.
type nullConn struct {
	once   sync.Once
	closed chan struct{}
}

func (c *nullConn) Read([]byte) (vrrp.Received, error) {
	<-c.closed
	return vrrp.Received{}, net.ErrClosed
}
func (c *nullConn) Write([]byte, netip.Addr, netip.Addr) error {
	return nil
}
func (c *nullConn) Close() error { c.once.Do(func() { close(c.closed) }); return nil }

type memVIPs struct {
	mu   sync.Mutex
	have map[netip.Prefix]bool
}

func (m *memVIPs) Add(_ context.Context, _ string, a []vip.Address) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, x := range a {
		m.have[x.Prefix] = true
	}
	return nil
}

func (m *memVIPs) Remove(_ context.Context, _ string, a []vip.Address) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, x := range a {
		delete(m.have, x.Prefix)
	}
	return nil
}

func TestVRRPDriverPlanApplyEvents(t *testing.T) {
	vips := &memVIPs{have: map[netip.Prefix]bool{}}
	e := vrrp.New(nil, vrrp.Options{
		Listen:      func(string, bool) (vrrp.Conn, error) { return &nullConn{closed: make(chan struct{})}, nil },
		PrimaryAddr: func(string, bool) (netip.Addr, error) { return netip.MustParseAddr("203.0.113.11"), nil },
		VIPs:        vips,
	})
	t.Cleanup(func() { _ = e.Stop(context.Background()) })
	d, err := NewVRRPDriver(VRRPOptions{Engine: e})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	n := labNode(t, "gw1")
	ctx := context.Background()

	changes, err := d.Plan(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Kind, ID string
		Action   plan.Action
	}
	var got []row
	for _, c := range changes {
		got = append(got, row{c.Kind, c.ID, c.Action})
	}
	if diff := cmp.Diff([]row{{"vrrp_instance", "VI_1", plan.Create}, {"vip", "VI_1/203.0.113.100/24", plan.Create}}, got); diff != "" {
		t.Fatalf("plan before apply (-want +got):\n%s", diff)
	}
	if d := changes[0].Details; len(d) == 0 || !strings.Contains(d[0], "master after apply: gw1 (priorities gw1=150, gw2=100)") {
		t.Errorf("details %q", d)
	}

	if err := d.Apply(ctx, n); err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(ctx, n); err != nil { // idempotent
		t.Fatal(err)
	}
	// Alone on the segment, gw1 becomes master after the master-down
	// interval: a transition event asks for a pass.
	deadline := time.After(20 * time.Second)
	for master := false; !master; {
		select {
		case ev := <-d.Events():
			master = ev.Kind == "transition" && strings.Contains(ev.Message, "VI_1 BACKUP -> MASTER")
		case <-deadline:
			t.Fatal("no transition event")
		}
	}
	changes, err = d.Plan(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		if c.Action != plan.NoOp {
			t.Errorf("after apply: %+v", c)
		}
	}

	// Priority changed in the site: an update, no transition.
	n2 := labNode(t, "gw1")
	in := n2.VRRP["VI_1"]
	in.Nodes = map[string]spec.VRRPNode{"gw1": {Priority: 90}, "gw2": {Priority: 100}}
	n2.VRRP["VI_1"] = in
	changes, _ = d.Plan(ctx, n2)
	if changes[0].Action != plan.Update || !strings.Contains(changes[0].Details[0], "master after apply: gw2") {
		t.Errorf("priority change planned as %+v", changes[0])
	}
	// Removed from the site: deleted with its VIP.
	n3 := labNode(t, "gw1")
	n3.VRRP = nil
	changes, _ = d.Plan(ctx, n3)
	got = nil
	for _, c := range changes {
		got = append(got, row{c.Kind, c.ID, c.Action})
	}
	if diff := cmp.Diff([]row{{"vrrp_instance", "VI_1", plan.Delete}, {"vip", "VI_1/203.0.113.100/24", plan.Delete}}, got); diff != "" {
		t.Errorf("plan after removal (-want +got):\n%s", diff)
	}
	if err := d.Apply(ctx, n3); err != nil {
		t.Fatal(err)
	}
	if len(vips.have) != 0 {
		t.Errorf("VIPs left after removal: %v", vips.have)
	}
}

// TestVRRPConfigUnicast: with unicast on, the source is this node's address
// on the instance's interface and the peers are the other nodes' (from the
// node view's peer addresses, filled by the loader); a node with no address
// there is an error naming it.
func TestVRRPConfigUnicast(t *testing.T) {
	pfx := func(s string) []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix(s)} }
	n := &spec.Node{Name: "gw1", VRRP: map[string]spec.VRRPInstance{"VI_1": {
		Interface: "eth0", VRID: 51, Version: 3, AdvertInterval: spec.Duration(100 * time.Millisecond), Unicast: true,
		Nodes:         map[string]spec.VRRPNode{"gw1": {Priority: 150}, "gw2": {Priority: 100}, "gw3": {Priority: 90}},
		VIPs:          []spec.VIP{{Address: netip.MustParsePrefix("203.0.113.100/24")}},
		PeerAddresses: map[string][]netip.Prefix{"gw1": pfx("203.0.113.11/24"), "gw2": pfx("203.0.113.12/24"), "gw3": pfx("203.0.113.13/24")},
		GARP:          spec.GARP{Repeat: 5},
	}}}
	cfg, err := VRRPConfig(n)
	if err != nil {
		t.Fatal(err)
	}
	in := cfg.Instances[0]
	if in.UnicastSrc.String() != "203.0.113.11" || fmt.Sprint(in.UnicastPeers) != "[203.0.113.12 203.0.113.13]" {
		t.Errorf("src %v peers %v", in.UnicastSrc, in.UnicastPeers)
	}
	vi := n.VRRP["VI_1"]
	delete(vi.PeerAddresses, "gw3")
	n.VRRP["VI_1"] = vi
	if _, err := VRRPConfig(n); err == nil || !strings.Contains(err.Error(), "nodes gw3 have no address on eth0") {
		t.Errorf("missing peer address: err = %v", err)
	}
}

// TestVRRPDriverDriftReport: with drift.vrrp "report", a VIP removed by
// hand while master is reported through the driver's events, saying it is
// left out, and is not put back; with the default it is put back.
func TestVRRPDriverDriftReport(t *testing.T) {
	for _, c := range []struct {
		mode     spec.DriftMode
		msg      string
		restored bool
	}{
		{spec.DriftReport, "VI_1: VIP 203.0.113.100/24 removed by hand while master: left out (drift mode report)", false},
		{spec.DriftCorrect, "VI_1: VIP 203.0.113.100/24 removed by hand while master: restored", true},
	} {
		t.Run(string(c.mode), func(t *testing.T) {
			vips := &memVIPs{have: map[netip.Prefix]bool{}}
			watch := make(chan func(vip.Event), 1)
			e := vrrp.New(nil, vrrp.Options{
				Listen:      func(string, bool) (vrrp.Conn, error) { return &nullConn{closed: make(chan struct{})}, nil },
				PrimaryAddr: func(string, bool) (netip.Addr, error) { return netip.MustParseAddr("203.0.113.11"), nil },
				VIPs:        vips,
				WatchAddrs:  func(_ context.Context, fn func(vip.Event)) error { watch <- fn; return nil },
			})
			ctx, cancel := context.WithCancel(context.Background())
			ran := make(chan error, 1)
			go func() { ran <- e.Run(ctx) }()
			t.Cleanup(func() { cancel(); <-ran })
			d, err := NewVRRPDriver(VRRPOptions{Engine: e})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = d.Close(context.Background()) })
			n := labNode(t, "gw1")
			n.Site.Drift.VRRP = c.mode
			if err := d.Apply(ctx, n); err != nil {
				t.Fatal(err)
			}
			waitEvent := func(want func(Event) bool, what string) {
				t.Helper()
				deadline := time.After(20 * time.Second)
				for {
					select {
					case ev := <-d.Events():
						if want(ev) {
							return
						}
					case <-deadline:
						t.Fatalf("no event: %s", what)
					}
				}
			}
			waitEvent(func(ev Event) bool { return ev.Kind == "transition" && strings.Contains(ev.Message, "-> MASTER") }, "master")
			// The kernel loses the VIP (removed by hand) and says so.
			p := netip.MustParsePrefix("203.0.113.100/24")
			idx := 0
			if ifi, err := net.InterfaceByName("eth0"); err == nil {
				idx = ifi.Index // the instance filters events by its interface
			}
			vips.mu.Lock()
			delete(vips.have, p)
			vips.mu.Unlock()
			(<-watch)(vip.Event{Ifindex: idx, Prefix: p, Added: false})
			waitEvent(func(ev Event) bool { return ev.Kind == "drift" && ev.Message == c.msg }, c.msg)
			_ = e.Status() // waits for the instance to finish handling the event
			vips.mu.Lock()
			got := vips.have[p]
			vips.mu.Unlock()
			if got != c.restored {
				t.Errorf("VIP present %v, want %v", got, c.restored)
			}
		})
	}
}

// TestVRRPDriverObserveAfterInPlaceVIPAdd: on a master, a VIP added in the
// site is there when the runner observes right after Apply: the plan after
// apply has nothing left to do (it once said "differs" now and then, the
// engine applying the change after Apply had returned).
func TestVRRPDriverObserveAfterInPlaceVIPAdd(t *testing.T) {
	vips := &memVIPs{have: map[netip.Prefix]bool{}}
	e := vrrp.New(nil, vrrp.Options{
		Listen:      func(string, bool) (vrrp.Conn, error) { return &nullConn{closed: make(chan struct{})}, nil },
		PrimaryAddr: func(string, bool) (netip.Addr, error) { return netip.MustParseAddr("203.0.113.11"), nil },
		VIPs:        vips,
	})
	t.Cleanup(func() { _ = e.Stop(context.Background()) })
	d, err := NewVRRPDriver(VRRPOptions{Engine: e})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	ctx := context.Background()
	n := labNode(t, "gw1")
	if err := d.Apply(ctx, n); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(20 * time.Second)
	for master := false; !master; {
		select {
		case ev := <-d.Events():
			master = ev.Kind == plan.EventTransition && strings.Contains(ev.Message, "VI_1 BACKUP -> MASTER")
		case <-deadline:
			t.Fatal("no transition to master")
		}
	}
	for i := range 30 {
		in := n.VRRP["VI_1"]
		in.VIPs = append(slices.Clone(in.VIPs), spec.VIP{Address: netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(150 + i)}), 24)})
		n.VRRP["VI_1"] = in
		if err := d.Apply(ctx, n); err != nil {
			t.Fatal(err)
		}
		after, err := d.Plan(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range after {
			if c.Action != plan.NoOp {
				t.Fatalf("round %d: after apply, %s %s still %s", i, c.Kind, c.ID, c.Action)
			}
		}
	}
}
