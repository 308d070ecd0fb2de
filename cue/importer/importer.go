package importer

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Input is one source configuration.
type Input struct {
	// Node is the gateway the file belongs to. For a keepalived.conf it
	// names the node (default: its router_id, else "node1", "node2", …);
	// for an haproxy.cfg it limits the services to that node (default:
	// every node).
	Node string
	// Path is the file's name as warnings show it.
	Path string
	// Dir is the absolute directory the file is read from on the gateway
	// ("" if unknown): HAProxy's default-path config opens relative file
	// names from there. The command line sets it from the file's path.
	Dir  string
	Data []byte
}

// Options say what to import.
type Options struct {
	Keepalived []Input
	HAProxy    []Input
	// Nodes are declared besides the nodes of the keepalived files (for an
	// haproxy.cfg imported alone).
	Nodes []string
	// SiteName is written as site.name when set.
	SiteName string
	// Hosts are facts read on the nodes themselves (gitgw import
	// --from-host): node → interface → the node's own addresses. They
	// replace what the sources imply or leave out.
	Hosts map[string]map[string][]netip.Prefix
}

// Fact is something the site needs that the sources do not say: a node's
// own address on an interface (a TODO(import) in site.cue).
type Fact struct {
	Node, Interface string
	// Address, when set, is an address the node must hold on an
	// interface the sources do not name (Interface is empty).
	Address netip.Addr
	// What is missing, or what was guessed.
	What string
	// Guess: the site holds a guessed value (a prefix length) and passes
	// the guardrails with it; otherwise the value is missing.
	Guess bool
}

func (f Fact) String() string {
	if f.Interface == "" {
		return fmt.Sprintf("nodes.%s.interfaces: %s", f.Node, f.What)
	}
	return fmt.Sprintf("nodes.%s.interfaces.%s.addresses: %s", f.Node, f.Interface, f.What)
}

// File is one file of the generated site, relative to its root.
type File struct {
	Name string
	Data []byte
}

// Result is the generated site and what could not be carried over.
type Result struct {
	Files    []File
	Nodes    []string
	Warnings []Warning
	// Refused are the services left out of the site because it cannot say
	// what they need yet; the site is then incomplete.
	Refused []Refusal
	// Missing are the facts the site needs and the sources do not give
	// (a node's address, or its prefix length), each once: the
	// TODO(import) items. Filled in, the site passes the guardrails.
	Missing []Fact
}

// SyntaxError is a source file that does not parse: its tool would refuse
// it or read something else than it says (a truncated file).
type SyntaxError struct{ Errs []Warning }

func (e *SyntaxError) Error() string {
	lines := make([]string, len(e.Errs))
	for i, x := range e.Errs {
		lines[i] = x.String()
	}
	return "import: syntax errors:\n" + strings.Join(lines, "\n")
}

// Import converts the configurations into a site. It fails when there is
// nothing to import or a file does not parse (a *SyntaxError); everything
// else becomes a warning, or a Refusal of the service it concerns.
func Import(opts Options) (*Result, error) {
	if len(opts.Keepalived) == 0 && len(opts.HAProxy) == 0 {
		return nil, fmt.Errorf("import: nothing to import: give at least one keepalived.conf or haproxy.cfg")
	}
	var w warnings
	var order []string
	st := &site{name: opts.SiteName}
	var kcs []*kaConfig
	for i, in := range opts.Keepalived {
		order = append(order, in.Path)
		kc := mapKeepalived(in.Path, parseKeepalived(in.Path, string(in.Data), &w), &w)
		name := in.Node
		if name == "" {
			name = kc.routerID
		}
		if name == "" {
			name = fmt.Sprintf("node%d", i+1)
		}
		name = siteName(name)
		for base, k := name, 2; st.node(name) != nil; k++ {
			name = fmt.Sprintf("%s-%d", base, k)
			if k == 2 {
				w.add(Pos{File: in.Path}, "node name %q is taken by another file: this one is %q (name nodes with --keepalived NAME=FILE)", base, name)
			}
		}
		st.nodes = append(st.nodes, &node{name: name, source: in.Path})
		kcs = append(kcs, kc)
	}
	for _, name := range opts.Nodes {
		if st.node(siteName(name)) == nil {
			st.nodes = append(st.nodes, &node{name: siteName(name)})
		}
	}
	for _, in := range opts.HAProxy {
		order = append(order, in.Path)
		if in.Node != "" && st.node(siteName(in.Node)) == nil {
			st.nodes = append(st.nodes, &node{name: siteName(in.Node), source: in.Path})
		}
	}
	var hapServices []*service
	for _, in := range opts.HAProxy {
		hc := mapHAProxy(parseHAProxy(in.Path, string(in.Data), &w), in.Dir, &w)
		svcs := hc.services(&w)
		st.userlists = append(st.userlists, hc.siteUserlists(svcs, &w)...)
		for _, s := range svcs {
			if in.Node != "" {
				s.nodes = []string{siteName(in.Node)}
			}
		}
		hapServices = mergeServices(hapServices, svcs, &w)
	}
	for i, kc := range kcs {
		mergeKeepalived(st, st.nodes[i], kc, hapServices, &w)
		for _, name := range slices.Sorted(maps.Keys(kc.scripts)) {
			if s := kc.scripts[name]; !s.used {
				w.add(s.pos, "vrrp_script %s is tracked by no vrrp_instance: not imported", name)
			}
		}
	}
	var vs []*service
	for i, kc := range kcs {
		for _, s := range kc.vservers {
			s.nodes = []string{st.nodes[i].name}
		}
		vs = mergeServices(vs, kc.vservers, &w)
	}
	st.services = mergeServices(hapServices, vs, &w)
	if len(st.nodes) == 0 {
		w.add(Pos{File: opts.HAProxy[0].Path}, "no keepalived.conf and no node named: the site declares one node \"gw1\"; rename it and add the others")
		st.nodes = append(st.nodes, &node{name: "gw1"})
	}
	nodeNames := make([]string, len(st.nodes))
	for i, n := range st.nodes {
		nodeNames[i] = n.name
	}
	for _, s := range st.services {
		if len(s.nodes) == len(nodeNames) && !slices.ContainsFunc(nodeNames, func(n string) bool { return !slices.Contains(s.nodes, n) }) {
			s.nodes = nil // every node: the schema's default
		}
	}
	checkTrackedServices(st, &w)
	inferAddresses(st, kcs)
	checkUnicast(st, kcs, &w)
	applyHosts(st, opts.Hosts, &w)
	checkStates(st, &w)
	checkBinds(st, &w)
	for i, kc := range kcs {
		virtualAddresses(st, st.nodes[i], kc, &w)
		localAddresses(st.nodes[i], kc)
	}
	if len(w.errs) > 0 {
		return nil, &SyntaxError{Errs: w.errs}
	}
	return &Result{Files: writeSite(st), Nodes: nodeNames, Warnings: w.sorted(order),
		Refused: w.refused.sorted(order), Missing: missingFacts(st)}, nil
}

// mergeServices adds svcs to have; a service of the same name and content
// on another node widens the nodes it runs on.
func mergeServices(have, svcs []*service, w *warnings) []*service {
	for _, s := range svcs {
		i := slices.IndexFunc(have, func(h *service) bool { return h.name == s.name })
		if i < 0 {
			have = append(have, s)
			continue
		}
		h := have[i]
		if serviceText(h) == serviceText(s) {
			for _, n := range s.nodes {
				if !slices.Contains(h.nodes, n) {
					h.nodes = append(h.nodes, n)
				}
			}
			// Each DPVS node gives fnat flows its own local addresses:
			// the site's service lists them all, each gateway uses the
			// ones it holds.
			for _, a := range s.localAddrs {
				if !slices.Contains(h.localAddrs, a) {
					h.localAddrs = append(h.localAddrs, a)
				}
			}
			continue
		}
		base := s.name
		for k := 2; slices.ContainsFunc(have, func(h *service) bool { return h.name == s.name }); k++ {
			s.name = fmt.Sprintf("%s-%d", base, k)
		}
		w.add(s.pos, "service %s differs from the one defined at %s: imported as %s", base, h.pos, s.name)
		have = append(have, s)
	}
	return have
}

// serviceText renders a service without its nodes, for comparison.
func serviceText(s *service) string {
	c := *s
	c.nodes, c.pos, c.comments, c.localAddrs = nil, Pos{}, nil, nil
	return render([]cfield{serviceField(&c)})
}

// mergeKeepalived adds one node's VRRP instances to the site.
func mergeKeepalived(st *site, n *node, kc *kaConfig, hapServices []*service, w *warnings) {
	for _, ki := range kc.insts {
		in := ki.inst
		in.prios[0].node = n.name
		in.syncGroup = kc.groups[ki.orig]
		// keepalived's defaults where they differ from the schema's.
		if !in.version.ok {
			in.version = some(2)
			if kc.version.ok {
				in.version = kc.version
			}
			// keepalived speaks VRRPv3 for IPv6 (v2 has no IPv6).
			if netip.MustParsePrefix(in.vips[0].addr).Addr().Is6() {
				in.version = some(3)
			}
		}
		if !in.garpDelay.ok {
			in.garpDelay = kc.garpDelay
			if !in.garpDelay.ok {
				in.garpDelay = some(5 * time.Second) // keepalived sends a second round after 5 s
			}
		}
		if !in.garpRep.ok {
			in.garpRep = kc.garpRep
		}
		if !in.garpRefr.ok {
			in.garpRefr = kc.garpRefr
		}
		if in.advert.ok {
			in.advert.v = advertInterval(in, w)
		}
		if in.version.v == 3 && in.password.ok {
			w.add(in.pos, "authentication with VRRPv3: keepalived ignores it, so does the site")
			in.password = opt[string]{}
		}
		for _, r := range ki.scripts {
			s, ok := kc.scripts[r.name]
			if !ok {
				w.add(r.pos, "track_script %s: no vrrp_script of that name: ignored", r.name)
				continue
			}
			s.used = true
			if s.pos.Line > r.pos.Line {
				w.add(r.pos, "track_script %s: keepalived ignores it, as vrrp_script %s is defined further down (line %d); the site tracks it as the configuration meant to", r.name, r.name, s.pos.Line)
			}
			weight := s.weight
			if r.weight.ok {
				weight = r.weight.v
			}
			if strings.Contains(s.command, "haproxy") && len(hapServices) > 0 {
				w.add(r.pos, "track_script %s checks HAProxy (%q): gitgw replaces HAProxy, so the instance tracks the imported services instead", r.name, s.command)
				for _, svc := range hapServices {
					in.trackSvcs = append(in.trackSvcs, trackSvc{service: svc.name, weight: weight})
				}
				continue
			}
			if strings.Contains(s.command, "haproxy") {
				w.add(r.pos, "track_script %s checks HAProxy (%q): once gitgw replaces HAProxy, track the gitgw service instead (track_services)", r.name, s.command)
			}
			in.checks = append(in.checks, trackCheck{name: siteName(r.name), command: s.command, check: s.check, weight: weight})
		}
		if ki.srcIP.IsValid() {
			addNodeAddr(n, in, ki.srcIP, ki.srcBits, fmt.Sprintf("%s is %s's source address in keepalived.conf", ki.srcIP, in.name))
		} else {
			n.iface(in.iface)
		}
		// A VIP on another interface (dev) needs the node's address there.
		for _, v := range append(slices.Clone(in.vips), in.excluded...) {
			if v.dev != "" && v.dev != in.iface {
				n.iface(v.dev)
			}
		}
		existing := findInstance(st, in, n.name)
		ki.merged = existing
		if existing == nil {
			base := in.name
			for k := 2; slices.ContainsFunc(st.vrrp, func(e *instance) bool { return e.name == in.name }); k++ {
				in.name = fmt.Sprintf("%s-%d", base, k)
			}
			if in.name != base {
				w.add(in.pos, "vrrp_instance %s: this node has an instance of that name already: imported as %s", base, in.name)
			}
			ki.merged = in
			in.srcs = []Pos{in.pos}
			st.vrrp = append(st.vrrp, in)
			continue
		}
		existing.srcs = append(existing.srcs, in.pos)
		if existing.name != in.name {
			w.add(in.pos, "vrrp_instance %s has VRID %d on %s like %s at %s: merged into %s", in.name, in.vrid, in.iface, existing.name, existing.pos, existing.name)
		}
		compareInstances(existing, in, w)
		existing.prios = append(existing.prios, in.prios[0])
	}
}

// findInstance finds the site's instance that in (of node) is part of: by
// name, else by VRID and interface; never one node has already.
func findInstance(st *site, in *instance, node string) *instance {
	free := func(e *instance) bool {
		return !slices.ContainsFunc(e.prios, func(p nodePrio) bool { return p.node == node })
	}
	for _, e := range st.vrrp {
		if e.name == in.name && free(e) {
			return e
		}
	}
	for _, e := range st.vrrp {
		if e.vrid == in.vrid && e.iface == in.iface && free(e) {
			return e
		}
	}
	return nil
}

// compareInstances warns about every setting in which b (a later node's
// view of the instance) differs from a (the first node's).
func compareInstances(a, b *instance, w *warnings) {
	fa, fb := instanceFields(a), instanceFields(b)
	for _, f := range fb.fields {
		if f.label == "nodes" {
			continue
		}
		var other cval
		for _, g := range fa.fields {
			if g.label == f.label {
				other = g.val
			}
		}
		got := renderValue(f.val, 0)
		want := ""
		if other != nil {
			want = renderValue(other, 0)
		}
		if got != want {
			w.add(b.pos, "vrrp_instance %s: %s is %s here but %s at %s: the first is used", b.name, f.label, oneLine(got), oneLine(want), a.pos)
		}
	}
	for _, g := range fa.fields {
		if g.label == "nodes" {
			continue
		}
		if !slices.ContainsFunc(fb.fields, func(f cfield) bool { return f.label == g.label }) {
			w.add(b.pos, "vrrp_instance %s: %s is not set here but is at %s: the first is used", b.name, g.label, a.pos)
		}
	}
}

func oneLine(s string) string {
	if s == "" {
		return "unset"
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

// checkUnicast warns about unicast peers that are not imported nodes.
func checkUnicast(st *site, kcs []*kaConfig, w *warnings) {
	var known []netip.Addr
	for _, kc := range kcs {
		for _, ki := range kc.insts {
			if ki.srcIP.IsValid() {
				known = append(known, ki.srcIP)
			}
		}
	}
	for _, kc := range kcs {
		for _, ki := range kc.insts {
			for _, p := range ki.peers {
				if !slices.Contains(known, p.addr) {
					w.add(p.pos, "unicast_peer %s is not the unicast_src_ip of an imported node: import its keepalived.conf too, or declare it as a node with this address", p.addr)
				}
			}
		}
	}
}

// checkBinds warns about an address and port bound by two services.
func checkBinds(st *site, w *warnings) {
	owner := map[string]*service{}
	for _, s := range st.services {
		for _, b := range s.binds {
			if o, ok := owner[b]; ok {
				w.add(s.pos, "service %s binds %s like service %s (%s): only one of them can run on a node", s.name, b, o.name, o.pos)
				continue
			}
			owner[b] = s
		}
	}
}

// checkStates warns where keepalived's initial state MASTER is not the
// highest priority: gitgw elects by priority alone.
func checkStates(st *site, w *warnings) {
	for _, in := range st.vrrp {
		top := 0
		for _, p := range in.prios {
			top = max(top, p.prio)
		}
		for i, p := range in.prios {
			for _, q := range in.prios[:i] {
				if q.prio == p.prio {
					w.add(in.pos, "vrrp_instance %s: %s and %s have priority %d: VRRP breaks the tie by the higher address; the site must say who wins (guardrail priority-distinct): raise one of them", in.name, q.node, p.node, p.prio)
				}
			}
			if p.state == "MASTER" && p.prio < top && len(in.prios) > 1 {
				w.add(in.pos, "vrrp_instance %s: %s starts as MASTER in keepalived with priority %d, below the highest (%d); gitgw elects by priority only", in.name, p.node, p.prio, top)
			}
		}
	}
}

// checkTrackedServices drops tracked services that do not run on every
// node of the instance (the loader would reject them on the others).
func checkTrackedServices(st *site, w *warnings) {
	for _, in := range st.vrrp {
		var keep []trackSvc
		for _, ts := range in.trackSvcs {
			i := slices.IndexFunc(st.services, func(s *service) bool { return s.name == ts.service })
			missing := ""
			for _, p := range in.prios {
				if i >= 0 && len(st.services[i].nodes) > 0 && !slices.Contains(st.services[i].nodes, p.node) {
					missing = p.node
				}
			}
			if missing != "" {
				w.add(in.pos, "vrrp_instance %s: service %s does not run on %s: not tracked", in.name, ts.service, missing)
				continue
			}
			keep = append(keep, ts)
		}
		in.trackSvcs = keep
	}
}

// advertInterval brings an instance's advert interval into what its VRRP
// version can carry: whole seconds up to 255 s (v2), centiseconds up to
// 40.95 s (v3).
func advertInterval(in *instance, w *warnings) time.Duration {
	v, unit, lo, hi := in.advert.v, time.Second, time.Second, 255*time.Second
	if in.version.v == 3 {
		unit, lo, hi = 10*time.Millisecond, 10*time.Millisecond, 40950*time.Millisecond
	}
	r := min(max((v+unit-1)/unit*unit, lo), hi)
	if r != v {
		w.add(in.pos, "advert_int %s: VRRPv%d carries %s to %s in steps of %s: %s", v, in.version.v, lo, hi, unit, r)
	}
	return r
}

// addNodeAddr records a node's own address on an instance's interface. Its
// prefix length is that of a VIP's subnet holding it, else the one written
// after the address (hint, 0 if none: keepalived itself ignores it), else
// a guess with a TODO.
func addNodeAddr(n *node, in *instance, a netip.Addr, hint int, what string) {
	bits := a.BitLen()
	for _, v := range append(slices.Clone(in.vips), in.excluded...) {
		if p := netip.MustParsePrefix(v.addr); p.Bits() < bits && p.Contains(a) {
			bits = p.Bits()
		}
	}
	note := ""
	if bits == a.BitLen() {
		// The subnet holds the node and the VIPs it announces (or no
		// neighbour could reach them): it is at least the smallest prefix
		// holding them all. Within reason, take that and say so.
		wide, floor := bits, 16
		if a.Is6() {
			floor = 64
		}
		for _, v := range in.vips {
			p := netip.MustParsePrefix(v.addr)
			if (v.dev == "" || v.dev == in.iface) && p.Addr().Is4() == a.Is4() {
				wide = min(wide, commonBits(a, p.Addr()))
			}
		}
		switch {
		case hint > 0 && hint < bits:
			bits = hint
			note = fmt.Sprintf("TODO(import): %s, written with /%d (keepalived ignores the prefix): check that it is the interface's.", what, hint)
		case wide < floor:
			note = "TODO(import): " + what + ", which does not give its prefix length."
		case wide < bits:
			bits = wide
			note = fmt.Sprintf("TODO(import): %s, which does not give its prefix length: /%d is the smallest subnet holding it and %s's VIPs; put the real one.", what, bits, in.name)
		default:
			note = "TODO(import): " + what + ", which does not give its prefix length."
		}
	}
	addr := netip.PrefixFrom(a, bits).String()
	ifc := n.iface(in.iface)
	if slices.Contains(ifc.addrs, addr) {
		return
	}
	ifc.addrs = append(ifc.addrs, addr)
	if note != "" {
		ifc.notes = append(ifc.notes, note)
	}
}

// commonBits is the length of the longest prefix a and b share.
func commonBits(a, b netip.Addr) int {
	for bits := a.BitLen(); bits > 0; bits-- {
		if netip.PrefixFrom(a, bits).Masked().Contains(b) {
			return bits
		}
	}
	return 0
}

// inferAddresses finds the address of a node whose keepalived.conf has no
// unicast_src_ip in the unicast_peer lists of the other nodes: the one
// address they name that belongs to no other node.
func inferAddresses(st *site, kcs []*kaConfig) {
	type member struct {
		node *node
		ki   *kaInstance
	}
	groups := map[*instance][]member{}
	for i, kc := range kcs {
		for _, ki := range kc.insts {
			groups[ki.merged] = append(groups[ki.merged], member{st.nodes[i], ki})
		}
	}
	for _, in := range st.vrrp {
		ms := groups[in]
		var known []netip.Addr
		for _, m := range ms {
			if m.ki.srcIP.IsValid() {
				known = append(known, m.ki.srcIP)
			}
		}
		for _, m := range ms {
			if m.ki.srcIP.IsValid() {
				continue
			}
			var cands []netip.Addr
			from := ""
			for _, o := range ms {
				if o == m {
					continue
				}
				for _, p := range o.ki.peers {
					own := slices.ContainsFunc(m.ki.peers, func(q peerRef) bool { return q.addr == p.addr })
					if !own && !slices.Contains(known, p.addr) && !slices.Contains(cands, p.addr) {
						cands = append(cands, p.addr)
						from = o.node.name
					}
				}
			}
			if len(cands) == 1 {
				m.ki.srcIP = cands[0]
				addNodeAddr(m.node, in, cands[0], 0, fmt.Sprintf("%s is %s's unicast_peer on %s", cands[0], from, in.name))
			}
		}
	}
}

// virtualAddresses finds the virtual_servers of a node whose address no
// vrrp_instance of the node holds and that is none of its addresses:
// IPVS only sees packets to a local address, so keepalived's node holds
// it by other means (static_ipaddress, the system's network
// configuration). The site must say so: it is a node address to fill in.
func virtualAddresses(st *site, n *node, kc *kaConfig, w *warnings) {
	held := map[netip.Addr]bool{}
	for _, in := range st.vrrp {
		if !slices.ContainsFunc(in.prios, func(p nodePrio) bool { return p.node == n.name }) {
			continue
		}
		for _, v := range append(slices.Clone(in.vips), in.excluded...) {
			held[netip.MustParsePrefix(v.addr).Addr()] = true
		}
	}
	for _, i := range n.ifaces {
		for _, a := range i.addrs {
			held[netip.MustParsePrefix(a).Addr()] = true
		}
	}
	for _, s := range kc.vservers {
		for _, vip := range s.vips() {
			if held[vip] || slices.ContainsFunc(n.held, func(h heldAddr) bool { return h.addr == vip }) {
				continue
			}
			what := cmp.Or(s.group, "virtual_server "+vip.String())
			why := fmt.Sprintf("%s must hold %s, an address of %s (%s), which no vrrp_instance holds: IPVS sees only packets to a local address; add it to the interface where it is configured (or to an instance's VIPs)", n.name, vip, what, s.pos)
			if s.group == "" {
				why = fmt.Sprintf("%s must hold %s, the address of %s (%s), which no vrrp_instance holds: IPVS sees only packets to a local address; add it to the interface where it is configured (or to an instance's VIPs)", n.name, vip, what, s.pos)
			}
			w.add(s.pos, "%s: no vrrp_instance holds %s: the node holds it by other means (static_ipaddress, its network configuration); add it to the node's interface addresses", what, vip)
			n.held = append(n.held, heldAddr{addr: vip, why: why})
		}
	}
}

// sourceWeights gives the servers without a weight the weight HAProxy and
// keepalived give them, 1, when another server of the service has one:
// the schema's default (100) would turn a 5:1 split into 5:100. When no
// server has a weight, the schema's default keeps the same (equal) shares.
func sourceWeights(servers []*server) {
	if !slices.ContainsFunc(servers, func(s *server) bool { return s.weight.ok }) {
		return
	}
	for _, s := range servers {
		if !s.weight.ok && !s.drain {
			s.weight = some(1)
		}
	}
}

// sameWeights says whether the servers share one weight.
func sameWeights(servers []*server) bool {
	for _, s := range servers {
		if s.weight != servers[0].weight {
			return false
		}
	}
	return true
}

// missingFacts lists the node addresses the site needs and the sources do
// not give: the interfaces of instances without an address, and addresses
// whose prefix length was guessed.
func missingFacts(st *site) []Fact {
	var out []Fact
	for _, n := range st.nodes {
		for _, h := range n.held {
			out = append(out, Fact{Node: n.name, Address: h.addr, What: h.why})
		}
		for _, i := range n.ifaces {
			if len(i.addrs) == 0 {
				out = append(out, Fact{Node: n.name, Interface: i.name, What: fmt.Sprintf("%s's own address on %s is not in the configurations", n.name, i.name)})
			}
			for _, note := range i.notes {
				if what, ok := strings.CutPrefix(note, "TODO(import): "); ok {
					out = append(out, Fact{Node: n.name, Interface: i.name, What: what, Guess: len(i.addrs) > 0})
				}
			}
		}
	}
	return out
}

// applyHosts puts the addresses read on the nodes in place of what the
// sources imply. The VIPs the node holds now are not its own addresses.
func applyHosts(st *site, hosts map[string]map[string][]netip.Prefix, w *warnings) {
	vips := map[netip.Addr]bool{}
	for _, in := range st.vrrp {
		for _, v := range append(slices.Clone(in.vips), in.excluded...) {
			vips[netip.MustParsePrefix(v.addr).Addr()] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(hosts)) {
		n := st.node(name)
		if n == nil {
			w.add(Pos{File: "--from-host"}, "node %s: no such node in the configurations", name)
			continue
		}
		pos := Pos{File: "--from-host"}
		for _, i := range n.ifaces {
			have, ok := hosts[name][i.name]
			if !ok {
				w.add(pos, "node %s: interface %s, which the configurations use, is not on this host: its address stays to fill in", name, i.name)
				continue
			}
			var addrs []string
			for _, p := range have {
				if !vips[p.Addr()] {
					addrs = append(addrs, p.String())
				}
			}
			for _, old := range i.addrs {
				a := netip.MustParsePrefix(old).Addr()
				if !slices.ContainsFunc(addrs, func(s string) bool { return netip.MustParsePrefix(s).Addr() == a }) {
					w.add(pos, "node %s: %s, which the configurations give as its address on %s, is not on this host (it has %s): the host's are used", name, a, i.name, strings.Join(addrs, ", "))
				}
			}
			if len(addrs) == 0 {
				w.add(pos, "node %s: interface %s has no address of its own on this host", name, i.name)
				continue
			}
			i.addrs, i.notes = addrs, []string{"Read on the host by gitgw import --from-host."}
		}
	}
}
