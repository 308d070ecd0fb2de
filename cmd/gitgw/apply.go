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
		Long: `apply plans the site for this node and applies that plan (asking first unless
--auto-approve). When the agent answers on its control socket, the agent makes
the plan and applies it in its own loop, and keeps running it. With no agent,
this process applies only what outlives it (tuning, units): VRRP and the proxy
run inside the agent, and apply refuses a plan that changes them unless
--kinds limits it.

apply FILE applies exactly a plan saved by gitgw plan -out FILE, and refuses it
if the site's head or the node moved since.`,
		Example: `  sudo gitgw apply --repo /srv/git/site.git --node gw1 --auto-approve
  sudo gitgw plan --repo /srv/git/site.git -out gw1.plan && sudo gitgw apply gw1.plan
  sudo gitgw apply --site examples/lab --node gw1 --kinds tuning,units   # no agent here`,
		Args: cobra.MaximumNArgs(1),
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
