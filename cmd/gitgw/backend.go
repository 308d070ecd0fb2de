package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/gitgw/gitgw/internal/backend"
)

// newBackendCmd is a stand-in backend for a first try: examples/lab runs it
// as its app@PORT units, so that site works on a fresh box with nothing but
// gitgw installed. It answers every HTTP request with who served it, and
// "ok" on /health for an http check.
func newBackendCmd() *cobra.Command {
	var addr string
	var port int
	cmd := &cobra.Command{
		Use:   "backend --port N",
		Short: "Serve a tiny HTTP backend that names itself (for examples/lab and first tries)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return backend.Run(ctx, addr, port)
		},
	}
	cmd.Flags().IntVar(&port, "port", 0, "TCP port to listen on")
	cmd.Flags().StringVar(&addr, "address", "", "address to listen on (default: every address)")
	return cmd
}
