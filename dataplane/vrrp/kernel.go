package vrrp

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/gitgw/gitgw/dataplane/vip"
	"github.com/vishvananda/netlink"
)

// KernelOptions returns Options wired to the kernel of the calling
// thread's network namespace: raw sockets, a netlink handle for VIPs,
// gratuitous ARP / NA, and netlink watchers for address drift and link
// state. close releases the netlink handle and announcer sockets; call it
// after Stop.
func KernelOptions(stateDir string, logger *slog.Logger) (opts Options, closeFn func() error, err error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return Options{}, nil, fmt.Errorf("vrrp: netlink handle: %w", err)
	}
	ann := vip.NewAnnouncer()
	mgr := vip.New(h, logger)
	opts = Options{
		StateDir:   stateDir,
		VIPs:       mgr,
		VMAC:       mgr,
		Announce:   ann,
		WatchAddrs: vip.Watch,
		WatchLinks: watchLinks,
		LinkUp: func(ifname string) bool {
			l, err := h.LinkByName(ifname)
			return err == nil && linkUp(l)
		},
	}
	return opts, func() error { err := ann.Close(); h.Close(); return err }, nil
}

func linkUp(l netlink.Link) bool {
	a := l.Attrs()
	if a.Flags&(1<<0) == 0 { // IFF_UP
		return false
	}
	return a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown
}

// watchLinks reports link state changes until ctx ends.
func watchLinks(ctx context.Context, fn func(ifname string, up bool)) error {
	ch := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	if err := netlink.LinkSubscribe(ch, done); err != nil {
		close(done)
		return err
	}
	go func() {
		<-ctx.Done()
		close(done)
	}()
	go func() {
		for u := range ch {
			if u.Link != nil {
				fn(u.Link.Attrs().Name, linkUp(u.Link))
			}
		}
	}()
	return nil
}
