package main

import (
	"context"
	"github.com/spf13/pflag"
	"log/slog"

	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// driverEnv is what the driver constructors may need from the command line.
type driverEnv struct {
	Node     string
	StateDir string
	Logger   *slog.Logger
	// Live is set for commands that change the node (apply, agent); plan
	// only observes.
	Live bool
	// UnitDir and SystemdSocket locate systemd (defaults: the system's).
	UnitDir, SystemdSocket string
	// Progress is beaten by long waits that are progress (the agent's
	// watchdog heartbeat); nil outside the agent.
	Progress func()

	shared *shared
}

// driverFactory builds one family's driver. A factory that cannot run here
// (no root, no systemd) returns an error; the family is then planned as
// pending, plainly.
type driverFactory struct {
	family plan.Family
	build  func(ctx context.Context, env driverEnv) (reconcile.Driver, error)
}

// driverFactories lists the drivers built into this binary; each is wired
// in its own file (wire_*.go).
func driverFactories() []driverFactory {
	return []driverFactory{tuningFactory(), unitsFactory(), proxyFactory(), kernlbFactory(), vrrpFactory()}
}

// buildDrivers returns one driver per family, real where it can run and
// pending otherwise, plus a cleanup that closes them.
func buildDrivers(ctx context.Context, env driverEnv) ([]reconcile.Driver, func()) {
	env.shared = newShared(env)
	have := map[plan.Family]reconcile.Driver{}
	for _, f := range driverFactories() {
		d, err := f.build(ctx, env)
		if err != nil {
			env.Logger.Warn("driver not available; its resources are listed as pending", "driver", f.family, "err", err)
			have[f.family] = reconcile.Pending{Family: f.family, Why: "driver unavailable: " + err.Error()}
			continue
		}
		have[f.family] = d
	}
	var out []reconcile.Driver
	for _, fam := range plan.Families {
		d, ok := have[fam]
		if !ok {
			d = reconcile.Pending{Family: fam, Why: "driver not built into this gitgw yet"}
		}
		out = append(out, d)
	}
	cleanup := func() {
		for _, d := range out {
			if c, ok := d.(reconcile.Closer); ok {
				_ = c.Close(context.Background())
			}
		}
	}
	return out, cleanup
}

// driverFlags locate what the drivers talk to.
type driverFlags struct {
	unitDir, systemdSocket string
}

func (f *driverFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.unitDir, "unit-dir", "/etc/systemd/system", "where gitgw writes the site's template units")
	fl.StringVar(&f.systemdSocket, "systemd-socket", "", "systemd's private socket to use instead of the system bus (tests, containers)")
}
