package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/gitgw/gitgw/cue/loader"
)

// sandboxFlags are the budget of one evaluation of a site, given to every
// subcommand that loads one (agent, plan, apply, validate, …).
type sandboxFlags struct {
	memory  int64
	cpu     time.Duration
	timeout time.Duration
}

func (f *sandboxFlags) register(cmd *cobra.Command) {
	fl := cmd.PersistentFlags()
	fl.Int64Var(&f.memory, "eval-memory-mb", loader.DefaultMemory>>20, "memory budget of one evaluation of the site, in MiB (a child process's RLIMIT_DATA)")
	fl.DurationVar(&f.cpu, "eval-cpu", loader.DefaultCPU, "CPU-time budget of one evaluation of the site (a child process's RLIMIT_CPU)")
	fl.DurationVar(&f.timeout, "eval-timeout", 0, "wall-clock bound of one evaluation of the site (default: twice --eval-cpu)")
	_ = fl.MarkHidden("eval-timeout")
}

// sandbox is the evaluation sandbox the flags describe.
func (f *sandboxFlags) sandbox() *loader.Sandbox { return loader.Self(f.memory<<20, f.cpu, f.timeout) }

// newEvalCmd is the child's side of the sandbox: one request on stdin, one
// response on stdout.
func newEvalCmd() *cobra.Command {
	return &cobra.Command{
		Use:    loader.ChildCommand,
		Short:  "Evaluate a site for the agent, inside its budget (internal)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return loader.ServeChild(os.Stdin, os.Stdout)
		},
	}
}
