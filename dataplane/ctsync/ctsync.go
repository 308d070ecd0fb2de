// Package ctsync replicates the conntrack entries of NAT services to the
// peer gateway, so that after a failover the new master already knows every
// established flow and its NAT binding: the flows go on instead of being
// scheduled again (to another server) or dropped. conntrackd's job, for the
// flows of gitgw's kernel load balancer only.
//
// The sender listens to the kernel's conntrack events (new, update,
// destroy), keeps those whose original destination is one of the services,
// and sends each as one small datagram to the peer. The receiver creates
// the entry in its own kernel with the same original tuple and the DNAT
// binding to the same server (CTA_NAT_DST, as conntrackd does: the kernel
// derives the reply tuple and the NAT status from it), or updates state,
// status and timeout of an entry it already has, or deletes it.
//
// The sender also sends every flow of the services when it starts (an
// agent restarted on the master re-sends what it had) and, with
// ResyncEvery, periodically: an entry whose state does not change raises
// no event, and a long UDP stream would otherwise expire on the peer.
//
// IPv4 and IPv6 flows: an IPv4 flow travels as a version 1 record (the
// first version's form, so that a peer not yet upgraded still takes
// them), an IPv6 flow as a version 2 record, of the same layout with
// 16-byte addresses.
//
// Limits: no authentication of the datagrams (use a dedicated link, as
// with conntrackd), one datagram per entry.
package ctsync

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// Service is one NAT virtual service whose flows are replicated.
type Service struct {
	VIP      netip.AddrPort
	Protocol uint8 // unix.IPPROTO_TCP or IPPROTO_UDP
}

// Op is what happened to an entry.
type Op uint8

// The operations.
const (
	OpNew Op = iota + 1
	OpUpdate
	OpDestroy
)

// Record is one replicated entry: a NAT flow of a service.
type Record struct {
	Op       Op
	Protocol uint8
	Client   netip.AddrPort // original source
	VIP      netip.AddrPort // original destination
	Server   netip.AddrPort // DNAT destination
	Status   uint32         // IPS_* bits
	Timeout  uint32         // seconds
	TCPState uint8
}

const (
	magic = 0x6763 // "gc"
	// version4 records carry IPv4 flows (32 bytes), version6 IPv6 ones
	// (68 bytes).
	version4    = 1
	version6    = 2
	recordSize4 = 2 + 1 + 1 + 1 + 3*6 + 4 + 4 + 1
	recordSize6 = 2 + 1 + 1 + 1 + 3*18 + 4 + 4 + 1
)

// MarshalBinary encodes a record in a fixed form: 32 bytes for an IPv4
// flow, 68 for an IPv6 one. The three addresses are of one family.
func (r Record) MarshalBinary() ([]byte, error) {
	v6 := r.Client.Addr().Is6()
	for _, a := range []netip.AddrPort{r.Client, r.VIP, r.Server} {
		if !a.Addr().IsValid() || a.Addr().Is6() != v6 || a.Addr().Is4In6() {
			return nil, fmt.Errorf("ctsync: %v, %v, %v: not three addresses of one family", r.Client, r.VIP, r.Server)
		}
	}
	ver, size := byte(version4), recordSize4
	if v6 {
		ver, size = version6, recordSize6
	}
	b := make([]byte, 0, size)
	b = binary.BigEndian.AppendUint16(b, magic)
	b = append(b, ver, byte(r.Op), r.Protocol)
	for _, a := range []netip.AddrPort{r.Client, r.VIP, r.Server} {
		b = append(b, a.Addr().AsSlice()...)
		b = binary.BigEndian.AppendUint16(b, a.Port())
	}
	b = binary.BigEndian.AppendUint32(b, r.Status)
	b = binary.BigEndian.AppendUint32(b, r.Timeout)
	return append(b, r.TCPState), nil
}

// UnmarshalBinary decodes MarshalBinary's form.
func (r *Record) UnmarshalBinary(b []byte) error {
	alen := 4
	switch {
	case len(b) == recordSize4 && binary.BigEndian.Uint16(b) == magic && b[2] == version4:
	case len(b) == recordSize6 && binary.BigEndian.Uint16(b) == magic && b[2] == version6:
		alen = 16
	default:
		return fmt.Errorf("ctsync: not a version %d (%d bytes) or %d (%d bytes) record (%d bytes)", version4, recordSize4, version6, recordSize6, len(b))
	}
	r.Op, r.Protocol = Op(b[3]), b[4]
	if r.Op < OpNew || r.Op > OpDestroy {
		return fmt.Errorf("ctsync: unknown operation %d", r.Op)
	}
	p := 5
	for _, a := range []*netip.AddrPort{&r.Client, &r.VIP, &r.Server} {
		ip, _ := netip.AddrFromSlice(b[p : p+alen])
		*a = netip.AddrPortFrom(ip, binary.BigEndian.Uint16(b[p+alen:]))
		p += alen + 2
	}
	r.Status = binary.BigEndian.Uint32(b[p:])
	r.Timeout = binary.BigEndian.Uint32(b[p+4:])
	r.TCPState = b[p+8]
	return nil
}

// recordOf turns a conntrack event into a record if it is a flow of one of
// the services.
func recordOf(ev conntrack.Event, services map[Service]bool) (Record, bool) {
	f := ev.Flow
	if f == nil {
		return Record{}, false
	}
	o, r := f.TupleOrig, f.TupleReply
	vip := netip.AddrPortFrom(o.IP.DestinationAddress, o.Proto.DestinationPort)
	if !services[Service{VIP: vip, Protocol: o.Proto.Protocol}] {
		return Record{}, false
	}
	rec := Record{
		Protocol: o.Proto.Protocol,
		Client:   netip.AddrPortFrom(o.IP.SourceAddress, o.Proto.SourcePort),
		VIP:      vip,
		Server:   netip.AddrPortFrom(r.IP.SourceAddress, r.Proto.SourcePort),
		Status:   uint32(f.Status),
		Timeout:  f.Timeout,
	}
	if f.ProtoInfo.TCP != nil {
		rec.TCPState = f.ProtoInfo.TCP.State
	}
	switch ev.Type {
	case conntrack.EventNew:
		rec.Op = OpNew
	case conntrack.EventUpdate:
		rec.Op = OpUpdate
	case conntrack.EventDestroy:
		rec.Op = OpDestroy
	default:
		return Record{}, false
	}
	return rec, true
}

// Sender sends the conntrack events of the services to the peer.
type Sender struct {
	// ResyncEvery, if positive, re-sends every flow of the services this
	// often (set before Run).
	ResyncEvery time.Duration

	ct       *conntrack.Conn
	dump     *conntrack.Conn // a second socket: ct only receives events
	evs      chan conntrack.Event
	errs     chan error
	out      net.PacketConn
	peer     net.Addr
	services map[Service]bool
	log      *slog.Logger
}

// NewSender listens to conntrack events in the namespace of netnsFd (0:
// the caller's) and sends those of services through out to peer.
func NewSender(netnsFd int, out net.PacketConn, peer net.Addr, services []Service, logger *slog.Logger) (*Sender, error) {
	ct, err := conntrack.Dial(&netlink.Config{NetNS: netnsFd})
	if err != nil {
		return nil, fmt.Errorf("ctsync: conntrack socket: %w", err)
	}
	// Events come in bursts (every new connection is two or three).
	_ = ct.SetReadBuffer(8 << 20)
	m := map[Service]bool{}
	for _, s := range services {
		m[s] = true
	}
	// Join the event groups now, not in Run: a flow that starts once
	// NewSender has returned is sent.
	evs := make(chan conntrack.Event, 1024)
	errs, err := ct.Listen(evs, 1, netfilter.GroupsCT)
	if err != nil {
		ct.Close()
		return nil, fmt.Errorf("ctsync: listen to conntrack events: %w", err)
	}
	dump, err := conntrack.Dial(&netlink.Config{NetNS: netnsFd})
	if err != nil {
		ct.Close()
		return nil, fmt.Errorf("ctsync: conntrack socket: %w", err)
	}
	return &Sender{ct: ct, dump: dump, evs: evs, errs: errs, out: out, peer: peer, services: m, log: logger.With("component", "ctsync")}, nil
}

// Resync sends every current flow of the services.
func (s *Sender) Resync() error {
	flows, err := s.dump.Dump(nil)
	if err != nil {
		return fmt.Errorf("ctsync: dump conntrack: %w", err)
	}
	for i := range flows {
		if rec, ok := recordOf(conntrack.Event{Type: conntrack.EventUpdate, Flow: &flows[i]}, s.services); ok {
			s.send(rec)
		}
	}
	return nil
}

func (s *Sender) send(rec Record) {
	b, err := rec.MarshalBinary()
	if err == nil {
		_, err = s.out.WriteTo(b, s.peer)
	}
	if err != nil {
		s.log.Warn("send", "client", rec.Client, "err", err)
	}
}

// Run sends events until ctx ends or the event socket fails. It closes
// the event socket when it returns.
func (s *Sender) Run(ctx context.Context) error {
	defer s.ct.Close()
	defer s.dump.Close()
	// Events joined in NewSender are queued meanwhile: a flow that changes
	// during the dump is sent again, newer, after it.
	if err := s.Resync(); err != nil {
		s.log.Warn("initial resync", "err", err)
	}
	var tick <-chan time.Time
	if s.ResyncEvery > 0 {
		t := time.NewTicker(s.ResyncEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-s.errs:
			return fmt.Errorf("ctsync: conntrack events: %w", err)
		case <-tick:
			if err := s.Resync(); err != nil {
				s.log.Warn("resync", "err", err)
			}
		case ev := <-s.evs:
			if rec, ok := recordOf(ev, s.services); ok {
				s.send(rec)
			}
		}
	}
}

// Receiver applies the peer's records to this node's conntrack table.
type Receiver struct {
	nf  *netfilter.Conn
	in  net.PacketConn
	log *slog.Logger
}

// NewReceiver applies what arrives on in to the conntrack table of the
// namespace of netnsFd (0: the caller's).
func NewReceiver(netnsFd int, in net.PacketConn, logger *slog.Logger) (*Receiver, error) {
	nf, err := netfilter.Dial(&netlink.Config{NetNS: netnsFd})
	if err != nil {
		return nil, fmt.Errorf("ctsync: ctnetlink socket: %w", err)
	}
	return &Receiver{nf: nf, in: in, log: logger.With("component", "ctsync")}, nil
}

// Run applies records until in is closed or ctx ends.
func (r *Receiver) Run(ctx context.Context) error {
	defer r.nf.Close()
	go func() {
		<-ctx.Done()
		_ = r.in.Close()
	}()
	buf := make([]byte, 512)
	for {
		n, _, err := r.in.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("ctsync: receive: %w", err)
		}
		var rec Record
		if err := rec.UnmarshalBinary(buf[:n]); err != nil {
			r.log.Warn("bad record", "err", err)
			continue
		}
		if err := r.Apply(rec); err != nil {
			r.log.Warn("apply", "client", rec.Client, "action", rec.Op, "err", err)
		}
	}
}

// Conntrack netlink attributes (linux/netfilter/nfnetlink_conntrack.h).
const (
	ctaTupleOrig  = 1
	ctaTupleReply = 2
	ctaStatus     = 3
	ctaProtoinfo  = 4
	ctaTimeout    = 7
	ctaNatDst     = 13

	ctaTupleIP       = 1
	ctaTupleProto    = 2
	ctaIPv4Src       = 1
	ctaIPv4Dst       = 2
	ctaIPv6Src       = 3
	ctaIPv6Dst       = 4
	ctaProtoNum      = 1
	ctaProtoSrcPort  = 2
	ctaProtoDstPort  = 3
	ctaProtoinfoTCP  = 1
	ctaTCPState      = 1
	ctaNatV4MinIP    = 1
	ctaNatV4MaxIP    = 2
	ctaNatV6MinIP    = 4
	ctaNatV6MaxIP    = 5
	ctaNatProto      = 3
	ctaProtonatPortM = 1
	ctaProtonatPortX = 2

	ipctnlMsgCtNew    = 0
	ipctnlMsgCtDelete = 2

	// Status bits the kernel refuses or sets itself.
	ipsDying   = 1 << 9
	ipsNatMask = 0x30 | 0x180 // SRC/DST_NAT and their _DONE bits
)

func tupleAttr(typ uint16, proto uint8, src, dst netip.AddrPort) netfilter.Attribute {
	srcT, dstT := uint16(ctaIPv4Src), uint16(ctaIPv4Dst)
	if src.Addr().Is6() {
		srcT, dstT = ctaIPv6Src, ctaIPv6Dst
	}
	return netfilter.Attribute{Type: typ, Nested: true, Children: []netfilter.Attribute{
		{Type: ctaTupleIP, Nested: true, Children: []netfilter.Attribute{
			{Type: srcT, Data: src.Addr().AsSlice()},
			{Type: dstT, Data: dst.Addr().AsSlice()},
		}},
		{Type: ctaTupleProto, Nested: true, Children: []netfilter.Attribute{
			{Type: ctaProtoNum, Data: []byte{proto}},
			{Type: ctaProtoSrcPort, Data: netfilter.Uint16Bytes(src.Port())},
			{Type: ctaProtoDstPort, Data: netfilter.Uint16Bytes(dst.Port())},
		}},
	}}
}

// Apply makes this node's conntrack table hold (or drop) rec's flow.
func (r *Receiver) Apply(rec Record) error {
	orig := tupleAttr(ctaTupleOrig, rec.Protocol, rec.Client, rec.VIP)
	fam := netfilter.ProtoIPv4
	if rec.Client.Addr().Is6() {
		fam = netfilter.ProtoIPv6
	}
	if rec.Op == OpDestroy {
		err := r.query(fam, ipctnlMsgCtDelete, netlink.Request|netlink.Acknowledge, []netfilter.Attribute{orig})
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	state := []netfilter.Attribute{
		{Type: ctaTimeout, Data: netfilter.Uint32Bytes(rec.Timeout)},
		{Type: ctaStatus, Data: netfilter.Uint32Bytes(rec.Status &^ (ipsDying | ipsNatMask))},
	}
	if rec.Protocol == unix.IPPROTO_TCP {
		state = append(state, netfilter.Attribute{Type: ctaProtoinfo, Nested: true, Children: []netfilter.Attribute{
			{Type: ctaProtoinfoTCP, Nested: true, Children: []netfilter.Attribute{{Type: ctaTCPState, Data: []byte{rec.TCPState}}}},
		}})
	}
	// Create: the reply tuple as if there were no NAT, and the DNAT
	// binding, from which the kernel derives the real reply tuple.
	ip := rec.Server.Addr().AsSlice()
	minT, maxT := uint16(ctaNatV4MinIP), uint16(ctaNatV4MaxIP)
	if fam == netfilter.ProtoIPv6 {
		minT, maxT = ctaNatV6MinIP, ctaNatV6MaxIP
	}
	nat := netfilter.Attribute{Type: ctaNatDst, Nested: true, Children: []netfilter.Attribute{
		{Type: minT, Data: ip},
		{Type: maxT, Data: ip},
		{Type: ctaNatProto, Nested: true, Children: []netfilter.Attribute{
			{Type: ctaProtonatPortM, Data: netfilter.Uint16Bytes(rec.Server.Port())},
			{Type: ctaProtonatPortX, Data: netfilter.Uint16Bytes(rec.Server.Port())},
		}},
	}}
	create := append([]netfilter.Attribute{orig, tupleAttr(ctaTupleReply, rec.Protocol, rec.VIP, rec.Client), nat}, state...)
	err := r.query(fam, ipctnlMsgCtNew, netlink.Request|netlink.Acknowledge|netlink.Create|netlink.Excl, create)
	if errors.Is(err, unix.EEXIST) {
		// Known already: update its state (NAT cannot change).
		err = r.query(fam, ipctnlMsgCtNew, netlink.Request|netlink.Acknowledge, append([]netfilter.Attribute{orig}, state...))
	}
	return err
}

func (r *Receiver) query(fam netfilter.ProtoFamily, msgType uint8, flags netlink.HeaderFlags, attrs []netfilter.Attribute) error {
	req, err := netfilter.MarshalNetlink(netfilter.Header{
		SubsystemID: netfilter.NFSubsysCTNetlink,
		MessageType: netfilter.MessageType(msgType),
		Family:      fam,
		Flags:       flags,
	}, attrs)
	if err != nil {
		return fmt.Errorf("ctsync: encode: %w", err)
	}
	if _, err := r.nf.Query(req); err != nil {
		return fmt.Errorf("ctsync: ctnetlink: %w", err)
	}
	return nil
}
