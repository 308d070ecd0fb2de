package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/gitgw/gitgw/dataplane/l4proxy"
	"github.com/gitgw/gitgw/dataplane/vrrp"
	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/plan"
	"github.com/gitgw/gitgw/units"
)

// shared holds what several drivers use together: the proxy pool, whose
// health the VRRP engine tracks and the units driver waits for.
type shared struct {
	pool *l4proxy.Pool
}

func newShared(env driverEnv) *shared {
	return &shared{pool: l4proxy.New(env.Logger.With("component", "l4proxy"), l4proxy.Options{Inherited: inheritedListeners()})}
}

// serviceHealthy reports whether a proxy service has a server up: a VRRP
// instance tracking the service gives up mastership when it has none.
func (s *shared) serviceHealthy(name string) bool { return s.pool.Healthy(name) }

// unitHealthy gates a rolling restart (reconcile.UnitHealthy): the
// restarted instance's own servers, by port and this host's addresses,
// with a check since the restart.
func (s *shared) unitHealthy(_ context.Context, unit string, restarted time.Time) error {
	return reconcile.UnitHealthy(s.pool.Stats(), unit, restarted, reconcile.HostAddr)
}

// inheritedListeners are listening sockets handed over by systemd
// (LISTEN_FDS, from the unit's file descriptor store) or by a previous
// agent process, so that a restart never refuses a connection.
func inheritedListeners() []*os.File {
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		return nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n <= 0 {
		return nil
	}
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	var out []*os.File
	for i := 0; i < n; i++ {
		name := "listener"
		if i < len(names) && names[i] != "" {
			name = names[i]
		}
		out = append(out, os.NewFile(uintptr(3+i), name))
	}
	return out
}

func proxyFactory() driverFactory {
	return driverFactory{
		family: plan.FamilyProxy,
		build: func(_ context.Context, env driverEnv) (reconcile.Driver, error) {
			return reconcile.NewProxyDriver(env.shared.pool, env.Logger), nil
		},
	}
}

func vrrpFactory() driverFactory {
	return driverFactory{
		family: plan.FamilyVRRP,
		build: func(_ context.Context, env driverEnv) (reconcile.Driver, error) {
			if os.Geteuid() != 0 {
				return nil, fmt.Errorf("the VRRP engine needs root (raw sockets, netlink)")
			}
			d, err := reconcile.NewVRRPDriver(reconcile.VRRPOptions{
				StateDir:       env.StateDir,
				ServiceHealthy: env.shared.serviceHealthy,
				Logger:         env.Logger,
			})
			if err != nil || !env.Live || env.StateDir == "" {
				return d, err
			}
			return withGuardian(d, env)
		},
	}
}

// guardedVRRP is the VRRP driver with its guardian: a companion process
// that hands mastership over the instant the agent dies (SIGKILL, OOM),
// instead of leaving the peer to wait 3 × the advert interval. The unit's
// ExecStopPost=gitgw vrrp release stays as the backstop for when the whole
// service is killed at once.
type guardedVRRP struct {
	*reconcile.VRRPDriver
	guardian *vrrp.Guardian
}

func withGuardian(d *reconcile.VRRPDriver, env driverEnv) (reconcile.Driver, error) {
	self, err := os.Executable()
	if err != nil {
		self = os.Args[0]
	}
	cmd := exec.Command(self, "vrrp", "guard", "--state-dir", env.StateDir)
	// Its "released mastership" line belongs in the agent's log (the
	// journal under systemd): it is the record of a crash handover.
	cmd.Stderr = os.Stderr
	g, err := vrrp.StartGuardian(cmd)
	if err != nil {
		env.Logger.Warn("no VRRP guardian: a crash hands over through ExecStopPost only", "err", err)
		return d, nil
	}
	env.Logger.Info("VRRP guardian started", "pid", g.PID())
	return &guardedVRRP{VRRPDriver: d, guardian: g}, nil
}

// Close stops the engine (priority 0 for what it was master of), then ends
// the guardian's life line: the state file is empty, it releases nothing.
func (g *guardedVRRP) Close(ctx context.Context) error {
	err := g.VRRPDriver.Close(ctx)
	return errors.Join(err, g.guardian.Close())
}

func unitsFactory() driverFactory {
	return driverFactory{
		family: plan.FamilyUnits,
		build: func(_ context.Context, env driverEnv) (reconcile.Driver, error) {
			return reconcile.NewUnitsDriver(reconcile.UnitsOptions{
				UnitDir: env.UnitDir,
				Socket:  env.SystemdSocket,
				Healthy: env.shared.unitHealthy,
				Manager: units.Options{Progress: env.Progress},
				Logger:  env.Logger,
			})
		},
	}
}
