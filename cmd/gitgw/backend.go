package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"
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
		Example: `  gitgw backend --port 8080
  curl http://127.0.0.1:8080/   # gitgw backend 127.0.0.1:8080 on gw1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if port < 1 || port > 65535 {
				return fmt.Errorf("--port %d: want 1-65535", port)
			}
			host, _ := os.Hostname()
			listen := net.JoinHostPort(addr, strconv.Itoa(port))
			mux := http.NewServeMux()
			mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
			mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
				fmt.Fprintf(w, "gitgw backend %s on %s\n", listen, host)
			})
			srv := &http.Server{Addr: listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			go func() {
				<-ctx.Done()
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(sctx)
			}()
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("backend: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&port, "port", 0, "TCP port to listen on")
	cmd.Flags().StringVar(&addr, "address", "", "address to listen on (default: every address)")
	return cmd
}
