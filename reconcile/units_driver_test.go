package reconcile_test

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/plan"
	sdharness "github.com/gitgw/gitgw/test/systemd"
	"github.com/gitgw/gitgw/units"
)

func unitsNode(execStart string, ports ...int) *spec.Node {
	nofile := 65535
	return &spec.Node{
		Name: "gw1",
		Site: spec.SiteSettings{Drift: spec.DriftByKind{Units: spec.DriftCorrect}},
		Units: map[string]spec.UnitTemplate{
			"app": {
				Description: "app on %i", After: []string{"network.target"},
				Type: "exec", ExecStart: execStart, Restart: "on-failure",
				RestartSec:  spec.Duration(3 * time.Second),
				LimitNOFILE: &nofile, CPUQuota: "150%", MemoryMax: "2G", Slice: "app.slice",
				Environment: map[string]string{"PORT": "%i"},
				Hardening:   map[string]string{"NoNewPrivileges": "yes", "PrivateTmp": "yes"},
				Extra:       spec.UnitExtra{Unit: []string{"StartLimitBurst=50"}, Service: []string{"KillSignal=SIGINT"}},
				WantedBy:    []string{"multi-user.target"},
				Instances: []spec.InstanceSet{
					{Ports: &spec.PortRange{From: ports[0], To: ports[len(ports)-1]}},
					{Nodes: []string{"gw2"}, List: []string{"9999"}},
				},
				RollTimeout: spec.Duration(30 * time.Second),
			},
		},
	}
}

func TestUnitsConfig(t *testing.T) {
	cfg, err := reconcile.UnitsConfig(unitsNode("/usr/bin/app --port %i", 8080, 8081), "/x")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Templates) != 1 || cfg.UnitDir != "/x" || cfg.Drift != units.DriftCorrect {
		t.Fatalf("config: %+v", cfg)
	}
	tm := cfg.Templates[0]
	if !slices.Equal(tm.Instances, []string{"8080", "8081"}) || tm.RollTimeout != 30*time.Second {
		t.Fatalf("template: %+v", tm)
	}
	got := string(units.RenderUnit(tm))
	for _, want := range []string{
		"\nDescription=app on %i\n", "\nAfter=network.target\n", "\nStartLimitBurst=50\n",
		"\nExecStart=/usr/bin/app --port %i\n", "\nRestartSec=3s\n", "\nLimitNOFILE=65535\n",
		"\nCPUQuota=150%\n", "\nMemoryMax=2G\n", "\nSlice=app.slice\n", "\nNoNewPrivileges=yes\n",
		"\nPrivateTmp=yes\n", "\nKillSignal=SIGINT\n", "\nEnvironment=PORT=%i\n", "[Install]\nWantedBy=multi-user.target\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rendered unit lacks %q:\n%s", want, got)
		}
	}
	bad := unitsNode("/usr/bin/app", 1)
	u := bad.Units["app"]
	u.Extra.Service = []string{"no equals sign"}
	bad.Units["app"] = u
	if _, err := reconcile.UnitsConfig(bad, ""); err == nil {
		t.Error("extra without '=': no error")
	}
}

func TestUnitsChangeMapping(t *testing.T) {
	for op, want := range map[units.Op]plan.Action{
		units.OpCreate: plan.Create, units.OpUpdate: plan.Update, units.OpDelete: plan.Delete,
		units.OpNoOp: plan.NoOp, units.OpBlocked: plan.Pending,
	} {
		ch := reconcile.UnitsChange(units.Action{Kind: units.KindInstance, ID: "app@1.service", Op: op, Do: "start", Drift: true})
		if ch.Action != want || ch.Driver != "units" || !ch.Drift || ch.Details[0] != "systemctl start" {
			t.Errorf("%s: %+v", op, ch)
		}
	}
}

// TestUnitsDriverAgainstSystemd runs the adapter against a real systemd in
// namespaces: plan, apply, no-op, drift seen as an event and planned.
func TestUnitsDriverAgainstSystemd(t *testing.T) {
	h := sdharness.New(t, sdharness.Options{Name: "rcu"})
	d, err := reconcile.NewUnitsDriver(reconcile.UnitsOptions{UnitDir: h.UnitDir, Socket: h.Socket(),
		Manager: units.Options{Settle: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	ctx := context.Background()
	n := unitsNode("/bin/sleep infinity", 7001, 7002)

	changes, err := d.Plan(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]plan.Action{}
	for _, c := range changes {
		ids[c.ID] = c.Action
	}
	want := map[string]plan.Action{"app@.service": plan.Create, "app@7001.service": plan.Create, "app@7002.service": plan.Create}
	if !maps.Equal(ids, want) {
		t.Fatalf("plan: %v", ids)
	}
	if err := d.Apply(ctx, n); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(h.UnitDir, "app@.service")); err != nil {
		t.Fatal(err)
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
	h.MustSystemctl(t, "stop", "app@7002.service")
	timeout := time.After(30 * time.Second)
	for seen := false; !seen; {
		select {
		case ev := <-d.Events():
			// Resyncs (a reload, unit files changed) may come first.
			seen = ev.Driver == "units" && ev.Kind == "drift" && strings.Contains(ev.Message, "app@7002.service inactive")
		case <-timeout:
			t.Fatal("no drift event")
		}
	}
	changes, err = d.Plan(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		if c.ID == "app@7002.service" && (c.Action != plan.Update || !c.Drift) {
			t.Fatalf("drift plan: %+v", c)
		}
	}
	if err := d.Apply(ctx, n); err != nil {
		t.Fatal(err)
	}
	if got := h.MustSystemctl(t, "is-active", "app@7002.service"); got != "active" {
		t.Fatalf("not restored: %s", got)
	}
}

// TestUnitsDriverSeesUnitFileEdits: a unit file of the site edited or
// removed by hand is an event at once (not at the next resync), and the
// next pass puts it back; gitgw's own writes are not reported.
func TestUnitsDriverSeesUnitFileEdits(t *testing.T) {
	h := sdharness.New(t, sdharness.Options{Name: "rcf"})
	d, err := reconcile.NewUnitsDriver(reconcile.UnitsOptions{UnitDir: h.UnitDir, Socket: h.Socket(),
		Manager: units.Options{Settle: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	ctx := context.Background()
	n := unitsNode("/bin/sleep infinity", 7011)
	if err := d.Apply(ctx, n); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(h.UnitDir, "app@.service")
	written, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// waitFileEvent waits for the unit file event want. strict: any other
	// unit file event first is an error (one caused by gitgw's own write
	// would come before the hand-made change); otherwise earlier ones
	// (late events of the previous change) are skipped.
	waitFileEvent := func(want string, strict bool) {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case ev := <-d.Events():
				switch {
				case ev.Message == want:
					return
				case strict && strings.HasPrefix(ev.Message, "unit file "):
					t.Fatalf("event %q, want %q", ev.Message, want)
				}
			case <-timeout:
				t.Fatalf("no event %q", want)
			}
		}
	}
	for i, c := range []struct {
		what string
		do   func() error
		want string
	}{
		{"edit", func() error { return os.WriteFile(path, append(slices.Clone(written), "# tuned by hand\n"...), 0o644) }, "unit file app@.service edited by hand"},
		{"removal", func() error { return os.Remove(path) }, "unit file app@.service removed by hand"},
	} {
		if err := c.do(); err != nil {
			t.Fatal(err)
		}
		waitFileEvent(c.want, i == 0)
		changes, err := d.Plan(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(changes, func(c plan.Change) bool { return c.ID == "app@.service" })
		if i < 0 || changes[i].Action == plan.NoOp {
			t.Fatalf("%s: not planned: %+v", c.what, changes)
		}
		if err := d.Apply(ctx, n); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(path); err != nil || string(b) != string(written) {
			t.Fatalf("%s: not put back (err %v):\n%s", c.what, err, b)
		}
	}
}
