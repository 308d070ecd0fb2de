package main

import (
	"context"

	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// tuningFactory builds the NIC and sysctl driver over the real /sys and /proc.
func tuningFactory() driverFactory {
	return driverFactory{
		family: plan.FamilyTuning,
		build: func(_ context.Context, env driverEnv) (reconcile.Driver, error) {
			d := reconcile.NewTuningDriver(nil, env.Logger)
			// The spread over the last minute; stopped by closing the driver.
			d.StartSampling(0)
			return d, nil
		},
	}
}
