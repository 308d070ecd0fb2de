package main

import (
	"context"
	"fmt"
	"os"

	"github.com/gitgw/gitgw/dataplane/kernlb"
	"github.com/gitgw/gitgw/reconcile"
)

// kernlbFactory wires the kernel load balancer (nftables NAT and direct
// routing) for the site's services with mode nat or dr. Its health checks
// run only where the node is changed (apply, agent): a plan reads the
// servers' health back from the tables.
func kernlbFactory() driverFactory {
	return driverFactory{
		family: "kernlb",
		build: func(_ context.Context, env driverEnv) (reconcile.Driver, error) {
			if os.Geteuid() != 0 {
				return nil, fmt.Errorf("the kernel load balancer needs root (nftables over netlink)")
			}
			lb, err := kernlb.Open(0, env.Logger)
			if err != nil {
				return nil, err
			}
			return reconcile.NewKernLBDriver(lb, reconcile.KernLBOptions{Checks: env.Live, Logger: env.Logger}), nil
		},
	}
}
