package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Received is one packet read from a Conn.
type Received struct {
	Payload []byte // the VRRP message (IP header stripped)
	Src     netip.Addr
	Dst     netip.Addr
	TTL     int // TTL or hop limit; -1 if unknown
}

// Conn is the engine's seam to the network: it carries VRRP messages of
// one address family on one interface.
type Conn interface {
	// Read blocks for the next packet; buf is reused by the caller.
	Read(buf []byte) (Received, error)
	// Write sends msg from src to dst with TTL / hop limit 255.
	Write(msg []byte, src, dst netip.Addr) error
	Close() error
}

var _ Conn = (*RawConn)(nil)

// RawConn is a raw IP-protocol-112 socket bound to one interface, joined to
// the VRRP group by interface index, receiving only its own interface's
// groups (IP_MULTICAST_ALL=0) and never its own multicast.
type RawConn struct {
	f   *os.File
	rc  syscall.RawConn
	v6  bool
	ifi *net.Interface
}

// Listen opens a raw VRRP socket for family ("ip4" or "ip6") on ifname, in
// the network namespace of the calling thread.
func Listen(ifname string, v6 bool) (*RawConn, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("vrrp: listen on %s: %w", ifname, err)
	}
	fam := unix.AF_INET
	if v6 {
		fam = unix.AF_INET6
	}
	fd, err := unix.Socket(fam, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, IPProtocol)
	if err != nil {
		return nil, fmt.Errorf("vrrp: raw socket on %s: %w", ifname, err)
	}
	if err := setup(fd, ifi, v6); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("vrrp: raw socket on %s: %w", ifname, err)
	}
	f := os.NewFile(uintptr(fd), "vrrp-"+ifname)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("vrrp: raw socket on %s: %w", ifname, err)
	}
	return &RawConn{f: f, rc: rc, v6: v6, ifi: ifi}, nil
}

func setup(fd int, ifi *net.Interface, v6 bool) error {
	if err := unix.BindToDevice(fd, ifi.Name); err != nil {
		return fmt.Errorf("SO_BINDTODEVICE: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PRIORITY, 6)
	if !v6 {
		for _, o := range []struct {
			name   string
			opt, v int
		}{
			{"IP_HDRINCL", unix.IP_HDRINCL, 1},
			{"IP_MULTICAST_ALL", unix.IP_MULTICAST_ALL, 0},
			{"IP_MULTICAST_LOOP", unix.IP_MULTICAST_LOOP, 0},
			{"IP_MULTICAST_TTL", unix.IP_MULTICAST_TTL, 255},
		} {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, o.opt, o.v); err != nil {
				return fmt.Errorf("%s: %w", o.name, err)
			}
		}
		mreq := &unix.IPMreqn{Multiaddr: GroupV4.As4(), Ifindex: int32(ifi.Index)}
		if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, mreq); err != nil {
			return fmt.Errorf("IP_MULTICAST_IF: %w", err)
		}
		if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, mreq); err != nil {
			return fmt.Errorf("join %v: %w", GroupV4, err)
		}
		return nil
	}
	for _, o := range []struct {
		name   string
		opt, v int
	}{
		{"IPV6_CHECKSUM", unix.IPV6_CHECKSUM, 6},
		{"IPV6_MULTICAST_HOPS", unix.IPV6_MULTICAST_HOPS, 255},
		{"IPV6_UNICAST_HOPS", unix.IPV6_UNICAST_HOPS, 255},
		{"IPV6_MULTICAST_LOOP", unix.IPV6_MULTICAST_LOOP, 0},
		{"IPV6_MULTICAST_IF", unix.IPV6_MULTICAST_IF, ifi.Index},
		{"IPV6_RECVHOPLIMIT", unix.IPV6_RECVHOPLIMIT, 1},
		{"IPV6_RECVPKTINFO", unix.IPV6_RECVPKTINFO, 1},
		// The source named in Write may live on another interface: an
		// IPv6 VMAC speaks from its parent's link-local.
		{"IPV6_FREEBIND", unix.IPV6_FREEBIND, 1},
	} {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, o.opt, o.v); err != nil {
			return fmt.Errorf("%s: %w", o.name, err)
		}
	}
	const ipv6MulticastAll = 29 // since Linux 4.20
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, ipv6MulticastAll, 0)
	mreq := &unix.IPv6Mreq{Multiaddr: GroupV6.As16(), Interface: uint32(ifi.Index)}
	if err := unix.SetsockoptIPv6Mreq(fd, unix.IPPROTO_IPV6, unix.IPV6_JOIN_GROUP, mreq); err != nil {
		return fmt.Errorf("join %v: %w", GroupV6, err)
	}
	return nil
}

// Close closes the socket, unblocking Read.
func (c *RawConn) Close() error { return c.f.Close() }

// Read returns the next VRRP packet.
func (c *RawConn) Read(buf []byte) (Received, error) {
	rc := c.rc
	oob := make([]byte, 128)
	var n, oobn int
	var from unix.Sockaddr
	var rerr error
	if err := rc.Read(func(fd uintptr) bool {
		n, oobn, _, from, rerr = unix.Recvmsg(int(fd), buf, oob, 0)
		return !errors.Is(rerr, unix.EAGAIN)
	}); err != nil {
		return Received{}, err
	}
	if rerr != nil {
		return Received{}, rerr
	}
	b := buf[:n]
	if !c.v6 {
		if len(b) < 20 || b[0]>>4 != 4 {
			return Received{Payload: nil, TTL: -1}, nil
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl {
			return Received{TTL: -1}, nil
		}
		tot := int(binary.BigEndian.Uint16(b[2:]))
		end := len(b)
		if tot >= ihl && tot < end {
			end = tot
		}
		src, _ := netip.AddrFromSlice(b[12:16])
		dst, _ := netip.AddrFromSlice(b[16:20])
		return Received{Payload: b[ihl:end], Src: src, Dst: dst, TTL: int(b[8])}, nil
	}
	r := Received{Payload: b, TTL: -1}
	if sa, ok := from.(*unix.SockaddrInet6); ok {
		r.Src = netip.AddrFrom16(sa.Addr)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err == nil {
		for _, m := range msgs {
			if m.Header.Level != unix.IPPROTO_IPV6 {
				continue
			}
			switch m.Header.Type {
			case unix.IPV6_HOPLIMIT:
				if len(m.Data) >= 4 {
					r.TTL = int(int32(binary.NativeEndian.Uint32(m.Data)))
				}
			case unix.IPV6_PKTINFO:
				if len(m.Data) >= 16 {
					r.Dst = netip.AddrFrom16([16]byte(m.Data[:16]))
				}
			}
		}
	}
	return r, nil
}

// Write sends msg from src to dst. For IPv4 the header is ours (TTL 255,
// TOS 0xc0 as keepalived); for IPv6 src is named in IPV6_PKTINFO (the
// kernel picks one when src is invalid) and the kernel fills the checksum.
func (c *RawConn) Write(msg []byte, src, dst netip.Addr) error {
	rc := c.rc
	var pkt []byte
	var sa unix.Sockaddr
	var oob []byte
	if !c.v6 {
		pkt = make([]byte, 20+len(msg))
		pkt[0] = 0x45
		pkt[1] = 0xc0
		binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
		pkt[8] = 255
		pkt[9] = IPProtocol
		s, d := src.As4(), dst.As4()
		copy(pkt[12:16], s[:])
		copy(pkt[16:20], d[:])
		copy(pkt[20:], msg)
		sa = &unix.SockaddrInet4{Addr: d}
	} else {
		pkt = msg
		sa = &unix.SockaddrInet6{Addr: dst.As16(), ZoneId: uint32(c.ifi.Index)}
		if src.Is6() {
			oob = unix.PktInfo6(&unix.Inet6Pktinfo{Addr: src.As16(), Ifindex: uint32(c.ifi.Index)})
		}
	}
	var werr error
	if err := rc.Write(func(fd uintptr) bool {
		werr = unix.Sendmsg(int(fd), pkt, oob, sa, 0)
		return !errors.Is(werr, unix.EAGAIN)
	}); err != nil {
		return err
	}
	if werr != nil {
		return fmt.Errorf("vrrp: send to %v on %s: %w", dst, c.ifi.Name, werr)
	}
	return nil
}
