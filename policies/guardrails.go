package policies

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/gitgw/gitgw/cue/spec"
)

// guardrail is a built-in rule over one desired state.
type guardrail struct {
	Policy
	severity Severity
	check    func(in *Input, r report)
}

// The built-in guardrails, in the order they run and report.
func guardrails() []guardrail {
	return []guardrail{
		{Policy{"vrid-unique", "VRIDs are unique per interface and segment: two virtual routers with one VRID share a virtual MAC and fight."}, Error, vridUnique},
		{Policy{"priority-distinct", "priorities are distinct within an instance: a tie is broken by address, not by the site."}, Error, priorityDistinct},
		{Policy{"vip-in-subnet", "every VIP lies in a subnet of its interface on each node that carries it: otherwise no neighbour can reach it."}, Error, vipInSubnet},
		{Policy{"vip-not-node-address", "no VIP equals a node's own address: releasing it would cut the node off."}, Error, vipNotNodeAddress},
		{Policy{"vip-unique", "an instance lists each VIP once (in vips and excluded_vips together): a second entry is a copy-paste slip that would be added and removed twice."}, Error, vipUnique},
		{Policy{"instance-consistent", "what can differ between the nodes of an instance does not: each has the interface, a VIP belongs to one instance, a sync group has one node set and version."}, Error, instanceConsistent},
		{Policy{"service-primary-server", "every service has a server that is neither backup nor disabled."}, Error, servicePrimaryServer},
		{Policy{"service-health-check", "every service checks its servers' health, or says unchecked: true: otherwise a dead server keeps its share of connections unnoticed."}, Error, serviceHealthCheck},
		{Policy{"bind-address", "each proxy bind is a VIP of an instance of its node, one of the node's addresses, loopback or a wildcard: any other address never sees a packet."}, Error, bindAddress},
		{Policy{"port-clash", "no port is bound twice on a node: by two proxy binds, or by a bind and a unit instance named by a port; no firewall mark is taken twice for one protocol."}, Error, portClash},
		{Policy{"cpu-mask", "CPU lists in tuning name only CPUs the node has (node: cpus) and are well formed."}, Error, cpuMask},
		{Policy{"proxy-busy-poll", "the proxy's busy-poll window is at most 10ms: a longer one only burns CPU, since no reply it waits for is that slow and still worth polling for."}, Error, proxyBusyPoll},
		{Policy{"service-feature-built", "a service uses only what this gitgw carries: a field the schema knows but no driver runs yet would otherwise be ignored in silence."}, Error, serviceFeatureBuilt},
		{Policy{"nat-route-back", "a nat service's servers are on a segment where its gateways have an address or a VIP: their replies must come back through the gateway that rewrote the request, or the client drops them."}, Error, natRouteBack},
		{Policy{"fnat-local-address", "an fnat service's local addresses are its gateways' own (not VIPs), and each gateway holds one: a gateway gives its flows a source it holds, or the servers' replies go elsewhere."}, Error, fnatLocalAddress},
		{Policy{"dr-real-server", "a dr service does not run on its own real servers, and a node set real_server: \"on\" is one: a real server forwarding its own service loops, and one nothing names stays unconfigured."}, Error, drRealServer},
		{Policy{"source-address", "a proxy service's source_address is an address of each of its gateways (or a VIP of theirs), and its transparent_address one that no gateway holds, off the servers' segments; both only where the proxy connects to the servers (HTTP and SNI routing too, from a source_address only): the servers' replies must reach the socket that sent the request."}, Error, sourceAddress},
		{Policy{"http-pool", "an HTTP rule sends requests to a proxy-mode TCP service that runs wherever the rule's service runs, and a service without binds is one some rule sends requests to: otherwise requests fail, or servers wait for traffic that never comes."}, Error, httpPool},
		{Policy{"secret-in-clear", "no VRRP password is written in the site: use password_file (read on the node)."}, Warning, secretInClear},
	}
}

// carriers lists the nodes of an instance whose settings the input holds.
func carriers(in *Input, vi spec.VRRPInstance) []string {
	var out []string
	for _, n := range slices.Sorted(maps.Keys(vi.Nodes)) {
		if _, ok := in.Nodes[n]; ok {
			out = append(out, n)
		}
	}
	return out
}

func vipIface(vi spec.VRRPInstance, v spec.VIP) string {
	if v.Dev != "" {
		return v.Dev
	}
	return vi.Interface
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// vridUnique indexes every (segment, address family, VRID) an instance
// occupies; a segment is a subnet on the instance's interface, or the
// interface itself on one node when it has no address.
func vridUnique(in *Input, r report) {
	owner := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(in.VRRP)) {
		vi := in.VRRP[name]
		fam := "IPv4"
		if len(vi.VIPs) > 0 {
			fam = family(vi.VIPs[0].Address.Addr())
		}
		clash := map[string]string{}
		for _, n := range carriers(in, vi) {
			var segs []string
			for _, p := range in.Nodes[n].Interfaces[vi.Interface].Addresses {
				segs = append(segs, "segment "+p.Masked().String()+" on "+vi.Interface)
			}
			segs = append(segs, "node "+n+"'s "+vi.Interface)
			for _, seg := range segs {
				k := fmt.Sprintf("%s|%s|%d", seg, fam, vi.VRID)
				if other, ok := owner[k]; ok && other != name {
					if _, seen := clash[other]; !seen {
						clash[other] = seg
					}
					continue
				}
				owner[k] = name
			}
		}
		for _, other := range slices.Sorted(maps.Keys(clash)) {
			r.add("vrrp."+spec.Label(name)+".vrid", "VRID %d (%s) is also instance %s's on %s: two virtual routers with one VRID fight over one virtual MAC",
				vi.VRID, fam, other, clash[other])
		}
	}
}

func priorityDistinct(in *Input, r report) {
	for _, name := range slices.Sorted(maps.Keys(in.VRRP)) {
		vi := in.VRRP[name]
		first := map[int]string{}
		for _, n := range slices.Sorted(maps.Keys(vi.Nodes)) {
			p := vi.Nodes[n].Priority
			if other, ok := first[p]; ok {
				r.add(fmt.Sprintf("vrrp.%s.nodes.%s.priority", spec.Label(name), spec.Label(n)),
					"priority %d is also %s's: the master would be chosen by the higher address, not by the site", p, other)
				continue
			}
			first[p] = n
		}
	}
}

func vipInSubnet(in *Input, r report) {
	for _, name := range slices.Sorted(maps.Keys(in.VRRP)) {
		vi := in.VRRP[name]
		for _, n := range carriers(in, vi) {
			for i, v := range vi.VIPs {
				ifname := vipIface(vi, v)
				iface, declared := in.Nodes[n].Interfaces[ifname]
				if !declared && ifname == vi.Interface {
					continue // instance-consistent reports the missing interface
				}
				addrs := iface.Addresses
				a := v.Address.Addr()
				var same []string
				inside := false
				for _, p := range addrs {
					if p.Addr().Is4() != a.Is4() {
						continue
					}
					same = append(same, p.String())
					if p.Masked().Contains(a) {
						inside = true
					}
				}
				path := fmt.Sprintf("vrrp.%s.vips.%d", spec.Label(name), i)
				switch {
				case inside:
				case len(same) == 0 && a.Is6():
					// An IPv6 VIP is advertised from the link-local address.
				case len(same) == 0:
					r.add(path, "VIP %s: node %s has no %s address on %s to reach it from", v.Address, n, family(a), ifname)
				default:
					r.add(path, "VIP %s is in no subnet of node %s's %s (%s)", v.Address, n, ifname, strings.Join(same, ", "))
				}
			}
		}
	}
}

func vipNotNodeAddress(in *Input, r report) {
	own := map[netip.Addr]string{}
	for _, n := range slices.Sorted(maps.Keys(in.Nodes)) {
		for _, ifname := range slices.Sorted(maps.Keys(in.Nodes[n].Interfaces)) {
			for _, p := range in.Nodes[n].Interfaces[ifname].Addresses {
				if _, ok := own[p.Addr()]; !ok {
					own[p.Addr()] = n + " " + ifname
				}
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(in.VRRP)) {
		vi := in.VRRP[name]
		for _, list := range []struct {
			field string
			vips  []spec.VIP
		}{{"vips", vi.VIPs}, {"excluded_vips", vi.ExcludedVIPs}} {
			for i, v := range list.vips {
				if where, ok := own[v.Address.Addr()]; ok {
					r.add(fmt.Sprintf("vrrp.%s.%s.%d", spec.Label(name), list.field, i),
						"VIP %s is node %s's own address: releasing the VIP would remove it", v.Address.Addr(), where)
				}
			}
		}
	}
}

// vipUnique finds an address listed twice in one instance; one listed in
// two instances is instance-consistent's (two masters could hold it).
func vipUnique(in *Input, r report) {
	for _, name := range slices.Sorted(maps.Keys(in.VRRP)) {
		vi := in.VRRP[name]
		first := map[netip.Addr]string{}
		for _, list := range []struct {
			field string
			vips  []spec.VIP
		}{{"vips", vi.VIPs}, {"excluded_vips", vi.ExcludedVIPs}} {
			for i, v := range list.vips {
				a := v.Address.Addr()
				at := fmt.Sprintf("vrrp.%s.%s.%d", spec.Label(name), list.field, i)
				if other, ok := first[a]; ok {
					r.add(at, "VIP %s is listed twice in instance %s (first at %s): list it once", a, name, other)
					continue
				}
				first[a] = at
			}
		}
	}
}

func instanceConsistent(in *Input, r report) {
	vipOwner := map[netip.Addr]string{}
	type group struct {
		first   string
		nodes   string
		version int
	}
	groups := map[string]group{}
	for _, name := range slices.Sorted(maps.Keys(in.VRRP)) {
		vi := in.VRRP[name]
		for _, n := range carriers(in, vi) {
			if _, ok := in.Nodes[n].Interfaces[vi.Interface]; !ok {
				r.add(fmt.Sprintf("vrrp.%s.nodes.%s", spec.Label(name), spec.Label(n)),
					"node %s does not declare interface %s, which instance %s runs on", n, vi.Interface, name)
			}
		}
		for i, v := range vi.VIPs {
			a := v.Address.Addr()
			if other, ok := vipOwner[a]; ok && other != name {
				r.add(fmt.Sprintf("vrrp.%s.vips.%d", spec.Label(name), i), "VIP %s is also a VIP of instance %s: two masters could hold it at once", a, other)
				continue
			}
			vipOwner[a] = name
		}
		if vi.SyncGroup == "" {
			continue
		}
		nodes := strings.Join(slices.Sorted(maps.Keys(vi.Nodes)), ",")
		g, ok := groups[vi.SyncGroup]
		if !ok {
			groups[vi.SyncGroup] = group{first: name, nodes: nodes, version: vi.Version}
			continue
		}
		if g.nodes != nodes {
			r.add("vrrp."+spec.Label(name)+".nodes", "sync group %s: instance %s runs on %s, but %s on %s: a group changes state together only on the same nodes",
				vi.SyncGroup, name, nodes, g.first, g.nodes)
		}
		if g.version != vi.Version {
			r.add("vrrp."+spec.Label(name)+".version", "sync group %s: instance %s is VRRPv%d, but %s is VRRPv%d", vi.SyncGroup, name, vi.Version, g.first, g.version)
		}
	}
}

func servicePrimaryServer(in *Input, r report) {
	for _, name := range slices.Sorted(maps.Keys(in.Services)) {
		s := in.Services[name]
		ok := s.Router() // its rules send every request elsewhere
		for _, sv := range s.Servers {
			if !sv.Backup && !sv.Disabled {
				ok = true
				break
			}
		}
		if !ok {
			r.add("services."+spec.Label(name)+".servers", "service %s has no server that is neither backup nor disabled: it would send every connection to a backup or refuse it", name)
		}
	}
}

// serviceHealthCheck wants a check on every service, or unchecked: true
// where the site means to run without one (keepalived's UDP
// virtual_server often has no checker): an omission is not a decision.
// Both at once is a contradiction: which one did the author mean?
// A server may stay out of its service's check (unchecked: true) beside
// checked ones; a check that leaves out every server checks nothing, and
// is the service's unchecked: true in disguise. A server's own check
// settings must say one thing: targets, or an address and port, or none.
func serviceHealthCheck(in *Input, r report) {
	for _, name := range slices.Sorted(maps.Keys(in.Services)) {
		s, path := in.Services[name], "services."+spec.Label(name)
		switch {
		case s.Router() && (s.Check != nil || s.Unchecked):
			r.add(path, "service %s has no servers of its own (its http rules send each request elsewhere): a check or unchecked says nothing here", name)
		case s.Router():
		case s.Check == nil && !s.Unchecked:
			r.add(path, "service %s has no health check: a dead server would keep its share of connections; add a check, or unchecked: true to run without one on purpose", name)
		case s.Check != nil && s.Unchecked:
			r.addRelated(path+".unchecked", path+".check", "service %s has a check and unchecked: true: remove one", name)
		}
		checked := false
		for _, sn := range slices.Sorted(maps.Keys(s.Servers)) {
			sv, sp := s.Servers[sn], path+".servers."+spec.Label(sn)
			checked = checked || !sv.Unchecked
			own := ""
			switch {
			case len(sv.CheckTargets) > 0:
				own = "check_targets"
			case sv.CheckAddress != "":
				own = "check_address"
			case sv.CheckPort != 0:
				own = "check_port"
			}
			switch {
			case s.Check == nil && sv.Unchecked:
				r.add(sp+".unchecked", "service %s has no check: server %s is unchecked already; remove unchecked here", name, sn)
			case s.Check == nil && own != "" && own != "check_port":
				r.add(sp+"."+own, "service %s has no check: server %s's %s is never used; remove it, or give the service a check", name, sn, own)
			case sv.Unchecked && own != "":
				r.add(sp+"."+own, "service %s: server %s is unchecked and has %s: remove one", name, sn, own)
			case own == "check_targets" && (sv.CheckAddress != "" || sv.CheckPort != 0):
				r.add(sp+".check_targets", "service %s: server %s has check_targets and check_address or check_port: the targets say where it is checked (each an address and port); remove one", name, sn)
			}
		}
		if s.Check != nil && !checked && len(s.Servers) > 0 {
			r.add(path+".check", "service %s: every server is unchecked, so its check checks nothing: remove the check and the servers' unchecked, and say unchecked: true on the service", name)
		}
	}
}

// portClash indexes, per node, every port a proxy bind or a unit instance
// named by a port takes. A bind holds an address and a port; a unit
// instance is assumed to listen on every address.
// servicesByNode lists the services each node runs, found in one pass over
// the services (a service without nodes runs on every node).
func servicesByNode(in *Input) map[string][]string {
	nodes := slices.Sorted(maps.Keys(in.Nodes))
	byNode := map[string][]string{}
	for _, name := range slices.Sorted(maps.Keys(in.Services)) {
		on := in.Services[name].Nodes
		if len(on) == 0 {
			on = nodes
		}
		for _, n := range on {
			byNode[n] = append(byNode[n], name)
		}
	}
	return byNode
}

// bindAddress finds a proxy bind on an address the node will never hold:
// neither a VIP of an instance the node is in, nor one of its own
// addresses, nor loopback. Such a listener only works with
// ip_nonlocal_bind and then never sees a packet: a typo in an address.
// A node whose addresses the site does not state is left alone (an
// import with the facts still to fill in).
func bindAddress(in *Input, r report) {
	byNode := servicesByNode(in)
	for _, n := range slices.Sorted(maps.Keys(in.Nodes)) {
		ns := in.Nodes[n]
		held := map[netip.Addr]bool{}
		for _, ifc := range ns.Interfaces {
			for _, p := range ifc.Addresses {
				held[p.Addr()] = true
			}
		}
		if len(held) == 0 {
			continue
		}
		for _, vi := range in.VRRP {
			if _, ok := vi.Nodes[n]; !ok {
				continue
			}
			for _, v := range append(slices.Clone(vi.VIPs), vi.ExcludedVIPs...) {
				held[v.Address.Addr()] = true
			}
		}
		for _, name := range byNode[n] {
			for i, b := range in.Services[name].Binds {
				host, _, err := net.SplitHostPort(b)
				if err != nil {
					continue
				}
				a, err := netip.ParseAddr(host)
				if err != nil || a.IsUnspecified() || a.IsLoopback() || held[a.Unmap()] || held[a] {
					continue
				}
				r.add(fmt.Sprintf("services.%s.binds.%d", spec.Label(name), i),
					"on node %s, %s is neither a VIP of an instance of the node nor one of its addresses: the listener would never see a packet", n, b)
			}
		}
	}
}

func portClash(in *Input, r report) {
	nodes := slices.Sorted(maps.Keys(in.Nodes))
	byNode := servicesByNode(in)
	type bound struct{ host, service, path string }
	for _, n := range nodes {
		// Per port: the first bind, the one on each address, a wildcard.
		// UDP ports are apart from TCP's (DNS binds both): they count
		// from 65536 on here.
		first := map[int]bound{}
		exact := map[string]bound{}
		wild := map[int]bound{}
		for _, name := range byNode[n] {
			s := in.Services[name]
			for i, b := range s.Binds {
				host, p, err := net.SplitHostPort(b)
				port, perr := strconv.Atoi(p)
				if err != nil || perr != nil {
					continue
				}
				hp := net.JoinHostPort(host, p)
				key := hp
				if s.Protocol == "udp" {
					port += 1 << 16
					key = "udp:" + hp
				}
				// A wildcard address takes the port on every address.
				o, clash := exact[key]
				if !clash {
					o, clash = wild[port]
				}
				if !clash && isWildcard(host) {
					o, clash = first[port]
				}
				path := fmt.Sprintf("services.%s.binds.%d", spec.Label(name), i)
				if clash {
					// Worded for either end: PointAtChange may place it
					// at the other bind.
					r.addRelated(path, o.path, "on node %s, %s of service %s clashes with %s of service %s",
						n, hp, name, net.JoinHostPort(o.host, p), o.service)
					continue
				}
				bd := bound{host, name, path}
				exact[key] = bd
				if _, ok := first[port]; !ok {
					first[port] = bd
				}
				if isWildcard(host) {
					wild[port] = bd
				}
			}
		}
		// A firewall mark takes a protocol's marked packets: one
		// service per mark and protocol.
		marks := map[string]bound{}
		for _, name := range byNode[n] {
			s := in.Services[name]
			for i, m := range s.Fwmarks {
				key := fmt.Sprintf("%s fwmark %d", cmp.Or(s.Protocol, "tcp"), m)
				path := fmt.Sprintf("services.%s.fwmarks.%d", spec.Label(name), i)
				if o, clash := marks[key]; clash {
					r.addRelated(path, o.path, "on node %s, %s of service %s clashes with service %s", n, key, name, o.service)
					continue
				}
				marks[key] = bound{service: name, path: path}
			}
		}
		for _, name := range slices.Sorted(maps.Keys(in.Units)) {
			u := in.Units[name]
			for _, inst := range u.InstancesFor(n) {
				port, err := strconv.Atoi(inst)
				if err != nil || port < 1 || port > 65535 {
					continue
				}
				if b, ok := first[port]; ok {
					r.addRelated("units."+spec.Label(name)+".instances", b.path, "on node %s, unit %s@%s.service takes port %d, which service %s binds", n, name, inst, port, b.service)
				}
			}
		}
	}
}

func cpuMask(in *Input, r report) {
	for _, n := range slices.Sorted(maps.Keys(in.Nodes)) {
		ns := in.Nodes[n]
		for _, ifname := range slices.Sorted(maps.Keys(ns.Tuning.Interfaces)) {
			t := ns.Tuning.Interfaces[ifname]
			for _, f := range []struct{ field, val string }{{"rps_cpus", t.RPSCPUs}, {"xps_cpus", t.XPSCPUs}, {"irq_cpus", t.IRQCPUs}} {
				if f.val == "" || f.val == "all" || f.val == "none" {
					continue
				}
				path := fmt.Sprintf("nodes.%s.tuning.interfaces.%s.%s", spec.Label(n), spec.Label(ifname), f.field)
				hi, err := highestCPU(f.val)
				switch {
				case err != nil:
					r.add(path, "CPU list %q: %v", f.val, err)
				case ns.CPUs > 0 && hi >= ns.CPUs:
					r.add(path, "CPU list %q names CPU %d, but node %s has %d CPUs (0-%d)", f.val, hi, n, ns.CPUs, ns.CPUs-1)
				}
			}
		}
	}
}

func proxyBusyPoll(in *Input, r report) {
	for _, n := range slices.Sorted(maps.Keys(in.Nodes)) {
		if d := in.Nodes[n].Tuning.ProxyBusyPoll.D(); d > spec.MaxProxyBusyPoll {
			r.add(fmt.Sprintf("nodes.%s.tuning.proxy_busy_poll", spec.Label(n)), "%v is longer than %v", d, spec.MaxProxyBusyPoll)
		}
	}
}

// highestCPU parses a kernel CPU list ("0-3,6") and returns its highest CPU.
func highestCPU(list string) (int, error) {
	hi := -1
	for _, part := range strings.Split(list, ",") {
		lo, up, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return 0, fmt.Errorf("%q is not a CPU number", part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(up); err != nil {
				return 0, fmt.Errorf("%q is not a CPU range", part)
			}
			if b < a {
				return 0, fmt.Errorf("range %q runs backwards", part)
			}
		}
		hi = max(hi, b)
	}
	return hi, nil
}

func secretInClear(in *Input, r report) {
	for _, name := range slices.Sorted(maps.Keys(in.VRRP)) {
		if a := in.VRRP[name].Auth; a != nil && a.Password != "" {
			r.add("vrrp."+spec.Label(name)+".auth.password", "the VRRP password of %s is written in the site in clear: put it in a file on the nodes and set password_file", name)
		}
	}
}

func isWildcard(host string) bool {
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsUnspecified()
}

// serviceFeatureBuilt refuses service fields that the schema accepts but
// no driver of this binary carries yet, so that a site (or an import) that
// asks for them is refused instead of running without them.
func serviceFeatureBuilt(in *Input, r report) {
	for _, name := range slices.Sorted(maps.Keys(in.Services)) {
		s := in.Services[name]
		path := "services." + spec.Label(name)
		kernelServiceBuilt(in, name, s, r)
		if s.Transparent && s.Kernel() {
			r.add(path+".transparent", "service %s: transparent in mode %q: only proxy mode carries it in this gitgw", name, s.Mode)
		}
		serverVia(name, s, r)
		for _, sn := range slices.Sorted(maps.Keys(s.Servers)) {
			if s.Servers[sn].TLS == nil {
				continue
			}
			switch {
			case s.Kernel():
				r.add(path+".servers."+spec.Label(sn)+".tls", "service %s: server %s: tls in mode %q: only proxy mode originates TLS to servers", name, sn, s.Mode)
			case s.Protocol == "udp":
				r.add(path+".servers."+spec.Label(sn)+".tls", "service %s: server %s: tls on a udp service: TLS runs over TCP", name, sn)
			}
		}
	}
}

// serverVia refuses a server reached through a SOCKS4 proxy where the
// proxy's TCP connect does not carry it: the kernel modes forward packets,
// UDP has no CONNECT, transparent mode would show the server the proxy's
// address, HTTP and SNI services dial their servers directly, and SOCKS4
// holds only an IPv4 destination.
func serverVia(name string, s spec.Service, r report) {
	for _, sn := range slices.Sorted(maps.Keys(s.Servers)) {
		sv := s.Servers[sn]
		if sv.Via == nil {
			continue
		}
		path := "services." + spec.Label(name) + ".servers." + spec.Label(sn)
		switch {
		case s.Kernel():
			r.add(path+".via", "service %s: server %s: via socks4 in mode %q: only proxy mode connects through a SOCKS4 proxy", name, sn, s.Mode)
		case s.Protocol == "udp":
			r.add(path+".via", "service %s: server %s: via socks4 on a udp service: SOCKS4 connects TCP only", name, sn)
		case s.Transparent || s.TransparentAddress != "":
			r.add(path+".via", "service %s: server %s: via socks4 in a transparent service: the server would see the proxy, not the client's or the transparent address", name, sn)
		case s.HTTP != nil || s.SNI != nil:
			r.add(path+".via", "service %s: server %s: via socks4 in an http or sni service: those connect to their servers directly", name, sn)
		}
		if ap, err := sv.AddrPort(); err == nil && !ap.Addr().Unmap().Is4() {
			r.add(path+".address", "service %s: server %s: address %s is IPv6: SOCKS4 (via) carries IPv4 only", name, sn, sv.Address)
		}
	}
}

// httpPool checks HTTP mode where the schema cannot: across services. A
// rule's pool must be a proxy-mode TCP service present on every node of
// the rule's service (the proxy picks its servers there); TLS binds must
// be binds of the service; a service without binds exists only as a pool,
// so some rule must name it.
func httpPool(in *Input, r report) {
	used, httpUsed := map[string]bool{}, map[string]bool{}
	proxyTCP := func(s spec.Service) bool { return !s.Kernel() && s.Protocol != "udp" }
	for _, name := range slices.Sorted(maps.Keys(in.Services)) {
		s, path := in.Services[name], "services."+spec.Label(name)
		if s.SNI != nil {
			if !proxyTCP(s) || s.HTTP != nil {
				r.add(path+".sni", "service %s: sni routing is for proxy-mode TCP services without http (it passes TLS through unterminated)", name)
			}
			for i, ru := range s.SNI.Rules {
				used[ru.Use] = true
				usePool(in, r, name, s, fmt.Sprintf("%s.sni.rules.%d.use", path, i), i, ru.Use, proxyTCP)
			}
		}
		h := s.HTTP
		if h == nil {
			continue
		}
		if !proxyTCP(s) {
			r.add(path+".http", "service %s: http mode is for proxy-mode TCP services (mode %q, protocol %q)", name, s.Mode, s.Protocol)
		}
		if len(s.Binds) == 0 {
			r.add(path+".binds", "service %s: http mode without binds: nothing would reach its rules", name)
		}
		if h.TLS != nil {
			for i, b := range h.TLS.Binds {
				if !slices.Contains(s.Binds, b) {
					r.add(fmt.Sprintf("%s.http.tls.binds.%d", path, i), "service %s: tls bind %s is none of the service's binds", name, b)
				}
			}
		}
		for i, ru := range h.Rules {
			if ru.Use == "" {
				continue
			}
			used[ru.Use], httpUsed[ru.Use] = true, true
			usePool(in, r, name, s, fmt.Sprintf("%s.http.rules.%d.use", path, i), i, ru.Use, proxyTCP)
		}
		// A header rewrite limited to a pool no rule sends to never applies.
		for _, l := range []struct {
			field string
			as    []spec.HTTPHeaderAction
		}{{"request_headers", h.RequestHeaders}, {"response_headers", h.ResponseHeaders}, {"after_response_headers", h.AfterResponseHeaders}} {
			for i, a := range l.as {
				if a.Pool != "" && a.Pool != name && !slices.ContainsFunc(h.Rules, func(ru spec.HTTPRule) bool { return ru.Use == a.Pool }) {
					r.add(fmt.Sprintf("%s.http.%s.%d.pool", path, l.field, i), "service %s: a header rewrite for pool %s, to which none of its rules sends requests: it would never apply", name, a.Pool)
				}
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(in.Services)) {
		s := in.Services[name]
		if len(s.Binds) == 0 && proxyTCP(s) && !used[name] {
			r.add("services."+spec.Label(name)+".binds", "service %s has no binds and no HTTP rule sends requests to it: its servers would never get traffic", name)
		}
		httpCookie(r, name, s, s.HTTP != nil && proxyTCP(s) || httpUsed[name])
		if used[name] {
			// A pool's servers get the HTTP proxy's requests, which it
			// connects directly.
			for _, sn := range slices.Sorted(maps.Keys(s.Servers)) {
				if s.Servers[sn].Via != nil {
					r.add("services."+spec.Label(name)+".servers."+spec.Label(sn)+".via", "service %s: server %s: via socks4 in a pool of http or sni rules: those connect to their servers directly", name, sn)
				}
			}
		}
	}
}

// httpCookie checks a service's persistence cookie: requests must reach
// the service in HTTP mode (reached), each server value names one
// server, and values need the service's cookie.
func httpCookie(r report, name string, s spec.Service, reached bool) {
	path := "services." + spec.Label(name)
	if s.Cookie != nil && !reached {
		r.add(path+".cookie", "service %s: cookie persistence, but no request reaches the service in HTTP mode (neither its own http nor an HTTP rule's use): nothing would read the cookie", name)
	}
	seen := map[string]string{}
	for _, sn := range slices.Sorted(maps.Keys(s.Servers)) {
		v := s.Servers[sn].Cookie
		if v == "" {
			continue
		}
		at := path + ".servers." + spec.Label(sn) + ".cookie"
		switch o, dup := seen[v]; {
		case s.Cookie == nil:
			r.add(at, "service %s: server %s has a cookie value, but the service has no cookie", name, sn)
		case dup:
			r.add(at, "service %s: server %s: cookie %q already names server %s", name, sn, v, o)
		}
		seen[v] = sn
	}
}

// nodesOf lists the nodes a service runs on: its own list, else every
// node of the input.
func nodesOf(in *Input, s spec.Service) []string {
	if len(s.Nodes) > 0 {
		return s.Nodes
	}
	return slices.Sorted(maps.Keys(in.Nodes))
}

// usePool checks the pool a rule of service name (at path at) sends to.
func usePool(in *Input, r report, name string, s spec.Service, at string, i int, use string, proxyTCP func(spec.Service) bool) {
	p, ok := in.Services[use]
	switch {
	case !ok:
		r.add(at, "service %s: rule %d sends requests to service %s, which the site does not define (for this node)", name, i, use)
	case !proxyTCP(p):
		r.add(at, "service %s: rule %d sends requests to service %s, which is not a proxy-mode TCP service", name, i, use)
	case len(p.Nodes) > 0:
		for _, n := range nodesOf(in, s) {
			if !slices.Contains(p.Nodes, n) {
				r.add(at, "service %s: rule %d sends requests to service %s, which does not run on node %s", name, i, use, n)
				break
			}
		}
	}
}
