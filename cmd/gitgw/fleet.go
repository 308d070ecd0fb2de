package main

import (
	"context"
	"fmt"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/gitgw/gitgw/reconcile/fleet"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
)

type fleetFlags struct {
	c    fleet.Command
	site siteFlags
}

func newFleetCmd() *cobra.Command {
	var f fleetFlags
	cmd := &cobra.Command{
		Use:   "fleet (--repo URL | --site DIR) [--json | --serve ADDR]",
		Short: "Show every node's reported status: applied commit, VRRP roles (split brain flagged), proxy health, drift",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runFleet(cmd, &f) },
	}
	f.site.register(cmd)
	fl := cmd.Flags()
	fl.Lookup("site").Usage = "a local copy of the site repository (bare, or a clone with the status branches fetched as branches)"
	fl.Lookup("ref").Usage = "tracked branch: its head is what the applied commits are compared with"
	_ = fl.MarkHidden("allow-rewrite")
	fl.StringVar(&f.c.Read.Prefix, "status-branch-prefix", gitrepo.DefaultStatusPrefix, "prefix of the nodes' status branches")
	fl.BoolVar(&f.c.JSON, "json", false, "print the fleet view as versioned JSON")
	fl.StringVar(&f.c.Serve, "serve", "", "serve the fleet view on ADDR (e.g. 127.0.0.1:9143): a page on /, /fleet.json and /metrics")
	fl.DurationVar(&f.c.Refresh, "refresh", fleet.DefaultRefresh, "with --serve: re-read the status branches this often (requests never read)")
	fl.StringVar(&f.c.Read.CacheDir, "cache-dir", "", "keep a remote's status objects here between runs, so that a run fetches only the heads that moved (default $XDG_CACHE_HOME/gitgw/fleet-HASH.git, ~/.cache when unset)")
	fl.BoolVar(&f.c.NoCache, "no-cache", false, "fetch every status branch's head each run, keeping nothing on disk")
	cmd.MarkFlagsMutuallyExclusive("json", "serve")
	cmd.MarkFlagsMutuallyExclusive("cache-dir", "no-cache")
	return cmd
}

func runFleet(cmd *cobra.Command, f *fleetFlags) error {
	if err := f.site.Check(); err != nil {
		return err
	}
	c, g := f.c, f.site.Git
	c.Read.URL, c.Clone = g.URL, f.site.Dir
	if c.Read.URL == "" {
		c.Read.URL = f.site.Dir // a local clone (or the bare repository itself)
	}
	c.Read.Ref, c.Read.SSHKeyFile, c.Read.KnownHostsFile, c.Read.TokenFile, c.Read.CAFile = g.Ref, g.SSHKeyFile, g.KnownHostsFile, g.TokenFile, g.CAFile
	c.Read.Warn = func(err error) { fmt.Fprintln(cmd.ErrOrStderr(), "gitgw: warning:", err) }
	c.Logger, c.Stdout = newLogger(cmd, false), cmd.OutOrStdout()
	ctx := cmd.Context()
	if c.Serve != "" {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
		defer stop()
	}
	return c.Run(ctx)
}
