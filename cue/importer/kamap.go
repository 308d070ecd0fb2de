package importer

import (
	"cmp"
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// kaConfig is what one node's keepalived.conf says, mapped.
type kaConfig struct {
	file      string
	routerID  string
	version   opt[int]
	garpDelay opt[time.Duration]
	garpRep   opt[int]
	garpRefr  opt[time.Duration]
	scripts   map[string]*kaScript
	insts     []*kaInstance
	groups    map[string]string // instance → sync group
	vservers  []*service
	vipSeen   map[netip.Addr]vipRef
	// laddrs are DPVS's local_address_groups, denies its
	// deny_address_groups (client addresses refused), by name.
	laddrs, denies map[string]*kaLaddrGroup
}

// kaLaddrGroup is a DPVS local_address_group: the addresses that fnat
// virtual_servers naming it (laddr_group_name) give their flows as source,
// each on a DPDK interface.
type kaLaddrGroup struct {
	d     kaDirective
	addrs []laddrEntry
	used  bool
}

// laddrEntry is one local address, with the DPDK interface DPVS holds it
// on ("" when the entry names none) and its line.
type laddrEntry struct {
	addr   netip.Addr
	ifname string
	group  string
	pos    Pos
}

type kaScript struct {
	pos     Pos
	command string
	check   check
	weight  int
	used    bool
}

// kaInstance is one vrrp_instance of one node.
type kaInstance struct {
	inst    *instance // with a single entry in prios
	orig    string    // the name in keepalived.conf
	merged  *instance // the site's instance it became part of
	srcIP   netip.Addr
	srcPos  Pos
	srcBits int // the /prefix written after unicast_src_ip, 0 if none
	peers   []peerRef
	scripts []scriptRef
	state   string
	noPre   Pos
}

type peerRef struct {
	addr netip.Addr
	pos  Pos
}

type scriptRef struct {
	name   string
	weight opt[int]
	pos    Pos
}

// kaIgnored are keepalived keywords that need nothing in a gitgw site, with
// the reason given in the warning.
var kaIgnored = map[string]string{
	"vrrp_skip_check_adv_addr":   "gitgw's VRRP engine checks adverts its own way",
	"skip_check_adv_addr":        "gitgw's VRRP engine checks adverts its own way",
	"enable_script_security":     "gitgw runs check and notify commands as its own service user",
	"script_user":                "gitgw runs check and notify commands as its own service user",
	"notification_email":         "gitgw reports to Git and Prometheus, not by e-mail",
	"notification_email_from":    "gitgw reports to Git and Prometheus, not by e-mail",
	"smtp_server":                "gitgw reports to Git and Prometheus, not by e-mail",
	"smtp_connect_timeout":       "gitgw reports to Git and Prometheus, not by e-mail",
	"smtp_alert":                 "gitgw reports to Git and Prometheus, not by e-mail",
	"vrrp_strict":                "gitgw follows the RFCs; strict mode's firewall rules are not made",
	"strict_mode":                "gitgw follows the RFCs; strict mode's firewall rules are not made",
	"vrrp_iptables":              "gitgw makes no firewall rules",
	"vrrp_mcast_group4":          "gitgw uses the standard group 224.0.0.18 / ff02::12",
	"vrrp_mcast_group6":          "gitgw uses the standard group 224.0.0.18 / ff02::12",
	"dont_track_primary":         "gitgw always tracks the instance's interface",
	"native_ipv6":                "gitgw picks the address family from the VIPs",
	"lvs_sync_daemon_interface":  "the site does not sync kernel connections between gateways yet: a NAT connection breaks when the VIP moves; dr keeps no connection state and needs none",
	"lvs_sync_daemon":            "the site does not sync kernel connections between gateways yet: a NAT connection breaks when the VIP moves; dr keeps no connection state and needs none",
	"debug":                      "set log levels on the agent",
	"log_detail":                 "set log levels on the agent",
	"accept":                     "gitgw leaves non-owner VIPs reachable",
	"no_accept":                  "gitgw leaves non-owner VIPs reachable",
	"garp_master_refresh_repeat": "gitgw sends one gratuitous ARP per refresh",
	"garp_lower_prio_delay":      "gitgw has one gratuitous-ARP schedule",
	"garp_lower_prio_repeat":     "gitgw has one gratuitous-ARP schedule",
}

// mapKeepalived reads the directives of one keepalived.conf.
func mapKeepalived(file string, dirs []kaDirective, w *warnings) *kaConfig {
	c := &kaConfig{file: file, scripts: map[string]*kaScript{}, groups: map[string]string{}, vipSeen: map[netip.Addr]vipRef{},
		laddrs: map[string]*kaLaddrGroup{}, denies: map[string]*kaLaddrGroup{}}
	var ssl *kaSSL
	groups := map[string]*kaGroup{}
	for _, d := range dirs {
		switch d.Name {
		case "SSL":
			ssl = sslBlock(d, w)
		case "virtual_server_group":
			if len(d.Args) != 1 {
				w.add(d.Pos, "virtual_server_group needs one name: ignored")
				continue
			}
			if o := groups[d.Args[0]]; o != nil {
				w.add(d.Pos, "virtual_server_group %s: defined again (first at %s): the first is used", d.Args[0], o.d.Pos)
				continue
			}
			groups[d.Args[0]] = &kaGroup{d: d}
		case "local_address_group":
			c.addrGroup(d, c.laddrs, w)
		case "deny_address_group":
			c.addrGroup(d, c.denies, w)
		}
	}
	for _, d := range dirs {
		switch d.Name {
		case "SSL": // read above, before the virtual servers that use it
		case "virtual_server_group": // read above, mapped with the virtual_server that uses it
		case "local_address_group", "deny_address_group": // read above, mapped with the virtual_servers that use them
		case "global_defs":
			c.globals(d, w)
		case "vrrp_script":
			c.script(d, w)
		case "vrrp_instance":
			if ki := c.instance(d, w); ki != nil {
				c.insts = append(c.insts, ki)
			}
		case "vrrp_sync_group":
			c.syncGroup(d, w)
		case "virtual_server":
			if s := mapVirtualServer(d, ssl, groups, c, w); s != nil {
				c.vservers = append(c.vservers, s)
			}
		case "include":
			w.add(d.Pos, "include %s: not followed; import the included files' contents too (concatenate them into one file)", strings.Join(d.Args, " "))
		case "static_ipaddress", "static_routes", "static_rules":
			w.add(d.Pos, "%s: not mapped; node addresses go in nodes.NAME.interfaces, routes are not managed by gitgw", d.Name)
		default:
			w.add(d.Pos, "%s: not mapped (unknown to the importer)", d.Name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(groups)) {
		if g := groups[name]; !g.used {
			w.add(g.d.Pos, "virtual_server_group %s: no virtual_server uses it, so keepalived forwards nothing for it: not imported", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.laddrs)) {
		if g := c.laddrs[name]; !g.used {
			w.add(g.d.Pos, "local_address_group %s: no imported fnat virtual_server uses it: not imported", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.denies)) {
		if g := c.denies[name]; !g.used {
			w.add(g.d.Pos, "deny_address_group %s: no imported virtual_server uses it: not imported", name)
		}
	}
	c.drInterfaces(w)
	return c
}

// addrGroup reads a DPVS address group into into: a local_address_group
// (entries "ADDRESS [DPDK interface]") or a deny_address_group (entries
// "ADDRESS"), an address a range "192.168.100.200-210" (the last part's
// end, as DPVS writes it). The DPDK interface is DPVS's name for the port
// a local address is on; a gitgw gateway holds it on a kernel interface
// the file does not name, which the node's addresses say (a fact to fill
// in).
func (c *kaConfig) addrGroup(d kaDirective, into map[string]*kaLaddrGroup, w *warnings) {
	kind, args := d.Name, 1
	if kind == "deny_address_group" {
		args = 0
	}
	if len(d.Args) != 1 {
		w.add(d.Pos, "%s needs one name: ignored", kind)
		return
	}
	name := d.Args[0]
	if o := into[name]; o != nil {
		w.add(d.Pos, "%s %s: defined again (first at %s): the first is used", kind, name, o.d.Pos)
		return
	}
	g := &kaLaddrGroup{d: d}
	warned := map[string]bool{}
	for _, e := range d.Block {
		addrs, bad := groupRange(e.Name)
		if bad != "" || len(e.Args) > args || e.HasBlock {
			form := "not \"ADDRESS [INTERFACE]\""
			if args == 0 {
				form = "not \"ADDRESS\""
			}
			w.add(e.Pos, "%s %s: %s: %s: ignored", kind, name, strings.TrimSpace(e.Name+" "+strings.Join(e.Args, " ")), cmp.Or(bad, form))
			continue
		}
		ifname := ""
		if len(e.Args) == 1 {
			ifname = e.Args[0]
			if !warned[ifname] {
				warned[ifname] = true
				w.add(e.Pos, "local_address_group %s: DPVS's DPDK interface %s is dropped: a gitgw gateway holds its local addresses on a kernel interface of the servers' segment; state them in the node's interfaces (to fill in)", name, ifname)
			}
		}
		for _, a := range addrs {
			if slices.ContainsFunc(g.addrs, func(x laddrEntry) bool { return x.addr == a }) {
				w.add(e.Pos, "%s %s: %s listed twice: once is kept", kind, name, a)
				continue
			}
			g.addrs = append(g.addrs, laddrEntry{addr: a, ifname: ifname, group: name, pos: e.Pos})
		}
	}
	into[name] = g
}

// denyGroup maps a virtual_server's daddr_group_name, DPVS's deny list of
// client addresses (its blacklist), onto the service's source.deny.
func denyGroup(s *service, name string, pos Pos, kc *kaConfig, w *warnings) {
	var g *kaLaddrGroup
	if kc != nil {
		g = kc.denies[name]
	}
	switch {
	case g == nil:
		w.add(pos, "daddr_group_name %s: no deny_address_group %s, so DPVS denies no client: nothing to map", name, name)
		return
	case len(g.addrs) == 0:
		g.used = true
		w.add(pos, "daddr_group_name %s: the deny_address_group (%s) is empty: no client is denied", name, g.d.Pos)
		return
	}
	g.used = true
	if s.source == nil {
		s.source = &sourceRules{}
	}
	for _, e := range g.addrs {
		s.source.deny = append(s.source.deny, netip.PrefixFrom(e.addr, e.addr.BitLen()).String())
	}
}

// drInterfaces gives each dr service the interface of the vrrp_instance
// that holds its VIP (the VIP's dev, else the instance's interface): the
// segment where packets for the VIP arrive and leave again to the servers.
func (c *kaConfig) drInterfaces(w *warnings) {
	for _, s := range c.vservers {
		if s.mode != "dr" {
			continue
		}
		vips := s.vips()
		for _, ki := range c.insts {
			for _, v := range append(slices.Clone(ki.inst.vips), ki.inst.excluded...) {
				if p, err := netip.ParsePrefix(v.addr); err == nil && slices.Contains(vips, p.Addr()) && s.iface == "" {
					s.iface = cmp.Or(v.dev, ki.inst.iface)
				}
			}
		}
		switch {
		case s.iface != "":
		case len(vips) == 0:
			w.add(s.pos, "lb_kind DR by fwmark: the segment's interface (where the marked packets arrive) is not known: set services.%s.interface", s.name)
		default:
			w.add(s.pos, "lb_kind DR: no vrrp_instance holds VIP %s, so the segment's interface is not known: set services.%s.interface", vips[0], s.name)
		}
	}
}

func (c *kaConfig) globals(d kaDirective, w *warnings) {
	for _, g := range d.Block {
		arg := ""
		if len(g.Args) > 0 {
			arg = g.Args[0]
		}
		switch g.Name {
		case "router_id":
			c.routerID = arg
		case "vrrp_version":
			if v, err := integer(arg, 2, 3); err != nil {
				w.add(g.Pos, "vrrp_version: %v", err)
			} else {
				c.version = some(v)
			}
		case "vrrp_garp_master_delay":
			if v, err := seconds(arg); err != nil {
				w.add(g.Pos, "vrrp_garp_master_delay: %v", err)
			} else {
				c.garpDelay = some(v)
			}
		case "vrrp_garp_master_repeat":
			if v, err := integer(arg, 1, 100); err != nil {
				w.add(g.Pos, "vrrp_garp_master_repeat: %v", err)
			} else {
				c.garpRep = some(v)
			}
		case "vrrp_garp_master_refresh":
			if v, err := seconds(arg); err != nil {
				w.add(g.Pos, "vrrp_garp_master_refresh: %v", err)
			} else {
				c.garpRefr = some(v)
			}
		default:
			if why, ok := kaIgnored[g.Name]; ok {
				w.add(g.Pos, "%s: not mapped (%s)", g.Name, why)
			} else {
				w.add(g.Pos, "global_defs %s: not mapped", g.Name)
			}
		}
	}
}

func (c *kaConfig) script(d kaDirective, w *warnings) {
	if len(d.Args) != 1 {
		w.add(d.Pos, "vrrp_script needs one name: ignored")
		return
	}
	s := &kaScript{pos: d.Pos, check: check{kind: "command"}}
	interval, rise, fall := time.Second, 1, 1 // keepalived's defaults
	var timeout opt[time.Duration]
	for _, e := range d.Block {
		arg := strings.Join(e.Args, " ")
		var err error
		switch e.Name {
		case "script":
			s.command = arg
		case "interval":
			err = setTo(&interval)(seconds(arg))
		case "timeout":
			err = setOpt(&timeout)(seconds(arg))
		case "weight":
			if len(e.Args) > 1 {
				w.add(e.Pos, "weight %s: \"reverse\" is not mapped; the weight is applied as keepalived applies a plain weight", arg)
			}
			if len(e.Args) > 0 {
				err = setTo(&s.weight)(integer(e.Args[0], -254, 254))
			}
		case "rise":
			err = setTo(&rise)(integer(arg, 1, 100))
		case "fall":
			err = setTo(&fall)(integer(arg, 1, 100))
		case "user":
			w.add(e.Pos, "user %s: not mapped (gitgw runs check commands as its own service user)", arg)
		case "init_fail":
			w.add(e.Pos, "init_fail: not mapped (a gitgw check starts unknown and needs rise successes)")
		default:
			w.add(e.Pos, "vrrp_script %s: not mapped", e.Name)
		}
		if err != nil {
			w.add(e.Pos, "%s: %v: keepalived's default kept", e.Name, err)
		}
	}
	if interval <= 0 {
		interval = time.Second
	}
	// keepalived gives a script its interval to run when no timeout is set.
	if !timeout.ok || timeout.v <= 0 {
		timeout = some(interval)
	}
	s.check.interval, s.check.timeout = some(interval), timeout
	s.check.rise, s.check.fall = some(rise), some(fall)
	if s.command == "" {
		w.add(d.Pos, "vrrp_script %s has no script: ignored", d.Args[0])
		return
	}
	c.scripts[d.Args[0]] = s
}

func (c *kaConfig) syncGroup(d kaDirective, w *warnings) {
	if len(d.Args) != 1 {
		w.add(d.Pos, "vrrp_sync_group needs one name: ignored")
		return
	}
	for _, e := range d.Block {
		if e.Name != "group" {
			w.add(e.Pos, "vrrp_sync_group %s: not mapped (set it on each instance of the group)", e.Name)
			continue
		}
		for _, m := range e.Block {
			for _, name := range append([]string{m.Name}, m.Args...) {
				c.groups[name] = siteName(d.Args[0])
			}
		}
	}
}

func (c *kaConfig) instance(d kaDirective, w *warnings) *kaInstance {
	if len(d.Args) != 1 {
		w.add(d.Pos, "vrrp_instance needs one name: ignored")
		return nil
	}
	in := &instance{name: siteName(d.Args[0]), pos: d.Pos}
	if in.name != d.Args[0] {
		w.add(d.Pos, "vrrp_instance %q renamed %q (site names allow letters, digits, '_', '.', '-')", d.Args[0], in.name)
	}
	ki := &kaInstance{inst: in, orig: d.Args[0]}
	prio := 100       // keepalived's default
	seen := c.vipSeen // one node's VIPs across its instances: each once
	for _, e := range d.Block {
		arg := ""
		if len(e.Args) > 0 {
			arg = e.Args[0]
		}
		var err error
		switch e.Name {
		case "state":
			ki.state = strings.ToUpper(arg)
		case "interface":
			if !ifnameRE.MatchString(arg) {
				err = fmt.Errorf("%q is not an interface name", arg)
			} else {
				in.iface = arg
			}
		case "virtual_router_id":
			err = setTo(&in.vrid)(integer(arg, 1, 255))
		case "priority":
			err = setTo(&prio)(integer(arg, 1, 255))
		case "advert_int":
			err = setOpt(&in.advert)(seconds(arg))
		case "version":
			err = setOpt(&in.version)(integer(arg, 2, 3))
		case "nopreempt":
			in.preempt = some(false)
			ki.noPre = e.Pos
		case "preempt":
		case "preempt_delay":
			err = setOpt(&in.delay)(seconds(arg))
		case "authentication":
			c.auth(ki, e, w)
		case "virtual_ipaddress":
			in.vips = append(in.vips, vips(e, w, seen, "vrrp_instance "+d.Args[0])...)
		case "virtual_ipaddress_excluded":
			in.excluded = append(in.excluded, vips(e, w, seen, "vrrp_instance "+d.Args[0])...)
		case "track_interface":
			for _, t := range e.Block {
				if !ifnameRE.MatchString(t.Name) {
					w.add(t.Pos, "track_interface %q is not an interface name: ignored", t.Name)
					continue
				}
				ti := trackIf{name: t.Name}
				if len(t.Args) == 2 && t.Args[0] == "weight" {
					v, werr := integer(t.Args[1], -254, 254)
					if werr != nil {
						w.add(t.Pos, "track_interface %s weight: %v: not tracked", t.Name, werr)
						continue
					}
					ti.weight = v
				} else if len(t.Args) > 0 {
					w.add(t.Pos, "track_interface %s %s: not mapped", t.Name, strings.Join(t.Args, " "))
				}
				in.trackIfs = append(in.trackIfs, ti)
			}
		case "track_script":
			for _, t := range e.Block {
				r := scriptRef{name: t.Name, pos: t.Pos}
				if len(t.Args) >= 2 && t.Args[0] == "weight" {
					v, err := integer(t.Args[1], -254, 254)
					if err != nil {
						w.add(t.Pos, "weight: %v", err)
					} else {
						r.weight = some(v)
					}
					if len(t.Args) > 2 {
						w.add(t.Pos, "track_script %s: %q is not mapped", t.Name, strings.Join(t.Args[2:], " "))
					}
				}
				ki.scripts = append(ki.scripts, r)
			}
		case "unicast_src_ip", "mcast_src_ip":
			a, perr := kaAddr(arg)
			if perr != nil {
				err = fmt.Errorf("%q is not an IP address", arg)
			} else {
				ki.srcIP, ki.srcPos = a, e.Pos
				if b, ok := maskBits(arg, a); ok {
					ki.srcBits = b
				}
			}
		case "unicast_peer":
			in.unicast = true
			for _, p := range e.Block {
				a, perr := kaAddr(p.Name)
				if perr != nil {
					w.add(p.Pos, "unicast_peer %q is not an IP address: ignored", p.Name)
					continue
				}
				if len(p.Args) > 0 {
					w.add(p.Pos, "unicast_peer %s: %q not mapped", p.Name, strings.Join(p.Args, " "))
				}
				ki.peers = append(ki.peers, peerRef{addr: a, pos: p.Pos})
			}
		case "garp_master_delay":
			err = setOpt(&in.garpDelay)(seconds(arg))
		case "garp_master_repeat":
			err = setOpt(&in.garpRep)(integer(arg, 1, 100))
		case "garp_master_refresh":
			err = setOpt(&in.garpRefr)(seconds(arg))
		case "notify_master", "notify_backup", "notify_fault", "notify_stop":
			i := map[string]int{"notify_master": 0, "notify_backup": 1, "notify_fault": 2, "notify_stop": 3}[e.Name]
			in.notify[i] = strings.Join(e.Args, " ")
		case "use_vmac":
			in.vmac = true
			if len(e.Args) > 0 {
				w.add(e.Pos, "use_vmac %s: the interface name is not mapped (gitgw names the macvlan itself)", arg)
			}
		default:
			if why, ok := kaIgnored[e.Name]; ok {
				w.add(e.Pos, "%s: not mapped (%s)", e.Name, why)
			} else {
				w.add(e.Pos, "%s: not mapped", e.Name)
			}
		}
		if err != nil {
			w.add(e.Pos, "%s: %v: ignored", e.Name, err)
		}
	}
	switch {
	case in.iface == "":
		w.add(d.Pos, "vrrp_instance %s has no interface: not imported", d.Args[0])
		return nil
	case in.vrid == 0:
		w.add(d.Pos, "vrrp_instance %s has no virtual_router_id: not imported", d.Args[0])
		return nil
	case len(in.vips) == 0:
		w.add(d.Pos, "vrrp_instance %s has no virtual_ipaddress: not imported (a gitgw instance needs a VIP)", d.Args[0])
		return nil
	}
	in.prios = []nodePrio{{prio: prio, state: ki.state}}
	if ki.state == "MASTER" && ki.noPre.Line > 0 {
		w.add(ki.noPre, "nopreempt with state MASTER: keepalived preempts anyway; gitgw does not (preempt: false)")
	}
	return ki
}

func (c *kaConfig) auth(ki *kaInstance, d kaDirective, w *warnings) {
	typ, pass := "", ""
	var passPos Pos
	for _, e := range d.Block {
		switch e.Name {
		case "auth_type":
			typ = strings.ToUpper(strings.Join(e.Args, ""))
		case "auth_pass":
			pass, passPos = strings.Join(e.Args, " "), e.Pos
		default:
			w.add(e.Pos, "authentication %s: not mapped", e.Name)
		}
	}
	switch typ {
	case "PASS":
		if r := []rune(pass); len(r) > 8 {
			w.add(passPos, "auth_pass is longer than 8 characters: keepalived uses the first 8, so does the site")
			pass = string(r[:8])
		}
		if pass == "" {
			w.add(d.Pos, "authentication PASS without auth_pass: not imported")
			return
		}
		ki.inst.password = some(pass)
	default:
		w.add(d.Pos, "auth_type %s: not mapped (gitgw supports PASS only)", typ)
	}
}

// kaAddr reads an address as keepalived does: a "/prefix" or "-range"
// after it is cut off (keepalived's inet_stosockaddr).
func kaAddr(s string) (netip.Addr, error) {
	if i := strings.IndexAny(s, "/-"); i >= 0 {
		s = s[:i]
	}
	return netip.ParseAddr(s)
}

// maskBits is the prefix length written after an address, when it is one.
func maskBits(s string, a netip.Addr) (int, bool) {
	_, m, ok := strings.Cut(s, "/")
	if !ok {
		return 0, false
	}
	if i := strings.IndexByte(m, '-'); i >= 0 {
		m = m[:i]
	}
	b, err := integer(m, 1, a.BitLen())
	return b, err == nil
}

// vipRef is where a node's VIP was first listed.
type vipRef struct {
	pos      Pos
	instance string
}

// vips reads the entries of a virtual_ipaddress block. An address the node
// lists already (in this instance or another) is dropped with a warning:
// the guardrails refuse a VIP held twice (vip-unique).
func vips(d kaDirective, w *warnings, seen map[netip.Addr]vipRef, inst string) []vip {
	var out []vip
	for _, e := range d.Block {
		p, err := prefix(e.Name)
		if err != nil {
			w.add(e.Pos, "%s: %v: ignored", d.Name, err)
			continue
		}
		if first, ok := seen[p.Addr()]; ok {
			w.add(e.Pos, "VIP %s is listed already (%s, %s): this one is dropped (a VIP is held once)", p.Addr(), first.pos, first.instance)
			continue
		}
		seen[p.Addr()] = vipRef{pos: e.Pos, instance: inst}
		v := vip{addr: p.String()}
		for i := 0; i < len(e.Args); i++ {
			k, val := e.Args[i], ""
			if i+1 < len(e.Args) {
				val = e.Args[i+1]
			}
			switch k {
			case "dev":
				if ifnameRE.MatchString(val) {
					v.dev = val
				} else {
					w.add(e.Pos, "%s dev %q is not an interface name: ignored", e.Name, val)
				}
				i++
			case "label":
				v.label = val
				i++
			case "scope":
				if val != "global" {
					w.add(e.Pos, "%s scope %s: not mapped (gitgw adds VIPs with scope global)", e.Name, val)
				}
				i++
			case "brd", "broadcast", "peer", "track_group", "metric", "table":
				w.add(e.Pos, "%s %s %s: not mapped", e.Name, k, val)
				i++
			default:
				w.add(e.Pos, "%s %s: not mapped", e.Name, k)
			}
		}
		out = append(out, v)
	}
	return out
}

// kernelBalance maps an IPVS scheduler (lb_algo, lvs_sched) onto a kernel
// service's balance, at pos, warning where the behaviour differs. gitgw's
// nat keeps connection state, so a turn-taking scheduler is per
// connection there; its dr keeps none, so a new connection's server can
// only come from a hash of its flow (maglev), never from a turn.
func kernelBalance(algo, mode string, servers []*server, pos Pos, what string, w *warnings) string {
	dr := mode == "dr"
	perFlow := func(why string) string {
		if dr {
			w.add(pos, "%s: %s; gitgw's dr keeps no connection state, so each new connection's server comes from a hash of its flow: imported as maglev (the shares follow the weights)", what, why)
			return "maglev"
		}
		return "roundrobin"
	}
	switch algo {
	case "rr":
		if !sameWeights(servers) {
			w.add(pos, "%s: IPVS rr ignores the servers' weights; gitgw's weighs them", what)
		}
		return perFlow("IPVS takes the servers in turn")
	case "wrr":
		return perFlow("IPVS takes the servers in turn, by weight")
	case "sh":
		return "source"
	case "mh":
		return "maglev"
	case "conhash":
		// DPVS's consistent hash, of the client's address by default
		// (hash_target sip): a client stays on its server.
		w.add(pos, "%s: DPVS's consistent hash of the client's address: imported as source, a hash of the client's address too (a client stays on its server), but not a consistent one: a change of the servers moves most clients, not about 1/N of them", what)
		return "source"
	case "wlc", "lc", "sed", "nq":
		if algo == "lc" && !sameWeights(servers) {
			w.add(pos, "%s: IPVS lc ignores the servers' weights; gitgw's weighs them", what)
		}
		why := fmt.Sprintf("gitgw's kernel forwarding has no least-connection scheduler (it counts no open connections per server): new connections are shared by weight whatever each server already holds, so a server slow to finish its connections keeps more of them open than with %s", algo)
		if dr {
			return perFlow(why)
		}
		w.add(pos, "%s: %s: imported as roundrobin", what, why)
		return "roundrobin"
	default:
		// dh, lblc, lblcr, fo, ovf, twos: no kernel map of gitgw's does the same.
		b := "roundrobin"
		if dr {
			b = "maglev"
		}
		w.add(pos, "%s: IPVS scheduler %s is not mapped (gitgw's kernel forwarding balances roundrobin, source or maglev): imported as %s", what, algo, b)
		return b
	}
}

// mapVirtualServer maps an IPVS virtual_server onto a kernel-forwarded
// service; what the site cannot say refuses it, with each reason.
func mapVirtualServer(d kaDirective, ssl *kaSSL, groups map[string]*kaGroup, kc *kaConfig, w *warnings) *service {
	s, ns := virtualServerIn(d, ssl, groups, kc, w)
	if len(ns) > 0 {
		w.refuse("virtual_server "+strings.Join(d.Args, " "), ns)
		return nil
	}
	return s
}

// familyNeeds refuses a virtual_server whose real servers are of another
// address family than its VIP: the kernel's NAT keeps a flow in its
// family, so an IPv6 VIP cannot reach IPv4 servers (DPVS's FNAT does it,
// as NAT64; IPVS does not).
func familyNeeds(s *service, kindPos Pos) []need {
	var vip netip.Addr
	for _, b := range s.binds {
		if ap, err := netip.ParseAddrPort(b); err == nil {
			vip = ap.Addr()
			break
		}
	}
	if !vip.IsValid() {
		return nil
	}
	for _, srv := range s.servers {
		a := srv.addrPort().Addr()
		if a.IsValid() && a.Unmap().Is4() != vip.Unmap().Is4() {
			return []need{needs(kindPos, FeatKernelLB, "real_server %s behind virtual_server %s: forwarding between address families (NAT64) is not built: the kernel's NAT keeps a flow in its family", a, vip)}
		}
	}
	return nil
}

// fnatLocal gives an fnat service the local addresses of its
// laddr_group_name, and says what it needs that the site lacks: DPVS's
// FNAT by fwmark (gitgw's fnat finds its flows by VIP and port) or with
// no local addresses (DPVS then has no source to give a flow).
func fnatLocal(s *service, laddr string, laddrPos, kindPos Pos, laddrs map[string]*kaLaddrGroup, w *warnings) []need {
	var ns []need
	if len(s.fwmarks) > 0 {
		ns = append(ns, needs(kindPos, FeatKernelLB, "lb_kind FNAT by fwmark (gitgw's fnat finds the flows whose source it rewrites by their VIP and port)"))
	}
	g := laddrs[laddr]
	switch {
	case laddr == "":
		return append(ns, needs(kindPos, FeatKernelLB, "lb_kind FNAT without laddr_group_name (no local address to give the flows as their source)"))
	case g == nil:
		return append(ns, needs(laddrPos, FeatKernelLB, "laddr_group_name %s: no local_address_group %s", laddr, laddr))
	case len(g.addrs) == 0:
		return append(ns, needs(laddrPos, FeatKernelLB, "laddr_group_name %s: the group (%s) has no address", laddr, g.d.Pos))
	}
	if len(ns) > 0 {
		return ns
	}
	g.used = true
	for _, e := range g.addrs {
		s.localAddrs = append(s.localAddrs, e.addr.String())
		s.laddrs = append(s.laddrs, e)
	}
	return nil
}

// localAddresses adds to the node, as addresses it must hold, the local
// addresses of its fnat services that none of its interfaces lists: DPVS
// holds them on a DPDK interface; a gitgw gateway on the kernel interface
// of the servers' segment, which the file does not name.
func localAddresses(n *node, kc *kaConfig) {
	for _, s := range kc.vservers {
		for _, e := range s.laddrs {
			if slices.ContainsFunc(n.held, func(h heldAddr) bool { return h.addr == e.addr }) ||
				slices.ContainsFunc(n.ifaces, func(i *iface) bool {
					return slices.ContainsFunc(i.addrs, func(a string) bool { return netip.MustParsePrefix(a).Addr() == e.addr })
				}) {
				continue
			}
			on := ""
			if e.ifname != "" {
				on = ", on DPVS's DPDK interface " + e.ifname
			}
			n.held = append(n.held, heldAddr{addr: e.addr, why: fmt.Sprintf(
				"%s must hold %s, a local address of local_address_group %s (%s%s), the source of the fnat services' flows towards their servers: add it to the kernel interface on the servers' segment",
				n.name, e.addr, e.group, e.pos, on)})
		}
	}
}

// kaVSIgnored are virtual_server and real_server keywords the site has no
// counterpart of, with what is lost.
var kaVSIgnored = map[string]string{
	"ha_suspend":              "gitgw runs the checks on every node, the backup's too; they need no VIP",
	"alpha":                   "gitgw starts a server's check state unknown and needs rise successes, whatever keepalived's alpha/omega",
	"omega":                   "gitgw starts a server's check state unknown and needs rise successes, whatever keepalived's alpha/omega",
	"inhibit_on_failure":      "a server whose check fails is taken out of rotation, not set to weight 0 (quiescent, keeping its connections)",
	"sorry_server_inhibit":    "the backup server is taken out of rotation when down, not set to weight 0",
	"sorry_server_lvs_method": "the backup server is forwarded like the others",
	"ops":                     "UDP one-packet scheduling: gitgw schedules UDP per flow",
	"persistence_engine":      "gitgw's persistence is by client address only",
	"notify_up":               "gitgw reports server state to Git and Prometheus, it runs no command",
	"notify_down":             "gitgw reports server state to Git and Prometheus, it runs no command",
	"quorum_up":               "gitgw has no service quorum; a backup (sorry_server) takes over when no server is up",
	"quorum_down":             "gitgw has no service quorum; a backup (sorry_server) takes over when no server is up",
	"hysteresis":              "gitgw has no service quorum; a backup (sorry_server) takes over when no server is up",
	"uthreshold":              "gitgw's kernel forwarding has no per-server connection limit",
	"lthreshold":              "gitgw's kernel forwarding has no per-server connection limit",
	"smtp_alert":              "gitgw reports to Git and Prometheus, not by e-mail",
	"warmup":                  "gitgw starts every check at once",
	"ip_family":               "gitgw takes the family from the addresses",
}

// virtualServer maps a virtual_server as far as it goes, and says what it
// needs that the site lacks.
func virtualServer(d kaDirective, ssl *kaSSL, w *warnings) (*service, []need) {
	return virtualServerIn(d, ssl, nil, nil, w)
}

// virtualServerIn is virtualServer with the file's virtual_server_groups,
// by name, and its DPVS address groups (kc; nil: none).
func virtualServerIn(d kaDirective, ssl *kaSSL, groups map[string]*kaGroup, kc *kaConfig, w *warnings) (*service, []need) {
	var laddrs map[string]*kaLaddrGroup
	if kc != nil {
		laddrs = kc.laddrs
	}
	what := "virtual_server " + strings.Join(d.Args, " ")
	var s *service
	var ns []need
	port := 0 // the one port of the binds, 0 when by mark or several
	switch {
	case len(d.Args) == 2 && d.Args[0] == "fwmark":
		m, err := integer(d.Args[1], 1, math.MaxUint32)
		if err != nil {
			w.add(d.Pos, "virtual_server fwmark %s: %v: not imported", d.Args[1], err)
			return nil, nil
		}
		s = &service{name: siteName("vs-fwmark-" + d.Args[1]), pos: d.Pos, fwmarks: []int{m}}
		s.comments = append(s.comments, fmt.Sprintf("From virtual_server fwmark %d (%s): the packets the firewall marks %d.", m, d.Pos, m))
	case len(d.Args) == 2 && d.Args[0] == "group":
		g := groups[d.Args[1]]
		if g == nil {
			w.add(d.Pos, "virtual_server group %s: no virtual_server_group %s (keepalived forwards nothing for it): not imported", d.Args[1], d.Args[1])
			return nil, nil
		}
		g.used = true
		s = &service{name: siteName("vsg-" + d.Args[1]), pos: d.Pos, group: what}
		ns = append(ns, groupEntries(g.d, s, w)...)
		if len(s.binds) == 0 && len(s.fwmarks) == 0 && len(ns) == 0 {
			w.add(d.Pos, "virtual_server group %s: the group (%s) has no entries: not imported", d.Args[1], g.d.Pos)
			return nil, nil
		}
		s.comments = append(s.comments, fmt.Sprintf("From virtual_server group %s (%s), virtual_server_group %s (%s).", d.Args[1], d.Pos, d.Args[1], g.d.Pos))
		if len(s.fwmarks) == 0 && len(s.binds) > 0 && !slices.ContainsFunc(s.binds, func(b string) bool {
			return netip.MustParseAddrPort(b).Port() != netip.MustParseAddrPort(s.binds[0]).Port()
		}) {
			port = int(netip.MustParseAddrPort(s.binds[0]).Port())
		}
	case len(d.Args) != 2:
		w.add(d.Pos, "virtual_server %s: only \"virtual_server IP PORT\", \"fwmark N\" or \"group NAME\" maps to a service: not imported", strings.Join(d.Args, " "))
		return nil, nil
	default:
		a, err := netip.ParseAddr(d.Args[0])
		p, perr := integer(d.Args[1], 1, 65535)
		if err != nil || perr != nil {
			w.add(d.Pos, "virtual_server %s: not an address and port: not imported", strings.Join(d.Args, " "))
			return nil, nil
		}
		port = p
		s = &service{name: siteName("vs-" + a.String() + "-" + d.Args[1]), pos: d.Pos, binds: []string{hostPort(a, port)}}
		s.comments = append(s.comments, fmt.Sprintf("From virtual_server %s %d (%s).", a, port, d.Pos))
	}
	delay := 60 * time.Second // keepalived's delay_loop default
	var delayPos *Pos
	var ck *check
	var ckPos Pos
	var protoPos *Pos
	// Where each checked server is checked (connect_port, connect_ip,
	// SMTP_CHECK host blocks), compared once all are read: what all share
	// is the service check's, the rest each server's own.
	type srvPort struct {
		srv     *server
		port    opt[int]
		addr    opt[string]
		targets []string
	}
	var ports []srvPort
	// Real servers and sorry_servers without a checker, among checked ones.
	type srvPos struct {
		srv  *server
		pos  Pos
		kind string
	}
	var unchecked []srvPos
	// Each checked server's command, when checks are commands that may
	// differ between servers.
	type srvCmd struct {
		srv *server
		cmd string
	}
	var cmds []srvCmd
	dispatch := false
	algo, algoPos := "wlc", d.Pos // keepalived's default scheduler
	kind, kindPos := "NAT", d.Pos // keepalived's default forwarding
	laddr, laddrPos := "", d.Pos  // DPVS's laddr_group_name
	var vhost opt[string]
	for _, e := range d.Block {
		arg := strings.Join(e.Args, " ")
		switch e.Name {
		case "delay_loop":
			if v, err := seconds(arg); err == nil {
				delay, delayPos = v, &e.Pos
			} else {
				w.add(e.Pos, "delay_loop: %v", err)
			}
		case "lb_algo", "lvs_sched":
			algo, algoPos = arg, e.Pos
		case "lb_kind", "lvs_method":
			kind, kindPos = strings.ToUpper(arg), e.Pos
		case "laddr_group_name":
			laddr, laddrPos = arg, e.Pos
		case "daddr_group_name":
			denyGroup(s, arg, e.Pos, kc, w)
		case "syn_proxy", "synproxy":
			// DPVS answers the handshake itself and opens the server's
			// only once the client completed it (a SYN flood shield).
			ns = append(ns, needs(e.Pos, FeatKernelLB, "%s (DPVS's SYN proxy: the gateway completes the client's handshake before opening the server's)", e.Name))
		case "quic":
			// DPVS schedules QUIC by the connection id, so a client that
			// changes address stays on its server.
			ns = append(ns, needs(e.Pos, FeatKernelLB, "quic (DPVS's QUIC scheduling by connection id)"))
		case "persistence_timeout":
			v := 360 * time.Second
			if arg != "" {
				var err error
				if v, err = seconds(arg); err != nil {
					w.add(e.Pos, "persistence_timeout: %v", err)
					continue
				}
			}
			s.persistence = some(v)
		case "persistence_granularity":
			if arg != "255.255.255.255" && arg != "32" && arg != "128" {
				w.add(e.Pos, "persistence_granularity %s: not mapped (gitgw's persistence keeps each client address on its server, not a network)", arg)
			}
		case "protocol":
			protoPos = &e.Pos
			switch strings.ToUpper(arg) {
			case "TCP":
			case "UDP":
				s.protocol = "udp"
			default:
				ns = append(ns, needs(e.Pos, FeatProtocol, "protocol %s", arg))
			}
		case "quorum":
			if arg != "1" {
				w.add(e.Pos, "quorum %s: not mapped (gitgw has no service quorum; a backup, keepalived's sorry_server, takes over when no other server is up, as with quorum 1)", arg)
			}
		case "virtualhost":
			if !hostRE.MatchString(arg) {
				ns = append(ns, needs(e.Pos, FeatCheckHeaders, "virtualhost %s", arg))
				continue
			}
			vhost = some(arg)
		case "backup_real_server", "failover_threshold", "failover_up", "failover_down":
			// A failover pool was proposed for keepalived (a pull request
			// with its sample), never released: keepalived skips these.
			w.add(e.Pos, "%s: %s", e.Name, kaUnreleasedWhy)
		case "real_server", "sorry_server":
			srv, c, cp, cns := realServer(e, ssl, vhost, w)
			ns = append(ns, cns...)
			if srv == nil {
				continue
			}
			srv.backup = e.Name != "real_server"
			if slices.ContainsFunc(s.servers, func(o *server) bool { return o.name == srv.name }) {
				w.add(e.Pos, "%s %s: listed twice: ignored", e.Name, strings.Join(e.Args, " "))
				continue
			}
			s.servers = append(s.servers, srv)
			if c == nil {
				unchecked = append(unchecked, srvPos{srv, e.Pos, e.Name})
				continue
			}
			// Each server may be checked at its own port, address or
			// targets; the rest of the check is the service's.
			ports = append(ports, srvPort{srv, c.port, c.address, c.targets})
			c.port, c.address, c.targets = opt[int]{}, opt[string]{}, nil
			if c.asCmd != nil {
				c.asCmd.address = opt[string]{}
			}
			asCmd := c.asCmd
			if c.kind == "command" {
				asCmd = c
			}
			if asCmd != nil {
				cmds = append(cmds, srvCmd{srv, asCmd.cmd})
			}
			switch {
			case ck == nil:
				ck, ckPos = c, cp
			case !sameProbe(ck, c) && (ck.kind == "command" || ck.asCmd != nil) && asCmd != nil:
				// Commands that differ (digests, scripts, keepalived's
				// requests): one command runs each server's, by its name.
				if ck.kind != "command" {
					first := *ck.asCmd
					ck = &first
				}
				dispatch = true
				if ck.timeout != asCmd.timeout {
					w.add(cp, "this real_server's check timeout (%s) differs from the one at %s (%s): the one command check has the longest", formatDuration(asCmd.timeout.v), ckPos, formatDuration(ck.timeout.v))
				}
				ck.timeout = some(max(ck.timeout.v, asCmd.timeout.v))
				if ck.rise != asCmd.rise || ck.fall != asCmd.fall {
					w.add(cp, "this real_server's check timing differs from the one at %s: gitgw checks all servers of a service alike; the first is used (the longest timeout)", ckPos)
				}
			case !sameProbe(ck, c):
				// What is checked differs: the first server's check would
				// be the wrong one for this server.
				ns = append(ns, needs(cp, FeatPerServerCheck, "%s %s: its check differs from the one at %s", e.Name, strings.Join(e.Args, " "), ckPos))
			case !sameCheck(ck, c):
				warnTiming(e, cp, ckPos, w)
			}
		default:
			if why, ok := kaVSIgnored[e.Name]; ok {
				w.add(e.Pos, "%s: not mapped (%s)", e.Name, why)
				continue
			}
			w.add(e.Pos, "virtual_server %s: not mapped", e.Name)
		}
	}
	switch kind {
	case "NAT":
		s.mode = "nat"
	case "DR":
		s.mode = "dr"
	case "FNAT":
		s.mode = "fnat"
		ns = append(ns, fnatLocal(s, laddr, laddrPos, kindPos, laddrs, w)...)
	default: // TUN: IP-in-IP to the servers; DPVS's SNAT
		ns = append(ns, needs(kindPos, FeatKernelLB, "lb_kind %s", kind))
	}
	if laddr != "" && kind != "FNAT" {
		w.add(laddrPos, "laddr_group_name %s: not mapped: lb_kind %s does not rewrite the source (DPVS uses local addresses in FNAT only)", laddr, kind)
	}
	ns = append(ns, familyNeeds(s, kindPos)...)
	if s.mode == "dr" {
		// Direct routing rewrites only the Ethernet addresses: a packet
		// reaches the real server on the virtual_server's port, whatever
		// the real_server's says; keepalived still checks the port it
		// says. So the server is the VIP's port, checked on its own; by
		// mark or with a group of several ports, the server is its
		// address alone: each packet keeps the client's port.
		for _, srv := range s.servers {
			ap := srv.addrPort()
			if int(ap.Port()) == port || ap.Port() == 0 {
				continue
			}
			if port == 0 {
				w.add(d.Pos, "lb_kind DR: real_server %s receives each packet on the port the client asked for (DR cannot change the port); its check stays on %d", ap, ap.Port())
				srv.address = ap.Addr().String()
			} else {
				w.add(d.Pos, "lb_kind DR: real_server %s is forwarded to port %d, the virtual_server's (DR cannot change the port); its check stays on %d", ap, port, ap.Port())
				srv.address = hostPort(ap.Addr(), port)
			}
			for i := range ports {
				if ports[i].srv == srv && !ports[i].port.ok && len(ports[i].targets) == 0 {
					ports[i].port = some(int(ap.Port()))
				}
			}
		}
	}
	// Servers checked at several targets say so themselves; of the
	// others, a port or address all share is the service check's, else
	// each server's own (check_port, check_address).
	var single []srvPort
	for _, p := range ports {
		if len(p.targets) > 0 {
			p.srv.checkTargets = p.targets
			continue
		}
		single = append(single, p)
	}
	if len(single) > 0 {
		samePort := !slices.ContainsFunc(single, func(p srvPort) bool { return p.port != single[0].port })
		sameAddr := !slices.ContainsFunc(single, func(p srvPort) bool { return p.addr != single[0].addr })
		for _, p := range single {
			if samePort {
				ck.port = p.port
			} else {
				p.srv.checkPort = p.port
			}
			if sameAddr {
				ck.address = p.addr
			} else {
				p.srv.checkAddr = p.addr
			}
		}
	}
	if len(unchecked) > 0 && ck != nil {
		// keepalived keeps a real_server without a checker up whatever
		// happens, and never checks a sorry_server: the others' check
		// must not take them out.
		for _, u := range unchecked {
			u.srv.unchecked = true
			if u.kind != "sorry_server" {
				w.add(u.pos, "%s %s has no checker: keepalived keeps it up whatever happens; imported as unchecked: true, which does the same (a dead server keeps its share of the traffic)", u.kind, u.srv.address)
			}
		}
	}
	if dispatch {
		// The proxy names the server it checks in GITGW_SERVER_NAME; a
		// server without a checker stays up, as in keepalived.
		var b strings.Builder
		b.WriteString(`case "$GITGW_SERVER_NAME" in`)
		for _, c := range cmds {
			fmt.Fprintf(&b, " %s) eval %s ;;", shQuote(c.srv.name), shQuote(c.cmd))
		}
		b.WriteString(" *) exit 0 ;; esac")
		ck.cmd = b.String()
		w.add(d.Pos, "%s: its real_servers' checks differ: one command check runs each server's own (HTTP_GET and SSL_GET as keepalived's request, made by bash), chosen by $GITGW_SERVER_NAME", what)
	}
	if protoPos == nil && len(s.binds) > 0 {
		// keepalived sets UDP itself, the kernel's default, and says so
		// ("no protocol set - defaulting to UDP"); for marks alone it
		// leaves the protocol open (below).
		s.protocol = "udp"
		w.add(d.Pos, "%s: no protocol: keepalived defaults to UDP (the kernel's default for an IPVS service) and logs \"no protocol set - defaulting to UDP\": imported as udp; write protocol TCP in the source if TCP was meant", what)
	}
	if len(s.fwmarks) > 0 {
		marks := strings.Trim(fmt.Sprint(s.fwmarks), "[]")
		proto, other := "TCP", "udp"
		if s.protocol == "udp" {
			proto, other = "UDP", "tcp"
		}
		at := d.Pos
		if protoPos != nil {
			at = *protoPos
		}
		w.add(at, "%s: IPVS forwards every protocol's packets with fwmark %s; the imported service takes only %s's: if the firewall marks %s packets %s too, add a service with protocol %q and the same fwmarks", what, marks, proto, strings.ToUpper(other), marks, other)
		if s.mode == "dr" {
			w.add(d.Pos, "%s: gitgw's dr forwards at the interface's ingress, before iptables and nftables prerouting: the mark must be set there, by tc or an nftables netdev ingress chain of priority below 0 (a mark from iptables' mangle table comes too late); the real servers must hold the marked packets' addresses on lo themselves", what)
		} else {
			w.add(d.Pos, "%s: gitgw's nat takes the marked packets in nftables' prerouting at dstnat (priority -100): the mark must be set before, as iptables' mangle PREROUTING does; a mark set later (iptables nat PREROUTING, INPUT), which IPVS still saw, is too late", what)
		}
	}
	sourceWeights(s.servers)
	algoWhat := "lb_algo " + algo
	if algoPos == d.Pos {
		algoWhat = "no lb_algo (keepalived's default is wlc)"
	}
	s.balance = some(kernelBalance(algo, s.mode, s.servers, algoPos, algoWhat, w))
	if len(s.servers) == 0 {
		w.add(d.Pos, "%s has no real_server: not imported", what)
		return nil, nil
	}
	if ck == nil && len(ns) == 0 {
		// keepalived keeps a server without a checker up whatever
		// happens (common for UDP, which a connect cannot probe): the
		// site says so in so many words, and the guardrail
		// service-health-check accepts it only then.
		s.unchecked = true
		w.add(d.Pos, "%s: no real_server has a checker, so keepalived keeps them up whatever happens; imported as unchecked: true, which does the same (a dead server keeps its share of the traffic): give it a check if the servers can answer one", what)
		if delayPos != nil {
			w.add(*delayPos, "delay_loop: not mapped: it paces checkers, and this virtual_server has none")
		}
	}
	if ck != nil {
		ck.interval = some(delay)
		if ck.kind == "command" && !ck.timeout.ok {
			ck.timeout = some(delay) // keepalived's misc_timeout default
		}
		s.check = ck
	}
	return s, ns
}

func sameCheck(a, b *check) bool { return reflect.DeepEqual(a, b) }

// warnTiming names the timing a real server's checker (at cp, in e) sets
// but the service's one check does not take: each connect_timeout and
// retry line of it, else the checker (its timing is keepalived's
// defaults, and differs from the first's at ckPos).
func warnTiming(e kaDirective, cp, ckPos Pos, w *warnings) {
	named := false
	for _, x := range e.Block {
		if x.Pos != cp {
			continue
		}
		for _, y := range x.Block {
			switch y.Name {
			case "connect_timeout", "retry", "nb_get_retry":
				w.add(y.Pos, "%s %s: not mapped: this real_server's check timing differs from the one at %s; gitgw checks all servers of a service alike, with the first's timing", y.Name, strings.Join(y.Args, " "), ckPos)
				named = true
			}
		}
	}
	if !named {
		w.add(cp, "this real_server's check timing differs from the one at %s: gitgw checks all servers of a service alike; the first is used", ckPos)
	}
}

// sameProbe: two checks probe alike, their timing aside.
func sameProbe(a, b *check) bool {
	x, y := *a, *b
	for _, c := range []*check{&x, &y} {
		c.interval, c.timeout, c.rise, c.fall = opt[time.Duration]{}, opt[time.Duration]{}, opt[int]{}, opt[int]{}
	}
	return reflect.DeepEqual(x, y)
}

// kaSSL is keepalived's SSL block: what SSL_GET presents as a client.
type kaSSL struct {
	crt, key opt[string]
	needs    []need // what the site cannot say, for SSL_GET checks
}

// sslBlock reads the SSL block. Its ca is not used to verify servers
// (keepalived verifies no certificate), so it changes nothing.
func sslBlock(d kaDirective, w *warnings) *kaSSL {
	ssl := &kaSSL{}
	for _, e := range d.Block {
		arg := strings.Join(e.Args, " ")
		switch e.Name {
		case "certificate", "key":
			if !strings.HasPrefix(arg, "/") {
				ssl.needs = append(ssl.needs, needs(e.Pos, FeatTLSCheck, "SSL %s %s (a relative path)", e.Name, arg))
				continue
			}
			if e.Name == "certificate" {
				ssl.crt = some(arg)
			} else {
				ssl.key = some(arg)
			}
		case "password":
			ssl.needs = append(ssl.needs, needs(e.Pos, FeatTLSCheck, "SSL password (an encrypted key)"))
		case "ca":
			w.add(e.Pos, "SSL ca: not mapped (keepalived verifies no server certificate, nor does the imported check)")
		default:
			w.add(e.Pos, "SSL %s: not mapped", e.Name)
		}
	}
	if ssl.crt.ok != ssl.key.ok {
		ssl.needs = append(ssl.needs, needs(d.Pos, FeatTLSCheck, "SSL with a certificate or a key alone"))
	}
	return ssl
}

// kaUnreleasedWhy names keywords of keepalived samples published with
// proposed changes (pull requests) that no release has: keepalived 2.2
// to 2.4.3 say "Unknown keyword" and skip them, so the import does too.
const kaUnreleasedWhy = "no released keepalived knows it (2.2 to 2.4.3 say \"Unknown keyword\" and skip it: it comes from a proposed change's sample): ignored, as keepalived ignores it with all it holds"

// kaChecks are keepalived's real_server checkers the site cannot make.
var kaChecks = map[string]Feature{
	"DNS_CHECK": FeatProtocolCheck, "BFD_CHECK": FeatProtocolCheck,
	"FILE_CHECK": FeatScriptCheck,
}

func realServer(d kaDirective, ssl *kaSSL, vhost opt[string], w *warnings) (*server, *check, Pos, []need) {
	if len(d.Args) != 1 && len(d.Args) != 2 {
		w.add(d.Pos, "%s needs an address and a port: ignored", d.Name)
		return nil, nil, Pos{}, nil
	}
	a, err := netip.ParseAddr(d.Args[0])
	port, perr := 0, error(nil)
	if len(d.Args) == 2 {
		port, perr = integer(d.Args[1], 1, 65535)
	}
	if err != nil || perr != nil {
		w.add(d.Pos, "%s %s: not an address and port: ignored", d.Name, strings.Join(d.Args, " "))
		return nil, nil, Pos{}, nil
	}
	// Without a port (usual by fwmark), IPVS sends each packet to the port
	// the client asked for: the site's bare address says the same.
	srv := &server{name: siteName(a.String()), address: a.String()}
	if len(d.Args) == 2 {
		srv = &server{name: siteName(a.String() + "-" + d.Args[1]), address: hostPort(a, port)}
	}
	var ck *check
	var ckPos Pos
	var ns []need
	for _, e := range d.Block {
		arg := strings.Join(e.Args, " ")
		switch e.Name {
		case "weight":
			v, err := integer(arg, 0, 65535)
			switch {
			case err != nil:
				w.add(e.Pos, "weight: %v", err)
			case v == 0:
				srv.drain = true
			case v > 256:
				w.add(e.Pos, "weight %d: gitgw weights go up to 256: 256", v)
				srv.weight = some(256)
			default:
				srv.weight = some(v)
			}
		case "TCP_CHECK", "HTTP_GET", "SSL_GET", "SMTP_CHECK", "MISC_CHECK", "PING_CHECK", "UDP_CHECK":
			var c *check
			var cns []need
			switch e.Name {
			case "MISC_CHECK":
				c, cns = miscCheck(e, a, w)
			case "PING_CHECK":
				c, cns = pingCheck(e, a, w)
			case "UDP_CHECK":
				c, cns = udpCheck(e, netip.AddrPortFrom(a, uint16(port)), w)
			default:
				c, cns = lvsCheck(e, netip.AddrPortFrom(a, uint16(port)), ssl, vhost, w)
			}
			ns = append(ns, cns...)
			switch {
			case ck == nil:
				ck, ckPos = c, e.Pos
			case c == nil:
			default:
				ns = append(ns, secondChecker(ck, c, netip.AddrPortFrom(a, uint16(port)), e, ckPos, w)...)
			}
		default:
			if f, ok := kaChecks[e.Name]; ok {
				ns = append(ns, needs(e.Pos, f, "%s", e.Name))
				continue
			}
			if e.Name == "CI-LINUX" {
				// keepalived 2.x warns "Unknown keyword" and skips it (the
				// checker went with 1.x): the server runs unchecked there.
				w.add(e.Pos, "CI-LINUX: keepalived 2.x does not know this checker (it says \"Unknown keyword\" and skips the line), so the real server has no checker: imported as keepalived 2.x runs it")
				continue
			}
			if why, ok := kaVSIgnored[e.Name]; ok {
				w.add(e.Pos, "%s: not mapped (%s)", e.Name, why)
				continue
			}
			w.add(e.Pos, "real_server %s: not mapped", e.Name)
		}
	}
	return srv, ck, ckPos, ns
}

// secondChecker folds another checker (c, directive e) of one real server
// at srv into its first (ck, at ckPos). keepalived takes a real server
// down when any of its checkers fails (keepalived 2's way of checking
// several addresses, which replaced SMTP_CHECK's host blocks): checkers
// that differ only by where they connect become the first's targets, all
// of which must pass; others are refused, since the site checks a server
// one way and dropping one would pass servers keepalived takes down.
func secondChecker(ck, c *check, srv netip.AddrPort, e kaDirective, ckPos Pos, w *warnings) []need {
	where := func(c *check) []string {
		if len(c.targets) > 0 {
			return c.targets
		}
		t := srv
		if c.address.ok {
			t = netip.AddrPortFrom(netip.MustParseAddr(c.address.v), t.Port())
		}
		if c.port.ok {
			t = netip.AddrPortFrom(t.Addr(), uint16(c.port.v))
		}
		return []string{t.String()}
	}
	a, b := ck.clone(), c.clone()
	for _, x := range []*check{a, b} {
		x.address, x.port, x.targets = opt[string]{}, opt[int]{}, nil
		if x.asCmd != nil {
			cmd := *x.asCmd
			cmd.address, cmd.port = opt[string]{}, opt[int]{}
			x.asCmd = &cmd
		}
	}
	if !sameProbe(a, b) {
		return []need{needs(e.Pos, FeatPerServerCheck, "%s beside the checker at %s (keepalived takes the real server down when any checker fails)", e.Name, ckPos)}
	}
	if !sameCheck(a, b) {
		w.add(e.Pos, "%s: its timing differs from the checker's at %s: the server is checked at both with the first's timing", e.Name, ckPos)
	}
	targets := where(ck)
	for _, t := range where(c) {
		if !slices.Contains(targets, t) {
			targets = append(targets, t)
		}
	}
	if len(targets) > 1 { // else the same place twice: the first says it
		ck.address, ck.port, ck.targets = opt[string]{}, opt[int]{}, targets
	}
	return nil
}

// miscCheck maps a MISC_CHECK onto a command check: exit 0 is up, as in
// keepalived. The real server's address written in the command becomes
// $GITGW_SERVER_ADDR, which the proxy sets to the server it checks, so
// that real servers whose scripts differ only by it share one check.
func miscCheck(d kaDirective, srv netip.Addr, w *warnings) (*check, []need) {
	c := &check{kind: "command", rise: some(1), fall: some(1)}
	var ns []need
	for _, e := range d.Block {
		arg := strings.Join(e.Args, " ")
		switch e.Name {
		case "misc_path":
			words := strings.Fields(arg)
			for i, word := range words {
				if a, err := netip.ParseAddr(word); err == nil && a == srv {
					words[i] = "$GITGW_SERVER_ADDR"
				}
			}
			c.cmd = strings.Join(words, " ")
		case "misc_timeout":
			if v, err := seconds(arg); err == nil {
				c.timeout = some(v)
			} else {
				w.add(e.Pos, "misc_timeout: %v", err)
			}
		case "misc_dynamic":
			ns = append(ns, needs(e.Pos, FeatScriptCheck, "misc_dynamic (the script's exit code sets the server's weight)"))
		case "retry", "nb_get_retry":
			if v, err := integer(arg, 1, 100); err == nil {
				c.fall = some(v)
			} else {
				w.add(e.Pos, "%s: %v", e.Name, err)
			}
		case "user":
			w.add(e.Pos, "MISC_CHECK user %s: not mapped (gitgw runs check commands as its own service user)", arg)
		default:
			w.add(e.Pos, "MISC_CHECK %s: not mapped", e.Name)
		}
	}
	if strings.TrimSpace(c.cmd) == "" {
		ns = append(ns, needs(d.Pos, FeatScriptCheck, "MISC_CHECK without misc_path"))
		return nil, ns
	}
	w.add(d.Pos, "MISC_CHECK: imported as a command check run by /bin/sh -c on the gateway (keepalived splits misc_path into arguments itself; shell characters in it now mean what they mean to sh)")
	return c, ns
}

// pingCheck maps a PING_CHECK, an ICMP echo to the real server, onto a
// command check running ping (the proxy's own checks speak TCP): up when
// one echo is answered within the timeout, as in keepalived.
func pingCheck(d kaDirective, srv netip.Addr, w *warnings) (*check, []need) {
	c := &check{kind: "command", timeout: some(5 * time.Second), rise: some(1), fall: some(1)}
	var ns []need
	for _, e := range d.Block {
		arg := strings.Join(e.Args, " ")
		switch e.Name {
		case "connect_timeout", "retry", "nb_get_retry":
			checkTiming(e, arg, c, w)
		case "connect_ip":
			ns = append(ns, connectIP(e, arg, srv, c)...)
		default:
			w.add(e.Pos, "PING_CHECK %s: not mapped", e.Name)
		}
	}
	// ping waits whole seconds; the check's timeout stops it anyway.
	secs := max(1, int((c.timeout.v+time.Second-1)/time.Second))
	c.cmd = fmt.Sprintf(`ping -n -q -c 1 -W %d "$GITGW_SERVER_ADDR"`, secs)
	w.add(d.Pos, "PING_CHECK: imported as a command check running ping (an ICMP echo to the server; it needs ping on the node, allowed to the gitgw service)")
	return c, ns
}

// connectIP reads a checker's connect_ip: the check's address, unless it
// is the real server's own (srv).
func connectIP(e kaDirective, arg string, srv netip.Addr, c *check) []need {
	a, err := kaAddr(arg)
	switch {
	case err != nil:
		return []need{needs(e.Pos, FeatCheckPort, "connect_ip %s", arg)}
	case a != srv:
		c.address = some(a.String())
	}
	return nil
}

// lvsCheck maps a TCP_CHECK, HTTP_GET, SSL_GET or SMTP_CHECK of the real
// server at srv; what it needs that the site lacks refuses the
// virtual_server.
func lvsCheck(d kaDirective, srv netip.AddrPort, ssl *kaSSL, vhost opt[string], w *warnings) (*check, []need) {
	c := &check{kind: "tcp", timeout: some(5 * time.Second), rise: some(1), fall: some(1)}
	var ns []need
	var reqs []httpRequest
	var hosts []netip.AddrPort // SMTP_CHECK host blocks
	host := vhost              // the virtual_server's, unless the check has its own
	sni := false
	switch d.Name {
	case "HTTP_GET":
		c.kind = "http"
	case "SSL_GET":
		// keepalived does not verify the server's certificate; the SSL
		// block's certificate is its client certificate.
		c.kind, c.tls = "http", &checkTLS{verify: "none"}
		if ssl != nil {
			c.tls.crt, c.tls.key = ssl.crt, ssl.key
			ns = append(ns, ssl.needs...)
		}
	case "SMTP_CHECK":
		c.kind = "smtp"
	}
	for _, e := range d.Block {
		arg := strings.Join(e.Args, " ")
		switch e.Name {
		case "connect_timeout", "retry", "nb_get_retry":
			checkTiming(e, arg, c, w)
		case "connect_port":
			v, err := integer(arg, 1, 65535)
			switch {
			case err != nil:
				ns = append(ns, needs(e.Pos, FeatCheckPort, "connect_port %s", arg))
			case v != int(srv.Port()):
				c.port = some(v) // the server's own port changes nothing
			}
		case "connect_ip":
			ns = append(ns, connectIP(e, arg, srv.Addr(), c)...)
		case "virtualhost":
			if !hostRE.MatchString(arg) {
				ns = append(ns, needs(e.Pos, FeatCheckHeaders, "virtualhost %s", arg))
				continue
			}
			host = some(arg)
		case "enable_sni":
			sni = d.Name == "SSL_GET"
		case "helo_name":
			if d.Name != "SMTP_CHECK" || !domainRE.MatchString(arg) {
				ns = append(ns, needs(e.Pos, FeatProtocolCheck, "helo_name %s", arg))
				continue
			}
			c.domain = some(arg)
		case "host":
			if d.Name != "SMTP_CHECK" {
				ns = append(ns, needs(e.Pos, FeatCheckPort, "%s host block (a check of other addresses)", d.Name))
				continue
			}
			t, hns := smtpHost(e, srv, c, w)
			hosts, ns = append(hosts, t), append(ns, hns...)
		case "url":
			if c.kind != "http" {
				w.add(e.Pos, "%s %s: not mapped", d.Name, e.Name)
				continue
			}
			r, rns := kaURL(e, w)
			reqs, ns = append(reqs, r), append(ns, rns...)
		default:
			w.add(e.Pos, "%s %s: not mapped", d.Name, e.Name)
		}
	}
	switch {
	case len(hosts) == 1:
		// One host block: the check's own address and port.
		c.address, c.port = opt[string]{}, opt[int]{}
		if hosts[0].Addr() != srv.Addr() {
			c.address = some(hosts[0].Addr().String())
		}
		if hosts[0].Port() != srv.Port() {
			c.port = some(int(hosts[0].Port()))
		}
	case len(hosts) > 1:
		// keepalived checks each host in turn, only them, and takes the
		// server down when one fails.
		c.address, c.port = opt[string]{}, opt[int]{}
		for _, h := range hosts {
			c.targets = append(c.targets, h.String())
		}
	}
	if c.kind == "http" {
		if len(reqs) == 0 {
			// No url: GET / accepting what keepalived accepts.
			reqs = []httpRequest{{method: "GET", path: "/", statuses: []string{"200-299"}}}
		}
		for i := range reqs {
			if reqs[i].host == "" && host.ok {
				reqs[i].host = host.v
			}
		}
		if sni && host.ok && c.tls != nil {
			c.tls.sni = host
		}
		if slices.ContainsFunc(reqs, func(r httpRequest) bool { return r.digest != "" }) {
			tools := "bash, sed and md5sum"
			if c.tls != nil {
				tools = "bash, openssl, sed and md5sum"
			}
			w.add(d.Pos, "%s with a url digest: imported as a command check that makes keepalived's request and compares each url's status and body MD5 (it runs %s on the node)", d.Name, tools)
			// keepalived bounds each url's request by connect_timeout,
			// one after the other; the command makes them all.
			timeout := some(c.timeout.v * time.Duration(len(reqs)))
			return &check{kind: "command", cmd: digestCommand(reqs, c.tls), timeout: timeout, rise: c.rise, fall: c.fall, port: c.port, address: c.address}, ns
		}
		if !slices.ContainsFunc(reqs, func(r httpRequest) bool { return r.expectRegex != "" }) {
			c.asCmd = &check{kind: "command", cmd: digestCommand(reqs, c.tls), timeout: some(c.timeout.v * time.Duration(len(reqs))), rise: c.rise, fall: c.fall, address: c.address}
		}
		if len(reqs) == 1 {
			// One url: the check's own fields.
			r := reqs[0]
			c.method, c.path, c.statuses, c.expectStatus = some(r.method), some(r.path), r.statuses, r.expectStatus
			c.headers = r.headers
			if r.expectRegex != "" {
				c.expectRegex = some(r.expectRegex)
			}
			if r.host != "" {
				c.host = some(r.host)
			}
		} else {
			c.requests = reqs // keepalived requires every url to pass
		}
	}
	return c, ns
}

// smtpHost reads one host block of an SMTP_CHECK (deprecated in keepalived
// 2, still read): where to check, by default the real server at srv, or
// what the check's own connect_ip and connect_port (in c) say.
func smtpHost(d kaDirective, srv netip.AddrPort, c *check, w *warnings) (netip.AddrPort, []need) {
	a, port := srv.Addr(), srv.Port()
	if c.address.ok {
		a = netip.MustParseAddr(c.address.v)
	}
	if c.port.ok {
		port = uint16(c.port.v)
	}
	var ns []need
	for _, e := range d.Block {
		arg := strings.Join(e.Args, " ")
		switch e.Name {
		case "connect_ip":
			v, err := kaAddr(arg)
			if err != nil {
				ns = append(ns, needs(e.Pos, FeatCheckPort, "SMTP_CHECK host connect_ip %s", arg))
				continue
			}
			a = v
		case "connect_port":
			v, err := integer(arg, 1, 65535)
			if err != nil {
				ns = append(ns, needs(e.Pos, FeatCheckPort, "SMTP_CHECK host connect_port %s", arg))
				continue
			}
			port = uint16(v)
		case "bindto", "bind_port", "bind_if":
			w.add(e.Pos, "SMTP_CHECK host %s: not mapped (gitgw's check leaves from the address and port the route gives)", e.Name)
		case "connect_timeout":
			w.add(e.Pos, "SMTP_CHECK host connect_timeout: not mapped (the check's timeout applies at every host)")
		default:
			w.add(e.Pos, "SMTP_CHECK host %s: not mapped", e.Name)
		}
	}
	return netip.AddrPortFrom(a, port), ns
}

// kaURL maps one url block of an HTTP_GET or SSL_GET.
func kaURL(e kaDirective, w *warnings) (httpRequest, []need) {
	r := httpRequest{method: "GET", path: "/"}
	var ns []need
	var digestPos Pos
	for _, u := range e.Block {
		arg := strings.Join(u.Args, " ")
		switch u.Name {
		case "path":
			if !strings.HasPrefix(arg, "/") || strings.ContainsAny(arg, " \t\r\n\x00") || !utf8.ValidString(arg) {
				ns = append(ns, needs(u.Pos, FeatCheckHeaders, "path %s (no absolute path)", arg))
				continue
			}
			r.path = arg
		case "status_code":
			st, ok := statusList(strings.Join(u.Args, ","))
			if !ok {
				ns = append(ns, needs(u.Pos, FeatStatusRange, "status_code %s", arg))
				continue
			}
			if v, err := strconv.Atoi(st[0]); err == nil && len(st) == 1 {
				r.expectStatus = some(v)
			} else {
				r.statuses = st
			}
		case "virtualhost":
			if !hostRE.MatchString(arg) {
				ns = append(ns, needs(u.Pos, FeatCheckHeaders, "virtualhost %s", arg))
				continue
			}
			r.host = arg
		case "digest":
			if _, err := hex.DecodeString(arg); err != nil || len(arg) != 32 {
				// keepalived reports it and checks without it.
				w.add(u.Pos, "digest %s: not 32 hexadecimal digits: keepalived ignores it, so does the site", arg)
				continue
			}
			r.digest, digestPos = strings.ToLower(arg), u.Pos
		case "regex":
			if _, err := regexp.Compile(arg); err != nil || !utf8.ValidString(arg) {
				ns = append(ns, needs(u.Pos, FeatCheckSequence, "regex %s (not an RE2 regexp)", arg))
				continue
			}
			r.expectRegex = arg
		case "regex_no_match", "regex_options", "regex_stack", "regex_min_offset", "regex_max_offset":
			ns = append(ns, needs(u.Pos, FeatCheckSequence, "%s %s", u.Name, arg))
		case "username", "password":
			// Basic authentication was proposed for keepalived (a pull
			// request with its sample), never released: keepalived says
			// "Unknown keyword" and checks without credentials.
			w.add(u.Pos, "url %s: %s", u.Name, kaUnreleasedWhy)
		default:
			w.add(u.Pos, "url %s: not mapped", u.Name)
		}
	}
	if !r.expectStatus.ok && len(r.statuses) == 0 {
		r.statuses = []string{"200-299"} // keepalived's default
	}
	if r.digest != "" && r.expectRegex != "" {
		ns = append(ns, needs(digestPos, FeatCheckDigest, "digest with a regex in one url"))
	}
	return r, ns
}

// checkTiming maps the timing every keepalived checker shares:
// connect_timeout is the check's timeout, retry (nb_get_retry) how many
// failures mark the server down.
func checkTiming(e kaDirective, arg string, c *check, w *warnings) {
	switch e.Name {
	case "connect_timeout":
		if v, err := seconds(arg); err == nil {
			c.timeout = some(v)
		} else {
			w.add(e.Pos, "connect_timeout: %v", err)
		}
	default:
		if v, err := integer(arg, 1, 100); err == nil {
			c.fall = some(v)
		} else {
			w.add(e.Pos, "%s: %v", e.Name, err)
		}
	}
}

// kaGroup is a virtual_server_group, mapped with the virtual_server that
// uses it (used).
type kaGroup struct {
	d    kaDirective
	used bool
}

// maxGroupRange bounds the addresses of one range of a
// virtual_server_group: each becomes a bind (a kernel service of its own).
const maxGroupRange = 256

// groupEntries maps a virtual_server_group's entries onto s: "IP PORT" and
// "IP-LAST PORT" (keepalived's range: the last byte of an IPv4 address,
// the last 16 bits of an IPv6 one, up to LAST) become binds, "fwmark N"
// fwmarks. keepalived makes one IPVS service of each address and mark,
// all with the virtual_server's settings: gitgw's kernel driver does
// the same with the binds and marks of one service. An entry the site
// cannot say refuses the service: dropping it would drop its traffic.
func groupEntries(g kaDirective, s *service, w *warnings) []need {
	var ns []need
	name := g.Args[0]
	bad := func(e kaDirective, why string) {
		ns = append(ns, needs(e.Pos, FeatVSGroup, "virtual_server_group %s entry %s (%s)", name, strings.TrimSpace(e.Name+" "+strings.Join(e.Args, " ")), why))
	}
	seen := map[string]bool{}
	for _, e := range g.Block {
		if e.HasBlock {
			bad(e, "a block")
			continue
		}
		if e.Name == "fwmark" {
			if len(e.Args) != 1 {
				bad(e, "fwmark takes one mark")
				continue
			}
			m, err := integer(e.Args[0], 1, math.MaxUint32)
			if err != nil {
				bad(e, err.Error())
				continue
			}
			if slices.Contains(s.fwmarks, m) {
				w.add(e.Pos, "virtual_server_group %s: fwmark %d listed twice: once", name, m)
				continue
			}
			s.fwmarks = append(s.fwmarks, m)
			continue
		}
		if len(e.Args) != 1 {
			bad(e, "not an address and a port")
			continue
		}
		port, err := integer(e.Args[0], 1, 65535)
		if err != nil {
			bad(e, "port: "+err.Error())
			continue
		}
		addrs, why := groupRange(e.Name)
		if why != "" {
			bad(e, why)
			continue
		}
		for _, a := range addrs {
			b := hostPort(a, port)
			if seen[b] {
				w.add(e.Pos, "virtual_server_group %s: %s listed twice: once", name, b)
				continue
			}
			seen[b] = true
			s.binds = append(s.binds, b)
		}
	}
	return ns
}

// groupRange reads an address or keepalived's range of addresses
// "192.0.2.3-10" (the last byte runs from 3 to 10) or "2001:db8::2-9" (the
// last 16 bits, in hex); why says what is wrong, "" if nothing.
func groupRange(s string) ([]netip.Addr, string) {
	first, last, isRange := strings.Cut(s, "-")
	a, err := netip.ParseAddr(first)
	if err != nil || a.Zone() != "" {
		return nil, "not an address"
	}
	if !isRange {
		return []netip.Addr{a}, ""
	}
	b := a.AsSlice()
	var lo, hi uint64
	if a.Is4() {
		lo = uint64(b[3])
		hi, err = strconv.ParseUint(last, 10, 8)
	} else {
		lo = uint64(b[14])<<8 | uint64(b[15])
		hi, err = strconv.ParseUint(last, 16, 16)
	}
	switch {
	case err != nil:
		return nil, fmt.Sprintf("range end %q is not the last part of an address", last)
	case hi < lo:
		return nil, fmt.Sprintf("range end %s is below its start", last)
	case hi-lo+1 > maxGroupRange:
		return nil, fmt.Sprintf("a range of %d addresses, more than %d: each would be a kernel service of its own; list the addresses the servers really take, or use a firewall mark", hi-lo+1, maxGroupRange)
	}
	var out []netip.Addr
	for v := lo; v <= hi; v++ {
		if a.Is4() {
			b[3] = byte(v)
		} else {
			b[14], b[15] = byte(v>>8), byte(v)
		}
		out = append(out, netip.AddrFrom16([16]byte(pad16(b))).Unmap())
	}
	return out, ""
}

// pad16 is an address's bytes as 16 (IPv4 mapped).
func pad16(b []byte) []byte {
	if len(b) == 16 {
		return slices.Clone(b)
	}
	a4 := netip.AddrFrom4([4]byte(b))
	v := a4.As16()
	return v[:]
}
