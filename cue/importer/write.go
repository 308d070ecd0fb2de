package importer

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

const moduleFile = `module: "example.net/site@v0"
language: version: "v0.17.0"
`

// writeSite renders the site as files of a CUE module.
func writeSite(st *site) []File {
	files := []File{{Name: "cue.mod/module.cue", Data: []byte(moduleFile)}}
	var sources []string
	for _, n := range st.nodes {
		if n.source != "" {
			sources = append(sources, fmt.Sprintf("%s (%s)", n.source, n.name))
		}
	}
	head := []string{"Imported by `gitgw import`."}
	if len(sources) > 0 {
		head = []string{"Imported by `gitgw import` from:"}
		for _, s := range sources {
			head = append(head, "  "+s)
		}
	}
	head = append(head, "Review every TODO(import) and the warnings the import printed, then",
		"check the site with `gitgw validate --site .`.")
	var top []cfield
	if st.name != "" || len(st.userlists) > 0 {
		ss := &cstruct{}
		if st.name != "" {
			ss.add("name", cstr(st.name))
		}
		if len(st.userlists) > 0 {
			ss.fields = append(ss.fields, userlistsField(st.userlists))
		}
		top = append(top, fld("site", ss))
	}
	nodes := &cstruct{}
	for _, n := range st.nodes {
		nodes.fields = append(nodes.fields, nodeField(n))
	}
	top = append(top, fld("nodes", nodes))
	files = append(files, File{Name: "site.cue", Data: []byte(comments(head) + "package site\n\n" + render(top))})
	if len(st.vrrp) > 0 {
		v := &cstruct{}
		for _, in := range st.vrrp {
			var from []string
			for _, p := range in.srcs {
				from = append(from, p.String())
			}
			f := cfield{label: in.name, val: instanceFields(in), doc: []string{"From " + strings.Join(from, ", ") + "."}}
			v.fields = append(v.fields, f)
		}
		files = append(files, File{Name: "vrrp.cue", Data: []byte(comments([]string{
			"The VRRP instances, one entry per node in nodes with its priority.",
		}) + "package site\n\n" + render([]cfield{fld("vrrp", v)}))})
	}
	if len(st.services) > 0 {
		v := &cstruct{}
		for _, s := range st.services {
			v.fields = append(v.fields, serviceField(s))
		}
		files = append(files, File{Name: "services.cue", Data: []byte(comments([]string{
			"The services, on every node (or those in nodes): proxied by gitgw, or forwarded in the kernel (mode nat, dr).",
		}) + "package site\n\n" + render([]cfield{fld("services", v)}))})
	}
	return files
}

func comments(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("// " + l + "\n")
	}
	return b.String()
}

func nodeField(n *node) cfield {
	body := &cstruct{}
	ifs := &cstruct{}
	var doc []string
	for _, i := range n.ifaces {
		addrs := cstrs(i.addrs)
		if len(i.addrs) == 0 {
			doc = append(doc, fmt.Sprintf("TODO(import): %s's own address on %s (CIDR); keepalived.conf does not state it.", n.name, i.name))
		}
		doc = append(doc, i.notes...)
		ifs.fields = append(ifs.fields, fld(i.name, &cstruct{fields: []cfield{fld("addresses", addrs)}}))
	}
	for _, h := range n.held {
		doc = append(doc, "TODO(import): "+h.why+".")
	}
	if len(ifs.fields) > 0 {
		body.fields = append(body.fields, cfield{label: "interfaces", val: ifs, doc: doc})
		return cfield{label: n.name, val: body}
	}
	body.inline = true
	return cfield{label: n.name, val: body, doc: doc}
}

// instanceFields renders an instance in the schema's field order.
func instanceFields(in *instance) *cstruct {
	s := &cstruct{}
	s.add("interface", cstr(in.iface))
	s.add("vrid", cint(in.vrid))
	if in.version.ok && in.version.v != 3 {
		s.add("version", cint(in.version.v))
	}
	addOpt(s, "advert_interval", in.advert, cdur)
	nodes := &cstruct{}
	for _, p := range in.prios {
		nodes.fields = append(nodes.fields, fld(p.node, &cstruct{fields: []cfield{fld("priority", cint(p.prio))}}))
	}
	var states []string
	for _, p := range in.prios {
		if p.state != "" {
			states = append(states, p.node+" "+p.state)
		}
	}
	if len(states) > 0 {
		s.addDoc("nodes", nodes, "keepalived's initial states: "+strings.Join(states, ", ")+"; gitgw elects by priority.")
	} else {
		s.add("nodes", nodes)
	}
	addOpt(s, "preempt", in.preempt, cbool)
	addOpt(s, "preempt_delay", in.delay, cdur)
	if in.password.ok {
		s.addDoc("auth", inline(fld("type", cstr("pass")), fld("password", cstr(in.password.v))),
			"keepalived's auth_pass; password_file keeps it out of Git.")
	}
	vipList := func(vs []vip) *clist {
		l := &clist{}
		for _, v := range vs {
			if v.label == "" && (v.dev == "" || v.dev == in.iface) {
				l.elems = append(l.elems, cstr(v.addr))
				continue
			}
			st := inline(fld("address", cstr(v.addr)))
			if v.label != "" {
				st.fields = append(st.fields, fld("label", cstr(v.label)))
			}
			if v.dev != "" && v.dev != in.iface {
				st.fields = append(st.fields, fld("dev", cstr(v.dev)))
			}
			l.elems = append(l.elems, st)
		}
		return l
	}
	s.add("vips", vipList(in.vips))
	if len(in.excluded) > 0 {
		s.add("excluded_vips", vipList(in.excluded))
	}
	if len(in.trackIfs) > 0 {
		l := &clist{}
		for _, t := range in.trackIfs {
			st := inline(fld("name", cstr(t.name)))
			if t.weight != 0 {
				st.fields = append(st.fields, fld("weight", cint(t.weight)))
			}
			l.elems = append(l.elems, st)
		}
		s.add("track_interfaces", l)
	}
	if len(in.checks) > 0 {
		l := &clist{}
		for _, c := range in.checks {
			st := &cstruct{}
			st.add("name", cstr(c.name))
			st.fields = append(st.fields, checkFields(c.check, c.command)...)
			if c.weight != 0 {
				st.add("weight", cint(c.weight))
			}
			l.elems = append(l.elems, st)
		}
		s.add("track_checks", l)
	}
	if len(in.trackSvcs) > 0 {
		l := &clist{}
		for _, t := range in.trackSvcs {
			st := inline(fld("service", cstr(t.service)))
			if t.weight != 0 {
				st.fields = append(st.fields, fld("weight", cint(t.weight)))
			}
			l.elems = append(l.elems, st)
		}
		s.add("track_services", l)
	}
	garp := inline()
	if in.garpDelay.ok && in.garpDelay.v != 0 {
		garp.fields = append(garp.fields, fld("delay", cdur(in.garpDelay.v)))
	}
	if in.garpRep.ok {
		garp.fields = append(garp.fields, fld("repeat", cint(in.garpRep.v)))
	}
	if in.garpRefr.ok {
		garp.fields = append(garp.fields, fld("refresh", cdur(in.garpRefr.v)))
	}
	if len(garp.fields) > 0 {
		s.add("garp", small(garp))
	}
	notify := &cstruct{}
	for i, k := range []string{"master", "backup", "fault", "stop"} {
		if in.notify[i] != "" {
			notify.add(k, cstr(in.notify[i]))
		}
	}
	if len(notify.fields) > 0 {
		s.add("notify", notify)
	}
	if in.unicast {
		s.add("unicast", cbool(true))
	}
	if in.syncGroup != "" {
		s.add("sync_group", cstr(in.syncGroup))
	}
	if in.vmac {
		s.add("vmac", cbool(true))
	}
	return s
}

// small keeps a struct of scalars inline when it is short.
func small(s *cstruct) *cstruct {
	s.inline = utf8.RuneCountInString(renderValue(&cstruct{fields: s.fields, inline: true}, 0)) <= 60
	for _, f := range s.fields {
		if _, ok := f.val.(clit); !ok {
			s.inline = false
		}
	}
	return s
}

// checkFields renders a health check in the schema's field order.
func checkFields(c check, command string) []cfield {
	s := &cstruct{}
	s.add("kind", cstr(c.kind))
	if command != "" {
		s.add("command", cstr(command))
	}
	addOpt(s, "interval", c.interval, cdur)
	addOpt(s, "timeout", c.timeout, cdur)
	addOpt(s, "rise", c.rise, cint)
	addOpt(s, "fall", c.fall, cint)
	if c.kind == "http" && len(c.requests) == 0 {
		// Written out even when they are what an empty value means (GET,
		// "/"): the operator sees the request the check makes.
		addOpt(s, "method", c.method, cstr)
		addOpt(s, "path", c.path, cstr)
		addOpt(s, "host", c.host, cstr)
		if len(c.statuses) == 0 {
			addOpt(s, "expect_status", c.expectStatus, cint)
		}
		addOpt(s, "expect_string", c.expectString, cstr)
	}
	if c.kind == "tcp-expect" {
		addOpt(s, "send", c.send, cstr)
		s.add("expect", cstr(c.expect.v))
	}
	addOpt(s, "port", c.port, cint)
	addOpt(s, "address", c.address, cstr)
	if t := c.tls; t != nil {
		ts := inline()
		if t.sni.ok {
			ts.fields = append(ts.fields, fld("sni", cstr(t.sni.v)))
		}
		ts.fields = append(ts.fields, fld("verify", cstr(t.verify)))
		for _, f := range []struct {
			label string
			v     opt[string]
		}{{"ca_file", t.ca}, {"cert_file", t.crt}, {"key_file", t.key}} {
			if f.v.ok {
				ts.fields = append(ts.fields, fld(f.label, cstr(f.v.v)))
			}
		}
		s.add("tls", small(ts))
	}
	if c.kind == "http" {
		if len(c.headers) > 0 {
			s.add("headers", headerFields(c.headers))
		}
		if len(c.statuses) > 0 && len(c.requests) == 0 {
			s.add("expect_statuses", cstatuses(c.statuses))
		}
		addOpt(s, "expect_regex", c.expectRegex, cstr)
		if len(c.requests) > 0 {
			l := &clist{block: true}
			for _, r := range c.requests {
				rs := inline(fld("method", cstr(r.method)), fld("path", cstr(r.path)))
				if r.host != "" {
					rs.fields = append(rs.fields, fld("host", cstr(r.host)))
				}
				if len(r.headers) > 0 {
					rs.fields = append(rs.fields, fld("headers", inline(headerFields(r.headers).fields...)))
				}
				if len(r.statuses) > 0 {
					rs.fields = append(rs.fields, fld("expect_statuses", cstatuses(r.statuses)))
				} else if r.expectStatus.ok {
					rs.fields = append(rs.fields, fld("expect_status", cint(r.expectStatus.v)))
				}
				if r.expectRegex != "" {
					rs.fields = append(rs.fields, fld("expect_regex", cstr(r.expectRegex)))
				}
				l.elems = append(l.elems, rs)
			}
			s.add("requests", l)
		}
	}
	if c.kind == "tcp-check" {
		l := &clist{block: true}
		for _, st := range c.steps {
			if st.kind == "connect" {
				cs := inline()
				if st.port.ok {
					cs.fields = append(cs.fields, fld("port", cint(st.port.v)))
				}
				cs.fields = append(cs.fields, fld("tls", cbool(st.tls)))
				l.elems = append(l.elems, inline(fld("connect", cs)))
				continue
			}
			l.elems = append(l.elems, inline(fld(st.kind, cstr(st.data))))
		}
		s.add("steps", l)
	}
	addOpt(s, "domain", c.domain, cstr)
	addOpt(s, "user", c.user, cstr)
	addOpt(s, "database", c.database, cstr)
	addOpt(s, "role", c.role, cstr)
	return s.fields
}

// cstatuses writes statuses as the schema takes them: a code as a
// number, a range as a string.
func cstatuses(ss []string) *clist {
	l := &clist{}
	for _, s := range ss {
		if v, err := strconv.Atoi(s); err == nil {
			l.elems = append(l.elems, cint(v))
		} else {
			l.elems = append(l.elems, cstr(s))
		}
	}
	return l
}

// headerFields writes check headers in the order the source gave them.
func headerFields(hs []header) *cstruct {
	s := &cstruct{}
	for _, h := range hs {
		s.add(h.name, cstr(h.value))
	}
	return s
}

func serviceField(sv *service) cfield {
	s := &cstruct{}
	if len(sv.nodes) > 0 {
		s.add("nodes", cstrs(sv.nodes))
	}
	if sv.mode != "" {
		s.add("mode", cstr(sv.mode))
	}
	if len(sv.localAddrs) > 0 {
		s.add("local_addresses", cstrs(sv.localAddrs))
	}
	if sv.protocol != "" {
		s.add("protocol", cstr(sv.protocol))
	}
	if sv.iface != "" {
		s.add("interface", cstr(sv.iface))
	}
	if len(sv.binds) > 0 || len(sv.fwmarks) == 0 {
		s.add("binds", cstrs(sv.binds))
	}
	if len(sv.fwmarks) > 0 {
		s.add("fwmarks", cints(sv.fwmarks))
	}
	addOpt(s, "balance", sv.balance, cstr)
	if sv.transparent {
		s.add("transparent", cbool(true))
	}
	if sv.transparentAddr != "" {
		s.add("transparent_address", cstr(sv.transparentAddr))
	}
	if sv.sourceAddr != "" {
		s.add("source_address", cstr(sv.sourceAddr))
	}
	addOpt(s, "persistence", sv.persistence, cdur)
	if sv.maxconn.ok {
		f := s.add("maxconn", cint(sv.maxconn.v))
		if sv.maxconnFrom != "" {
			f.trail = "from " + sv.maxconnFrom
		}
	}
	if r := sv.source; r != nil && (len(r.allow) > 0 || len(r.deny) > 0 || r.maxConn.ok || r.rate.ok) {
		src := &cstruct{}
		if len(r.allow) > 0 {
			src.add("allow", cstrs(r.allow))
		}
		if len(r.deny) > 0 {
			src.add("deny", cstrs(r.deny))
		}
		addOpt(src, "max_conn_per_source", r.maxConn, cint)
		addOpt(src, "max_rate_per_source", r.rate, cstr)
		s.add("source", small(src))
	}
	to := inline()
	for i, t := range sv.timeouts {
		if t.ok {
			to.fields = append(to.fields, fld(timeoutNames[i], cdur(t.v)))
		}
	}
	if len(to.fields) > 0 {
		s.add("timeouts", small(to))
	}
	addOpt(s, "retries", sv.retries, cint)
	addOpt(s, "redispatch", sv.redispatch, cbool)
	servers := &cstruct{}
	for _, r := range sv.servers {
		st := inline(fld("address", cstr(r.address)))
		if r.weight.ok {
			st.fields = append(st.fields, fld("weight", cint(r.weight.v)))
		}
		if r.maxconn.ok {
			st.fields = append(st.fields, fld("maxconn", cint(r.maxconn.v)))
		}
		if r.checkPort.ok {
			st.fields = append(st.fields, fld("check_port", cint(r.checkPort.v)))
		}
		if t := r.tls; t != nil {
			st.fields = append(st.fields, fld("tls", small(serverTLSFields(t))))
		}
		if r.checkAddr.ok {
			st.fields = append(st.fields, fld("check_address", cstr(r.checkAddr.v)))
		}
		if len(r.checkTargets) > 0 {
			st.fields = append(st.fields, fld("check_targets", cstrs(r.checkTargets)))
		}
		if r.sourceAddr != "" {
			st.fields = append(st.fields, fld("source_address", cstr(r.sourceAddr)))
		}
		if r.cookie != "" {
			st.fields = append(st.fields, fld("cookie", cstr(r.cookie)))
		}
		if v := r.via; v != nil {
			via := inline(fld("socks4", cstr(v.socks4)))
			if v.check {
				via.fields = append(via.fields, fld("check", cbool(true)))
			}
			st.fields = append(st.fields, fld("via", small(via)))
		}
		for _, b := range []struct {
			name string
			on   bool
		}{{"backup", r.backup}, {"drain", r.drain}, {"disabled", r.disabled}, {"unchecked", r.unchecked}} {
			if b.on {
				st.fields = append(st.fields, fld(b.name, cbool(true)))
			}
		}
		if len(st.fields) == 1 {
			st.inline = false // a label chain: `web1: address: "…"`
		}
		servers.fields = append(servers.fields, fld(r.name, st))
	}
	s.add("servers", servers)
	addOpt(s, "resolve_interval", sv.resolveInterval, cdur)
	if c := sv.check; c != nil {
		cs := &cstruct{fields: checkFields(*c, c.cmd)}
		addOpt(cs, "fast_interval", c.fastInter, cdur)
		addOpt(cs, "down_interval", c.downInter, cdur)
		if c.shutdown {
			cs.add("shutdown_sessions", cbool(true))
		}
		s.add("check", small(cs))
	}
	if sv.unchecked {
		s.add("unchecked", cbool(true))
	}
	if sv.proxyProto != "" {
		s.add("proxy_protocol", cstr(sv.proxyProto))
	}
	if sv.http != nil {
		hs := httpField(sv.http)
		hs.inline = len(hs.fields) == 0 // `http: {}`: HTTP mode with nothing more (a cookie's)
		s.add("http", hs)
	}
	if sv.sni != nil {
		ss := &cstruct{}
		addOpt(ss, "inspect_delay", sv.sni.delay, cdur)
		rules := &clist{block: true}
		for _, r := range sv.sni.rules {
			rs := inline(fld("names", cstrs(r.names)))
			if r.match != "" {
				rs.fields = append(rs.fields, fld("match", cstr(r.match)))
			}
			rs.fields = append(rs.fields, fld("use", cstr(r.use)))
			rules.elems = append(rules.elems, rs)
		}
		ss.add("rules", rules)
		s.add("sni", ss)
	}
	if ck := sv.cookie; ck != nil {
		cs := inline(fld("name", cstr(ck.name)), fld("mode", cstr(ck.mode)))
		for _, b := range []struct {
			name string
			on   bool
		}{{"indirect", ck.indirect}, {"nocache", ck.nocache}, {"httponly", ck.httponly}, {"secure", ck.secure}} {
			if b.on {
				cs.fields = append(cs.fields, fld(b.name, cbool(true)))
			}
		}
		if ck.domain != "" {
			cs.fields = append(cs.fields, fld("domain", cstr(ck.domain)))
		}
		s.add("cookie", cs)
	}
	return cfield{label: sv.name, val: s, doc: sv.comments}
}

// serverTLSFields writes a server's #ServerTLS: one crt file holds the
// certificate and its key, as HAProxy's.
func serverTLSFields(t *serverTLS) *cstruct {
	ts := inline()
	add := func(label string, v opt[string]) {
		if v.ok {
			ts.fields = append(ts.fields, fld(label, cstr(v.v)))
		}
	}
	add("sni", t.sni)
	ts.fields = append(ts.fields, fld("verify", cstr(t.verify)))
	add("verify_host", t.verifyHost)
	add("ca_file", t.ca)
	add("cert_file", t.cert)
	add("key_file", t.cert)
	if len(t.alpn) > 0 {
		ts.fields = append(ts.fields, fld("alpn", cstrs(t.alpn)))
	}
	if t.noReuse {
		ts.fields = append(ts.fields, fld("session_reuse", cbool(false)))
	}
	return ts
}

// condsField writes a list of conditions.
func condsField(cs []httpCond) *clist {
	when := &clist{}
	for _, c := range cs {
		s := inline(fld("subject", cstr(c.subject)))
		if c.header != "" {
			s.fields = append(s.fields, fld("header", cstr(c.header)))
		}
		if c.userlist != "" {
			s.fields = append(s.fields, fld("userlist", cstr(c.userlist)))
		}
		if c.match != "" && c.match != "exact" {
			s.fields = append(s.fields, fld("match", cstr(c.match)))
		}
		if len(c.values) > 0 {
			s.fields = append(s.fields, fld("values", cstrs(c.values)))
		}
		if c.ignoreCase {
			s.fields = append(s.fields, fld("ignore_case", cbool(true)))
		}
		if c.not {
			s.fields = append(s.fields, fld("not", cbool(true)))
		}
		when.elems = append(when.elems, s)
	}
	return when
}

// httpField writes a service's http block: TLS, the rules one per line.
func httpField(h *httpMode) *cstruct {
	hs := &cstruct{}
	if len(h.certFiles) > 0 {
		t := inline(fld("cert_files", cstrs(h.certFiles)))
		if len(h.tlsBinds) > 0 {
			t.fields = append(t.fields, fld("binds", cstrs(h.tlsBinds)))
		}
		hs.add("tls", t)
	}
	if h.monitorURI != "" {
		hs.add("monitor_uri", cstr(h.monitorURI))
	}
	if h.forwardFor {
		hs.add("forward_for", cbool(true))
		if len(h.fwdExcept) > 0 {
			hs.add("forward_for_except", cstrs(h.fwdExcept))
		}
		if h.fwdIfNone {
			hs.add("forward_for_if_none", cbool(true))
		}
	}
	for _, l := range []struct {
		label string
		as    []hdrAction
	}{{"request_headers", h.reqHeaders}, {"response_headers", h.rspHeaders}, {"after_response_headers", h.afterHeaders}} {
		if len(l.as) > 0 {
			hs.add(l.label, headersField(l.as))
		}
	}
	if len(h.rules) > 0 {
		rules := &clist{block: true}
		for _, r := range h.rules {
			rs := inline()
			if len(r.when) > 0 {
				rs.fields = append(rs.fields, fld("when", condsField(r.when)))
			}
			switch {
			case r.use != "":
				rs.fields = append(rs.fields, fld("use", cstr(r.use)))
			case r.deny != 0:
				rs.fields = append(rs.fields, fld("deny", cint(r.deny)))
			case r.tarpit != 0:
				rs.fields = append(rs.fields, fld("tarpit", cdur(r.tarpit)))
			case r.auth != nil:
				rs.fields = append(rs.fields, fld("auth", inline(fld("realm", cstr(r.auth.realm)))))
			case r.redirect != nil:
				rd := inline(fld(r.redirect.kind, cstr(r.redirect.to)))
				if r.redirect.code != 0 {
					rd.fields = append(rd.fields, fld("code", cint(r.redirect.code)))
				}
				rs.fields = append(rs.fields, fld("redirect", rd))
			}
			rules.elems = append(rules.elems, rs)
		}
		hs.add("rules", rules)
	}
	return hs
}
