package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

// SOCKS4 (the protocol as OpenSSH documents it, socks4.protocol) carries
// a server's connections, and on request its checks, through a proxy:
// HAProxy's server `socks4 ADDR:PORT` and `check-via-socks4`. The client
// sends one CONNECT request, the proxy answers with 8 bytes, and the
// connection is then a plain tunnel to the server. Both data planes share
// this codec: the proxy's event loop drives it on non-blocking sockets
// (l4proxy), the checks through DialSOCKS4.

// SOCKS4RequestLen and SOCKS4ReplyLen are the sizes of a CONNECT request
// with an empty user id and of the proxy's reply.
const (
	SOCKS4RequestLen = 9
	SOCKS4ReplyLen   = 8
)

// socks4Granted is the reply code of a CONNECT the proxy made.
const socks4Granted = 0x5a

// ErrSOCKS4IPv6 is a destination SOCKS4 cannot carry: its request holds
// an IPv4 address only.
var ErrSOCKS4IPv6 = errors.New("socks4: an IPv6 server cannot be reached through SOCKS4 (IPv4 only)")

// ErrSOCKS4Closed is a proxy that ended the connection before its reply
// was complete: OpenSSH's dynamic forwarding does this when its own
// connect to the server fails, instead of answering "rejected".
var ErrSOCKS4Closed = errors.New("socks4: the proxy closed the connection before its reply")

// SOCKS4Request is the CONNECT request for dst: version 4, command 1
// (connect), the port and the IPv4 address, and an empty user id ended
// by its NUL (HAProxy sends no user id either).
func SOCKS4Request(dst netip.AddrPort) ([SOCKS4RequestLen]byte, error) {
	var b [SOCKS4RequestLen]byte
	a := dst.Addr().Unmap()
	if !a.Is4() {
		return b, fmt.Errorf("%w: %v", ErrSOCKS4IPv6, dst)
	}
	b[0], b[1] = 4, 1
	b[2], b[3] = byte(dst.Port()>>8), byte(dst.Port())
	ip := a.As4()
	copy(b[4:8], ip[:])
	return b, nil
}

// SOCKS4Reply decides on the proxy's reply: nil when the CONNECT was
// granted (0x5A); an error naming the code otherwise (0x5B rejected or
// failed, 0x5C/0x5D identd failures, anything else a proxy that does not
// speak SOCKS4). Like HAProxy, it looks at the code only: the version
// byte (0) and the bound address are not used.
func SOCKS4Reply(r [SOCKS4ReplyLen]byte) error {
	if r[1] == socks4Granted {
		return nil
	}
	why := "not a SOCKS4 reply"
	switch r[1] {
	case 0x5b:
		why = "request rejected or failed"
	case 0x5c, 0x5d:
		why = "rejected: identd"
	}
	return fmt.Errorf("socks4: CONNECT refused by the proxy: code 0x%02x (%s)", r[1], why)
}

// DialSOCKS4 connects to dst through the SOCKS4 proxy at proxy, with
// dialer, within ctx (its deadline bounds the connect, the request and
// the reply). The connection returned is the tunnel, with no deadline.
func DialSOCKS4(ctx context.Context, dialer *net.Dialer, proxy, dst netip.AddrPort) (net.Conn, error) {
	req, err := SOCKS4Request(dst)
	if err != nil {
		return nil, err
	}
	c, err := dialer.DialContext(ctx, "tcp", proxy.String())
	if err != nil {
		return nil, fmt.Errorf("socks4: proxy %v: %w", proxy, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	// A cancelled ctx ends a reply that never comes.
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	var rep [SOCKS4ReplyLen]byte
	if _, err = c.Write(req[:]); err == nil {
		_, err = io.ReadFull(c, rep[:])
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = ErrSOCKS4Closed
		}
	}
	if err == nil {
		err = SOCKS4Reply(rep)
	}
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("socks4: proxy %v to %v: %w", proxy, dst, err)
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}
