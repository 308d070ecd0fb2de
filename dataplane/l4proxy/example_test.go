package l4proxy_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/gitgw/gitgw/dataplane/l4proxy"
)

// The agent's wiring: adopt the listening sockets a previous agent left in
// systemd's fd store (LISTEN_FDS, names "l4proxy:…"), apply the site's
// services, read the counters for the status page, and on restart store
// the sockets again before draining. Here the service's backend is a
// loopback server that greets and hangs up; on a gateway the bind is the
// VIP, which need not be on the node yet (IP_FREEBIND).
func Example() {
	app1, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer app1.Close()
	go func() {
		for {
			c, err := app1.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hello from app1\n")
			c.Close()
		}
	}()
	// A port free on a loopback address of its own, so that no outgoing
	// connection holds it.
	probe, err := net.Listen("tcp4", "127.0.91.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	bind := probe.Addr().(*net.TCPAddr).AddrPort()
	probe.Close()

	var inherited []*os.File // from LISTEN_FDS / LISTEN_FDNAMES, fds 3…
	pool := l4proxy.New(slog.New(slog.DiscardHandler), l4proxy.Options{Inherited: inherited, Shards: 2})
	cfg := l4proxy.Config{Services: []l4proxy.Service{{
		Name:    "web",
		Binds:   []netip.AddrPort{bind},
		Servers: []l4proxy.Server{{Name: "app1", Addr: app1.Addr().(*net.TCPAddr).AddrPort(), Weight: 100}},
	}}}
	if err := pool.Set(context.Background(), cfg); err != nil {
		fmt.Println(err)
		return
	}
	c, err := net.Dial("tcp4", bind.String())
	if err != nil {
		fmt.Println(err)
		return
	}
	greeting, _ := io.ReadAll(c)
	c.Close()
	fmt.Print(string(greeting))
	svc := pool.Stats().Services[0]
	fmt.Printf("%s: %s, %d connection\n", svc.Name, svc.Status, svc.Total)

	// Restart: hand the sockets over (sd_notify FDSTORE=1 with
	// FDNAME=l4proxy:…), then stop accepting and let established
	// connections drain.
	files, err := pool.Listeners()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range files {
		fmt.Println("hand over", f.Name() == "l4proxy:"+bind.String())
		f.Close()
	}
	pool.StopAccepting()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fmt.Println("closed:", pool.Close(ctx))
	// Output:
	// hello from app1
	// web: UP, 1 connection
	// hand over true
	// hand over true
	// closed: <nil>
}
