package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/gitgw/gitgw/dataplane/kernlb"
	"github.com/gitgw/gitgw/dataplane/l4proxy"
	"github.com/gitgw/gitgw/dataplane/vrrp"
	"github.com/gitgw/gitgw/reconcile/plan"
	"github.com/gitgw/gitgw/units"
)

// DriverConfig is what building the node's drivers needs from the command
// line.
type DriverConfig struct {
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
	// Inherited are listening sockets handed over by systemd or a previous
	// agent, which the proxy adopts (l4proxy.Options.Inherited).
	Inherited []*os.File
	// Guardian is the command line of the VRRP guardian (`gitgw vrrp guard
	// --state-dir DIR`), started with a live engine that keeps its state in
	// StateDir. Empty: none.
	Guardian []string
}

// Drivers are the node's drivers, one per family in apply order, and the
// in-process engines behind them. The engines are given here, by value, so
// that the controller and the file descriptor store never dig them back
// out of the drivers.
type Drivers struct {
	// List has one driver per family of plan.Families, in that order: the
	// real driver where it can run, Pending (with the reason) where it
	// cannot or none is built in.
	List []Driver
	// Pool is the proxy pool (always built: it needs no privilege).
	Pool *l4proxy.Pool
	// Engine is the VRRP engine; nil where VRRP cannot run (no root).
	Engine *vrrp.Engine
	// Tuning is the NIC and sysctl driver (the receive spread's source).
	Tuning *TuningDriver
	// KernLB is the kernel load balancer's driver; nil where it cannot
	// run (no root).
	KernLB *KernLBDriver
	// vrrp is the VRRP driver (nil without root) and systemdSocket where
	// to ask systemd about a restart (PrepareStop).
	vrrp          *VRRPDriver
	systemdSocket string
}

// PrepareStop is called once the agent has been told to stop, before
// Close, with handOver, which gives the proxy's connections to the next
// agent (fdstore.Store.HandOver). First VRRP: when systemd is restarting
// the agent's unit (`systemctl restart`, an upgrade's restart), the VRRP
// driver keeps this node's mastership and VIPs for the next agent, which
// resumes them (vrrp.Engine.StopForRestart). Anything else (a stop, a
// shutdown, a signal sent by hand, systemd not answering within 2 s) is a
// stop: priority 0 at once, so a stop never leaves the VIPs on a node
// without an agent. Then handOver, in every case: it can take seconds
// under load, and on a stop the peer must not wait that long to take
// over (TestPrepareStopOrder).
func (d *Drivers) PrepareStop(log *slog.Logger, handOver func()) {
	d.releaseMastership(log)
	handOver()
}

// releaseMastership is PrepareStop's VRRP part.
func (d *Drivers) releaseMastership(log *slog.Logger) {
	if d.vrrp == nil || !d.vrrp.own {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	job, err := units.PendingJob(ctx, d.systemdSocket)
	switch {
	case err != nil:
		log.Info("cannot tell a restart from a stop: leaving VRRP mastership as on a stop", "err", err)
	case units.IsRestart(job):
		log.Info("systemd restarts the agent: VRRP mastership and VIPs kept for the next agent", "job", job)
		d.vrrp.KeepMastership()
		return
	}
	// A stop: mastership goes now (priority 0), before the rest of the
	// stop, so that the peer takes over at once. Close is idempotent:
	// closing the drivers later does not stop it twice.
	if err := d.vrrp.Close(ctx); err != nil {
		log.Error("VRRP stop", "err", err)
	}
}

// BuildDrivers builds one driver per family. A driver that cannot run here
// (no root, no systemd) is replaced by Pending, and its resources are
// planned as pending, plainly; Close stops what was built.
func BuildDrivers(cfg DriverConfig) *Drivers {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pool := l4proxy.New(log.With("component", "l4proxy"), l4proxy.Options{Inherited: cfg.Inherited})
	d := &Drivers{Pool: pool, systemdSocket: cfg.SystemdSocket}
	have := map[plan.Family]Driver{}
	add := func(family plan.Family, drv Driver, err error) {
		if err != nil {
			log.Warn("driver not available; its resources are listed as pending", "driver", family, "err", err)
			drv = Pending{Family: family, Why: "driver unavailable: " + err.Error()}
		}
		have[family] = drv
	}
	td := NewTuningDriver(nil, log)
	if cfg.Live {
		// The NET_RX spread over the last minute; stopped by Close.
		td.StartSampling(0)
	}
	d.Tuning = td
	add(plan.FamilyTuning, td, nil)
	rd, err := buildRealServer(cfg, log)
	add(plan.FamilyRealServer, rd, err)
	ud, err := NewUnitsDriver(UnitsOptions{
		UnitDir: cfg.UnitDir,
		Socket:  cfg.SystemdSocket,
		// A rolling restart waits for the restarted instance's own
		// servers, by port and this host's addresses, checked since.
		Healthy: func(_ context.Context, unit string, restarted time.Time) error {
			return UnitHealthy(pool.Stats(), unit, restarted, HostAddr)
		},
		Manager: units.Options{Progress: cfg.Progress},
		Logger:  log,
	})
	if err != nil {
		add(plan.FamilyUnits, nil, err)
	} else {
		add(plan.FamilyUnits, ud, nil)
	}
	add(plan.FamilyProxy, NewProxyDriver(pool, log), nil)
	kd, err := buildKernLB(cfg, log)
	if err != nil {
		add(plan.FamilyKernLB, nil, err)
	} else {
		d.KernLB = kd
		add(plan.FamilyKernLB, kd, nil)
	}
	vd, err := buildVRRP(cfg, pool, log)
	if err != nil {
		add(plan.FamilyVRRP, nil, err)
	} else {
		d.Engine, d.vrrp = vd.Engine(), vd
		add(plan.FamilyVRRP, vd.withGuardian(cfg, log), nil)
	}
	for _, fam := range plan.Families {
		drv, ok := have[fam]
		if !ok {
			drv = Pending{Family: fam, Why: "driver not built into this gitgw yet"}
		}
		d.List = append(d.List, drv)
	}
	return d
}

// buildVRRP starts the engine; a VRRP instance tracking a proxy service
// gives up mastership when the service has no server up.
func buildVRRP(cfg DriverConfig, pool *l4proxy.Pool, log *slog.Logger) (*VRRPDriver, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("the VRRP engine needs root (raw sockets, netlink)")
	}
	return NewVRRPDriver(VRRPOptions{StateDir: cfg.StateDir, ServiceHealthy: pool.Healthy, Logger: log, Resume: cfg.Live})
}

// buildKernLB opens the kernel load balancer (nftables NAT and direct
// routing) for the services with mode nat or dr. Its health checks run
// only where the node is changed (apply, agent): a plan reads the servers'
// health back from the tables.
func buildKernLB(cfg DriverConfig, log *slog.Logger) (*KernLBDriver, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("the kernel load balancer needs root (nftables over netlink)")
	}
	lb, err := kernlb.Open(0, log)
	if err != nil {
		return nil, err
	}
	return NewKernLBDriver(lb, KernLBOptions{Checks: cfg.Live, Logger: log}), nil
}

// buildRealServer opens the real server's seam (netlink, /proc/sys) in
// the agent's network namespace; the knobs' previous values are kept in
// the state dir.
func buildRealServer(cfg DriverConfig, log *slog.Logger) (Driver, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("a DR real server's setup needs root (addresses on lo, ARP sysctls)")
	}
	state := ""
	if cfg.StateDir != "" {
		state = filepath.Join(cfg.StateDir, "realserver.json")
	}
	h, err := kernlb.OpenRealServerHost(state)
	if err != nil {
		return nil, err
	}
	var poll time.Duration
	if cfg.Live {
		poll = time.Second // a VIP deleted by hand is noticed within a second
	}
	return NewRealServerDriver(h, log, poll), nil
}

// guardedVRRP is the VRRP driver with its guardian: a companion process
// that hands mastership over the instant the agent dies (SIGKILL, OOM),
// instead of leaving the peer to wait 3 × the advert interval. The unit's
// ExecStopPost=gitgw vrrp release stays as the backstop for when the whole
// service is killed at once.
type guardedVRRP struct {
	*VRRPDriver
	guardian *vrrp.Guardian
}

// withGuardian starts the guardian for a live engine with a state dir.
func (d *VRRPDriver) withGuardian(cfg DriverConfig, log *slog.Logger) Driver {
	if !cfg.Live || cfg.StateDir == "" || len(cfg.Guardian) == 0 {
		return d
	}
	cmd := exec.Command(cfg.Guardian[0], cfg.Guardian[1:]...)
	// Its "released mastership" line belongs in the agent's log (the
	// journal under systemd): it is the record of a crash handover.
	cmd.Stderr = os.Stderr
	g, err := vrrp.StartGuardian(cmd)
	if err != nil {
		log.Warn("no VRRP guardian: a crash hands over through ExecStopPost only", "err", err)
		return d
	}
	log.Info("VRRP guardian started", "pid", g.PID())
	return &guardedVRRP{VRRPDriver: d, guardian: g}
}

// Close stops the engine (priority 0 for what it was master of), then ends
// the guardian's life line: the state file is empty, it releases nothing.
func (g *guardedVRRP) Close(ctx context.Context) error {
	err := g.VRRPDriver.Close(ctx)
	return errors.Join(err, g.guardian.Close())
}

// Close closes every driver that holds resources.
func (d *Drivers) Close(ctx context.Context) error {
	var errs []error
	for _, drv := range d.List {
		if c, ok := drv.(Closer); ok {
			if err := c.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", drv.Name(), err))
			}
		}
	}
	return errors.Join(errs...)
}
