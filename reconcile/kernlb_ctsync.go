package reconcile

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/ctsync"
	"github.com/gitgw/gitgw/dataplane/kernlb"
)

// ctSync is the running conntrack replication of the node's nat services
// (dataplane/ctsync): a sender of this node's flows to the peer and a
// receiver of the peer's, on one UDP socket.
type ctSync struct {
	key    string // peer, port, resync and services: a change restarts it
	cancel func()
	done   chan struct{}
}

func (c *ctSync) stop() {
	c.cancel()
	<-c.done
}

// ctSyncServices are the nat services whose flows are replicated.
func ctSyncServices(svcs []KernService) []ctsync.Service {
	var out []ctsync.Service
	for _, ks := range svcs {
		if ks.LB.Mode != kernlb.NAT || ks.LB.Mark != 0 {
			// A service by mark has no VIP:port to select its flows by:
			// its flows are not replicated (yet).
			continue
		}
		proto := uint8(syscall.IPPROTO_TCP)
		if ks.LB.Protocol == kernlb.UDP {
			proto = syscall.IPPROTO_UDP
		}
		out = append(out, ctsync.Service{VIP: netip.AddrPortFrom(ks.LB.VIP, ks.LB.Port), Protocol: proto})
	}
	return out
}

// syncConntrack starts, restarts or stops the replication to follow the
// node's conntrack_sync and nat services. Called with mu held.
func (d *KernLBDriver) syncConntrack(cs *spec.ConntrackSync, svcs []KernService) error {
	services := ctSyncServices(svcs)
	key := ""
	if cs != nil && len(services) > 0 {
		var parts []string
		for _, s := range services {
			parts = append(parts, fmt.Sprintf("%d/%s", s.Protocol, s.VIP))
		}
		slices.Sort(parts)
		key = fmt.Sprintf("%s:%d every %v: %s", cs.Peer, cs.Port, cs.Resync.D(), strings.Join(parts, " "))
	}
	if d.ct != nil && d.ct.key == key {
		return nil
	}
	if d.ct != nil {
		d.ct.stop()
		d.ct = nil
	}
	if key == "" {
		return nil
	}
	conn, err := net.ListenPacket(ctSyncNetwork(cs.Peer), fmt.Sprintf(":%d", cs.Port))
	if err != nil {
		return fmt.Errorf("conntrack_sync: listen on port %d: %w", cs.Port, err)
	}
	peer := net.UDPAddrFromAddrPort(netip.AddrPortFrom(cs.Peer, uint16(cs.Port)))
	snd, err := ctsync.NewSender(0, conn, peer, services, d.log)
	if err != nil {
		conn.Close()
		return fmt.Errorf("conntrack_sync: %w", err)
	}
	snd.ResyncEvery = cs.Resync.D()
	rcv, err := ctsync.NewReceiver(0, conn, d.log)
	if err != nil {
		conn.Close()
		return fmt.Errorf("conntrack_sync: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		errc := make(chan error, 1)
		go func() { errc <- snd.Run(ctx) }()
		if err := rcv.Run(ctx); err != nil { // closes conn when ctx ends
			d.log.Error("conntrack sync: receiver stopped", "err", err)
		}
		cancel()
		if err := <-errc; err != nil {
			d.log.Error("conntrack sync: sender stopped", "err", err)
		}
		conn.Close()
	}()
	d.ct = &ctSync{key: key, cancel: cancel, done: done}
	d.log.Info("conntrack sync", "to", peer.String(), "services", len(services))
	return nil
}

// ctSyncNetwork is the socket family for a sync peer: the gateways may
// talk over IPv6 whatever the flows' family (an IPv4 socket cannot send
// to an IPv6 peer, and every datagram would fail).
func ctSyncNetwork(peer netip.Addr) string {
	if peer.Unmap().Is4() {
		return "udp4"
	}
	return "udp6"
}
