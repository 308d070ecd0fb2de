package control

import (
	"context"
	"log/slog"
	"net"
	"os"
)

// Start serves the controller on the unix socket (SocketHandler; "" for
// none) and the web listener (WebHandler: page and metrics; "" for none).
// A taken web port does not stop the agent: a gateway must run its VIPs
// even when its page cannot be served, so it is logged as an error and
// the agent runs on. stop waits for both to end after ctx is done.
func (c *Controller) Start(ctx context.Context, socket, listen string, log *slog.Logger) (stop func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	var done []chan struct{}
	stop = func() {
		cancel()
		for _, d := range done {
			<-d
		}
	}
	start := func(l net.Listener, what string, h func() error) {
		d := make(chan struct{})
		done = append(done, d)
		go func() {
			defer close(d)
			if err := h(); err != nil {
				log.Error(what+" stopped", "err", err)
			}
		}()
		log.Info(what+" listening", "addr", l.Addr().String())
	}
	if socket != "" {
		l, err := ListenSocket(socket)
		if err != nil {
			stop()
			return nil, err
		}
		start(l, "control socket", func() error {
			defer os.Remove(socket)
			return Serve(ctx, l, c.SocketHandler())
		})
	}
	if listen != "" {
		if l, err := net.Listen("tcp", listen); err != nil {
			log.Error("status page and metrics off: cannot listen", "addr", listen, "err", err)
		} else {
			start(l, "status page and metrics", func() error { return Serve(ctx, l, c.WebHandler(listen)) })
		}
	}
	return stop, nil
}
