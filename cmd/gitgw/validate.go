package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/reconcile"
)

func newValidateCmd() *cobra.Command {
	var sf siteFlags
	cmd := &cobra.Command{
		Use:   "validate (--site DIR | --repo URL)",
		Short: "Check a site against the schema; one file:line:col line per error",
		Example: `  gitgw validate --site examples/lab
  gitgw validate --repo ssh://git@git.example.net/site.git --ssh-key /etc/gitgw/id_ed25519 --known-hosts /etc/gitgw/known_hosts`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			src, cleanup, err := sf.open(ctx, "", "")
			if err != nil {
				return err
			}
			defer cleanup()
			rev, err := src.Sync(ctx)
			if err != nil {
				return err
			}
			site, _, err := loader.Load(ctx, rev.Dir, "")
			if errs, ok := loader.AsErrors(err); ok {
				for _, e := range errs {
					fmt.Fprintln(cmd.OutOrStdout(), e.Error())
				}
				return exitError{1}
			}
			if err != nil {
				return err
			}
			if errs, err := reconcile.CheckSite(ctx, site, cmd.ErrOrStderr()); err != nil {
				return err
			} else if len(errs) > 0 {
				for _, e := range errs {
					fmt.Fprintln(cmd.OutOrStdout(), e.Error())
				}
				return exitError{1}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "site valid: %d nodes (%v)\n", len(site.Nodes), site.Nodes)
			return nil
		},
	}
	sf.register(cmd)
	return cmd
}
