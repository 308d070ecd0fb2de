package importer

import (
	"cmp"
	"encoding/hex"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// hapProxy is a defaults, frontend, backend or listen section with what it
// inherited from the defaults section before it.
type hapProxy struct {
	kind, name string
	pos        Pos
	mode       string
	modePos    Pos
	binds      []string
	// paths resolves relative file names (the global crt-base, ca-base
	// and default-path read so far).
	paths *hapPaths
	// bindLines counts the bind lines (and a listen line's address),
	// usable or not: a proxy with none listens nowhere.
	bindLines  int
	maxconn    opt[int]
	timeouts   [7]opt[time.Duration]
	checkTO    opt[time.Duration]
	balance    opt[string]
	retries    opt[int]
	redispatch opt[bool]
	defBackend string
	defPos     Pos
	servers    []*server
	srvChecks  []srvCheck
	srvMore    []srvMore // with servers, what is not the check's
	// src: a proxy-level "source" line (sourceMode); nil: none.
	src        *hapSrc
	defServer  []string // default-server words
	httpchk    *check
	httpPos    Pos
	expectSet  bool
	httpConn   *hapConnect // http-check connect
	tcpcheck   *check      // its steps are the tcp-check rules
	proxyProto string
	stats      bool
	persist    opt[time.Duration]
	stickOn    bool // a "stick on src" uses persist
	// cookiePos: a cookie line (persistence by an HTTP cookie); with mode
	// http, a request holding a server's cookie goes to that server, a
	// backup one included.
	cookiePos   Pos
	cookieWords []string
	// cookieRewrites: request rewrites of the Cookie header (reqrep,
	// reqadd, reqdel, http-request set-header…): they pick the server of
	// a persistence cookie, here or in a proxy behind this one.
	cookieRewrites []hapLine
	// dispatch: the one address a proxy without servers sends to.
	dispatch    string
	dispatchPos Pos
	// Source rules: the section's ACLs, stick-table and tcp-request
	// connection lines (frontend and listen only), mapped in sourceRules.
	acls      map[string]*hapACL
	lists     map[string]*hapUserlist // the file's userlists (hapauth.go)
	table     *hapTable
	connRules []hapLine
	// What the proxy needs that the site lacks: needs refuse the service,
	// httpNeeds and tcpNeeds its check when that kind of check is used,
	// protoNeed is a protocol check the site cannot make.
	needs               []need
	httpNeeds, tcpNeeds []need
	protoNeed           *need
	httpSends, httpExp  int
	// tcpDefault: a tcp-check connect with "default" takes the server's
	// check-ssl, by index into tcpcheck.steps.
	tcpDefault map[int]bool
	// chkLine is the section's own check option (httpchk, ssl-hello-chk,
	// …), httpLines its own http-check lines: a later check option
	// replaces them, and says so.
	chkLine   *hapLine
	httpLines []hapLine
	// http: what HTTP mode maps (haphttp.go); asPool: the backend is
	// imported as a pool of HTTP rules.
	http   *hapHTTP
	asPool bool
	// tarpitTO: timeout tarpit; statsURI, statsPos: the stats page's
	// prefix and first line; rewrites: reqrep/reqdel lines, which the
	// request filters after them see applied (hapreqfilter.go).
	tarpitTO *tarpitOpt
	statsURI string
	statsPos Pos
	rewrites []hapLine
}

// hapConnect is an http-check or tcp-check connect's options.
type hapConnect struct {
	port opt[int]
	addr opt[string]
	ssl  bool
	def  bool // "default": the server line's check settings apply
	sni  opt[string]
}

// srvMore is what a server line says besides its check: how its name is
// resolved, its source.
type srvMore struct {
	pos       Pos
	byName    bool
	resolvers string  // the resolvers section it names
	src       *hapSrc // the server's own source, replacing the proxy's; nil: none
	cookie    string  // its cookie value, when it has one
	socks4    string  // socks4 ADDR:PORT, when it has one (server.via)
	checkVia  bool    // check-via-socks4
}

// hapResolvers is a resolvers section: how often it resolves a name again.
type hapResolvers struct {
	pos      Pos
	interval time.Duration
}

// srvCheck is a server's own check settings.
type srvCheck struct {
	on                bool
	inter, fast, down opt[time.Duration]
	rise, fall        opt[int]
	shutdown          bool
	pos               Pos
	name              string
	needs             []need // what the server's check needs that the site lacks
	// The check's own port and address (port, addr), compared across
	// servers apart from the rest: the site has one per service.
	port    opt[int]
	addr    opt[string]
	portPos Pos
	// TLS of the check (check-ssl and the server's verify, ca-file, crt,
	// check-sni); tlsNeeds are what it needs when the check uses TLS.
	ssl      bool
	tls      checkTLS
	tlsNeeds []need
}

// inherit copies what a proxy takes from a defaults section.
func (d *hapProxy) inherit(kind, name string, pos Pos) *hapProxy {
	p := *d
	p.kind, p.name, p.pos = kind, name, pos
	p.binds, p.servers, p.srvChecks, p.srvMore, p.defBackend = nil, nil, nil, nil, ""
	p.acls, p.table, p.connRules, p.rewrites = nil, nil, nil, nil
	p.defServer = slices.Clone(d.defServer)
	p.needs, p.httpNeeds, p.tcpNeeds = slices.Clone(d.needs), slices.Clone(d.httpNeeds), slices.Clone(d.tcpNeeds)
	if d.httpchk != nil {
		p.httpchk = d.httpchk.clone()
	}
	if d.tcpcheck != nil {
		p.tcpcheck = d.tcpcheck.clone()
	}
	if d.httpConn != nil {
		c := *d.httpConn
		p.httpConn = &c
	}
	p.tcpDefault = maps.Clone(d.tcpDefault)
	p.chkLine, p.httpLines = nil, nil
	if d.http != nil {
		p.http = &hapHTTP{forwardFor: d.http.forwardFor, fwd: d.http.fwd} // only option forwardfor is inherited
	}
	return &p
}

// hapIgnored are keywords that need nothing in a gitgw site, with the reason.
var hapIgnored = map[string]string{
	"log": "gitgw logs to the journal", "chroot": "gitgw runs as its own hardened systemd service",
	"pidfile": "gitgw runs as a systemd service", "user": "gitgw runs as its own systemd service",
	"group": "gitgw runs as its own systemd service", "uid": "gitgw runs as its own systemd service",
	"gid": "gitgw runs as its own systemd service", "daemon": "gitgw runs as a systemd service",
	"nbproc": "gitgw's proxy uses every CPU", "nbthread": "gitgw's proxy uses every CPU",
	"cpu-map": "gitgw's proxy uses every CPU; pin with the node's tuning", "stats": "gitgw has `gitgw status`, /metrics and a status page on 127.0.0.1:9142",
	"ulimit-n": "set LimitNOFILE on the agent's unit", "master-worker": "gitgw runs as a systemd service",
	"description": "", "node": "", "unique-id-format": "", "log-format": "gitgw logs to the journal",
	"log-tag":      "gitgw logs to the journal",
	"busy-polling": "gitgw's proxy polls for 100us after traffic by default: nodes: NAME: tuning: proxy_busy_poll, up to \"10ms\"",
}

// hapConfig is a mapped haproxy.cfg.
type hapConfig struct {
	globalMaxconn opt[int]
	globalPos     Pos
	// verifyNone: global ssl-server-verify none, the servers' default verify.
	verifyNone bool
	proxies    []*hapProxy
	backends   map[string]*hapProxy
	resolvers  map[string]hapResolvers
	// fwds are the option forwardfor lines read (haphttp.go).
	fwds []*fwdOption
	// userlists by name, in the file's order (hapauth.go).
	userlists     map[string]*hapUserlist
	userlistOrder []string
}

func mapHAProxy(secs []*hapSection, dir string, w *warnings) *hapConfig {
	c := &hapConfig{backends: map[string]*hapProxy{}, resolvers: map[string]hapResolvers{}, userlists: map[string]*hapUserlist{}}
	paths := &hapPaths{dir: dir}
	defaults := &hapProxy{kind: "defaults", paths: paths}
	for _, s := range secs {
		switch s.Kind {
		case "global":
			for _, l := range s.Lines {
				if l.Words[0] == "maxconn" && len(l.Words) == 2 {
					if v, err := integer(l.Words[1], 0, 1<<30); err == nil {
						c.globalMaxconn, c.globalPos = some(v), l.Pos
						w.add(l.Pos, "maxconn %d (global): HAProxy's limit over all proxies together is not kept: gitgw has none over all services; a service without a maxconn of its own (or its defaults') takes %d as its own", v, v)
						continue
					}
				}
				if paths.global(l, w) {
					continue
				}
				if l.Words[0] == "ssl-server-verify" && len(l.Words) == 2 && (l.Words[1] == "none" || l.Words[1] == "required") {
					c.verifyNone = l.Words[1] == "none"
					continue
				}
				hapNotMapped(l, w)
			}
		case "defaults":
			if len(s.Args) > 1 {
				w.add(s.Pos, "defaults %s: named defaults are read in order; \"from\" is not followed", strings.Join(s.Args, " "))
			}
			defaults = (&hapProxy{kind: "defaults", paths: paths}).inherit("defaults", s.Name(), s.Pos)
			for _, l := range s.Lines {
				defaults.line(l, w)
			}
			c.noteForwardFor(defaults)
		case "frontend", "backend", "listen":
			p := defaults.inherit(s.Kind, s.Name(), s.Pos)
			p.lists = c.userlists
			if s.Kind == "listen" && len(s.Args) > 1 {
				p.bind(hapLine{Words: append([]string{"bind"}, s.Args[1:]...), Pos: s.Pos}, w)
			}
			if len(s.Args) > 2 && s.Args[1] == "from" {
				w.add(s.Pos, "%s %s from %s: \"from\" is not followed; the last defaults section applies", s.Kind, s.Name(), s.Args[2])
			}
			for _, l := range s.Lines {
				p.line(l, w)
			}
			p.statsRoute()
			p.rewriteBeforeFilters(w)
			c.sameName(p, w)
			c.proxies = append(c.proxies, p)
			c.noteForwardFor(p)
			if s.Kind == "backend" {
				c.backends[p.name] = p
			}
		case "resolvers":
			c.resolverSection(s, w)
		case "userlist":
			c.userlistSection(s, w)
		default:
			w.add(s.Pos, "%s section: not mapped", s.Kind)
		}
	}
	return c
}

// sameName warns about a proxy named as an earlier one (a frontend and a
// backend may share a name). HAProxy 1.6 and later, 2.6 included, refuse
// such a configuration ("proxy 'X' has the same name as proxy 'X'
// declared at …"); 1.5 and earlier warned and ran both, which is what the
// import keeps: the later one's service gets another name.
func (c *hapConfig) sameName(p *hapProxy, w *warnings) {
	for _, o := range c.proxies {
		if o.name != p.name || (o.kind == "frontend" && p.kind == "backend") || (o.kind == "backend" && p.kind == "frontend") {
			continue
		}
		w.add(p.pos, "%s %s has the name of %s %s at %s: HAProxy 1.6 and later (2.6 included) refuse the configuration; 1.5 and earlier ran both, as the import does (rename one)", p.kind, p.name, o.kind, o.name, o.pos)
		return
	}
}

// resolverSection reads a resolvers section: how often its names are
// resolved again becomes the resolve_interval of the services whose
// servers name it. gitgw resolves with the system resolver, so the
// section's own nameservers are not kept.
func (c *hapConfig) resolverSection(s *hapSection, w *warnings) {
	// HAProxy's defaults: a valid answer is held 10 s, a resolution is
	// triggered every timeout resolve (1 s) once the held answer expired.
	hold, every := 10*time.Second, time.Second
	for _, l := range s.Lines {
		ws := l.Words
		arg := func(i int) string {
			if i < len(ws) {
				return ws[i]
			}
			return ""
		}
		switch {
		case ws[0] == "hold" && arg(1) == "valid":
			if v, err := hapTime(arg(2)); err == nil {
				hold = v
			} else {
				w.add(l.Pos, "hold valid: %v: HAProxy's 10s kept", err)
			}
		case ws[0] == "timeout" && arg(1) == "resolve":
			if v, err := hapTime(arg(2)); err == nil {
				every = v
			} else {
				w.add(l.Pos, "timeout resolve: %v: HAProxy's 1s kept", err)
			}
		case ws[0] == "nameserver":
			w.add(l.Pos, "nameserver %s: not kept: gitgw resolves servers by name with the node's system resolver (/etc/hosts, /etc/resolv.conf); a site has no resolvers of its own", strings.Join(ws[1:], " "))
		case ws[0] == "parse-resolv-conf":
			// The system resolver's nameservers: what gitgw uses.
		default:
			w.add(l.Pos, "resolvers %s: %q not mapped (gitgw resolves with the system resolver; only how often, hold valid and timeout resolve, is kept)", s.Name(), strings.Join(ws, " "))
		}
	}
	c.resolvers[s.Name()] = hapResolvers{pos: s.Pos, interval: max(hold, every)}
}

func hapNotMapped(l hapLine, w *warnings) {
	if why, ok := hapIgnored[l.Words[0]]; ok {
		if why == "" {
			w.add(l.Pos, "%s: not mapped", l.Words[0])
		} else {
			w.add(l.Pos, "%s: not mapped (%s)", l.Words[0], why)
		}
		return
	}
	w.add(l.Pos, "%q: not mapped", strings.Join(l.Words, " "))
}

// routingAction says whether a tcp- or http-request (or -response) rule
// sends the request elsewhere than the backend's servers, or answers it
// itself.
func routingAction(ws []string) bool {
	i := 1 // http-request|http-response ACTION
	if ws[0] == "tcp-request" || ws[0] == "tcp-response" {
		i = 2 // tcp-request content|session|connection ACTION
	}
	if i >= len(ws) {
		return false
	}
	switch ws[i] {
	case "redirect", "return", "use-service":
		return true
	}
	return false
}

// line applies one line of a proxy section.
func (p *hapProxy) line(l hapLine, w *warnings) {
	ws := l.Words
	arg := func(i int) string {
		if i < len(ws) {
			return ws[i]
		}
		return ""
	}
	var err error
	switch ws[0] {
	case "mode":
		p.mode, p.modePos = arg(1), l.Pos
	case "bind":
		p.bind(l, w)
	case "maxconn":
		err = setOpt(&p.maxconn)(integer(arg(1), 0, 1<<30))
	case "timeout":
		p.timeout(arg(1), arg(2), l, w)
	case "contimeout", "clitimeout", "srvtimeout":
		p.timeout(map[string]string{"contimeout": "connect", "clitimeout": "client", "srvtimeout": "server"}[ws[0]], arg(1), l, w)
	case "balance":
		switch arg(1) {
		case "roundrobin", "leastconn", "source", "first":
			p.balance = some(arg(1))
		case "static-rr":
			p.balance = some("roundrobin")
			w.add(l.Pos, "balance static-rr: imported as roundrobin (gitgw applies weight changes at once)")
		default:
			w.add(l.Pos, "balance %s: not mapped (gitgw balances roundrobin, leastconn, source or first): roundrobin", strings.Join(ws[1:], " "))
		}
	case "retries":
		err = setOpt(&p.retries)(integer(arg(1), 0, 10))
	case "default_backend":
		p.defBackend, p.defPos = arg(1), l.Pos
	case "use_backend", "redirect", "monitor-uri":
		if p.httpRoute(l) {
			return // mapped in HTTP mode, or refused with its line (haphttp.go)
		}
		p.needs = append(p.needs, needs(l.Pos, FeatContentSwitching, "%s", strings.Join(ws, " ")))
	case "reqsetbe", "reqisetbe", "reqdeny", "reqideny", "reqtarpit", "reqitarpit", "reqallow", "reqiallow", "reqpass", "reqipass", "block":
		p.reqFilter(l, w) // mapped in HTTP mode, or refused with its line (hapreqfilter.go)
	case "use-server", "monitor-net":
		// Traffic the original sends to another backend or server, or
		// answers itself: importing the one pool would send it elsewhere.
		p.needs = append(p.needs, needs(l.Pos, FeatContentSwitching, "%s", strings.Join(ws, " ")))
	case "cookie":
		// Mapped with the servers' values when the service is built
		// (cookieMap): whether it applies depends on the mode kept.
		p.cookiePos, p.cookieWords = l.Pos, slices.Clone(ws)
	case "redispatch":
		// HAProxy 1.x's spelling of option redispatch.
		p.redispatch = some(true)
	case "dispatch":
		if _, derr := netip.ParseAddrPort(arg(1)); derr != nil || len(ws) != 2 {
			hapNotMapped(l, w)
			return
		}
		p.dispatch, p.dispatchPos = arg(1), l.Pos
	case "server":
		p.server(l, w)
	case "default-server":
		p.defServer = append(p.defServer, ws[1:]...)
	case "option", "no":
		p.option(l, w)
	case "http-check":
		p.httpCheck(l, w)
	case "tcp-check":
		p.tcpCheck(l, w)
	case "stats":
		p.stats = true
		p.statsLine(l)
		hapNotMapped(l, w)
	case "acl":
		p.acl(l, w)
	case "tcp-request", "http-request", "tcp-response", "http-response", "http-after-response":
		if ws[0] == "http-request" && p.httpRoute(l) {
			return
		}
		if p.headerLine(l) {
			p.noteCookieRewrite(l)
			return // mapped in HTTP mode, or refused with its line (hapheaders.go)
		}
		if ws[0] == "tcp-request" && arg(1) == "inspect-delay" && (p.kind == "frontend" || p.kind == "listen") {
			if d, err := hapTime(arg(2)); err == nil && len(ws) == 3 {
				h := p.httpState()
				h.inspect, h.inspectLine = some(d), l
				return // mapped with SNI routing, else named (httpMode)
			}
		}
		if routingAction(ws) {
			p.needs = append(p.needs, needs(l.Pos, FeatContentSwitching, "%s", strings.Join(ws, " ")))
			return
		}
		if ws[0] == "tcp-request" && arg(1) == "connection" && (p.kind == "frontend" || p.kind == "listen") && sourceAction(arg(2)) {
			// Mapped to the service's source block, in order, once the
			// section is read (sourceRules).
			p.connRules = append(p.connRules, l)
			return
		}
		// Rules that turn connections, requests or responses away or
		// count them (by source, rate) cannot be left behind; the others
		// are dropped by name.
		for _, word := range ws[1:] {
			if slices.Contains([]string{"reject", "deny", "tarpit", "silent-drop", "auth"}, word) ||
				strings.HasPrefix(word, "track-sc") || strings.HasPrefix(word, "sc-") {
				p.needs = append(p.needs, needs(l.Pos, FeatSourceRules, "%s", strings.Join(ws, " ")))
				return
			}
		}
		p.noteCookieRewrite(l)
		hapNotMapped(l, w)
	case "reqrep", "reqirep", "reqadd", "reqdel", "reqidel", "rspadd", "rspdel", "rspidel", "rsprep", "rspirep":
		p.noteCookieRewrite(l)
		if ws[0] != "reqadd" && strings.HasPrefix(ws[0], "req") {
			p.rewrites = append(p.rewrites, l)
		}
		if !p.headerLine(l) { // mapped in HTTP mode, or refused with its line (hapheaders.go)
			hapNotMapped(l, w)
		}
	case "rate-limit":
		p.needs = append(p.needs, needs(l.Pos, FeatSourceRules, "%s", strings.Join(ws, " ")))
	case "source":
		if p.kind == "frontend" {
			w.add(l.Pos, "%s: ignored, as HAProxy does (a frontend connects to no server)", strings.Join(ws, " "))
			return
		}
		src, n, ns := hapSource(ws[1:], l.Pos, "source", w)
		if n < len(ws)-1 {
			w.add(l.Pos, "%s: %s: not mapped", strings.Join(ws, " "), strings.Join(ws[1+n:], " "))
		}
		p.src = src
		p.needs = append(p.needs, ns...)
	case "server-template":
		// Servers made from a DNS name: as many as it resolves to.
		p.needs = append(p.needs, needs(l.Pos, FeatServerName, "%s", strings.Join(ws, " ")))
	case "stick-table":
		p.stickTable(l)
		for i := 1; i+1 < len(ws); i++ {
			if ws[i] == "expire" {
				if v, err := hapTime(ws[i+1]); err == nil {
					p.persist = some(v)
				}
			}
		}
		w.add(l.Pos, "stick-table: not mapped itself; a \"stick on src\" becomes the service's source persistence, tcp-request connection limits on its conn_cur or conn_rate its source block")
	case "stick":
		if strings.Join(ws[1:], " ") == "on src" && p.persist.ok {
			p.stickOn = true
			w.add(l.Pos, "stick on src: imported as persistence %s", formatDuration(p.persist.v))
		} else {
			p.persist = opt[time.Duration]{}
			hapNotMapped(l, w)
		}
	default:
		hapNotMapped(l, w)
	}
	if err != nil {
		w.add(l.Pos, "%s: %v: ignored", ws[0], err)
	}
}

func (p *hapProxy) timeout(name, val string, l hapLine, w *warnings) {
	d, err := hapTime(val)
	if err != nil {
		w.add(l.Pos, "timeout %s: %v: ignored", name, err)
		return
	}
	idx := map[string]int{"connect": toConnect, "client": toClient, "server": toServer, "tunnel": toTunnel,
		"client-fin": toClientFin, "server-fin": toServerFin, "queue": toQueue}
	if i, ok := idx[name]; ok {
		p.timeouts[i] = some(d)
		return
	}
	if name == "check" {
		p.checkTO = some(d)
		return
	}
	if name == "tarpit" {
		p.tarpitTO = &tarpitOpt{line: l, hold: d} // a tarpit rule's hold (hapreqfilter.go)
		return
	}
	w.add(l.Pos, "timeout %s: not mapped (gitgw proxies TCP)", name)
}

// bind reads a bind line: addresses (comma-separated, port ranges) and
// options. A bind that terminates TLS is dropped.
func (p *hapProxy) bind(l hapLine, w *warnings) {
	if len(l.Words) < 2 {
		return
	}
	p.bindLines++
	for _, o := range l.Words[2:] {
		if o == "ssl" {
			if p.kind == "frontend" || p.kind == "listen" {
				p.httpBind(l, w) // terminated in HTTP mode (haphttp.go)
				return
			}
			p.needs = append(p.needs, needs(l.Pos, FeatTLSTermination, "bind %s ssl", l.Words[1]))
			return
		}
	}
	if len(l.Words) > 2 {
		w.add(l.Pos, "bind options %q: not mapped", strings.Join(l.Words[2:], " "))
	}
	p.addBinds(l, w)
}

// addBinds adds the addresses of a bind line (a comma-separated list) to
// the proxy's binds, naming those it cannot read; it returns those added.
func (p *hapProxy) addBinds(l hapLine, w *warnings) []string {
	var added []string
	for _, a := range strings.Split(l.Words[1], ",") {
		binds, err := bindAddrs(a)
		if err != nil {
			w.add(l.Pos, "bind %s: %v: not imported", a, err)
			continue
		}
		p.binds = append(p.binds, binds...)
		added = append(added, binds...)
	}
	return added
}

func bindAddrs(s string) ([]string, error) {
	for _, pre := range []string{"ipv4@", "ipv6@", "tcp@", "tcp4@", "tcp6@"} {
		s = strings.TrimPrefix(s, pre)
	}
	if strings.Contains(s, "@") || strings.HasPrefix(s, "/") {
		return nil, fmt.Errorf("not a TCP address")
	}
	i := strings.LastIndex(s, ":")
	if i < 0 {
		return nil, fmt.Errorf("no port")
	}
	host, ports := strings.Trim(s[:i], "[]"), s[i+1:]
	var addr netip.Addr
	switch host {
	case "", "*", "0.0.0.0":
		addr = netip.IPv4Unspecified()
	case "::":
		addr = netip.IPv6Unspecified()
	default:
		var err error
		if addr, err = netip.ParseAddr(host); err != nil {
			return nil, fmt.Errorf("%q is not an IP address (gitgw binds addresses, not names)", host)
		}
	}
	lo, hi, ok := strings.Cut(ports, "-")
	if !ok {
		hi = lo
	}
	from, err1 := integer(lo, 1, 65535)
	to, err2 := integer(hi, from, 65535)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("bad port %q", ports)
	}
	if to-from >= 64 {
		return nil, fmt.Errorf("port range %q is too wide to list", ports)
	}
	var out []string
	for port := from; port <= to; port++ {
		out = append(out, hostPort(addr, port))
	}
	return out, nil
}

// hapOneArg are server keywords that take one argument and are not mapped.
var hapOneArg = map[string]bool{
	"port": true, "addr": true, "cookie": true, "slowstart": true, "maxqueue": true, "minconn": true,
	"id": true, "resolvers": true, "init-addr": true, "agent-port": true, "agent-inter": true,
	"agent-send": true, "track": true, "observe": true, "error-limit": true, "on-error": true,
	"on-marked-up": true, "source": true, "sni": true, "verify": true, "crt": true, "ca-file": true,
	"crl-file": true, "ciphers": true, "ssl-min-ver": true, "ssl-max-ver": true, "proto": true,
	"alpn": true, "check-sni": true, "check-alpn": true, "pool-max-conn": true, "pool-purge-delay": true,
	"namespace": true, "resolve-prefer": true, "resolve-net": true, "health-check-proto": true,
	"max-reuse": true, "tfo": false, "usesrc": true, "ws": true,
}

func (p *hapProxy) server(l hapLine, w *warnings) {
	ws := l.Words
	if len(ws) < 3 {
		w.add(l.Pos, "server without an address: ignored")
		return
	}
	name := siteName(ws[1])
	if name != ws[1] {
		w.add(l.Pos, "server %q renamed %q", ws[1], name)
	}
	addr, err := serverAddr(ws[2])
	if err != nil {
		w.add(l.Pos, "server %s %s: %v: not imported", ws[1], ws[2], err)
		return
	}
	if taken := func(n string) bool {
		return slices.ContainsFunc(p.servers, func(s *server) bool { return s.name == n })
	}; taken(name) {
		base := name
		for k := 2; taken(name); k++ {
			name = fmt.Sprintf("%s-%d", base, k)
		}
		w.add(l.Pos, "server %s: the name is taken in %s %s: imported as %s", ws[1], p.kind, p.name, name)
	}
	srv := &server{name: name, address: addr}
	sc := srvCheck{pos: l.Pos, name: name}
	// TLS to the server: ssl, and what it needs that the site lacks.
	ssl, checkSSLSet, checkElsewhere := false, false, false
	st := &serverTLS{pos: l.Pos}
	var tlsNeeds []need
	var srvTLSWarn []string
	more := srvMore{pos: l.Pos}
	_, perr := netip.ParseAddrPort(addr)
	more.byName = perr != nil
	params := append(slices.Clone(p.defServer), ws[3:]...)
	for i := 0; i < len(params); i++ {
		k, v := params[i], ""
		if i+1 < len(params) {
			v = params[i+1]
		}
		var err error
		dur := func(dst *opt[time.Duration]) {
			i++
			err = setOpt(dst)(hapTime(v))
		}
		num := func(dst *opt[int], lo, hi int) {
			i++
			err = setOpt(dst)(integer(v, lo, hi))
		}
		switch k {
		case "check":
			sc.on = true
		case "no-check":
			sc.on = false
		case "inter":
			dur(&sc.inter)
		case "fastinter":
			dur(&sc.fast)
		case "downinter":
			dur(&sc.down)
		case "rise":
			num(&sc.rise, 1, 100)
		case "fall":
			num(&sc.fall, 1, 100)
		case "weight":
			num(&srv.weight, 0, 256)
		case "maxconn":
			num(&srv.maxconn, 0, 1<<30)
		case "backup":
			srv.backup = true
		case "no-backup":
			srv.backup = false
		case "disabled":
			srv.disabled = true
		case "enabled":
			srv.disabled = false
		case "send-proxy":
			p.proxyProto = "v1"
		case "send-proxy-v2":
			p.proxyProto = "v2"
		case "port":
			i++
			checkElsewhere = true
			// A check port that is the server's own changes nothing.
			if pt, perr := integer(v, 1, 65535); perr != nil {
				err = perr
			} else if !strings.HasSuffix(addr, fmt.Sprintf(":%d", pt)) {
				sc.port, sc.portPos = some(pt), l.Pos
			} else {
				sc.port = opt[int]{}
			}
		case "addr":
			i++
			checkElsewhere = true
			a, aerr := netip.ParseAddr(v)
			switch {
			case aerr != nil:
				sc.needs = append(sc.needs, needs(l.Pos, FeatServerName, "server %s addr %s", name, v))
			case perr == nil && netip.MustParseAddrPort(addr).Addr() == a:
				sc.addr = opt[string]{}
			default:
				sc.addr, sc.portPos = some(a.String()), l.Pos
			}
		case "check-ssl":
			sc.ssl, checkSSLSet = true, true
		case "no-check-ssl":
			sc.ssl, checkSSLSet = false, true
		case "verify":
			i++
			if v == "none" || v == "required" {
				sc.tls.verify = v
			} else {
				err = fmt.Errorf("want none or required")
			}
		case "ca-file", "crt":
			i++
			kind := "crt"
			if k == "ca-file" {
				kind = "ca"
			}
			abs, ok := v, true
			if v != "@system-ca" {
				abs, ok = p.paths.resolve(kind, v)
			}
			if ok && abs != v {
				w.add(l.Pos, "server %s %s %s: %s", name, k, v, joinedBy(v, abs))
				v = abs
			}
			switch {
			case k == "ca-file" && v == "@system-ca":
				st.ca, st.systemCA = opt[string]{}, true // the system's roots: the site's default
			case !ok:
				tlsNeeds = append(tlsNeeds, needs(l.Pos, FeatServerTLS, "server %s %s %s (%s)", name, k, v, p.paths.relativeWhy()))
			case k == "ca-file":
				st.ca, st.systemCA = some(v), false
			default:
				st.cert = some(v)
			}
			if k == "ca-file" && v == "@system-ca" {
				sc.tls.ca = opt[string]{}
			} else if !ok {
				sc.tlsNeeds = append(sc.tlsNeeds, needs(l.Pos, FeatTLSCheck, "server %s %s %s (%s)", name, k, v, p.paths.relativeWhy()))
			} else if k == "ca-file" {
				sc.tls.ca = some(v)
			} else {
				sc.tls.crt, sc.tls.key = some(v), some(v) // one PEM file holds both
			}
		case "check-sni":
			i++
			if sniRE.MatchString(v) {
				sc.tls.sni = some(v)
			} else {
				sc.tlsNeeds = append(sc.tlsNeeds, needs(l.Pos, FeatTLSCheck, "server %s check-sni %s (not a host name)", name, v))
			}
		case "verifyhost":
			i++
			if sniRE.MatchString(v) {
				st.verifyHost = some(v)
			} else {
				tlsNeeds = append(tlsNeeds, needs(l.Pos, FeatServerTLS, "server %s verifyhost %s (not a host name)", name, v))
			}
			sc.tlsNeeds = append(sc.tlsNeeds, needs(l.Pos, FeatTLSCheck, "server %s verifyhost %s (the site verifies the name it sends as SNI)", name, v))
		case "crl-file":
			i++
			tlsNeeds = append(tlsNeeds, needs(l.Pos, FeatServerTLS, "server %s crl-file %s (the site has no revocation lists)", name, v))
			sc.tlsNeeds = append(sc.tlsNeeds, needs(l.Pos, FeatTLSCheck, "server %s crl-file %s (the site has no revocation lists)", name, v))
		case "ssl":
			ssl = true
		case "no-ssl":
			ssl = false
		case "sni":
			i++
			// An expression: only a constant names one server.
			if c, ok := strings.CutPrefix(v, "str("); ok && strings.HasSuffix(c, ")") && sniRE.MatchString(strings.TrimSuffix(c, ")")) {
				st.sni = some(strings.TrimSuffix(c, ")"))
			} else {
				tlsNeeds = append(tlsNeeds, needs(l.Pos, FeatServerTLS, "server %s sni %s (an expression: only str(NAME) is a fixed name)", name, v))
			}
		case "alpn":
			i++
			st.alpn = strings.Split(v, ",")
		case "no-ssl-reuse":
			st.noReuse = true
		case "ssl-reuse":
			st.noReuse = false
		case "ciphers", "ciphersuites", "ssl-min-ver", "ssl-max-ver", "curves", "sigalgs", "client-sigalgs", "npn":
			i++
			srvTLSWarn = append(srvTLSWarn, fmt.Sprintf("server %s %s %s: not mapped (Go's crypto/tls chooses, TLS 1.2 at least)", name, k, v))
		case "no-sslv3", "no-tlsv10", "no-tlsv11", "force-tlsv12", "force-tlsv13", "no-tls-tickets", "tls-tickets", "allow-0rtt":
			srvTLSWarn = append(srvTLSWarn, fmt.Sprintf("server %s %s: not mapped (Go's crypto/tls chooses, TLS 1.2 at least)", name, k))
		case "agent-check":
			p.needs = append(p.needs, needs(l.Pos, FeatAgentCheck, "server %s agent-check", name))
		case "source":
			src, n, ns := hapSource(params[i+1:], l.Pos, "server "+name+" source", w)
			i += n
			more.src = src
			p.needs = append(p.needs, ns...)
		case "socks4":
			i++
			via, verr := netip.ParseAddrPort(v)
			switch {
			case verr != nil:
				p.needs = append(p.needs, needs(l.Pos, FeatServerVia, "server %s socks4 %s (not an IP address and port)", name, v))
			case perr == nil && !netip.MustParseAddrPort(addr).Addr().Unmap().Is4():
				p.needs = append(p.needs, needs(l.Pos, FeatServerVia, "server %s %s socks4 %s (SOCKS4 carries IPv4 servers only)", name, addr, v))
			default:
				more.socks4 = via.String()
			}
		case "check-via-socks4":
			more.checkVia = true
		case "redir":
			i++
			p.needs = append(p.needs, needs(l.Pos, FeatContentSwitching, "server %s redir %s", name, v))
		case "resolvers":
			i++
			more.resolvers = v
		case "init-addr":
			i++
			initAddr(name, v, l.Pos, w)
		case "cookie":
			i++
			more.cookie = v // mapped with the backend's cookie line (cookieMap)
		case "on-marked-down":
			i++
			if v == "shutdown-sessions" {
				sc.shutdown = true
			} else {
				w.add(l.Pos, "server %s on-marked-down %s: not mapped", name, v)
			}
		default:
			if hapOneArg[k] {
				w.add(l.Pos, "server %s %s %s: not mapped", name, k, v)
				i++
			} else {
				w.add(l.Pos, "server %s %s: not mapped", name, k)
			}
		}
		if err != nil {
			w.add(l.Pos, "server %s %s: %v: ignored", name, k, err)
		}
	}
	if ssl || sc.ssl {
		// The TLS settings are common to traffic and checks.
		for _, m := range srvTLSWarn {
			w.add(l.Pos, "%s", m)
		}
	}
	if ssl {
		st.verify = sc.tls.verify
		srv.tls = st
		p.needs = append(p.needs, tlsNeeds...)
		if !checkSSLSet && !checkElsewhere {
			// HAProxy checks a server with ssl in SSL too, unless its
			// check goes to another port or address.
			sc.ssl = true
		}
	}
	switch {
	case more.socks4 != "":
		srv.via = &serverVia{socks4: more.socks4, check: more.checkVia}
	case more.checkVia:
		w.add(l.Pos, "server %s check-via-socks4 without socks4: not mapped (HAProxy checks the server directly)", name)
	}
	p.servers = append(p.servers, srv)
	p.srvChecks = append(p.srvChecks, sc)
	p.srvMore = append(p.srvMore, more)
}

// viaNeeds: a server reached through a SOCKS4 proxy is carried by a plain
// TCP service only: gitgw's HTTP and SNI routing connect to their
// servers directly, and transparent mode would show the server the
// proxy's address instead of the client's.
func viaNeeds(servers []*server, more []srvMore, http, transparent bool) []need {
	var ns []need
	for i, r := range servers {
		if r.via == nil || i >= len(more) {
			continue
		}
		switch {
		case http:
			ns = append(ns, needs(more[i].pos, FeatServerVia, "server %s socks4 %s in a service imported with HTTP or SNI routing (which connects to its servers directly)", r.name, r.via.socks4))
		case transparent:
			ns = append(ns, needs(more[i].pos, FeatServerVia, "server %s socks4 %s with usesrc (the server would see the proxy, not the client)", r.name, r.via.socks4))
		}
	}
	return ns
}

// initAddr names what an init-addr becomes: gitgw resolves a name with
// the system resolver at start (libc), and keeps a server whose name does
// not resolve DOWN until it does (none) instead of refusing to start.
func initAddr(name, v string, pos Pos, w *warnings) {
	var lost []string
	for _, m := range strings.Split(v, ",") {
		switch m {
		case "libc", "none":
		case "last":
			lost = append(lost, "last (the address of a server-state file)")
		default:
			lost = append(lost, m+" (a fixed first address)")
		}
	}
	msg := fmt.Sprintf("server %s init-addr %s: gitgw resolves the name with the system resolver at start and keeps the server DOWN while it does not resolve (HAProxy's libc,none)", name, v)
	if len(lost) > 0 {
		msg += "; not kept: " + strings.Join(lost, ", ")
	}
	w.add(pos, "%s", msg)
}

// sniRE is what the site takes as a check's SNI.
var sniRE = regexp.MustCompile(`^[A-Za-z0-9.-]+$`)

// hostNameRE is an RFC 1123 host name, as the schema's #NamePort takes it.
var hostNameRE = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$`)

// isDigitsDots: what looks like an IPv4 address but is none (#NamePort
// refuses it).
func isDigitsDots(s string) bool { return strings.Trim(s, "0123456789.") == "" }

// serverAddr writes "ip:port" as the schema wants it.
func serverAddr(s string) (string, error) {
	for _, pre := range []string{"ipv4@", "ipv6@", "tcp@", "tcp4@", "tcp6@"} {
		s = strings.TrimPrefix(s, pre)
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.String(), nil
	}
	i := strings.LastIndex(s, ":")
	if i < 0 {
		if _, err := netip.ParseAddr(s); err == nil {
			return "", fmt.Errorf("no port (HAProxy would use the client's destination port; gitgw needs one)")
		}
		if strings.HasPrefix(s, "/") || strings.Contains(s, "@") {
			return "", fmt.Errorf("not an IP address and port")
		}
		if _, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
			return "", fmt.Errorf("no port (HAProxy would use the client's destination port; gitgw needs one)")
		}
		return "", fmt.Errorf("%q: a name without a port (HAProxy would use the client's destination port; gitgw needs one)", s)
	}
	port, err := integer(s[i+1:], 1, 65535)
	if err != nil {
		return "", fmt.Errorf("bad port %q (port offsets are not mapped)", s[i+1:])
	}
	a, err := netip.ParseAddr(strings.Trim(s[:i], "[]"))
	if err != nil {
		// A name: resolved by gitgw's proxy, at start and every
		// resolve_interval.
		if !hostNameRE.MatchString(s[:i]) || isDigitsDots(s[:i]) {
			return "", fmt.Errorf("%q is neither an IP address nor a host name", s[:i])
		}
		return fmt.Sprintf("%s:%d", s[:i], port), nil
	}
	return hostPort(a, port), nil
}

func (p *hapProxy) option(l hapLine, w *warnings) {
	ws := l.Words
	neg := ws[0] == "no"
	if neg {
		ws = ws[1:]
	}
	if len(ws) < 2 || ws[0] != "option" {
		hapNotMapped(l, w)
		return
	}
	if hapCheckOptions[ws[1]] && !neg {
		p.checkOption(l, w)
	}
	switch ws[1] {
	case "redispatch":
		p.redispatch = some(!neg)
	case "forwardfor":
		// Mapped in HTTP mode, named as not mapped otherwise (service).
		h := p.httpState()
		h.forwardFor, h.fwd = !neg, nil
		if !neg {
			h.fwd = &fwdOption{line: l}
		}
	case "tcplog", "tcpka", "clitcpka", "srvtcpka", "dontlognull":
		// gitgw logs connections and keeps TCP keepalive on by itself.
	case "httpchk":
		c := &check{kind: "http", method: some("OPTIONS"), path: some("/")}
		switch rest := ws[2:]; len(rest) {
		case 0:
		case 1:
			c.path = some(rest[0])
		default:
			c.method, c.path = some(strings.ToUpper(rest[0])), some(rest[1])
			if len(rest) > 2 {
				c.rawVersion, _, _ = strings.Cut(rest[2], "\r\n")
				var bad []string
				c.host, c.headers, bad = hostHeader(rest[2])
				if len(bad) > 0 {
					p.httpNeeds = append(p.httpNeeds, needs(l.Pos, FeatCheckHeaders, "option httpchk header %q", strings.Join(bad, `\r\n`)))
				}
			}
		}
		if !strings.HasPrefix(c.path.v, "/") || strings.ContainsAny(c.path.v, "\t\r\n\x00") || !utf8.ValidString(c.path.v) {
			// HAProxy sends the target as written; the site's path is
			// absolute: a target of printable characters is sent by a
			// command check (serviceCheck), others are refused.
			if rawTargetRE.MatchString(c.path.v) && (c.rawVersion == "" || rawTargetRE.MatchString(c.rawVersion)) {
				c.rawTarget = c.path
			} else {
				p.httpNeeds = append(p.httpNeeds, needs(l.Pos, FeatCheckHeaders, "%s (request target %q)", strings.Join(l.Words, " "), c.path.v))
			}
			c.path = some("/")
		}
		if !slices.Contains([]string{"GET", "HEAD", "POST", "OPTIONS"}, c.method.v) {
			// Another method can get another answer.
			p.httpNeeds = append(p.httpNeeds, needs(l.Pos, FeatCheckHeaders, "%s (method %s)", strings.Join(l.Words, " "), c.method.v))
			c.method = some("GET")
		}
		p.httpchk, p.httpPos, p.tcpcheck, p.protoNeed = c, l.Pos, nil, nil
	case "tcp-check":
		p.tcpcheck, p.httpchk, p.protoNeed = &check{kind: "tcp"}, nil, nil
	case "redis-check":
		// PING answered +PONG, as HAProxy's.
		p.tcpcheck, p.httpchk, p.protoNeed = &check{kind: "redis"}, nil, nil
	case "ldap-check":
		// An anonymous LDAPv3 bind answered with success, as HAProxy's.
		p.tcpcheck, p.httpchk, p.protoNeed = &check{kind: "ldap"}, nil, nil
	case "smtpchk":
		// HAProxy sends HELO localhost, or the verb and domain given;
		// gitgw's smtp check sends EHLO (a server that takes HELO takes EHLO).
		c := &check{kind: "smtp"}
		if len(ws) >= 4 {
			c.domain = some(ws[3])
			if !domainRE.MatchString(ws[3]) {
				n := needs(l.Pos, FeatProtocolCheck, "%s (domain %q)", strings.Join(l.Words, " "), ws[3])
				p.tcpcheck, p.httpchk, p.protoNeed = nil, nil, &n
				return
			}
		}
		p.tcpcheck, p.httpchk, p.protoNeed = c, nil, nil
	case "mysql-check", "pgsql-check":
		kind := strings.TrimSuffix(ws[1], "-check")
		c := &check{kind: kind}
		for i := 2; i+1 < len(ws); i++ {
			if ws[i] == "user" {
				c.user = some(ws[i+1])
				i++
			}
		}
		if c.user.ok && (!userRE.MatchString(c.user.v) || !utf8.ValidString(c.user.v)) {
			n := needs(l.Pos, FeatProtocolCheck, "%s (a user name with control characters)", strings.Join(l.Words, " "))
			p.tcpcheck, p.httpchk, p.protoNeed = nil, nil, &n
			return
		}
		if kind == "pgsql" && !c.user.ok {
			// HAProxy requires the user; without it there is no check to copy.
			n := needs(l.Pos, FeatProtocolCheck, "%s (without user)", strings.Join(l.Words, " "))
			p.tcpcheck, p.httpchk, p.protoNeed = nil, nil, &n
			return
		}
		p.tcpcheck, p.httpchk, p.protoNeed = c, nil, nil
	case "ssl-hello-chk":
		// HAProxy's own check: its SSLv3 CLIENT HELLO, then a reply of at
		// least 5 bytes that starts a handshake (0x16) or an alert (0x15).
		p.tcpcheck, p.httpchk, p.protoNeed = &check{kind: "tcp-check", steps: []step{
			{kind: "send_hex", data: sslv3ClientHello},
			{kind: "expect_regex", data: `(?s)^[\x15\x16].{4}`},
		}}, nil, nil
	case "spop-check":
		n := needs(l.Pos, FeatProtocolCheck, "%s", strings.Join(l.Words, " "))
		p.tcpcheck, p.httpchk, p.protoNeed = nil, nil, &n
	case "external-check":
		n := needs(l.Pos, FeatScriptCheck, "%s", strings.Join(l.Words, " "))
		p.tcpcheck, p.httpchk, p.protoNeed = nil, nil, &n
	case "transparent":
		if !neg {
			p.needs = append(p.needs, needs(l.Pos, FeatTransparent, "option transparent"))
		}
	case "http_proxy":
		// The server is the address each request's URL names.
		if !neg {
			p.needs = append(p.needs, needs(l.Pos, FeatContentSwitching, "option http_proxy"))
		}
	default:
		hapNotMapped(l, w)
	}
}

// hapCheckOptions are the options that choose a proxy's check; HAProxy
// runs the last one of a section.
var hapCheckOptions = map[string]bool{
	"httpchk": true, "tcp-check": true, "redis-check": true, "ldap-check": true, "smtpchk": true,
	"mysql-check": true, "pgsql-check": true, "ssl-hello-chk": true, "spop-check": true, "external-check": true,
}

// checkOption names what a check option of a section replaces: an earlier
// check option of the same section and, when it was option httpchk and
// this is another kind, the http-check lines that went with it. (One
// inherited from defaults is replaced as expected, without a word.)
func (p *hapProxy) checkOption(l hapLine, w *warnings) {
	if prev := p.chkLine; prev != nil {
		w.add(prev.Pos, "%s: not used: %q (line %d) replaces it (HAProxy runs a section's last check option)", strings.Join(prev.Words, " "), strings.Join(l.Words, " "), l.Pos.Line)
	}
	if l.Words[1] != "httpchk" {
		for _, h := range p.httpLines {
			w.add(h.Pos, "%s: not used: %q (line %d) replaces the HTTP check", strings.Join(h.Words, " "), strings.Join(l.Words, " "), l.Pos.Line)
		}
		p.httpLines = nil
	}
	p.chkLine = &l
}

// sslv3ClientHello is the packet of HAProxy's ssl-hello-chk
// (proxy_parse_ssl_hello_chk_opt), with 0 for the time HAProxy fills in:
// a handshake record of SSLv3, a CLIENT HELLO with the random
// "HAPROXYSSLCHK\nHAPROXYSSLCHK\n", no session, 39 ciphers, no compression.
const sslv3ClientHello = "16" + "0300" + "0079" + "01" + "000075" + "0300" + "00000000" +
	"484150524f585953534c43484b0a484150524f585953534c43484b0a" + "00" + "004e" +
	"000100020003000400050006000700080009000a000b000c000d000e000f0010" +
	"001100120013001400150016001700180019001a001b002f0030003100320033" +
	"003400350036003700380039003a" +
	"01" + "00"

// hostHeader reads the headers in the version argument of option httpchk
// ("HTTP/1.1\r\nHost: www\r\nX-A: b"): the Host, the others, and the
// lines the site cannot send (no header, a bad name, a body).
func hostHeader(s string) (host opt[string], hs []header, bad []string) {
	body := false
	for i, line := range strings.Split(s, "\r\n") {
		if i == 0 {
			continue // the HTTP version
		}
		k, v, ok := strings.Cut(line, ":")
		switch {
		case body:
			bad = append(bad, line)
		case line == "":
			body = true
		case ok && strings.EqualFold(k, "host") && hostRE.MatchString(strings.TrimSpace(v)):
			host = some(strings.TrimSpace(v))
		case ok && headerNameRE.MatchString(k) && !strings.EqualFold(k, "host") && !strings.ContainsAny(v, "\r\n\x00") && utf8.ValidString(v):
			hs = append(hs, header{k, strings.TrimSpace(v)})
		default:
			bad = append(bad, line)
		}
	}
	return host, hs, bad
}

// What the schema takes as a header name, a Host, an SMTP domain.
var (
	headerNameRE = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
	hostRE       = regexp.MustCompile(`^[A-Za-z0-9.:\[\]-]+$`)
	domainRE     = regexp.MustCompile(`^[A-Za-z0-9.-]+$`)
	userRE       = regexp.MustCompile(`^[^\x00-\x1f]+$`)
)

func (p *hapProxy) httpCheck(l hapLine, w *warnings) {
	ws := l.Words
	p.httpLines = append(p.httpLines, l)
	if p.httpchk == nil {
		p.httpchk, p.httpPos = &check{kind: "http", method: some("OPTIONS"), path: some("/")}, l.Pos
	}
	c := p.httpchk
	need := func(f Feature) { p.httpNeeds = append(p.httpNeeds, needs(l.Pos, f, "%s", strings.Join(ws, " "))) }
	arg := func(i int) string {
		if i < len(ws) {
			return ws[i]
		}
		return ""
	}
	switch {
	case len(ws) >= 2 && ws[1] == "expect":
		if p.httpExp++; p.httpExp > 1 {
			need(FeatCheckSequence)
			return
		}
		p.expectSet = true
		args := expectArgs(ws[2:])
		// A negated status test accepts the other statuses.
		neg := len(args) == 3 && args[0] == "!" && (args[1] == "status" || args[1] == "rstatus")
		if neg {
			args = args[1:]
		}
		if len(args) != 2 {
			need(FeatCheckSequence) // a negation, min-recv, ok-status, a header match…
			return
		}
		switch args[0] {
		case "status", "rstatus":
			st, ok := statusList(args[1])
			if args[0] == "rstatus" {
				st, ok = statusRegexp(args[1])
			}
			if ok && neg {
				st = statusComplement(st)
			}
			if !ok || len(st) == 0 {
				need(FeatStatusRange)
				return
			}
			if v, err := strconv.Atoi(st[0]); err == nil && len(st) == 1 {
				c.expectStatus = some(v)
			} else {
				c.statuses = st
			}
		case "string":
			if !utf8.ValidString(args[1]) {
				need(FeatCheckSequence) // bytes that are no text
				return
			}
			// HAProxy then looks at the body only: any status passes.
			c.expectString, c.statuses = some(args[1]), []string{"100-599"}
		case "rstring":
			if _, err := regexp.Compile(args[1]); err != nil {
				need(FeatCheckSequence)
				return
			}
			c.expectRegex, c.statuses = some(args[1]), []string{"100-599"}
		default:
			need(FeatCheckSequence)
		}
	case len(ws) >= 2 && ws[1] == "send":
		if p.httpSends++; p.httpSends > 1 {
			need(FeatCheckSequence)
			return
		}
		for i := 2; i < len(ws); i++ {
			switch ws[i] {
			case "meth":
				i++
				c.method = some(strings.ToUpper(arg(i)))
				if !slices.Contains([]string{"GET", "HEAD", "POST", "OPTIONS"}, c.method.v) {
					need(FeatCheckHeaders)
				}
			case "uri":
				i++
				c.path, c.rawTarget = some(arg(i)), opt[string]{}
				if !strings.HasPrefix(c.path.v, "/") || strings.ContainsAny(c.path.v, " \t\r\n\x00") || !utf8.ValidString(c.path.v) {
					need(FeatCheckHeaders)
					c.path = some("/")
				}
			case "ver", "comment":
				i++
			case "hdr":
				name, val := arg(i+1), arg(i+2)
				i += 2
				switch {
				case strings.EqualFold(name, "host") && hostRE.MatchString(val):
					c.host = some(val)
				case headerNameRE.MatchString(name) && !strings.EqualFold(name, "host") && !strings.ContainsAny(val, "\r\n\x00") && utf8.ValidString(val):
					c.headers = append(c.headers, header{name, val})
				default:
					need(FeatCheckHeaders)
				}
			default: // body, uri-lf, body-lf, …
				need(FeatCheckHeaders)
				return
			}
		}
	case len(ws) >= 2 && ws[1] == "connect":
		if cn := p.checkConnect(l, &p.httpNeeds, w); cn != nil {
			p.httpConn = cn
		}
	case len(ws) >= 2 && ws[1] == "comment":
	default:
		hapNotMapped(l, w)
	}
}

// expectArgs strips what only names an expect in logs (comment,
// on-success, on-error, status-code): what is left is the match and its
// pattern, when the site can say it.
func expectArgs(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "comment", "on-success", "on-error", "status-code":
			i++
		default:
			out = append(out, args[i])
		}
	}
	return out
}

// statusList reads HAProxy's "200", "200,201,300-310".
func statusList(s string) ([]string, bool) {
	var out []string
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			hi = lo
		}
		l, err1 := integer(lo, 100, 599)
		h, err2 := integer(hi, l, 599)
		if err1 != nil || err2 != nil {
			return nil, false
		}
		out = append(out, statusText(l, h))
	}
	return out, len(out) > 0
}

// statusText writes a status range as the schema takes it.
func statusText(lo, hi int) string {
	if lo == hi {
		return strconv.Itoa(lo)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

// statusComplement is the statuses 100–599 that ranges leave out.
func statusComplement(ranges []string) []string {
	var in [600]bool
	for _, r := range ranges {
		lo, hi, isRange := strings.Cut(r, "-")
		if !isRange {
			hi = lo
		}
		l, _ := strconv.Atoi(lo)
		h, _ := strconv.Atoi(hi)
		for code := l; code <= h && code < 600; code++ {
			in[code] = true
		}
	}
	var out []string
	lo := -1
	for code := 100; code <= 600; code++ {
		out0 := code < 600 && !in[code]
		switch {
		case out0 && lo < 0:
			lo = code
		case !out0 && lo >= 0:
			out = append(out, statusText(lo, code-1))
			lo = -1
		}
	}
	return out
}

// statusRegexp turns HAProxy's rstatus into the ranges of the statuses
// 100–599 it matches: HAProxy searches the status code's three digits for
// the regexp, so trying each code is exact (codes above 599 are no HTTP
// statuses). A regexp Go cannot compile, or one that matches no code,
// stays refused.
func statusRegexp(re string) ([]string, bool) {
	r, err := regexp.Compile(re)
	if err != nil {
		return nil, false
	}
	var out []string
	lo := -1
	for code := 100; code <= 600; code++ {
		match := code < 600 && r.MatchString(strconv.Itoa(code))
		switch {
		case match && lo < 0:
			lo = code
		case !match && lo >= 0:
			out = append(out, statusText(lo, code-1))
			lo = -1
		}
	}
	return out, len(out) > 0
}

// checkConnect reads the options of an http-check or tcp-check connect;
// what the site cannot say goes to dst, and then it returns nil.
func (p *hapProxy) checkConnect(l hapLine, dst *[]need, w *warnings) *hapConnect {
	ws := l.Words
	cn := &hapConnect{}
	bad := func(f Feature) *hapConnect {
		*dst = append(*dst, needs(l.Pos, f, "%s", strings.Join(ws, " ")))
		return nil
	}
	for i := 2; i < len(ws); i++ {
		v := ""
		if i+1 < len(ws) {
			v = ws[i+1]
		}
		switch ws[i] {
		case "ssl":
			cn.ssl = true
		case "default":
			cn.def = true
		case "port":
			i++
			pt, err := integer(v, 1, 65535)
			if err != nil {
				return bad(FeatCheckPort) // an expression
			}
			cn.port = some(pt)
		case "addr":
			i++
			a, err := netip.ParseAddr(v)
			if err != nil {
				return bad(FeatCheckPort)
			}
			cn.addr = some(a.String())
		case "sni":
			i++
			if !sniRE.MatchString(v) {
				return bad(FeatTLSCheck)
			}
			cn.sni = some(v)
		case "via-socks4", "send-proxy", "send-proxy-v2":
			return bad(FeatCheckSequence)
		case "linger":
		case "comment":
			i++
		case "alpn", "proto":
			i++
			w.add(l.Pos, "%s %s: %s %s not mapped (gitgw's checks speak HTTP/1.1 or the sequence's bytes)", ws[0], ws[1], ws[i-1], v)
		default:
			w.add(l.Pos, "%s %s: option %s not mapped", ws[0], ws[1], ws[i])
		}
	}
	return cn
}

// tcpCheck reads one tcp-check rule into a step of the check's sequence.
func (p *hapProxy) tcpCheck(l hapLine, w *warnings) {
	ws := l.Words
	if p.tcpcheck == nil {
		p.tcpcheck = &check{kind: "tcp"}
	}
	c := p.tcpcheck
	seq := func() { p.tcpNeeds = append(p.tcpNeeds, needs(l.Pos, FeatCheckSequence, "%s", strings.Join(ws, " "))) }
	if len(ws) < 2 {
		hapNotMapped(l, w)
		return
	}
	if c.kind != "tcp" {
		w.add(l.Pos, "%s: not mapped: the %s check of an option in effect does not run tcp-check rules", strings.Join(ws, " "), c.kind)
		return
	}
	switch ws[1] {
	case "comment":
	case "connect":
		cn := p.checkConnect(l, &p.tcpNeeds, w)
		if cn == nil {
			return
		}
		if cn.addr.ok {
			p.tcpNeeds = append(p.tcpNeeds, needs(l.Pos, FeatCheckPort, "%s (a connect to another address)", strings.Join(ws, " ")))
			return
		}
		if cn.sni.ok {
			if c.tls != nil && c.tls.sni != cn.sni {
				p.tcpNeeds = append(p.tcpNeeds, needs(l.Pos, FeatTLSCheck, "%s (a second SNI)", strings.Join(ws, " ")))
				return
			}
			c.tls = &checkTLS{sni: cn.sni}
		}
		if cn.def {
			if p.tcpDefault == nil {
				p.tcpDefault = map[int]bool{}
			}
			p.tcpDefault[len(c.steps)] = true
		}
		c.steps = append(c.steps, step{kind: "connect", port: cn.port, tls: cn.ssl})
	case "send":
		if len(ws) != 3 || ws[2] == "" {
			seq()
			return
		}
		c.steps = append(c.steps, textStep("send", ws[2]))
	case "send-binary":
		if len(ws) != 3 || !isHex(ws[2]) {
			seq()
			return
		}
		c.steps = append(c.steps, step{kind: "send_hex", data: ws[2]})
	case "expect":
		args := expectArgs(ws[2:])
		if len(args) != 2 {
			seq() // a negation, min-recv, ok-status, error-status…
			return
		}
		switch {
		case args[0] == "string" && args[1] != "":
			c.steps = append(c.steps, textStep("expect", args[1]))
		case args[0] == "rstring":
			if _, err := regexp.Compile(args[1]); err != nil {
				seq()
				return
			}
			c.steps = append(c.steps, step{kind: "expect_regex", data: args[1]})
		case args[0] == "binary" && isHex(args[1]):
			c.steps = append(c.steps, step{kind: "expect_hex", data: args[1]})
		default:
			seq() // rbinary, …
		}
	default: // send-lf, send-binary-lf, set-var, unset-var, …
		seq()
	}
}

// textStep is a send or expect of what HAProxy's escapes made: text, or
// bytes that are no UTF-8 text (a CUE string is text), as hex.
func textStep(kind, data string) step {
	if utf8.ValidString(data) {
		return step{kind: kind, data: data}
	}
	return step{kind: kind + "_hex", data: hex.EncodeToString([]byte(data))}
}

func isHex(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) > 0
}

// tcpExpect is the site's tcp-expect check when a sequence is one
// optional send and one expect of text, over one connection.
func tcpExpect(c *check) bool {
	ks := make([]string, len(c.steps))
	for i, s := range c.steps {
		ks[i] = s.kind
	}
	switch strings.Join(ks, " ") {
	case "send expect", "expect":
		return true
	}
	return false
}

// services builds the services of an haproxy.cfg: each listen section, and
// each frontend with its default backend.
func (c *hapConfig) services(w *warnings) []*service {
	var out []*service
	used := map[string]bool{}
	beSvc := map[string]string{} // backend (or listen) → the service that carries its servers
	for _, p := range c.proxies {
		var fe, be *hapProxy
		switch p.kind {
		case "listen":
			fe, be = p, p
		case "frontend":
			fe = p
			if p.bindLines == 0 {
				// HAProxy listens nowhere for it: its rules route nothing,
				// whatever they would need.
				w.add(p.pos, "frontend %s has no bind: HAProxy accepts no connection for it, so nothing reaches its rules or backends: not imported", p.name)
				continue
			}
			if p.defBackend == "" && p.routesHTTP() {
				// HAProxy answers a request no rule routes with 503: the
				// service is the rules alone, without servers of its own.
				be = fe
				break
			}
			if p.defBackend == "" {
				if ns := append(routingNeeds(p.needs), p.http.routeNeeds()...); len(ns) > 0 {
					w.refuse("frontend "+p.name, ns)
					continue
				}
				w.add(p.pos, "frontend %s has no default_backend: not imported", p.name)
				continue
			}
			be = c.backends[p.defBackend]
			if be == nil {
				w.add(p.defPos, "default_backend %s: no such backend: frontend not imported", p.defBackend)
				continue
			}
			used[be.name] = true
		default:
			continue
		}
		if len(fe.servers) == 0 && fe.stats && fe == be {
			w.add(p.pos, "listen %s is a stats page: not imported (gitgw serves `gitgw status`, /metrics and a status page)", p.name)
			continue
		}
		if len(fe.binds) == 0 {
			if ns := append(slices.Clone(fe.needs), fe.http.routeNeeds()...); len(ns) > 0 {
				// Its binds need what the site lacks (TLS termination),
				// or it does: the refusal names why, at the lines.
				w.refuse(p.kind+" "+p.name, ns)
				continue
			}
			w.add(p.pos, "%s %s has no TCP bind gitgw can take: not imported", p.kind, p.name)
			continue
		}
		if s := c.service(fe, be, w); s != nil {
			out = append(out, s)
			beSvc[be.name] = s.name
		}
	}
	out = c.pools(out, beSvc, used, w)
	c.unmappedForwardFor(w)
	c.unusedTarpitTimeouts(w)
	for _, p := range c.proxies {
		p.unusedACLs(w)
		if p.kind == "backend" && !used[p.name] {
			w.add(p.pos, "backend %s is no frontend's default_backend: not imported", p.name)
		}
	}
	return out
}

func (c *hapConfig) service(fe, be *hapProxy, w *warnings) *service {
	s := &service{name: siteName(fe.name), pos: fe.pos, binds: fe.binds}
	if s.name != fe.name {
		w.add(fe.pos, "%s %q renamed %q", fe.kind, fe.name, s.name)
	}
	hm, sm, httpNs := fe.httpMode(be, w)
	s.http, s.sni = hm, sm
	switch {
	case fe.asPool:
		s.comments = append(s.comments, fmt.Sprintf("From backend %s (%s), a pool that other services' rules send to.", be.name, be.pos))
	case fe != be:
		s.comments = append(s.comments, fmt.Sprintf("From frontend %s (%s) with backend %s (%s).", fe.name, fe.pos, be.name, be.pos))
	case fe.kind == "frontend":
		s.comments = append(s.comments, fmt.Sprintf("From frontend %s (%s), without default_backend: its rules send every request on, or it is answered 503.", fe.name, fe.pos))
	default:
		s.comments = append(s.comments, fmt.Sprintf("From listen %s (%s).", fe.name, fe.pos))
	}
	var httpIn []string
	for _, p := range []*hapProxy{fe, be} {
		if p.mode == "http" {
			httpIn = append(httpIn, p.kind+" "+p.name)
		}
		if fe == be {
			break
		}
	}
	switch {
	case hm != nil || sm != nil || fe.asPool:
		// HTTP mode is kept: the service's (or the pool's frontends').
	case len(httpIn) == 2 && fe.modePos != be.modePos:
		w.add(fe.modePos, "mode http (%s): gitgw proxies TCP (layer 4); imported as mode tcp, HTTP processing is lost", httpIn[0])
		w.add(be.modePos, "mode http (%s): gitgw proxies TCP (layer 4); imported as mode tcp, HTTP processing is lost", httpIn[1])
	case len(httpIn) > 0:
		pos := fe.modePos
		if fe.mode != "http" {
			pos = be.modePos
		}
		w.add(pos, "mode http (%s): gitgw proxies TCP (layer 4); imported as mode tcp, HTTP processing is lost", strings.Join(httpIn, ", "))
	}
	switch {
	case fe.asPool:
		// A pool accepts nothing: its frontends' maxconn apply.
	case fe.maxconn.ok:
		s.maxconn = fe.maxconn
	case c.globalMaxconn.ok:
		s.maxconn, s.maxconnFrom = c.globalMaxconn, "HAProxy's global maxconn"
	}
	// The client side comes from the frontend, the server side from the backend.
	for _, i := range []int{toClient, toClientFin} {
		s.timeouts[i] = fe.timeouts[i]
	}
	for _, i := range []int{toConnect, toServer, toServerFin, toTunnel, toQueue} {
		s.timeouts[i] = be.timeouts[i]
	}
	if !s.timeouts[toQueue].ok && s.timeouts[toConnect].ok {
		s.timeouts[toQueue] = s.timeouts[toConnect] // HAProxy's default
	}
	for _, i := range []int{toConnect, toClient, toServer} {
		if !s.timeouts[i].ok && !(fe.asPool && i == toClient) {
			w.add(fe.pos, "%s %s: no timeout %s (HAProxy waits forever): gitgw's default applies", fe.kind, fe.name, timeoutNames[i])
		}
	}
	s.balance, s.retries = be.balance, be.retries
	if be.stickOn {
		s.persistence = be.persist
	}
	s.redispatch = be.redispatch
	if !s.redispatch.ok {
		s.redispatch = some(false) // HAProxy's default, not the schema's
	}
	s.servers, s.proxyProto = be.servers, be.proxyProto
	for _, r := range s.servers {
		if t := r.tls; t != nil && t.verify == "" {
			t.verify = "required" // HAProxy's default, unless ssl-server-verify none
			if c.verifyNone {
				t.verify = "none"
			}
		}
		if t := r.tls; t != nil && t.verify == "required" && !t.ca.ok && !t.systemCA {
			w.add(t.pos, "server %s ssl: verify required without ca-file (HAProxy refuses it, or uses @system-ca): imported as verified against the node's system roots", r.name)
		}
	}
	if len(s.servers) == 0 && be.dispatch != "" {
		// HAProxy sends every connection to the dispatch address,
		// unchecked (so is the service, below, warned).
		s.servers = []*server{{name: "dispatch", address: be.dispatch}}
		w.add(be.dispatchPos, "dispatch %s: imported as the one server, dispatch", be.dispatch)
	}
	sourceWeights(s.servers)
	transNeeds := be.sourceMode(s, hm != nil || sm != nil || fe.asPool)
	s.resolveInterval = c.resolveInterval(be, w)
	var ns []need
	s.check, ns = be.serviceCheck(w, c.verifyNone)
	if fe != be {
		ns = append(slices.Clone(fe.needs), ns...)
	}
	var srcNeeds []need
	s.source, srcNeeds = fe.sourceRules(w)
	ns = append(ns, srcNeeds...)
	ns = append(ns, transNeeds...)
	var cookieNs []need
	s.cookie, cookieNs = be.cookieMap(w, hm != nil || fe.asPool)
	if fe != be && fe.cookiePos != (Pos{}) && fe.cookiePos != be.cookiePos {
		w.add(fe.cookiePos, "%s: not mapped (HAProxy ignores a cookie in a frontend: persistence is the backend's)", strings.Join(fe.cookieWords, " "))
	}
	ns = append(ns, cookieNs...)
	ns = append(ns, viaNeeds(be.servers, be.srvMore, hm != nil || sm != nil || fe.asPool, s.transparent || s.transparentAddr != "")...)
	ns = append(ns, cookieRewriteNeeds(fe, be)...)
	if s.cookie == nil {
		ns = append(ns, be.cookieRouting()...)
	}
	ns = append(ns, httpNs...)
	if hm == nil && sm == nil && fe != be && !fe.asPool {
		ns = append(ns, be.http.routeNeeds()...) // the backend's rules, behind no HTTP mode
	}
	if len(ns) > 0 {
		what := fmt.Sprintf("%s %s", fe.kind, fe.name)
		if fe != be {
			what += " (backend " + be.name + ")"
		}
		w.refuse(what, ns)
		return nil
	}
	if s.check == nil && len(s.servers) > 0 {
		// HAProxy sends traffic to every server whatever its state; a
		// check added here would take out servers the original keeps.
		w.add(be.pos, "%s %s: no server has a check: imported as unchecked: true, as HAProxy keeps sending to every server whatever its state (add a check to the site to take dead servers out)", be.kind, be.name)
		s.unchecked = true
	}
	if len(s.servers) == 0 && fe.kind == "frontend" && fe == be && s.http != nil {
		w.add(fe.pos, "frontend %s has no default_backend: a request no rule sends to a backend is answered 503, as HAProxy answers it (a service without servers of its own)", fe.name)
		s.check, s.unchecked = nil, false
		return s
	}
	if len(s.servers) == 0 {
		w.add(be.pos, "%s %s has no server gitgw can use: service not imported", be.kind, be.name)
		return nil
	}
	return s
}

// routesHTTP says whether a frontend routes requests in HTTP mode: mode
// http with use_backend rules.
func (p *hapProxy) routesHTTP() bool {
	return p.mode == "http" && p.http != nil && len(p.http.routes) > 0
}

// routingNeeds are the content-switching needs of ns.
func routingNeeds(ns []need) []need {
	var out []need
	for _, n := range ns {
		if n.feature == FeatContentSwitching {
			out = append(out, n)
		}
	}
	return out
}

// cookieMap maps a backend's persistence cookie and its servers'
// values (#Service.cookie, #Server.cookie) when the service keeps HTTP
// mode (http): `cookie NAME [insert|rewrite] [indirect] [nocache] [httponly]
// [secure] [domain D]`; a line without insert, rewrite or prefix is
// passive (the servers set the cookie, HAProxy only reads it). What the
// proxy lacks refuses the service (FeatCookie). Where HAProxy ignores the
// cookie (mode tcp, no cookie line for a server's value) it is warned.
// A cookie that is not imported because HTTP mode is not is warned too,
// and cookieRouting refuses what it would have routed.
func (p *hapProxy) cookieMap(w *warnings, http bool) (*svcCookie, []need) {
	warnServers := func(why string) {
		for i, m := range p.srvMore {
			if m.cookie != "" {
				w.add(m.pos, "server %s cookie %s: not mapped (%s)", p.servers[i].name, m.cookie, why)
			}
		}
	}
	if p.cookiePos == (Pos{}) {
		warnServers("the backend has no cookie line: HAProxy ignores the value")
		return nil, nil
	}
	line := strings.Join(p.cookieWords, " ")
	switch {
	case p.mode != "http":
		w.add(p.cookiePos, "%s: not mapped (HAProxy ignores a cookie in mode tcp)", line)
		warnServers("HAProxy ignores a cookie in mode tcp")
		return nil, nil
	case !http:
		w.add(p.cookiePos, "%s: not mapped (the service is not imported in HTTP mode; each connection is balanced)", line)
		warnServers("the service is not imported in HTTP mode")
		return nil, nil
	case len(p.cookieWords) < 2:
		w.add(p.cookiePos, "%s: not mapped (no cookie name)", line)
		warnServers("the cookie line names no cookie")
		return nil, nil
	}
	ck := &svcCookie{name: p.cookieWords[1], mode: "passive"}
	var ns []need
	var attrs []string // insert's attributes, warned in passive mode
	ws := p.cookieWords
	for i := 2; i < len(ws); i++ {
		switch k := ws[i]; k {
		case "insert", "rewrite":
			ck.mode = k
		case "indirect":
			ck.indirect = true
		case "nocache":
			ck.nocache = true
			attrs = append(attrs, k)
		case "httponly":
			ck.httponly = true
			attrs = append(attrs, k)
		case "secure":
			ck.secure = true
			attrs = append(attrs, k)
		case "domain":
			if i+1 >= len(ws) {
				w.add(p.cookiePos, "%s: domain without a value: not mapped", line)
				continue
			}
			i++
			if ck.domain != "" {
				ns = append(ns, needs(p.cookiePos, FeatCookie, "%s (a second domain)", line))
				continue
			}
			ck.domain = ws[i]
			attrs = append(attrs, "domain "+ws[i])
		case "maxidle", "maxlife", "attr":
			i++
			ns = append(ns, needs(p.cookiePos, FeatCookie, "%s (%s)", line, k))
		default: // prefix, postonly, preserve, dynamic, …
			ns = append(ns, needs(p.cookiePos, FeatCookie, "%s (%s)", line, k))
		}
	}
	if ck.mode != "insert" && len(attrs) > 0 {
		w.add(p.cookiePos, "%s: %s not mapped (they apply to an inserted cookie; without insert the servers set it)", line, strings.Join(attrs, ", "))
		ck.nocache, ck.httponly, ck.secure, ck.domain = false, false, false, ""
	}
	for i, m := range p.srvMore {
		p.servers[i].cookie = m.cookie
	}
	return ck, ns
}

// cookieRouting: in mode http, a request holding a server's cookie goes
// to that server, and HAProxy serves it there even when the server is a
// backup and the active servers are up ("requests coming with a
// persistence cookie referencing the server will always be served"). A
// gitgw backup server gets no traffic while another is up, so that
// traffic would go to other servers when the cookie is not imported
// (cookieMap: the service is not in HTTP mode).
func (p *hapProxy) cookieRouting() []need {
	if p.mode != "http" || p.cookiePos == (Pos{}) {
		return nil
	}
	var ns []need
	for i, m := range p.srvMore {
		if m.cookie != "" && p.servers[i].backup {
			ns = append(ns, needs(m.pos, FeatContentSwitching, "server %s cookie %s backup (a request holding cookie %s reaches it while the active servers are up)", p.servers[i].name, m.cookie, m.cookie))
		}
	}
	return ns
}

// noteCookieRewrite records l when it rewrites the request's Cookie
// header: HAProxy 1.x's reqrep/reqirep/reqadd/reqdel/reqidel naming
// "Cookie:", http-request set-header/add-header/replace-header/
// replace-value/del-header Cookie.
func (p *hapProxy) noteCookieRewrite(l hapLine) {
	ws := l.Words
	switch ws[0] {
	case "reqrep", "reqirep", "reqadd", "reqdel", "reqidel":
		for _, word := range ws[1:] {
			if strings.Contains(strings.ToLower(word), "cookie:") {
				p.cookieRewrites = append(p.cookieRewrites, l)
				return
			}
		}
	case "http-request":
		if len(ws) > 2 && slices.Contains([]string{"set-header", "add-header", "replace-header", "replace-value", "del-header"}, ws[1]) && strings.EqualFold(ws[2], "cookie") {
			p.cookieRewrites = append(p.cookieRewrites, l)
		}
	}
}

// cookieRewriteNeeds: a rewrite of the Cookie header chooses the server
// a persistence cookie sends the request to, in this proxy or in one
// behind it (HAProxy's URL-switching sample sends /img to a backup server
// of the next proxy that way, and deletes the clients' own cookie first);
// dropped, those requests would go where the balancer sends them, or
// where a client's cookie says.
func cookieRewriteNeeds(fe, be *hapProxy) []need {
	var ns []need
	for _, p := range []*hapProxy{fe, be} {
		if p == be && fe == be && len(ns) > 0 {
			break
		}
		for _, l := range p.cookieRewrites {
			ns = append(ns, needs(l.Pos, FeatContentSwitching, "%s (it rewrites the Cookie header, which picks the server a request reaches)", strings.Join(l.Words, " ")))
		}
		if fe == be {
			break
		}
	}
	return ns
}

// resolveInterval is how often the backend's servers given by name are
// resolved again: their resolvers section's, the shortest when they name
// several. A server by name without resolvers HAProxy resolves once, at
// start; gitgw resolves it again every resolve_interval (warned).
func (c *hapConfig) resolveInterval(be *hapProxy, w *warnings) opt[time.Duration] {
	var out opt[time.Duration]
	for i, m := range be.srvMore {
		if !m.byName {
			continue
		}
		if m.resolvers == "" {
			w.add(m.pos, "server %s is given by name without resolvers: HAProxy resolves it once, at start; gitgw resolves it again every resolve_interval (10s unless set), and follows a new address", be.servers[i].name)
			continue
		}
		r, ok := c.resolvers[m.resolvers]
		if !ok {
			w.add(m.pos, "server %s resolvers %s: no such resolvers section: gitgw's default resolve_interval (10s) applies", be.servers[i].name, m.resolvers)
			continue
		}
		if out.ok && out.v != r.interval {
			w.add(m.pos, "server %s resolvers %s: its servers name resolvers that resolve at other intervals; the shortest applies to the service", be.servers[i].name, m.resolvers)
		}
		if !out.ok || r.interval < out.v {
			out = some(r.interval)
		}
	}
	return out
}

// serviceCheck folds the servers' checks into the service's one check. It
// returns what the proxy needs that the site lacks, the check's needs
// included when servers are checked.
func (p *hapProxy) serviceCheck(w *warnings, verifyNone bool) (*check, []need) {
	ns := slices.Clone(p.needs)
	var first *srvCheck
	var checked []*srvCheck
	for i := range p.srvChecks {
		sc := &p.srvChecks[i]
		if !sc.on {
			continue
		}
		ns = append(ns, sc.needs...)
		checked = append(checked, sc)
		if first == nil {
			first = sc
			continue
		}
		a, b := *first, *sc
		for _, x := range []*srvCheck{&a, &b} {
			x.pos, x.name, x.needs, x.tlsNeeds = Pos{}, "", nil, nil
			x.port, x.addr, x.portPos, x.ssl, x.tls = opt[int]{}, opt[string]{}, Pos{}, false, checkTLS{}
		}
		if !reflect.DeepEqual(a, b) {
			w.add(sc.pos, "server %s: its check settings differ from server %s's: gitgw checks all servers of a service alike; %s's are used", sc.name, first.name, first.name)
		}
	}
	if first == nil {
		return nil, ns
	}
	// A server without "check" is never marked down by HAProxy, whatever
	// the others' checks say: unchecked, as in the site.
	for i := range p.srvChecks {
		if !p.srvChecks[i].on {
			p.servers[i].unchecked = true
		}
	}
	c := &check{kind: "tcp"}
	useTLS, portSet := first.ssl, false
	var sni opt[string]
	switch {
	case p.protoNeed != nil:
		ns = append(ns, *p.protoNeed)
	case p.httpchk != nil:
		c = p.httpchk.clone()
		ns = append(ns, p.httpNeeds...)
		if !p.expectSet {
			// HAProxy passes any 2xx or 3xx without an expect.
			c.statuses = []string{"200-399"}
		}
		if cn := p.httpConn; cn != nil {
			// The connect's own settings, else the server line's with
			// "default" (HAProxy's tcpcheck_connect).
			c.port, c.address, portSet, sni = cn.port, cn.addr, cn.port.ok, cn.sni
			useTLS = cn.ssl || (cn.def && first.ssl)
		}
	case p.tcpcheck != nil:
		c = p.tcpcheck.clone()
		ns = append(ns, p.tcpNeeds...)
		if c.tls != nil {
			sni, c.tls = c.tls.sni, nil
		}
		if c.kind != "tcp" || len(c.steps) == 0 {
			break
		}
		if last := c.steps[len(c.steps)-1]; last.kind == "send" || last.kind == "send_hex" {
			// HAProxy's tcpcheck_main sets no result after a last send
			// (only after an expect or a connect): no site check is
			// known to end alike.
			ns = append(ns, needs(p.pos, FeatCheckSequence, "a tcp-check that ends with a send"))
		}
		stepTLS := false
		for i := range c.steps {
			if c.steps[i].kind == "connect" {
				c.steps[i].tls = c.steps[i].tls || (p.tcpDefault[i] && first.ssl)
				stepTLS = stepTLS || c.steps[i].tls
			}
		}
		if stepTLS && !first.ssl && c.steps[0].kind != "connect" {
			// The implied first connect is plain, as the server's.
			c.steps = append([]step{{kind: "connect"}}, c.steps...)
		}
		useTLS = first.ssl || stepTLS
		if s := c.steps[0]; s.kind == "connect" && !s.port.ok && s.tls == first.ssl {
			c.steps = c.steps[1:] // the connect HAProxy would make anyway
		}
		switch {
		case len(c.steps) == 0:
			c.kind = "tcp"
		case tcpExpect(c):
			c.kind = "tcp-expect"
			if len(c.steps) == 2 {
				c.send = some(c.steps[0].data)
			}
			c.expect, c.steps = some(c.steps[len(c.steps)-1].data), nil
		default:
			c.kind = "tcp-check"
		}
	}
	// A port or address every checked server shares is the check's;
	// those that differ are each server's own (check_port,
	// check_address), unless a connect's port or address overrides them
	// all (HAProxy's tcpcheck_connect).
	addrSet := c.address.ok
	samePort, sameAddr := true, true
	for _, sc := range checked {
		samePort = samePort && sc.port == first.port
		sameAddr = sameAddr && sc.addr == first.addr
	}
	if !portSet && samePort {
		c.port = first.port
	}
	if !addrSet && sameAddr {
		c.address = first.addr
	}
	for i := range p.srvChecks {
		if sc := p.srvChecks[i]; sc.on {
			if !portSet && !samePort {
				p.servers[i].checkPort = sc.port
			}
			if !addrSet && !sameAddr {
				p.servers[i].checkAddr = sc.addr
			}
		}
	}
	if useTLS {
		for _, sc := range checked {
			if sc.ssl != first.ssl {
				ns = append(ns, needs(sc.pos, FeatTLSCheck, "check-ssl on some servers only (server %s's differs from %s's)", sc.name, first.name))
				break
			}
			if sc.tls != first.tls {
				ns = append(ns, needs(sc.pos, FeatPerServerCheck, "server %s: its check TLS (verify, ca-file, crt, check-sni) differs from server %s's", sc.name, first.name))
				break
			}
		}
		if c.kind == "mysql" || c.kind == "pgsql" {
			ns = append(ns, needs(first.pos, FeatTLSCheck, "check-ssl on a %s check (the site's negotiates its own)", c.kind))
		}
		ns = append(ns, first.tlsNeeds...)
		t := first.tls
		if t.verify == "" {
			t.verify = "required" // HAProxy's default, unless ssl-server-verify none
			if verifyNone {
				t.verify = "none"
			}
		}
		if sni.ok {
			t.sni = sni
		}
		if t.verify == "required" && !t.sni.ok {
			// Without an SNI (or verifyhost) HAProxy verifies the chain
			// only; the site's check also verifies a name (the Host, else
			// the address), and would mark down servers HAProxy accepts.
			ns = append(ns, needs(first.pos, FeatTLSCheck, "server %s: check TLS with verify required and no check-sni (HAProxy verifies the certificate chain, not a name)", first.name))
		}
		c.tls = &t
	}
	if c.rawTarget.ok {
		// A target the site's HTTP check cannot send: a command check
		// sends HAProxy's request as written, when nothing else of the
		// check needs the HTTP check.
		if useTLS || c.expectString.ok || c.expectRegex.ok {
			ns = append(ns, needs(p.httpPos, FeatCheckHeaders, "option httpchk %s %s (request target %q) with TLS or a body expect", c.method.v, c.rawTarget.v, c.rawTarget.v))
		} else {
			c = rawHTTPCheck(c, p.httpPos, w)
		}
	}
	c.interval, c.fastInter, c.downInter = first.inter, first.fast, first.down
	c.rise, c.fall, c.shutdown = first.rise, first.fall, first.shutdown
	// HAProxy bounds a check by "timeout check", else by the interval.
	switch {
	case p.checkTO.ok:
		c.timeout = p.checkTO
	case first.inter.ok:
		c.timeout = first.inter
	default:
		c.timeout = some(2 * time.Second)
	}
	return c, ns
}

// rawTargetRE is a request target or version a command check sends as
// written: printable, no spaces.
var rawTargetRE = regexp.MustCompile(`^[!-~]+$`)

// rawScript sends a request (printf %b) and passes when the reply's
// status is in the ranges ("200-399").
const rawScript = `exec 3<>"/dev/tcp/$GITGW_SERVER_ADDR/$GITGW_SERVER_PORT" && printf %b "$1" >&3 || exit 1; ` +
	`IFS=" " read -r _ c _ <&3 && [[ $c =~ ^[1-5][0-9][0-9] ]] || exit 1; c=${c:0:3}; ` +
	`for r in $2; do (( c >= ${r%-*} && c <= ${r#*-} )) && exit 0; done; exit 1`

// rawHTTPCheck is HAProxy's HTTP check of a target the site's check
// cannot send ("OPTIONS * HTTP/1.0"), as a command check sending the
// request line and headers as HAProxy writes them.
func rawHTTPCheck(c *check, pos Pos, w *warnings) *check {
	version := cmp.Or(c.rawVersion, "HTTP/1.0")
	req := fmt.Sprintf("%s %s %s\r\n", c.method.v, c.rawTarget.v, version)
	if c.host.ok {
		req += "Host: " + c.host.v + "\r\n"
	}
	for _, h := range c.headers {
		req += h.name + ": " + h.value + "\r\n"
	}
	req += "\r\n"
	var esc strings.Builder
	for _, b := range []byte(req) {
		fmt.Fprintf(&esc, `\x%02x`, b)
	}
	statuses := c.statuses
	if len(statuses) == 0 {
		statuses = []string{fmt.Sprint(cmp.Or(c.expectStatus.v, 200))}
	}
	note := ""
	if slices.Contains([]string{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"}, c.rawTarget.v) {
		note = fmt.Sprintf(" (HAProxy takes a single argument of option httpchk as the URI: %s is sent as the target; write \"option httpchk %s /\" for a %s request)", c.rawTarget.v, c.rawTarget.v, c.rawTarget.v)
	}
	w.add(pos, "option httpchk %s %s: the site's HTTP check sends an absolute path; imported as a command check sending %q as HAProxy does (it runs bash on the node)%s", c.method.v, c.rawTarget.v, strings.TrimSuffix(req, "\r\n\r\n"), note)
	return &check{kind: "command", port: c.port, address: c.address,
		cmd: "exec bash -c " + shQuote(rawScript) + " haproxy-httpchk " + shQuote(esc.String()) + " " + shQuote(strings.Join(statuses, " "))}
}
