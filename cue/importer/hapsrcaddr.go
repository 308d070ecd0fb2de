package importer

import (
	"fmt"
	"net/netip"
	"strings"
)

// hapSrc is HAProxy's `source` (a proxy line or a server option): where
// the connections to the servers leave from. A server's own replaces its
// proxy's whole, usesrc included (HAProxy's conn_src).
type hapSrc struct {
	pos Pos
	// addr is the gateway's own address ("": the one the route picks);
	// it is also where checks leave from, usesrc or not.
	addr string
	// how the servers see the connection: "" from addr, "client" or
	// "clientip" from the client's address, "addr" from foreign.
	how     string
	foreign string
}

// hapSource reads `ADDR[:PORT] [usesrc ADDR2|client|clientip|hdr_ip(…)]
// [interface NAME]`, args from the address on (what names the line in
// messages); n is how many words it took: a server's next option follows.
// What the site cannot say is a need (FeatTransparent): a source port or
// port range (the kernel picks the port), an address that is none (a
// variable, a unix socket), usesrc from a header or with a port, an
// interface binding.
func hapSource(args []string, pos Pos, what string, w *warnings) (src *hapSrc, n int, ns []need) {
	if len(args) == 0 {
		w.add(pos, "%s without an address: ignored", what)
		return nil, 0, nil
	}
	src = &hapSrc{pos: pos}
	n = 1
	line := what + " " + args[0]
	if a, port, err := hapAddrPort(args[0]); err != nil {
		ns = append(ns, needs(pos, FeatTransparent, "%s (%v)", line, err))
	} else if port != "" {
		ns = append(ns, needs(pos, FeatTransparent, "%s (a source port or port range: gitgw lets the kernel pick the port)", line))
	} else if !a.IsUnspecified() {
		src.addr = a.String()
	}
	for n < len(args) {
		switch args[n] {
		case "usesrc":
			u := ""
			if n+1 < len(args) {
				u = args[n+1]
			}
			n += 2
			line += " usesrc " + u
			switch u {
			case "client":
				w.add(pos, "usesrc client: imported as transparent: the servers see the client's address, but not its port (gitgw picks the source port, as HAProxy's clientip)")
				fallthrough
			case "clientip":
				src.how = u
				continue
			}
			a, port, err := hapAddrPort(u)
			switch {
			case err != nil || a.IsUnspecified():
				ns = append(ns, needs(pos, FeatTransparent, "%s (not a fixed address: gitgw's transparent_address is one)", line))
			case port != "":
				ns = append(ns, needs(pos, FeatTransparent, "%s (a fixed source port: gitgw lets the kernel pick the port)", line))
			default:
				src.how, src.foreign = "addr", a.String()
			}
		case "interface":
			iface := ""
			if n+1 < len(args) {
				iface = args[n+1]
			}
			n += 2
			ns = append(ns, needs(pos, FeatTransparent, "%s interface %s (gitgw binds no connection to an interface: the route picks it)", line, iface))
		default:
			return src, n, ns
		}
	}
	return src, n, ns
}

// hapAddrPort reads HAProxy's ADDR[:PORT] (str2sa_range): an optional
// ipv4@ or ipv6@ prefix, an IPv6 address in brackets or not, where the
// last colon starts the port (so an IPv6 address needs brackets to go
// without one). port is "" when there is none or it is 0 (the kernel
// picks), else as written (a number, or a range LOW-HIGH).
func hapAddrPort(s string) (a netip.Addr, port string, err error) {
	v := s
	for _, pre := range []string{"ipv4@", "ipv6@"} {
		v = strings.TrimPrefix(v, pre)
	}
	host := v
	if rest, ok := strings.CutPrefix(v, "["); ok {
		h, after, found := strings.Cut(rest, "]")
		if !found || (after != "" && !strings.HasPrefix(after, ":")) {
			return a, "", fmt.Errorf("not an address")
		}
		host, port = h, strings.TrimPrefix(after, ":")
	} else if i := strings.LastIndexByte(v, ':'); i >= 0 {
		host, port = v[:i], v[i+1:]
	}
	if port == "0" {
		port = ""
	}
	if host == "" || host == "*" {
		return netip.IPv4Unspecified(), port, nil
	}
	a, err = netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, "", fmt.Errorf("not an address gitgw can bind")
	}
	return a.Unmap(), port, nil
}

// sourceMode maps where the backend's connections to its servers leave
// from (#Service.source_address, transparent, transparent_address,
// #Server.source_address): each server's own source, else the
// backend's. The servers see one kind of source per service in the
// site (the gateway's, the client's or one fixed foreign address): a
// backend whose servers differ there is refused. The gateway's own
// address is the service's when every server has the same, else each
// server's own. HTTP and SNI routing connect from the gateway's own
// source address too, never from the client's or a foreign one: usesrc
// there is refused.
func (p *hapProxy) sourceMode(s *service, http bool) []need {
	eff := make([]*hapSrc, len(s.servers))
	for i := range eff {
		eff[i] = p.src
		if i < len(p.srvMore) && p.srvMore[i].src != nil {
			eff[i] = p.srvMore[i].src
		}
	}
	if len(eff) == 0 {
		return nil
	}
	seen := func(x *hapSrc) string {
		switch {
		case x == nil || x.how == "":
			return "the gateway's address"
		case x.how == "addr":
			return "the fixed address " + x.foreign
		}
		return "the client's address"
	}
	for i := range eff {
		if seen(eff[i]) != seen(eff[0]) {
			pos := p.pos
			if eff[i] != nil {
				pos = eff[i].pos
			} else if i < len(p.srvMore) {
				pos = p.srvMore[i].pos
			}
			return []need{needs(pos, FeatTransparent, "server %s is seen from %s, server %s from %s (the servers of a gitgw service see one kind of source)",
				s.servers[i].name, seen(eff[i]), s.servers[0].name, seen(eff[0]))}
		}
	}
	var stated *hapSrc // a usesrc, for the HTTP refusal
	if e := eff[0]; e != nil {
		switch e.how {
		case "client", "clientip":
			s.transparent = true
		case "addr":
			s.transparentAddr = e.foreign
		}
	}
	same := true
	for _, e := range eff {
		if addrOf(e) != addrOf(eff[0]) {
			same = false
		}
		if e != nil && e.how != "" && stated == nil {
			stated = e
		}
	}
	if same {
		s.sourceAddr = addrOf(eff[0])
	} else {
		for i, e := range eff {
			s.servers[i].sourceAddr = addrOf(e)
		}
	}
	if http && stated != nil {
		return []need{needs(stated.pos, FeatTransparent, "source … usesrc in a service imported in HTTP mode (HTTP and SNI routing connect from the gateway's own addresses only)")}
	}
	return nil
}

func addrOf(x *hapSrc) string {
	if x == nil {
		return ""
	}
	return x.addr
}
