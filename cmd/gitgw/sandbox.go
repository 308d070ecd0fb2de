package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/gitgw/gitgw/cue/loader"
)

// evalCommand is the hidden subcommand a sandboxed evaluation runs in: the
// binary re-executes itself (through /proc/self/exe, so an upgrade that
// replaced the file on disk still runs the same code).
const evalCommand = "__evaluate-site"

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
func (f *sandboxFlags) sandbox() *loader.Sandbox {
	return &loader.Sandbox{Command: []string{"/proc/self/exe", evalCommand}, Memory: f.memory << 20, CPU: f.cpu, Timeout: f.timeout}
}

// newEvalCmd is the child's side of the sandbox: one request on stdin, one
// response on stdout.
func newEvalCmd() *cobra.Command {
	return &cobra.Command{
		Use:    evalCommand,
		Short:  "Evaluate a site for the agent, inside its budget (internal)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return loader.ServeChild(os.Stdin, os.Stdout)
		},
	}
}
