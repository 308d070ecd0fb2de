package l4proxy

import (
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// The address the connections to a server leave from (HAProxy's `source`
// and `usesrc`), in the order the dial picks it:
//
//   - Service.TransparentAddr: a fixed foreign address (IP_TRANSPARENT,
//     transparent.go's policy routing brings the replies to the socket);
//   - Service.Transparent: the client's address (transparent.go);
//   - Server.SourceAddr, else Service.SourceAddr: one of the node's own
//     addresses (a VIP included), bound before connect;
//   - else the kernel's choice by route.
//
// Checks use only the last two: a check is the node's own connection, and
// HAProxy's checks also leave from `source ADDR` when usesrc is set.

// hasSourceAddr says whether the service or one of its servers names a
// source address.
func (s *Service) hasSourceAddr() bool {
	if s.SourceAddr.IsValid() {
		return true
	}
	for _, sv := range s.Servers {
		if sv.SourceAddr.IsValid() {
			return true
		}
	}
	return false
}

// sourceFor is the node's own address a server's connections and checks
// leave from; invalid: the kernel picks.
func (s *Service) sourceFor(sv *Server) netip.Addr {
	if sv.SourceAddr.IsValid() {
		return sv.SourceAddr
	}
	return s.SourceAddr
}

// validateSourceAddrs checks the source addresses of a service: usable
// unicast addresses, of the family of the servers they connect to.
func (s *Service) validateSourceAddrs(where string) []error {
	var errs []error
	usable := func(a netip.Addr) bool {
		return !a.IsUnspecified() && !a.IsMulticast() && !a.IsLoopback() && a.Zone() == ""
	}
	if a := s.TransparentAddr; a.IsValid() {
		if !usable(a) {
			errs = append(errs, fmt.Errorf("%s: transparent address %v: not a unicast address", where, a))
		}
		if s.Transparent {
			errs = append(errs, fmt.Errorf("%s: transparent and a transparent address: the servers see either the client's address or a fixed one", where))
		}
	}
	if a := s.SourceAddr; a.IsValid() && !usable(a) {
		errs = append(errs, fmt.Errorf("%s: source address %v: not a unicast address", where, a))
	}
	for _, sv := range s.Servers {
		if a := sv.SourceAddr; a.IsValid() && !usable(a) {
			errs = append(errs, fmt.Errorf("%s: server %q: source address %v: not a unicast address", where, sv.Name, a))
		}
		if !sv.Addr.IsValid() {
			continue // by name: a family mismatch fails the connect, counted
		}
		v4 := sv.Addr.Addr().Unmap().Is4()
		if a := s.sourceFor(&sv); a.IsValid() && a.Unmap().Is4() != v4 {
			errs = append(errs, fmt.Errorf("%s: server %q at %v: source address %v is of the other address family", where, sv.Name, sv.Addr, a))
		}
		if a := s.TransparentAddr; a.IsValid() && a.Unmap().Is4() != v4 {
			errs = append(errs, fmt.Errorf("%s: server %q at %v: transparent address %v is of the other address family", where, sv.Name, sv.Addr, a))
		}
	}
	return errs
}

// bindSource binds fd to the node's own address src (any port) before it
// connects to server. IP_FREEBIND lets a VIP that the node does not hold
// yet be bound (the connect then fails until it does, as a missing
// address would anyway), and IP_BIND_ADDRESS_NO_PORT defers the port to
// the connect, which picks it by the whole 4-tuple: a fixed source does
// not cap the connections to all servers at one port range.
func bindSource(fd int, src netip.Addr, server netip.AddrPort) error {
	a := src.Unmap()
	if a.Is4() != server.Addr().Unmap().Is4() {
		return fmt.Errorf("source address %v and server %v are not of one address family", a, server)
	}
	var sa unix.Sockaddr
	if a.Is4() {
		sa = &unix.SockaddrInet4{Addr: a.As4()}
		_ = unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_FREEBIND, 1)
	} else {
		sa = &unix.SockaddrInet6{Addr: a.As16()}
		_ = unix.SetsockoptInt(fd, unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("source address: bind %v: %w", a, err)
	}
	return nil
}
