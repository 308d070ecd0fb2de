package l4proxy_test

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"github.com/gitgw/gitgw/dataplane/l4proxy"
)

// The agent's wiring: adopt the listening sockets a previous agent left in
// systemd's fd store (LISTEN_FDS, names "l4proxy:…"), apply the site's
// services, serve the stats page on loopback, and on restart store the
// sockets again before draining.
func Example() {
	var inherited []*os.File // from LISTEN_FDS / LISTEN_FDNAMES, fds 3…
	pool := l4proxy.New(slog.Default(), l4proxy.Options{Inherited: inherited})
	cfg := l4proxy.Config{Services: []l4proxy.Service{{
		Name:  "web",
		Binds: []netip.AddrPort{netip.MustParseAddrPort("203.0.113.100:80")}, // the VIP need not be here yet
		Servers: []l4proxy.Server{
			{Name: "app1", Addr: netip.MustParseAddrPort("198.51.100.11:8080"), Weight: 100},
			{Name: "app2", Addr: netip.MustParseAddrPort("198.51.100.12:8080"), Weight: 100},
		},
		Check: &l4proxy.Check{Type: l4proxy.CheckHTTP, Path: "/", Expect: "Still alive"},
	}}}
	if err := pool.Set(context.Background(), cfg); err != nil {
		slog.Error("proxy", "err", err)
	}
	_ = pool.StatsHandler() // mount on 127.0.0.1:9142, e.g. /proxy (?json for the snapshot)

	// Restart: hand the sockets over (sd_notify FDSTORE=1 with FDNAME=l4proxy),
	// then stop accepting and let established connections drain.
	files, _ := pool.Listeners()
	_ = files
	pool.StopAccepting()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = pool.Close(ctx)
}
