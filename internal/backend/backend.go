// Package backend is the stand-in HTTP backend of `gitgw backend`:
// examples/lab runs it as its app@PORT units, so that the example site
// works on a fresh box with nothing but gitgw installed. It answers every
// request with who served it, and "ok" on /health for an http check.
package backend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

// Handler answers "gitgw backend LISTEN on HOST" on every path but
// /health, which answers "ok".
func Handler(listen, host string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "gitgw backend %s on %s\n", listen, host)
	})
	return mux
}

// Serve serves Handler on l until ctx is done, then shuts down, giving
// requests in flight up to five seconds.
func Serve(ctx context.Context, l net.Listener, listen, host string) error {
	srv := &http.Server{Handler: Handler(listen, host), ReadHeaderTimeout: 5 * time.Second}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		<-stopped
		return nil
	}
	return fmt.Errorf("backend: %w", err)
}

// Run serves on addr:port (every address when addr is empty) until ctx is
// done, naming itself after this host.
func Run(ctx context.Context, addr string, port int) error {
	if port < 1 || port > 65535 {
		return fmt.Errorf("--port %d: want 1-65535", port)
	}
	host, _ := os.Hostname()
	listen := net.JoinHostPort(addr, strconv.Itoa(port))
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	return Serve(ctx, l, listen, host)
}
