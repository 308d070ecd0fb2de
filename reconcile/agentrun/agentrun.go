// Package agentrun assembles the long-running agent from one Config: the
// site's source, the drivers, the controller and its socket, the status
// reporting, the pair-aware rollout and the health gate, the systemd
// protocol, and reconcile.Agent's loop over them. cmd/gitgw turns flags
// into a Config and calls Run; each piece's behaviour stays in its own
// package (reconcile, control, planapply, gitrepo, fdstore, sdnotify).
package agentrun

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/vip"
	"github.com/gitgw/gitgw/internal/fdstore"
	"github.com/gitgw/gitgw/internal/sdnotify"
	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/control"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
	"github.com/gitgw/gitgw/reconcile/planapply"
)

// Config is everything the agent is told at start (gitgw agent's flags).
type Config struct {
	Node     string
	StateDir string // created when missing
	Version  string // reported in the status and on the page
	// Source is where the site comes from; its StateDir and Watch are set
	// by Run, and its Git.Verifier, AnchorFile and TrustAnchor from Safety.
	Source reconcile.SourceConfig
	// Poll is the poll interval of remote repositories, Resync the full
	// pass interval (drift where nothing can be watched).
	Poll, Resync time.Duration
	Scope        loader.Scope
	// Drivers: UnitDir, SystemdSocket and Inherited are the process's;
	// StateDir, Logger, Live and Progress are set by Run.
	Drivers reconcile.DriverConfig
	// Guardian is the VRRP guardian's command line for a state dir (empty:
	// none).
	Guardian func(stateDir string) []string
	// Socket and Listen are the control socket and the status page's
	// address ("" for none).
	Socket, Listen string
	Status         Status
	Safety         Safety
	Logger         *slog.Logger
}

// Status configures the reporting to the node's status branch.
type Status struct {
	Off            bool
	Repo           string // default: the site's repository
	Prefix         string
	Coalesce       time.Duration
	SigningKey     string
	HistoryCommits int
	HistoryAge     time.Duration
	Alive          time.Duration
	// Replace starts even while another agent reports under the node's
	// name (reconcile.CheckClaim).
	Replace bool
}

// Safety configures what guards an apply beyond the site's own checks.
type Safety struct {
	Verify                      string // gitgw/gitrepo.ParseVerifyMode
	TrustedKeys, AllowedSigners string
	TrustAnchor                 string
	RolloutTimeout, RolloutPoll time.Duration
	Bake                        time.Duration
}

// StopPushWait bounds the status push when the agent stops. systemd
// waits for the stop, and a slow or unreachable status remote held it for
// 10 s under load (longer over ssh, whose handshake heeds no deadline):
// the restart, or the shutdown, waited on Git. The status is committed
// locally either way, and the next agent pushes it, so a stop gives up on
// the push after this long and logs that it did.
const StopPushWait = 2 * time.Second

// AnchorFile is where strict verification keeps its trust anchor in the
// state dir, apart from last-applied.json.
const AnchorFile = "trust-anchor.json"

// Run runs the agent until ctx is done; SIGHUP asks for a pass now.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if cfg.Node == "" {
		return fmt.Errorf("--node is empty and the hostname is unknown")
	}
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	stateDir, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return err
	}
	if err := cfg.Safety.trust(stateDir, &cfg.Source); err != nil {
		return err
	}
	// go-git rewrites a ref in place: a crash can leave the clone's synced
	// ref empty or truncated, which would wedge every fetch. Such refs are
	// moved aside (loudly) and the next sync starts as a first one.
	if _, err := gitrepo.RepairRefs(filepath.Join(stateDir, reconcile.SourceDir, "repo.git"), log); err != nil {
		return err
	}
	if err := cfg.Source.Check(); err != nil {
		return err
	}
	cfg.Source.StateDir, cfg.Source.Watch, cfg.Source.Git.Node = stateDir, true, cfg.Node
	opened, err := reconcile.OpenSource(ctx, cfg.Source)
	if err != nil {
		return err
	}
	defer opened.Close()
	src := opened.Source
	// The head is evaluated once: here, and the first pass reads it.
	load := reconcile.HandOn(loader.LoadWith)
	if err := reconcile.CheckStartWith(ctx, src, cfg.Node, load, loader.Options{Scope: cfg.Scope}, vip.ReadHostAddresses, log); err != nil {
		return err
	}
	self := reconcile.SelfAgentID(time.Now())
	if err := cfg.claim(ctx, self); err != nil {
		return err
	}
	rollout, err := cfg.rollout(stateDir)
	if err != nil {
		return err
	}
	heartbeat := reconcile.NewHeartbeat(nil)
	dc := cfg.Drivers
	dc.StateDir, dc.Logger, dc.Live, dc.Progress = stateDir, log, true, heartbeat.Beat
	if cfg.Guardian != nil {
		dc.Guardian = cfg.Guardian(stateDir)
	}
	drv := reconcile.BuildDrivers(dc)
	defer drv.Close(context.Background())
	if err := cfg.Scope.Check(); err != nil {
		return err
	}
	kick := make(chan struct{}, 1)
	var runner *reconcile.Runner
	ctl, drivers := newController(cfg.Node, stateDir, cfg.Version, drv, kick, func() *reconcile.LastGood {
		if runner == nil {
			return nil
		}
		return runner.LastGood()
	}, log)
	runner, err = reconcile.NewRunner(reconcile.RunnerOptions{Node: cfg.Node, StateDir: stateDir, Drivers: drivers, Logger: log, Scope: cfg.Scope, Load: load,
		Check: reconcile.PolicyCheck(reconcile.PolicyOptions{Logger: log}), Suspend: ctl.Suspended,
		Rollout: rollout, Health: &reconcile.HealthGateOptions{Drivers: drv.List, Window: cfg.Safety.Bake}})
	if err != nil {
		return err
	}
	requests := make(chan reconcile.PassRequest) // gitgw plan/apply through the socket (#14)
	ctl.SetPlanApply(planapply.Serve(func() *reconcile.Runner { return runner }, requests, src.Describe()))
	go kickOnHUP(ctx, kick, log)
	status, err := cfg.startReporting(ctx, stateDir, self, src, runner, drivers, ctl.ObservePush)
	if err != nil {
		return err
	}
	defer status.Stop(StopPushWait)
	fds := fdstore.New(drv.Pool, log)
	stopControl, err := ctl.Start(ctx, cfg.Socket, cfg.Listen, log)
	if err != nil {
		return err
	}
	defer stopControl()
	sd := sdnotify.New()
	agent := reconcile.NewAgent(reconcile.AgentOptions{
		Source:    src,
		Runner:    runner,
		Poll:      cfg.Poll,
		Resync:    cfg.Resync,
		Kick:      kick,
		Requests:  requests,
		Notify:    sd.Notify,
		Watchdog:  sdnotify.WatchdogInterval(),
		Heartbeat: heartbeat,
		Events:    status.Events(ctx, reconcile.DriverEvents(drivers)),
		Logger:    log,
		HoldRetry: cfg.Safety.RolloutPoll,
		OnSync:    ctl.ObserveSync,
		OnResult: func(r reconcile.Result) {
			log.Info("pass done", "commit", r.Commit, "outcome", r.Outcome, "summary", r.Summary(), "duration", r.Duration)
			ctl.Observe(ctx, r.Control())
			fds.Sync()
			status.Report(ctx, r)
		},
	})
	log.Info("agent starting", "node", cfg.Node, "source", src.Describe(), "state_dir", stateDir)
	err = agent.Run(ctx)
	// VRRP first (a restart keeps mastership, a stop gives it up at once,
	// #15), then the proxy's connections go to the next agent (systemd's
	// fd store) before the drivers close: a restart cuts none of them.
	drv.PrepareStop(log, fds.HandOver)
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reconcile.CloseDrivers(shutdown, drivers, log)
	log.Info("agent stopped")
	return err
}

// kickOnHUP asks for a pass at each SIGHUP, until ctx is done.
func kickOnHUP(ctx context.Context, kick chan<- struct{}, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
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
}

// newController builds the controller and puts its override overlay in
// front of the drivers; the returned drivers go to the Runner and the
// Reporter (they include the "overrides" status section).
func newController(node, stateDir, version string, drv *reconcile.Drivers, kick chan<- struct{}, lastGood func() *reconcile.LastGood,
	log *slog.Logger) (*control.Controller, []reconcile.Driver) {
	o := control.Options{Node: node, Version: version, Kick: kick, Pool: drv.Pool, StateDir: stateDir, Logger: log,
		LastGood: func() (string, *spec.Node) { return lastGood().Running() }}
	if drv.Engine != nil {
		o.VRRP, o.Engine = drv.Engine, drv.Engine
	}
	if drv.KernLB != nil {
		o.Kernel = drv.KernLB
	}
	if drv.Tuning != nil {
		o.Spread = drv.Tuning
	}
	c := control.New(o)
	return c, reconcile.WithOverrides(c, drv.List)
}

// trust reads the verification settings into src, so that the source
// decides each commit's signature before it writes anything of it.
func (s Safety) trust(stateDir string, src *reconcile.SourceConfig) error {
	mode, err := gitrepo.ParseVerifyMode(s.Verify)
	if err != nil {
		return err
	}
	if mode == gitrepo.VerifyOff && (s.TrustedKeys != "" || s.AllowedSigners != "") {
		return errors.New("--trusted-keys and --allowed-signers need --verify-signatures head or strict")
	}
	if mode != gitrepo.VerifyStrict && s.TrustAnchor != "" {
		return errors.New("--trust-anchor needs --verify-signatures strict")
	}
	if mode == gitrepo.VerifyOff {
		return nil
	}
	if src.Git.URL == "" {
		return errors.New("--verify-signatures needs a repository (--repo), not a directory")
	}
	v, err := gitrepo.VerifierFromFiles(mode, s.TrustedKeys, s.AllowedSigners)
	if err != nil {
		return err
	}
	src.Git.Verifier, src.Git.AnchorFile, src.Git.TrustAnchor = v, filepath.Join(stateDir, AnchorFile), s.TrustAnchor
	return nil
}

// readOptions are the credentials of the site's repository, for url.
func (c *Config) readOptions(url string) gitrepo.ReadOptions {
	g := c.Source.Git
	return gitrepo.ReadOptions{URL: url, SSHKeyFile: g.SSHKeyFile, KnownHostsFile: g.KnownHostsFile, TokenFile: g.TokenFile, CAFile: g.CAFile}
}

// rollout is the pair-aware rollout: the status branches it reads
// (Status.Repo, else the site's repository) and how long it waits.
func (c *Config) rollout(stateDir string) (*reconcile.Rollout, error) {
	mode, err := gitrepo.ParseVerifyMode(c.Safety.Verify)
	if err != nil {
		return nil, err
	}
	url := c.Status.Repo
	if url == "" {
		url = c.Source.Git.URL
	}
	var peers reconcile.PeerStatusFunc
	if url != "" && !c.Status.Off {
		o := c.readOptions(url)
		o.Prefix, o.CacheDir, o.Logger = c.Status.Prefix, filepath.Join(stateDir, "peers.git"), c.Logger
		peers = reconcile.StatusBranchPeers(o)
	} else {
		c.Logger.Warn("pair-aware rollout off: no status branches to read (a --site directory without --status-repo, or --no-status)", "component", "safety")
	}
	return reconcile.NewRollout(reconcile.RolloutOptions{Node: c.Node, Peers: peers, Timeout: c.Safety.RolloutTimeout, Logger: c.Logger,
		RequireSigned: mode != gitrepo.VerifyOff}), nil
}

// statusURL is the repository the node reports to ("" when it does not).
func (c *Config) statusURL() string {
	if c.Status.Off {
		return ""
	}
	if c.Status.Repo != "" {
		return c.Status.Repo
	}
	return c.Source.Git.URL
}

// claim refuses to start when another agent reports under this node's
// name (reconcile.CheckClaim); it runs before the agent touches the node.
func (c *Config) claim(ctx context.Context, self gitrepo.AgentID) error {
	url := c.statusURL()
	if url == "" || c.Status.Alive <= 0 {
		return nil
	}
	return reconcile.CheckClaim(ctx, reconcile.ClaimOptions{Node: c.Node, Self: self, Replace: c.Status.Replace, Logger: c.Logger,
		ReadAlive: func(ctx context.Context) (*gitrepo.Alive, error) {
			return gitrepo.ReadAlive(ctx, c.readOptions(url), c.Node)
		}})
}

// startReporting starts the status reporting (nil when it reports
// nothing); onPush hears of every push.
func (c *Config) startReporting(ctx context.Context, stateDir string, self gitrepo.AgentID, src reconcile.Source,
	runner *reconcile.Runner, drivers []reconcile.Driver, onPush func(time.Time, error)) (*reconcile.Reporting, error) {
	if c.Status.Off {
		return nil, nil
	}
	url := c.statusURL()
	if url == "" {
		c.Logger.Warn("status reporting off: a --site directory has no repository; give --status-repo")
		return nil, nil
	}
	g, s := c.Source.Git, c.Status
	return reconcile.StartReporting(ctx, reconcile.ReportingOptions{AgentVersion: c.Version, Source: src, Runner: runner, Drivers: drivers, Logger: c.Logger,
		Status: gitrepo.StatusOptions{Node: c.Node, URL: url, Prefix: s.Prefix, Dir: filepath.Join(stateDir, "status.git"),
			SSHKeyFile: g.SSHKeyFile, KnownHostsFile: g.KnownHostsFile, TokenFile: g.TokenFile, CAFile: g.CAFile,
			Coalesce: s.Coalesce, SigningKeyFile: s.SigningKey, HistoryCommits: s.HistoryCommits, HistoryAge: s.HistoryAge,
			AliveInterval: s.Alive, OnPush: onPush, Agent: self}})
}
