package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
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
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if port < 1 || port > 65535 {
				return fmt.Errorf("--port %d: want 1-65535", port)
			}
			host, _ := os.Hostname()
			listen := net.JoinHostPort(addr, strconv.Itoa(port))
			l, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("backend: %w", err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return backend.Serve(ctx, l, listen, host)
		},
	}
	cmd.Flags().IntVar(&port, "port", 0, "TCP port to listen on")
	cmd.Flags().StringVar(&addr, "address", "", "address to listen on (default: every address)")
	return cmd
}
