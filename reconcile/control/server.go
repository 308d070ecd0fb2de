package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultSocket and DefaultListen are where the agent listens by default.
const (
	DefaultSocket = "/run/gitgw/gitgw.sock"
	DefaultListen = "127.0.0.1:9142"
)

// OverrideRequest is the body of POST /v1/overrides.
type OverrideRequest struct {
	Action string `json:"action"`
	Target string `json:"target"`
	Weight int    `json:"weight,omitempty"`
}

// ReconcileReply is the answer to POST /v1/reconcile?wait=1.
type ReconcileReply struct {
	Commit  string `json:"commit"`
	Outcome string `json:"outcome"`
	Summary string `json:"summary"`
}

// errorReply is every error answer.
type errorReply struct {
	Error string `json:"error"`
}

// SocketHandler is the API served on the unix socket: everything an
// operator may do. Access control is the socket's mode (0600, root).
//
//	GET    /v1/status               Status
//	POST   /v1/reconcile[?wait=1]   a pass now (wait: its result)
//	POST   /v1/suspend              stop applying, keep reporting
//	POST   /v1/resume               apply again, clear every override
//	GET    /v1/overrides            the overrides in force
//	POST   /v1/overrides            set one (OverrideRequest)
//	DELETE /v1/overrides[?target=T] clear one target's, or all
//	POST   /v1/plan                 plan a desired state with the agent's drivers (PlanRequest)
//	POST   /v1/apply                apply an approved plan through the agent's loop (ApplyRequest)
func (c *Controller) SocketHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) { reply(w, http.StatusOK, c.Status()) })
	mux.HandleFunc("POST /v1/reconcile", func(w http.ResponseWriter, r *http.Request) {
		wait := r.URL.Query().Get("wait") != ""
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Minute)
		defer cancel()
		res, err := c.Reconcile(ctx, wait)
		if err != nil {
			reply(w, http.StatusGatewayTimeout, errorReply{err.Error()})
			return
		}
		if !wait {
			reply(w, http.StatusAccepted, ReconcileReply{Summary: "pass requested"})
			return
		}
		reply(w, http.StatusOK, ReconcileReply{Commit: res.Commit, Outcome: res.Outcome, Summary: res.Summary})
	})
	mux.HandleFunc("POST /v1/suspend", func(w http.ResponseWriter, _ *http.Request) {
		c.Suspend()
		reply(w, http.StatusOK, c.Status())
	})
	mux.HandleFunc("POST /v1/resume", func(w http.ResponseWriter, r *http.Request) {
		if err := c.Resume(r.Context()); err != nil {
			reply(w, http.StatusInternalServerError, errorReply{err.Error()})
			return
		}
		reply(w, http.StatusOK, c.Status())
	})
	mux.HandleFunc("GET /v1/overrides", func(w http.ResponseWriter, _ *http.Request) { reply(w, http.StatusOK, c.Overrides()) })
	mux.HandleFunc("POST /v1/overrides", func(w http.ResponseWriter, r *http.Request) {
		var req OverrideRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
			reply(w, http.StatusBadRequest, errorReply{"override: " + err.Error()})
			return
		}
		o, err := c.Set(r.Context(), Override{Action: req.Action, Target: req.Target, Weight: req.Weight})
		switch {
		case errors.Is(err, ErrBadOverride):
			reply(w, http.StatusBadRequest, errorReply{err.Error()})
		case err != nil:
			reply(w, http.StatusInternalServerError, errorReply{err.Error()})
		default:
			reply(w, http.StatusOK, o)
		}
	})
	mux.HandleFunc("DELETE /v1/overrides", func(w http.ResponseWriter, r *http.Request) {
		gone, err := c.Clear(r.Context(), r.URL.Query().Get("target"))
		if err != nil {
			reply(w, http.StatusInternalServerError, errorReply{err.Error()})
			return
		}
		if gone == nil {
			gone = []Override{}
		}
		reply(w, http.StatusOK, gone)
	})
	c.planApplyRoutes(mux, c.o.PlanApply)
	return mux
}

// WebHandler is what the loopback listener serves, read-only: the status
// page at /, Prometheus metrics at /metrics and the status as JSON at
// /status.json. listen is the listener's configured address (--listen):
// requests whose Host header names neither it nor loopback are refused
// (hostGuard: no DNS rebinding).
func (c *Controller) WebHandler(listen string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(c.Registry(), promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, _ *http.Request) { reply(w, http.StatusOK, c.Status()) })
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := RenderPage(w, c.Status()); err != nil {
			c.log.Warn("status page", "err", err)
		}
	})
	return hostGuard(listen, mux)
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// ListenSocket listens on a unix socket at path with mode 0600, replacing
// a stale socket file left by a crashed agent. It refuses to replace a
// socket another agent still answers on.
func ListenSocket(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("control socket %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			_ = c.Close()
			return nil, fmt.Errorf("control socket %s: another agent is listening on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("control socket %s: remove stale socket: %w", path, err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	// The directory is 0750 (RuntimeDirectoryMode): nobody else can reach
	// the socket in the moment before its own mode is set.
	if err := os.Chmod(path, 0o600); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("control socket %s: chmod: %w", path, err)
	}
	return l, nil
}

// MaxHeaderBytes bounds a request's line and headers on the socket and
// the web listener: no request of gitgw's own needs more than a few
// hundred bytes, and the process also runs VRRP.
const MaxHeaderBytes = 16 << 10

// Serve serves h on l until ctx ends, then shuts down within 5 s. A
// request must arrive whole within 30 s (headers within 10 s, at most
// MaxHeaderBytes of them) and an idle connection is closed after a minute,
// so that a client holding connections open cannot pile them up. There is
// no write timeout: POST /v1/reconcile?wait=1 answers when its pass ends.
func Serve(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: time.Minute, MaxHeaderBytes: MaxHeaderBytes,
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) }}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err := srv.Serve(l)
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
