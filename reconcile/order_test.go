package reconcile

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile/plan"
	"github.com/google/go-cmp/cmp"
)

// orderDriver plans one change with the action the test sets and records
// the order of the drivers' Apply calls in a log shared between them.
type orderDriver struct {
	name   string
	action plan.Action
	log    *[]string
}

func (d *orderDriver) Name() string { return d.name }

func (d *orderDriver) Plan(context.Context, *spec.Node) ([]plan.Change, error) {
	return []plan.Change{{Kind: d.name + "_thing", ID: "x", Action: d.action}}, nil
}

func (d *orderDriver) Apply(context.Context, *spec.Node) error {
	*d.log = append(*d.log, d.name)
	return nil
}

// TestApplyOrder: a pass applies tuning → units → proxy → VRRP, whatever
// order the drivers were given in, so that a VIP comes up only once what
// it fronts is ready; a pass that removes something applies the reverse,
// so that a VIP leaves before the service behind it, and a service before
// its backends.
func TestApplyOrder(t *testing.T) {
	ctx := context.Background()
	c1, c2 := filepath.Join(t.TempDir(), "c1"), filepath.Join(t.TempDir(), "c2")
	writeSite(t, c1, labVRRP, labServices, "")
	writeSite(t, c2, labVRRP, `services: web: {
	binds: ["203.0.113.100:80"]
	servers: s1: address: "198.51.100.11:8080"
	check: kind: "tcp"
}`, "")
	var log []string
	drivers := map[string]*orderDriver{}
	var given []Driver
	for _, name := range []string{"vrrp", "units", "proxy", "tuning"} {
		d := &orderDriver{name: name, action: plan.Create, log: &log}
		drivers[name] = d
		given = append(given, d)
	}
	r, err := NewRunner(RunnerOptions{Node: "gw1", Drivers: given})
	if err != nil {
		t.Fatal(err)
	}
	if res := r.Pass(ctx, Revision{Commit: "c1", Dir: c1}, PassOptions{}); res.Outcome != Applied {
		t.Fatalf("c1: %s %v", res.Outcome, res.Err)
	}
	if d := cmp.Diff([]string{"tuning", "units", "proxy", "vrrp"}, log); d != "" {
		t.Errorf("apply order of a pass that adds (-want +got):\n%s", d)
	}

	// c2 removes a server: the proxy deletes, the others update.
	log = nil
	for _, d := range drivers {
		d.action = plan.Update
	}
	drivers["proxy"].action = plan.Delete
	if res := r.Pass(ctx, Revision{Commit: "c2", Dir: c2}, PassOptions{}); res.Outcome != Applied {
		t.Fatalf("c2: %s %v", res.Outcome, res.Err)
	}
	if d := cmp.Diff([]string{"vrrp", "proxy", "units", "tuning"}, log); d != "" {
		t.Errorf("apply order of a pass that removes (-want +got):\n%s", d)
	}
}
