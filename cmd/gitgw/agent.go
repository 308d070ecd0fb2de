package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/internal/sdnotify"
	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/agentrun"
	"github.com/gitgw/gitgw/reconcile/control"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
)

type agentFlags struct {
	cfg     agentrun.Config
	site    siteFlags
	debug   bool
	scope   string
	drivers driverFlags
}

func newAgentCmd() *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent (--repo URL | --site DIR) [--node NAME]",
		Short: "Run the agent: follow the site and keep this node reconciled",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runAgent(cmd, &f) },
	}
	f.site.register(cmd)
	c, fl := &f.cfg, cmd.Flags()
	nodeFlag(fl, &c.Node, "this node's name in the site")
	fl.StringVar(&c.StateDir, "state-dir", "/var/lib/gitgw", "state directory: clone, last applied state, VRRP handover")
	fl.DurationVar(&c.Poll, "interval", 30*time.Second, "poll interval for remote repositories (local ones are watched)")
	fl.DurationVar(&c.Resync, "resync", 60*time.Second, "full pass interval, to find drift where nothing can be watched (sysfs)")
	fl.DurationVar(&f.site.Git.FetchSpread, "fetch-spread", 0, "delay the fetch of a new commit by an offset in [0, this) fixed per node and commit, so that a large fleet does not fetch it at once, when the site sets no rollout.fetch_spread (0: at once, or with rollout waves the bake window after the first wave)")
	fl.BoolVar(&f.debug, "debug", false, "debug logging")
	registerStatus(fl, &c.Status)
	fl.StringVar(&f.scope, "scope", "auto", scopeHelp)
	f.drivers.register(fl)
	fl.StringVar(&c.Socket, "socket", control.DefaultSocket, "control socket for gitgw status/reconcile/suspend/resume/override (mode 0600; empty: none)")
	fl.StringVar(&c.Listen, "listen", control.DefaultListen, "address of the status page (/) and Prometheus metrics (/metrics) (empty: none)")
	registerSafety(fl, &c.Safety)
	return cmd
}

func runAgent(cmd *cobra.Command, f *agentFlags) error {
	cfg := f.cfg
	cfg.Logger, cfg.Version, cfg.Source = newLogger(cmd, f.debug), version, f.site.SourceConfig
	cfg.Scope, cfg.Drivers, cfg.Guardian = loader.Scope(f.scope), f.drivers.config("", nil), guardian
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return agentrun.Run(ctx, cfg)
}

// guardian runs this binary as the VRRP guardian.
func guardian(stateDir string) []string {
	self, err := os.Executable()
	if err != nil {
		self = os.Args[0]
	}
	return []string{self, "vrrp", "guard", "--state-dir", stateDir}
}

// registerStatus registers the flags of the agent's status reporting.
func registerStatus(fl *pflag.FlagSet, s *agentrun.Status) {
	fl.StringVar(&s.Repo, "status-repo", "", "repository receiving the status branch (default: the site's --repo)")
	fl.StringVar(&s.Prefix, "status-branch-prefix", gitrepo.DefaultStatusPrefix, "prefix of this node's status branch")
	fl.DurationVar(&s.Coalesce, "status-coalesce", 5*time.Second, "changes within this window after a status commit go into one commit (a flapping link makes one commit per window)")
	fl.BoolVar(&s.Off, "no-status", false, "do not report status to Git")
	fl.IntVar(&s.HistoryCommits, "status-history-commits", gitrepo.DefaultHistoryCommits, "keep this many commits on the status branch; older ones are folded into one commit (the branch is force-pushed, with a lease); -1 keeps all")
	fl.DurationVar(&s.HistoryAge, "status-history-age", gitrepo.DefaultHistoryAge, "also fold status commits older than this (-1s: no age bound)")
	fl.DurationVar(&s.Alive, "alive-interval", time.Minute, "refresh the ref refs/gitgw/alive/NODE this often (jittered), so that `gitgw fleet` tells a stopped agent from a quiet one; it promises a refresh within 3 intervals; 0: off")
	fl.BoolVar(&s.Replace, "replace", false, "start even while another agent reports under this node's name (its alive ref is fresh): for when that agent is gone for good; without it, the name is free once the other agent's alive ref is stale (3 alive intervals)")
	fl.StringVar(&s.SigningKey, "status-signing-key", "", "unencrypted OpenSSH private key that signs this node's status commits; the site lists its public key as the node's status_key, so that peers trust the branch to gate their rollout")
}

// registerSafety registers what guards an apply beyond the site's own
// checks: signatures, the pair-aware rollout and the health gate.
func registerSafety(fl *pflag.FlagSet, s *agentrun.Safety) {
	fl.StringVar(&s.Verify, "verify-signatures", "", "refuse commits not signed by a trusted key, before anything of them is written: head (the commit applied) or strict (every commit since the trust anchor)")
	fl.StringVar(&s.TrustedKeys, "trusted-keys", "", "armored OpenPGP keyring of trusted signers")
	fl.StringVar(&s.AllowedSigners, "allowed-signers", "", "trusted SSH signers, in ssh-keygen's allowed_signers format")
	fl.StringVar(&s.TrustAnchor, "trust-anchor", "", "strict mode: the last commit you trust (full hash), used when the state dir holds no trust anchor (a new node, or its state lost)")
	fl.DurationVar(&s.RolloutTimeout, "rollout-timeout", 5*time.Minute, "how long a master waits for its peers (and a wave for the one before) when the site sets no rollout.peer_timeout")
	fl.DurationVar(&s.RolloutPoll, "rollout-poll", 2*time.Second, "how often a held commit is tried again: a waiting node reads its peers' status branches")
	fl.DurationVar(&s.Bake, "bake", 0, "health gate window after a new commit is applied, when the site sets no bake.window (0: off)")
}

// driverFlags locate what the drivers talk to.
type driverFlags struct {
	unitDir, systemdSocket string
}

func (f *driverFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.unitDir, "unit-dir", "/etc/systemd/system", "where gitgw writes the site's template units")
	fl.StringVar(&f.systemdSocket, "systemd-socket", "", "systemd's private socket to use instead of the system bus (tests, containers)")
}

// config is the drivers' configuration with what only the process knows:
// the listening sockets systemd handed over.
func (f *driverFlags) config(stateDir string, log *slog.Logger) reconcile.DriverConfig {
	return reconcile.DriverConfig{StateDir: stateDir, Logger: log, UnitDir: f.unitDir, SystemdSocket: f.systemdSocket, Inherited: sdnotify.Listeners()}
}
