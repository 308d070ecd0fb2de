package vip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"golang.org/x/sys/unix"
)

// Announcer sends gratuitous ARP (IPv4) and unsolicited neighbour
// advertisements (IPv6) for VIPs. It keeps one ARP client and one ICMPv6
// socket per interface, opened on first use in the network namespace of the
// calling thread.
type Announcer struct {
	mu   sync.Mutex
	arp  map[string]*arp.Client
	icmp map[string]*os.File
}

// NewAnnouncer returns an announcer with no sockets open yet.
func NewAnnouncer() *Announcer {
	return &Announcer{arp: map[string]*arp.Client{}, icmp: map[string]*os.File{}}
}

// Close closes every socket.
func (a *Announcer) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	for k, c := range a.arp {
		errs = append(errs, c.Close())
		delete(a.arp, k)
	}
	for k, f := range a.icmp {
		errs = append(errs, f.Close())
		delete(a.icmp, k)
	}
	return errors.Join(errs...)
}

// Announce sends one announcement per address on ifname: for IPv4 a
// gratuitous ARP request (sender IP = target IP = VIP, broadcast), the form
// Linux honours even inside its locktime; for IPv6 an unsolicited
// neighbour advertisement (R=1, S=0, O=1) to all nodes.
func (a *Announcer) Announce(ifname string, addrs []netip.Addr) error {
	return a.AnnounceFrom(ifname, nil, addrs)
}

// AnnounceFrom is Announce with another sender hardware address (and
// Ethernet source) than the interface's own: a virtual MAC announced
// through its parent interface. IPv6 announcements ignore hw.
func (a *Announcer) AnnounceFrom(ifname string, hw net.HardwareAddr, addrs []netip.Addr) error {
	var errs []error
	for _, ip := range addrs {
		var err error
		if ip.Is4() {
			err = a.garp(ifname, hw, ip)
		} else {
			err = a.na(ifname, ip)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (a *Announcer) arpClient(ifname string) (*arp.Client, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.arp[ifname]; ok {
		return c, nil
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	// arp.Dial needs an IPv4 address on the interface: that is the parent
	// (the interface carrying the instance's primary address).
	c, err := arp.Dial(ifi)
	if err != nil {
		return nil, err
	}
	a.arp[ifname] = c
	return c, nil
}

func (a *Announcer) garp(ifname string, hw net.HardwareAddr, ip netip.Addr) error {
	c, err := a.arpClient(ifname)
	if err != nil {
		return fmt.Errorf("vip: gratuitous ARP for %s on %s: %w", ip, ifname, err)
	}
	if hw == nil {
		hw = c.HardwareAddr()
	}
	p, err := arp.NewPacket(arp.OperationRequest, hw, ip, ethernet.Broadcast, ip)
	if err != nil {
		return fmt.Errorf("vip: gratuitous ARP for %s on %s: %w", ip, ifname, err)
	}
	if err := c.WriteTo(p, ethernet.Broadcast); err != nil {
		return fmt.Errorf("vip: gratuitous ARP for %s on %s: %w", ip, ifname, err)
	}
	return nil
}

func (a *Announcer) icmpSocket(ifname string) (*os.File, *net.Interface, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if f, ok := a.icmp[ifname]; ok {
		return f, ifi, nil
	}
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_ICMPV6)
	if err != nil {
		return nil, nil, err
	}
	for _, o := range []struct{ level, opt, v int }{
		{unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255},
		{unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, 255},
		{unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifi.Index},
		{unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_LOOP, 0},
	} {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, o.v); err != nil {
			unix.Close(fd)
			return nil, nil, err
		}
	}
	// Send-only: filter out every ICMPv6 type on receive.
	var filter unix.ICMPv6Filter
	for i := range filter.Data {
		filter.Data[i] = 0xffffffff
	}
	if err := unix.SetsockoptICMPv6Filter(fd, unix.SOL_ICMPV6, unix.ICMPV6_FILTER, &filter); err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	if err := unix.BindToDevice(fd, ifname); err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	f := os.NewFile(uintptr(fd), "icmpv6-"+ifname)
	a.icmp[ifname] = f
	return f, ifi, nil
}

func (a *Announcer) na(ifname string, ip netip.Addr) error {
	f, ifi, err := a.icmpSocket(ifname)
	if err != nil {
		return fmt.Errorf("vip: neighbour advertisement for %s on %s: %w", ip, ifname, err)
	}
	msg := make([]byte, 32)
	msg[0] = 136                                    // neighbour advertisement; code 0; checksum by the kernel
	binary.BigEndian.PutUint32(msg[4:], 0xa0000000) // R=1 S=0 O=1
	t := ip.As16()
	copy(msg[8:24], t[:])
	msg[24], msg[25] = 2, 1 // target link-layer address option, 8 bytes
	copy(msg[26:32], ifi.HardwareAddr)
	dst := &unix.SockaddrInet6{ZoneId: uint32(ifi.Index), Addr: netip.MustParseAddr("ff02::1").As16()}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), msg, 0, dst)
		return !errors.Is(serr, unix.EAGAIN)
	}); err != nil {
		serr = err
	}
	if serr != nil {
		return fmt.Errorf("vip: neighbour advertisement for %s on %s: %w", ip, ifname, serr)
	}
	return nil
}
