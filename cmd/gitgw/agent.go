package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gitgw/gitgw/dataplane/vip"
	"github.com/gitgw/gitgw/internal/sdnotify"
	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
	"github.com/gitgw/gitgw/reconcile/planapply"
)

type agentFlags struct {
	site     siteFlags
	node     string
	stateDir string
	interval time.Duration
	resync   time.Duration
	debug    bool
	status   statusFlags
	scope    string
	drivers  driverFlags
	control  controlFlags
	safety   safetyFlags
}

func newAgentCmd() *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent (--repo URL | --site DIR) [--node NAME]",
		Short: "Run the agent: follow the site and keep this node reconciled",
		Example: `  gitgw agent --repo ssh://git@git.example.net/site.git --ssh-key /etc/gitgw/id_ed25519 \
      --known-hosts /etc/gitgw/known_hosts --node gw1 --interval 30s
  gitgw agent --site /srv/site --node gw1   # a plain directory, watched for changes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runAgent(cmd, &f) },
	}
	f.site.register(cmd)
	fl := cmd.Flags()
	nodeFlag(fl, &f.node, "this node's name in the site")
	fl.StringVar(&f.stateDir, "state-dir", "/var/lib/gitgw", "state directory: clone, last applied state, VRRP handover")
	fl.DurationVar(&f.interval, "interval", 30*time.Second, "poll interval for remote repositories (local ones are watched)")
	fl.DurationVar(&f.resync, "resync", 60*time.Second, "full pass interval, to find drift where nothing can be watched (sysfs)")
	fl.DurationVar(&f.site.fetchSpread, "fetch-spread", 0, "delay the fetch of a new commit by an offset in [0, this) fixed per node and commit, so that a large fleet does not fetch it at once (0: at once)")
	fl.BoolVar(&f.debug, "debug", false, "debug logging")
	f.status.register(fl)
	fl.StringVar(&f.scope, "scope", "auto", scopeHelp)
	f.drivers.register(fl)
	f.control.register(fl)
	f.safety.register(fl)
	return cmd
}

func runAgent(cmd *cobra.Command, f *agentFlags) error {
	log := newLogger(cmd, f.debug)
	if f.node == "" {
		return fmt.Errorf("--node is empty and the hostname is unknown")
	}
	if err := os.MkdirAll(f.stateDir, 0o750); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	stateDir, err := filepath.Abs(f.stateDir)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if err := f.safety.trust(stateDir, &f.site); err != nil {
		return err
	}
	// go-git rewrites a ref in place: a crash can leave the clone's synced
	// ref empty or truncated, which would wedge every fetch. Such refs are
	// moved aside (loudly) and the next sync starts as a first one.
	if _, err := gitrepo.RepairRefs(filepath.Join(stateDir, sourceDir, "repo.git"), log); err != nil {
		return err
	}
	src, cleanup, err := f.site.open(ctx, f.node, stateDir, true)
	if err != nil {
		return err
	}
	defer cleanup()
	if err := reconcile.CheckStart(ctx, src, f.node, vip.ReadHostAddresses, log); err != nil {
		return err
	}
	if err := f.status.claim(ctx, f.node, &f.site, log); err != nil {
		return err
	}
	rollout, err := f.safety.rollout(f.node, stateDir, &f.site, &f.status, log)
	if err != nil {
		return err
	}
	heartbeat := reconcile.NewHeartbeat(nil)
	drv := buildDrivers(reconcile.DriverConfig{StateDir: stateDir, Logger: log, Live: true,
		UnitDir: f.drivers.unitDir, SystemdSocket: f.drivers.systemdSocket, Progress: heartbeat.Beat})
	defer drv.Close(context.Background())
	scope, err := parseScope(f.scope)
	if err != nil {
		return err
	}
	kick := make(chan struct{}, 1)
	var runner *reconcile.Runner
	probes := drv.List
	ctl, drivers := setupControl(f.node, stateDir, drv, kick, func() *reconcile.LastGood {
		if runner == nil {
			return nil
		}
		return runner.LastGood()
	}, log)
	runner, err = reconcile.NewRunner(reconcile.RunnerOptions{Node: f.node, StateDir: stateDir, Drivers: drivers, Logger: log, Scope: scope,
		Check: reconcile.PolicyCheck(reconcile.PolicyOptions{Logger: log}), Suspend: ctl.Suspended,
		Rollout: rollout, Health: f.safety.health(probes)})
	if err != nil {
		return err
	}
	requests := make(chan reconcile.PassRequest) // gitgw plan/apply through the socket (#14)
	ctl.SetPlanApply(planapply.Serve(func() *reconcile.Runner { return runner }, requests, src.Describe()))
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reconciling now")
				select {
				case kick <- struct{}{}:
				default:
				}
			}
		}
	}()
	status, err := f.status.start(ctx, f.node, stateDir, &f.site, src, runner, drivers, ctl.ObservePush, log)
	if err != nil {
		return err
	}
	defer status.Stop(10 * time.Second)
	fds := newFDStore(drv.Pool, log)
	stopControl, err := f.control.serve(ctx, ctl, log)
	if err != nil {
		return err
	}
	defer stopControl()
	sd := sdnotify.New()
	agent := reconcile.NewAgent(reconcile.AgentOptions{
		Source:    src,
		Runner:    runner,
		Poll:      f.interval,
		Resync:    f.resync,
		Kick:      kick,
		Requests:  requests,
		Notify:    sd.Notify,
		Watchdog:  sdnotify.WatchdogInterval(),
		Heartbeat: heartbeat,
		Events:    status.Events(ctx, reconcile.DriverEvents(drivers)),
		Logger:    log,
		HoldRetry: f.safety.rolloutPoll,
		OnSync:    ctl.ObserveSync,
		OnResult: func(r reconcile.Result) {
			log.Info("pass done", "commit", r.Commit, "outcome", r.Outcome, "summary", r.Summary(), "duration", r.Duration)
			ctl.Observe(ctx, r.Control())
			fds.sync()
			status.Report(ctx, r)
		},
	})
	log.Info("agent starting", "node", f.node, "source", src.Describe(), "state_dir", stateDir)
	err = agent.Run(ctx)
	drv.PrepareStop(log) // a restart keeps VRRP mastership (#15)
	// The proxy's connections go to the next agent (systemd's fd store)
	// before the drivers close: a restart cuts none of them.
	fds.handOver()
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reconcile.CloseDrivers(shutdown, drivers, log)
	log.Info("agent stopped")
	return err
}
