package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// IPProtocol is VRRP's IP protocol number.
const IPProtocol = 112

// Wire constants.
const (
	typeAdvertisement = 1
	authNone          = 0
	authPass          = 1
	authAH            = 2
	headerLen         = 8
	authDataLen       = 8
	// maxMessage is the longest VRRP message there is: 255 IPv6
	// addresses, or 255 IPv4 ones with v2's authentication data. Anything
	// past it is padding nobody reads.
	maxMessage = headerLen + 255*16 + authDataLen
)

// Multicast destinations (RFC 5798 §5.1.1.2, §5.1.2.2).
var (
	GroupV4 = netip.MustParseAddr("224.0.0.18")
	GroupV6 = netip.MustParseAddr("ff02::12")
)

// ChecksumForm says how a VRRPv3-over-IPv4 checksum is computed. VRRPv2 is
// always message-only and IPv6 always includes the pseudo-header.
type ChecksumForm uint8

const (
	// ChecksumPseudo includes the IPv4 pseudo-header (RFC 5798 reading;
	// keepalived ≤ 2.2.7, FRR's default). The default on transmit.
	ChecksumPseudo ChecksumForm = iota
	// ChecksumMessage covers the VRRP message only (RFC 9568 §5.2.8,
	// Cisco, keepalived's v3_checksum_as_v2).
	ChecksumMessage
)

func (f ChecksumForm) String() string {
	if f == ChecksumMessage {
		return "message"
	}
	return "pseudo-header"
}

// Packet is one VRRP advertisement, version 2 or 3.
type Packet struct {
	Version  uint8 // 2 or 3
	VRID     uint8
	Priority uint8
	// Interval is the advertisement interval: whole seconds on the wire in
	// v2, centiseconds (10 ms .. 40.95 s) in v3.
	Interval time.Duration
	// Addrs is the advertised address list, all of one family.
	Addrs []netip.Addr
	// AuthType and AuthData exist only in v2 (0 none, 1 PASS).
	AuthType uint8
	AuthData [authDataLen]byte
}

// DropReason classifies why a received packet was discarded; the engine
// counts drops per reason.
type DropReason string

// The reasons a received packet is dropped.
const (
	DropLength   DropReason = "length"
	DropVersion  DropReason = "version"
	DropType     DropReason = "type"
	DropChecksum DropReason = "checksum"
	DropTTL      DropReason = "ttl"
	DropVRID     DropReason = "vrid"
	DropAuth     DropReason = "auth"
	DropInterval DropReason = "interval"
	DropAddrList DropReason = "addr_list"
	DropSource   DropReason = "source" // not a unicast peer nor an allowed source
)

// DropReasons lists every reason, so that a counter can be exported at zero
// before the first drop (an alert on a rate needs the series to exist).
func DropReasons() []DropReason {
	return []DropReason{DropLength, DropVersion, DropType, DropChecksum, DropTTL, DropVRID, DropAuth, DropInterval, DropAddrList, DropSource}
}

// DecodeError is returned for every malformed or unacceptable packet.
type DecodeError struct {
	Reason DropReason
	Detail string
}

func (e *DecodeError) Error() string { return "vrrp: drop (" + string(e.Reason) + "): " + e.Detail }

func dropf(r DropReason, format string, args ...any) error {
	return &DecodeError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the drop reason carried by err, or "" if err is not a
// DecodeError.
func ReasonOf(err error) DropReason {
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Reason
	}
	return ""
}

// SetPassword stores a v2 PASS password (truncated to 8 bytes, zero
// padded) and sets AuthType accordingly; "" clears authentication.
func (p *Packet) SetPassword(pass string) {
	p.AuthData = [authDataLen]byte{}
	if pass == "" {
		p.AuthType = authNone
		return
	}
	p.AuthType = authPass
	copy(p.AuthData[:], pass)
}

// Len is the encoded length of the VRRP message.
func (p *Packet) Len() int {
	n := headerLen
	for _, a := range p.Addrs {
		n += len(a.AsSlice())
	}
	if p.Version == 2 {
		n += authDataLen
	}
	return n
}

// Marshal encodes p. src and dst are the IP source and destination the
// packet will carry: they enter the checksum for v3 (pseudo-header form and
// IPv6). form selects the v3/IPv4 checksum form.
func (p *Packet) Marshal(src, dst netip.Addr, form ChecksumForm) ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	b := make([]byte, p.Len())
	b[0] = p.Version<<4 | typeAdvertisement
	b[1] = p.VRID
	b[2] = p.Priority
	b[3] = uint8(len(p.Addrs))
	switch p.Version {
	case 2:
		b[4] = p.AuthType
		b[5] = uint8(p.Interval / time.Second)
	case 3:
		binary.BigEndian.PutUint16(b[4:], uint16(p.Interval/(10*time.Millisecond))&0x0fff)
	}
	off := headerLen
	for _, a := range p.Addrs {
		off += copy(b[off:], a.AsSlice())
	}
	if p.Version == 2 {
		copy(b[off:], p.AuthData[:])
	}
	binary.BigEndian.PutUint16(b[6:], checksum(b, p.Version, src, dst, form))
	return b, nil
}

func (p *Packet) validate() error {
	switch p.Version {
	case 2:
		if p.Interval < time.Second || p.Interval > 255*time.Second || p.Interval%time.Second != 0 {
			return fmt.Errorf("vrrp: encode: v2 interval %v must be whole seconds in 1s..255s", p.Interval)
		}
		if p.AuthType == authAH {
			return errors.New("vrrp: encode: AH authentication is not supported")
		}
	case 3:
		if p.Interval < 10*time.Millisecond || p.Interval > 40950*time.Millisecond || p.Interval%(10*time.Millisecond) != 0 {
			return fmt.Errorf("vrrp: encode: v3 interval %v must be whole centiseconds in 10ms..40.95s", p.Interval)
		}
		if p.AuthType != authNone {
			return errors.New("vrrp: encode: v3 has no authentication")
		}
	default:
		return fmt.Errorf("vrrp: encode: version %d unsupported", p.Version)
	}
	if len(p.Addrs) == 0 || len(p.Addrs) > 255 {
		return fmt.Errorf("vrrp: encode: %d addresses, want 1..255", len(p.Addrs))
	}
	v6 := p.Addrs[0].Is6()
	for _, a := range p.Addrs {
		if !a.IsValid() || a.Is4In6() || a.Is6() != v6 {
			return fmt.Errorf("vrrp: encode: address %v: all addresses must be valid and of one family", a)
		}
	}
	if v6 && p.Version == 2 {
		return errors.New("vrrp: encode: VRRPv2 carries IPv4 only")
	}
	return nil
}

// Decode parses and verifies a VRRP message received from src to dst. It
// does not check TTL (the IP layer's business) nor anything that depends on
// local configuration. It returns the checksum form that matched (for v3 over
// IPv4 both forms are accepted, as keepalived's peers differ).
func Decode(b []byte, src, dst netip.Addr) (*Packet, ChecksumForm, error) {
	if len(b) < headerLen {
		return nil, 0, dropf(DropLength, "%d bytes, shorter than the header", len(b))
	}
	p := &Packet{Version: b[0] >> 4, VRID: b[1], Priority: b[2]}
	if t := b[0] & 0x0f; t != typeAdvertisement {
		return nil, 0, dropf(DropType, "type %d", t)
	}
	v6 := src.Is6() && !src.Is4In6()
	switch {
	case p.Version == 3:
	case p.Version == 2 && !v6:
	default:
		return nil, 0, dropf(DropVersion, "version %d", p.Version)
	}
	if p.VRID == 0 {
		return nil, 0, dropf(DropVRID, "VRID 0")
	}
	count := int(b[3])
	if count == 0 {
		return nil, 0, dropf(DropAddrList, "address count 0")
	}
	alen := 4
	if v6 {
		alen = 16
	}
	want := headerLen + count*alen
	if p.Version == 2 {
		want += authDataLen
	}
	if len(b) < want {
		return nil, 0, dropf(DropLength, "%d bytes, %d addresses need %d", len(b), count, want)
	}
	b = b[:want] // trailing bytes (padding) are not ours
	form := ChecksumPseudo
	got := binary.BigEndian.Uint16(b[6:])
	switch {
	case p.Version == 2 || v6:
		if checksum(b, p.Version, src, dst, ChecksumPseudo) != got {
			return nil, 0, dropf(DropChecksum, "bad v%d checksum %#04x", p.Version, got)
		}
	default:
		switch got {
		case checksum(b, 3, src, dst, ChecksumPseudo):
		case checksum(b, 3, src, dst, ChecksumMessage):
			form = ChecksumMessage
		default:
			return nil, 0, dropf(DropChecksum, "bad v3 checksum %#04x in either form", got)
		}
	}
	switch p.Version {
	case 2:
		p.AuthType = b[4]
		p.Interval = time.Duration(b[5]) * time.Second
		copy(p.AuthData[:], b[want-authDataLen:])
	case 3:
		p.Interval = time.Duration(binary.BigEndian.Uint16(b[4:])&0x0fff) * 10 * time.Millisecond
	}
	if p.Interval == 0 {
		return nil, 0, dropf(DropInterval, "interval 0")
	}
	p.Addrs = make([]netip.Addr, count)
	for i := range count {
		a, _ := netip.AddrFromSlice(b[headerLen+i*alen : headerLen+(i+1)*alen])
		p.Addrs[i] = a
	}
	return p, form, nil
}

// checksum computes the Internet checksum of msg with its checksum field
// taken as zero, prefixed by the pseudo-header where the version, family
// and form call for one.
func checksum(msg []byte, version uint8, src, dst netip.Addr, form ChecksumForm) uint16 {
	var sum uint32
	if version == 3 {
		switch {
		case src.Is6() && !src.Is4In6():
			s, d := src.As16(), dst.As16()
			sum += sumBytes(s[:]) + sumBytes(d[:])
			sum += uint32(len(msg)>>16) + uint32(len(msg)&0xffff) + IPProtocol
		case form == ChecksumPseudo:
			s, d := src.As4(), dst.As4()
			sum += sumBytes(s[:]) + sumBytes(d[:])
			sum += IPProtocol + uint32(len(msg))
		}
	}
	sum += sumBytes(msg[:6])
	sum += sumBytes(msg[8:])
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func sumBytes(b []byte) uint32 {
	var s uint32
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}
