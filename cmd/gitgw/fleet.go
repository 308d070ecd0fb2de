package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/drift"
	"github.com/gitgw/gitgw/reconcile/fleet"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
)

// This file holds everything the CLI does with status branches: the fleet
// view, and the agent's status reporting (flags and wiring).

type fleetFlags struct {
	site    siteFlags
	prefix  string
	json    bool
	serve   string
	refresh time.Duration
}

func newFleetCmd() *cobra.Command {
	var f fleetFlags
	cmd := &cobra.Command{
		Use:   "fleet (--repo URL | --site DIR) [--json | --serve ADDR]",
		Short: "Show every node's reported status: applied commit, VRRP roles (split brain flagged), proxy health, drift",
		Example: `  gitgw fleet --repo ssh://git@git.example.net/site.git --ssh-key ~/.ssh/id_ed25519
  gitgw fleet --site /srv/git/site.git --json
  gitgw fleet --repo https://git.example.net/site.git --token-file /etc/gitgw/token --serve 127.0.0.1:9143`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runFleet(cmd, &f) },
	}
	f.site.register(cmd)
	fl := cmd.Flags()
	fl.Lookup("site").Usage = "a local copy of the site repository (bare, or a clone with the status branches fetched as branches)"
	fl.Lookup("ref").Usage = "tracked branch: its head is what the applied commits are compared with"
	_ = fl.MarkHidden("allow-rewrite")
	cmd.Flags().StringVar(&f.prefix, "status-branch-prefix", gitrepo.DefaultStatusPrefix, "prefix of the nodes' status branches")
	cmd.Flags().BoolVar(&f.json, "json", false, "print the fleet view as versioned JSON")
	cmd.Flags().StringVar(&f.serve, "serve", "", "serve the fleet view on ADDR (e.g. 127.0.0.1:9143): a page on /, /fleet.json and /metrics")
	cmd.Flags().DurationVar(&f.refresh, "refresh", fleet.DefaultRefresh, "with --serve: re-read the status branches this often (requests never read)")
	cmd.MarkFlagsMutuallyExclusive("json", "serve")
	return cmd
}

func runFleet(cmd *cobra.Command, f *fleetFlags) error {
	if err := f.site.check(); err != nil {
		return err
	}
	url := f.site.repo
	if url == "" {
		url = f.site.site // a local clone (or the bare repository itself)
	}
	o := fleet.Options{URL: url, Prefix: f.prefix, Ref: f.site.ref,
		SSHKeyFile: f.site.sshKey, KnownHostsFile: f.site.knownHosts, TokenFile: f.site.tokenFile, CAFile: f.site.caFile,
		Warn: func(err error) { fmt.Fprintln(cmd.ErrOrStderr(), "gitgw: warning:", err) }}
	if f.serve != "" {
		if f.refresh < time.Second {
			return fmt.Errorf("--refresh %s: give at least 1s (each read fetches every status branch)", f.refresh)
		}
		ln, err := net.Listen("tcp", f.serve)
		if err != nil {
			return fmt.Errorf("--serve: %w", err)
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		log := newLogger(cmd, false)
		log.Info("fleet page up", "url", "http://"+ln.Addr().String()+"/", "refresh", f.refresh.String())
		return fleet.NewPage(fleet.PageOptions{Read: o, Listen: ln.Addr().String(), Refresh: f.refresh, Logger: log}).Serve(ctx, ln)
	}
	fl, err := fleet.Read(cmd.Context(), o)
	if err != nil {
		return err
	}
	if f.json {
		return drift.WriteFleetJSON(cmd.OutOrStdout(), fl)
	}
	if len(fl.Nodes) == 0 {
		fmt.Fprintf(cmd.OutOrStdout(), "No status branches (%s*) in %s.\n", f.prefix, url)
		if f.site.site != "" {
			// A clone keeps other branches as remote-tracking refs, which
			// are not read here.
			fmt.Fprintf(cmd.OutOrStdout(), "In a clone, fetch them as branches first:\n  git -C %s fetch origin '+refs/heads/%s*:refs/heads/%s*'\nor read the repository itself with --repo URL.\n",
				f.site.site, f.prefix, f.prefix)
		}
		return nil
	}
	return drift.WriteFleetText(cmd.OutOrStdout(), fl, time.Now())
}

// statusFlags configure the agent's status reporting.
type statusFlags struct {
	repo           string
	prefix         string
	coalesce       time.Duration
	off            bool
	sign           string
	historyCommits int
	historyAge     time.Duration
	alive          time.Duration
	replace        bool

	self gitrepo.AgentID // this agent, in its alive ref (set by claim)
}

func (f *statusFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.repo, "status-repo", "", "repository receiving the status branch (default: the site's --repo)")
	fl.StringVar(&f.prefix, "status-branch-prefix", gitrepo.DefaultStatusPrefix, "prefix of this node's status branch")
	fl.DurationVar(&f.coalesce, "status-coalesce", 5*time.Second, "changes within this window after a status commit go into one commit (a flapping link makes one commit per window)")
	fl.BoolVar(&f.off, "no-status", false, "do not report status to Git")
	fl.IntVar(&f.historyCommits, "status-history-commits", gitrepo.DefaultHistoryCommits, "keep this many commits on the status branch; older ones are folded into one commit (the branch is force-pushed, with a lease); -1 keeps all")
	fl.DurationVar(&f.historyAge, "status-history-age", gitrepo.DefaultHistoryAge, "also fold status commits older than this (-1s: no age bound)")
	fl.DurationVar(&f.alive, "alive-interval", time.Minute, "refresh the ref refs/gitgw/alive/NODE this often (jittered), so that `gitgw fleet` tells a stopped agent from a quiet one; it promises a refresh within 3 intervals; 0: off")
	fl.BoolVar(&f.replace, "replace", false, "start even while another agent reports under this node's name (its alive ref is fresh): for when that agent is gone for good; without it, the name is free once the other agent's alive ref is stale (3 alive intervals)")
	fl.StringVar(&f.sign, "status-signing-key", "", "unencrypted OpenSSH private key that signs this node's status commits; the site lists its public key as the node's status_key, so that peers trust the branch to gate their rollout")
}

// statusURL is the repository the node reports to ("" when it does not).
func (f *statusFlags) statusURL(sf *siteFlags) string {
	if f.off {
		return ""
	}
	if f.repo != "" {
		return f.repo
	}
	return sf.repo
}

// claim refuses to start when another agent reports under this node's
// name (reconcile.CheckClaim); it runs before the agent touches the node.
func (f *statusFlags) claim(ctx context.Context, node string, sf *siteFlags, log *slog.Logger) error {
	f.self = reconcile.SelfAgentID(time.Now())
	url := f.statusURL(sf)
	if url == "" || f.alive <= 0 {
		return nil
	}
	return reconcile.CheckClaim(ctx, reconcile.ClaimOptions{Node: node, Self: f.self, Replace: f.replace, Logger: log,
		ReadAlive: func(ctx context.Context) (*gitrepo.Alive, error) {
			return gitrepo.ReadAlive(ctx, gitrepo.ReadOptions{URL: url,
				SSHKeyFile: sf.sshKey, KnownHostsFile: sf.knownHosts, TokenFile: sf.tokenFile, CAFile: sf.caFile}, node)
		}})
}

// start starts the agent's status reporting (nil when it reports
// nothing); onPush hears of every push.
func (f *statusFlags) start(ctx context.Context, node, stateDir string, sf *siteFlags, src reconcile.Source,
	runner *reconcile.Runner, drivers []reconcile.Driver, onPush func(time.Time, error), log *slog.Logger) (*reconcile.Reporting, error) {
	if f.off {
		return nil, nil
	}
	url := f.statusURL(sf)
	if url == "" {
		log.Warn("status reporting off: a --site directory has no repository; give --status-repo")
		return nil, nil
	}
	return reconcile.StartReporting(ctx, reconcile.ReportingOptions{AgentVersion: version, Source: src, Runner: runner, Drivers: drivers, Logger: log,
		Status: gitrepo.StatusOptions{Node: node, URL: url, Prefix: f.prefix, Dir: filepath.Join(stateDir, "status.git"),
			SSHKeyFile: sf.sshKey, KnownHostsFile: sf.knownHosts, TokenFile: sf.tokenFile, CAFile: sf.caFile,
			Coalesce: f.coalesce, SigningKeyFile: f.sign, HistoryCommits: f.historyCommits, HistoryAge: f.historyAge,
			AliveInterval: f.alive, OnPush: onPush, Agent: f.self}})
}
