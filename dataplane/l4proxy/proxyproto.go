package l4proxy

import (
	"encoding/binary"
	"net/netip"
	"strconv"
)

// proxyV2Sig is the PROXY protocol v2 signature.
var proxyV2Sig = [12]byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}

// appendProxyHeader appends a PROXY protocol header (version 1 or 2) that
// tells the server the client's and the frontend's addresses.
func appendProxyHeader(b []byte, version int, src, dst netip.AddrPort) []byte {
	v4 := src.Addr().Is4() && dst.Addr().Is4()
	if version == 1 {
		if !src.IsValid() || !dst.IsValid() || src.Addr().Is4() != dst.Addr().Is4() {
			return append(b, "PROXY UNKNOWN\r\n"...)
		}
		fam := "TCP6"
		if v4 {
			fam = "TCP4"
		}
		b = append(b, "PROXY "...)
		b = append(b, fam...)
		b = append(b, ' ')
		b = src.Addr().AppendTo(b)
		b = append(b, ' ')
		b = dst.Addr().AppendTo(b)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(src.Port()), 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(dst.Port()), 10)
		return append(b, "\r\n"...)
	}
	b = append(b, proxyV2Sig[:]...)
	b = append(b, 0x21) // version 2, command PROXY
	switch {
	case !src.IsValid() || !dst.IsValid() || src.Addr().Is4() != dst.Addr().Is4():
		b = append(b, 0x00, 0, 0) // UNSPEC, no address block
	case v4:
		b = append(b, 0x11) // TCP over IPv4
		b = binary.BigEndian.AppendUint16(b, 12)
		s, d := src.Addr().As4(), dst.Addr().As4()
		b = append(b, s[:]...)
		b = append(b, d[:]...)
		b = binary.BigEndian.AppendUint16(b, src.Port())
		b = binary.BigEndian.AppendUint16(b, dst.Port())
	default:
		b = append(b, 0x21) // TCP over IPv6
		b = binary.BigEndian.AppendUint16(b, 36)
		s, d := src.Addr().As16(), dst.Addr().As16()
		b = append(b, s[:]...)
		b = append(b, d[:]...)
		b = binary.BigEndian.AppendUint16(b, src.Port())
		b = binary.BigEndian.AppendUint16(b, dst.Port())
	}
	return b
}
