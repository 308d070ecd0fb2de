package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gitgw/gitgw/reconcile/planapply"
)

func newApplyCmd() *cobra.Command {
	var f planFlags
	cmd := &cobra.Command{
		Use:   "apply [FILE] [--site DIR | --repo URL] [--node NAME] [--auto-approve] [--kinds tuning,units]",
		Short: "Print the plan, then apply it: through the running agent, or once for what outlives this process",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kinds, err := planapply.ParseKinds(f.kinds)
			if err != nil {
				return err
			}
			if f.c.Observed.Source != "" {
				return fmt.Errorf("--observed plans against a status branch: apply plans against the node (drop --observed)")
			}
			c := f.command(cmd)
			c.Kinds = kinds
			if len(args) == 1 {
				err = c.ApplySaved(cmd.Context(), args[0], cmd.Flags().Changed("node"))
			} else {
				err = c.Apply(cmd.Context())
			}
			return f.exit(cmd, false, err)
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&f.c.AutoApprove, "auto-approve", false, "apply without asking")
	cmd.Flags().StringVar(&f.kinds, "kinds", "", "with no agent running: apply only these kinds (tuning, units), leaving VRRP and the proxy to the agent")
	return cmd
}
