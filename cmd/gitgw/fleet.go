package main

import (
	"fmt"
	"net"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gitgw/gitgw/reconcile/drift"
	"github.com/gitgw/gitgw/reconcile/fleet"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
)

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
	if err := f.site.Check(); err != nil {
		return err
	}
	url := f.site.Git.URL
	if url == "" {
		url = f.site.Dir // a local clone (or the bare repository itself)
	}
	o := fleet.Options{URL: url, Prefix: f.prefix, Ref: f.site.Git.Ref,
		SSHKeyFile: f.site.Git.SSHKeyFile, KnownHostsFile: f.site.Git.KnownHostsFile, TokenFile: f.site.Git.TokenFile, CAFile: f.site.Git.CAFile,
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
		if f.site.Dir != "" {
			// A clone keeps other branches as remote-tracking refs, which
			// are not read here.
			fmt.Fprintf(cmd.OutOrStdout(), "In a clone, fetch them as branches first:\n  git -C %s fetch origin '+refs/heads/%s*:refs/heads/%s*'\nor read the repository itself with --repo URL.\n",
				f.site.Dir, f.prefix, f.prefix)
		}
		return nil
	}
	return drift.WriteFleetText(cmd.OutOrStdout(), fl, time.Now())
}
