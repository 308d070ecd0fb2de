package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/gitgw/gitgw/reconcile"
)

func newValidateCmd() *cobra.Command {
	var sf siteFlags
	cmd := &cobra.Command{
		Use:   "validate (--site DIR | --repo URL)",
		Short: "Check a site against the schema; one file:line:col line per error",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			src, cleanup, err := sf.open(cmd.Context(), "", "")
			if err != nil {
				return err
			}
			defer cleanup()
			if err := reconcile.Validate(cmd.Context(), src, cmd.OutOrStdout(), cmd.ErrOrStderr()); errors.Is(err, reconcile.ErrInvalid) {
				return exitError{1}
			} else if err != nil {
				return err
			}
			return nil
		},
	}
	sf.register(cmd)
	return cmd
}
