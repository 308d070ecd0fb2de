package l4proxy

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Op is what applying a config would do to one service, bind or server.
type Op string

// The operations of a Change.
const (
	OpCreate Op = "create"
	OpUpdate Op = "update"
	OpDelete Op = "delete"
	OpNoOp   Op = "no-op"
)

// Kinds of resources a Change names.
const (
	KindPool    = "proxy_pool"
	KindService = "proxy_service"
	KindBind    = "proxy_bind"
	KindServer  = "proxy_server"
)

// Change is one pool setting, service, bind or server compared by Diff.
type Change struct {
	Kind string
	// ID is "busy_poll", the service name, or "service/bind" and
	// "service/server".
	ID string
	Op Op
	// Before and After are a ServiceView, a ServerView or a string; nil on
	// create and delete respectively.
	Before, After any
	Reason        string
	// Details spell the differences ("weight 100 → 50", "drained") and a
	// server's live health.
	Details []string
}

// Observed is what a pool runs, as Observe reports it. It is plain data
// (JSON too), so that a plan made in another process can use a running
// agent's.
type Observed struct {
	// Applied is the config the pool runs (Pool.Applied).
	Applied Config `json:"applied"`
	// Servers is every server's live state, by "service/server".
	Servers map[string]ServerStats `json:"servers,omitempty"`
}

// Observe returns the config the pool runs and its servers' live state.
func (p *Pool) Observe() Observed {
	obs := Observed{Applied: p.Applied(), Servers: map[string]ServerStats{}}
	for _, s := range p.Stats().Services {
		for _, sv := range s.Servers {
			obs.Servers[s.Name+"/"+sv.Name] = sv
		}
	}
	return obs
}

// Diff compares the desired config with what a pool runs: one change per
// service, bind and server, no-ops included, the differences spelled out
// and the servers' live health as details. Desired services come first in
// config order, then the removed ones in the order the pool runs them. It
// is pure.
func Diff(desired Config, observed Observed) []Change {
	return diff(observed.Applied, desired, observed.Servers)
}

// ServiceView and ServerView are what a plan shows of a service and a
// server (deterministic JSON).
type ServiceView struct {
	Balance     string `json:"balance"`
	Persistence string `json:"persistence,omitempty"`
	MaxConn     int    `json:"maxconn,omitempty"`
	Timeouts    string `json:"timeouts"`
	Retries     int    `json:"retries"`
	Redispatch  bool   `json:"redispatch,omitempty"`
	Check       string `json:"check,omitempty"`
	Proxy       int    `json:"proxy_protocol,omitempty"`
	KeepAlive   bool   `json:"tcp_keepalive,omitempty"`
	Source      string `json:"source,omitempty"`
	Resolve     string `json:"resolve_interval,omitempty"` // set in the site only
	Protocol    string `json:"protocol,omitempty"`         // "udp"; empty for tcp
	Transparent bool   `json:"transparent,omitempty"`
	// TransparentAddr is the fixed foreign address the servers see;
	// SourceAddr the node's own one connections leave from.
	TransparentAddr string `json:"transparent_address,omitempty"`
	SourceAddr      string `json:"source_address,omitempty"`
	HTTP            string `json:"http,omitempty"`   // DescribeHTTP
	SNI             string `json:"sni,omitempty"`    // DescribeSNI
	Cookie          string `json:"cookie,omitempty"` // httpproxy.Cookie.String
}

type ServerView struct {
	Address string `json:"address"`
	Weight  int    `json:"weight"`
	MaxConn int    `json:"maxconn,omitempty"`
	Backup  bool   `json:"backup,omitempty"`
	State   string `json:"state"`
	// CheckPort is the server's own check port (0: the check's).
	CheckPort uint16 `json:"check_port,omitempty"`
	// TLS is the TLS to the server in words ("verify required sni
	// api.example ca-file /etc/ca.pem"); empty: plain TCP.
	TLS string `json:"tls,omitempty"`
	// CheckAddr and CheckTargets are the server's own check address and
	// targets; Unchecked: the check never takes it out.
	CheckAddr    string   `json:"check_addr,omitempty"`
	CheckTargets []string `json:"check_targets,omitempty"`
	Unchecked    bool     `json:"unchecked,omitempty"`
	// Cookie is the server's persistence cookie value.
	Cookie string `json:"cookie,omitempty"`
	// SourceAddr is the server's own source address (the service's
	// otherwise).
	SourceAddr string `json:"source_address,omitempty"`
	// Via is the SOCKS4 proxy the server is reached through, in words
	// ("socks4 203.0.113.2:1080 check-via-socks4"); empty: directly.
	Via string `json:"via,omitempty"`
}

// ViewService is what a plan shows of a service: its settings in words,
// unset timeouts left out, the check as HAProxy would spell it.
func ViewService(s Service) ServiceView {
	t := s.Timeouts
	v := ServiceView{
		Balance: string(s.Balance), MaxConn: s.MaxConn, Retries: max(s.Retries, 0), Redispatch: s.Redispatch,
		Timeouts: durations{{"connect", t.Connect}, {"client", t.Client}, {"server", t.Server}, {"tunnel", t.Tunnel},
			{"client-fin", t.ClientFin}, {"server-fin", t.ServerFin}, {"queue", t.Queue}}.String(),
		Proxy: s.ProxyProtocol, KeepAlive: s.KeepAlive > 0,
	}
	if v.Balance == "" {
		v.Balance = string(RoundRobin)
	}
	if s.Persistence > 0 {
		v.Persistence = s.Persistence.String()
	}
	if s.Source != nil {
		v.Source = DescribeSource(s.Source)
	}
	if s.ResolveInterval > 0 {
		v.Resolve = s.ResolveInterval.String()
	}
	if s.Protocol == ProtoUDP {
		v.Protocol = string(s.Protocol)
	}
	v.Transparent = s.Transparent
	if s.TransparentAddr.IsValid() {
		v.TransparentAddr = s.TransparentAddr.String()
	}
	if s.SourceAddr.IsValid() {
		v.SourceAddr = s.SourceAddr.String()
	}
	if s.HTTP != nil {
		v.HTTP = DescribeHTTP(s.HTTP)
	}
	if s.SNI != nil {
		v.SNI = DescribeSNI(s.SNI)
	}
	if s.Cookie != nil {
		v.Cookie = s.Cookie.String()
	}
	if c := s.Check; c != nil {
		v.Check = c.Describe()
		if s.ShutdownOnDown {
			v.Check += " shutdown-sessions"
		}
	}
	return v
}

// ViewServer is what a plan shows of a server: the address (or name) it
// was given, its weight and admin state.
func ViewServer(s Server) ServerView {
	st := string(s.State)
	if st == "" {
		st = string(Ready)
	}
	addr := s.Addr.String()
	if s.Host != "" {
		addr = net.JoinHostPort(s.Host, strconv.Itoa(int(s.Port)))
	}
	v := ServerView{Address: addr, Weight: s.Weight, MaxConn: s.MaxConn, Backup: s.Backup, State: st, CheckPort: s.CheckPort, Unchecked: s.Unchecked,
		TLS: s.TLS.Describe(), Cookie: s.Cookie, Via: s.describeVia()}
	if s.CheckAddr.IsValid() {
		v.CheckAddr = s.CheckAddr.String()
	}
	if s.SourceAddr.IsValid() {
		v.SourceAddr = s.SourceAddr.String()
	}
	for _, t := range s.CheckTargets {
		v.CheckTargets = append(v.CheckTargets, t.String())
	}
	return v
}

// diff is Diff with the observed state spread out (have: what the pool
// runs; live: its servers by "service/server").
func diff(have, want Config, live map[string]ServerStats) []Change {
	var out []Change
	if have.BusyPoll != want.BusyPoll && (len(have.Services) > 0 || len(want.Services) > 0) {
		out = append(out, Change{Kind: KindPool, ID: "busy_poll", Op: OpUpdate,
			Before: busyPoll(have.BusyPoll), After: busyPoll(want.BusyPoll)})
	}
	haveSvc := map[string]Service{}
	for _, s := range have.Services {
		haveSvc[s.Name] = s
	}
	wantSvc := map[string]bool{}
	for _, w := range want.Services {
		wantSvc[w.Name] = true
		h, existed := haveSvc[w.Name]
		wv := ViewService(w)
		c := Change{Kind: KindService, ID: w.Name, After: wv}
		if !existed {
			c.Op, c.Reason = OpCreate, "new in site"
		} else {
			hv := ViewService(h)
			c.Before = hv
			c.Details = diffService(hv, wv)
			c.Op = OpNoOp
			if len(c.Details) > 0 {
				c.Op = OpUpdate
			}
		}
		out = append(out, c)
		out = append(out, bindChanges(w.Name, h.Binds, w.Binds)...)
		out = append(out, serverChanges(w.Name, h.Servers, w.Servers, live)...)
	}
	for _, h := range have.Services {
		if wantSvc[h.Name] {
			continue
		}
		out = append(out, Change{Kind: KindService, ID: h.Name, Op: OpDelete,
			Before: ViewService(h), Reason: "gone from site; connections drain for " + drainGrace(h)})
		out = append(out, bindChanges(h.Name, h.Binds, nil)...)
		out = append(out, serverChanges(h.Name, h.Servers, nil, live)...)
	}
	return out
}

// busyPoll shows the pool's busy-poll window the way the site spells it.
func busyPoll(d time.Duration) string {
	if d == 0 {
		return "off"
	}
	return d.String()
}

func drainGrace(s Service) string {
	if s.DrainGrace > 0 {
		return s.DrainGrace.String()
	}
	return "30s"
}

func diffService(h, w ServiceView) []string {
	var d []string
	add := func(name string, a, b any) {
		if a != b {
			d = append(d, fmt.Sprintf("%s %v → %v", name, a, b))
		}
	}
	add("balance", h.Balance, w.Balance)
	add("persistence", h.Persistence, w.Persistence)
	add("maxconn", h.MaxConn, w.MaxConn)
	add("timeouts", h.Timeouts, w.Timeouts)
	add("retries", h.Retries, w.Retries)
	add("redispatch", h.Redispatch, w.Redispatch)
	add("check", h.Check, w.Check)
	add("proxy protocol", h.Proxy, w.Proxy)
	add("tcp keepalive", h.KeepAlive, w.KeepAlive)
	add("source", h.Source, w.Source)
	add("resolve interval", h.Resolve, w.Resolve)
	add("protocol", h.Protocol, w.Protocol)
	add("transparent", h.Transparent, w.Transparent)
	add("transparent address", cmp.Or(h.TransparentAddr, "none"), cmp.Or(w.TransparentAddr, "none"))
	add("source address", cmp.Or(h.SourceAddr, "by route"), cmp.Or(w.SourceAddr, "by route"))
	add("http", h.HTTP, w.HTTP)
	add("sni", h.SNI, w.SNI)
	add("cookie", h.Cookie, w.Cookie)
	return d
}

// DescribeSource spells a service's source rules in words: "allow only
// 198.51.100.0/24; deny 198.51.100.66/32 (deny wins); at most 10
// connections per source; at most 100 new connections per source per 1s;
// refused connections are reset". Long lists show their first prefixes
// and a count.
func DescribeSource(r *SourceRules) string {
	list := func(ps []netip.Prefix) string {
		const show = 5
		var parts []string
		for _, p := range ps[:min(len(ps), show)] {
			parts = append(parts, p.String())
		}
		s := strings.Join(parts, ", ")
		if len(ps) > show {
			s += fmt.Sprintf(" and %d more (%d CIDRs)", len(ps)-show, len(ps))
		}
		return s
	}
	var parts []string
	if len(r.Allow) > 0 {
		parts = append(parts, "allow only "+list(r.Allow))
	}
	if len(r.Deny) > 0 {
		d := "deny " + list(r.Deny)
		if len(r.Allow) > 0 {
			d += " (deny wins)"
		}
		parts = append(parts, d)
	}
	if r.MaxConnPerSource > 0 {
		parts = append(parts, fmt.Sprintf("at most %d connections per source", r.MaxConnPerSource))
	}
	if r.MaxRatePerSource > 0 {
		per := r.RatePeriod
		if per == 0 {
			per = time.Second
		}
		parts = append(parts, fmt.Sprintf("at most %d new connections per source per %v", r.MaxRatePerSource, per))
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, "; ") + "; refused connections are reset"
}

func bindChanges(svc string, have, want []netip.AddrPort) []Change {
	var out []Change
	for _, b := range want {
		c := Change{Kind: KindBind, ID: svc + "/" + b.String(), After: b.String(), Op: OpNoOp}
		if slices.Contains(have, b) {
			c.Before = b.String()
		} else {
			c.Op, c.Reason = OpCreate, "new listener"
		}
		out = append(out, c)
	}
	for _, b := range have {
		if !slices.Contains(want, b) {
			out = append(out, Change{Kind: KindBind, ID: svc + "/" + b.String(), Before: b.String(),
				Op: OpDelete, Reason: "listener closed; its established connections are kept"})
		}
	}
	return out
}

func serverChanges(svc string, have, want []Server, live map[string]ServerStats) []Change {
	var out []Change
	hm := map[string]Server{}
	for _, s := range have {
		hm[s.Name] = s
	}
	wm := map[string]bool{}
	for _, w := range want {
		wm[w.Name] = true
		id := svc + "/" + w.Name
		wv := ViewServer(w)
		c := Change{Kind: KindServer, ID: id, After: wv}
		if h, ok := hm[w.Name]; ok {
			hv := ViewServer(h)
			c.Before = hv
			c.Details = diffServer(w.Name, hv, wv)
			c.Op = OpNoOp
			if len(c.Details) > 0 {
				c.Op = OpUpdate
				c.Reason = c.Details[0]
			}
		} else {
			c.Op, c.Reason = OpCreate, "new in site"
		}
		if st, ok := live[id]; ok {
			c.Details = append(c.Details, fmt.Sprintf("now %s, %d connections, check %q", st.Status, st.Current, st.Check))
			if st.Host != "" && st.Host == w.Host {
				c.Details = append(c.Details, resolution(st))
			}
		}
		out = append(out, c)
	}
	for _, h := range have {
		if wm[h.Name] {
			continue
		}
		id := svc + "/" + h.Name
		c := Change{Kind: KindServer, ID: id, Before: ViewServer(h), Op: OpDelete,
			Reason: "server " + h.Name + ": removed; its connections drain"}
		if st, ok := live[id]; ok {
			c.Details = append(c.Details, fmt.Sprintf("%d connections to drain", st.Current))
		}
		out = append(out, c)
	}
	return out
}

// resolution spells what a server given by name resolves to now:
// "app.example → 198.51.100.11:8080 (resolved at 10:04:05)", "unresolved
// (…)", or the last address "stale since 10:04:05 (…)".
func resolution(st ServerStats) string {
	at := func(t time.Time) string { return t.UTC().Format(time.TimeOnly) }
	switch st.Resolve {
	case "unresolved":
		return fmt.Sprintf("%s unresolved: %s", st.Host, st.ResolveError)
	case "stale":
		return fmt.Sprintf("%s → %s, stale since %s: %s", st.Host, st.Addr, at(st.StaleSince), st.ResolveError)
	}
	return fmt.Sprintf("%s → %s (resolved at %s)", st.Host, st.Addr, at(st.ResolvedAt))
}

func diffServer(name string, h, w ServerView) []string {
	var d []string
	if h.State != w.State {
		switch w.State {
		case string(Drain):
			d = append(d, "server "+name+": drained")
		case string(Maint):
			d = append(d, "server "+name+": maintenance")
		default:
			d = append(d, "server "+name+": back in rotation (was "+h.State+")")
		}
	}
	if h.Weight != w.Weight {
		if w.Weight == 0 {
			d = append(d, fmt.Sprintf("weight %d → 0 (drained)", h.Weight))
		} else {
			d = append(d, fmt.Sprintf("weight %d → %d", h.Weight, w.Weight))
		}
	}
	if h.Address != w.Address {
		d = append(d, fmt.Sprintf("address %s → %s", h.Address, w.Address))
	}
	if h.MaxConn != w.MaxConn {
		d = append(d, fmt.Sprintf("maxconn %d → %d", h.MaxConn, w.MaxConn))
	}
	if h.Backup != w.Backup {
		d = append(d, fmt.Sprintf("backup %v → %v", h.Backup, w.Backup))
	}
	if h.TLS != w.TLS {
		d = append(d, fmt.Sprintf("tls %s → %s", tlsWords(h.TLS), tlsWords(w.TLS)))
	}
	if h.Via != w.Via {
		d = append(d, fmt.Sprintf("via %s → %s", cmp.Or(h.Via, "direct"), cmp.Or(w.Via, "direct")))
	}
	if h.CheckPort != w.CheckPort {
		d = append(d, fmt.Sprintf("check port %s → %s", checkPortWords(h.CheckPort), checkPortWords(w.CheckPort)))
	}
	if h.CheckAddr != w.CheckAddr {
		d = append(d, fmt.Sprintf("check address %s → %s", cmp.Or(h.CheckAddr, "the check's"), cmp.Or(w.CheckAddr, "the check's")))
	}
	if h.SourceAddr != w.SourceAddr {
		d = append(d, fmt.Sprintf("source address %s → %s", cmp.Or(h.SourceAddr, "the service's"), cmp.Or(w.SourceAddr, "the service's")))
	}
	if !slices.Equal(h.CheckTargets, w.CheckTargets) {
		d = append(d, fmt.Sprintf("check targets %s → %s", checkTargetWords(h.CheckTargets), checkTargetWords(w.CheckTargets)))
	}
	if h.Unchecked != w.Unchecked {
		if w.Unchecked {
			d = append(d, "unchecked: the check no longer takes it out")
		} else {
			d = append(d, "checked again")
		}
	}
	return d
}

// checkTargetWords spells a server's check targets, none being its address.
func checkTargetWords(ts []string) string {
	if len(ts) == 0 {
		return "none"
	}
	return strings.Join(ts, " and ")
}

// durations are named settings spelled "connect 2s queue 5s", the unset
// (zero) ones left out: the plan shows what is configured, not every knob.
type durations []struct {
	name string
	d    time.Duration
}

func (ds durations) String() string {
	var parts []string
	for _, x := range ds {
		if x.d != 0 {
			parts = append(parts, x.name+" "+x.d.String())
		}
	}
	return strings.Join(parts, " ")
}

// checkPortWords spells a server's own check port, 0 being the check's.
func checkPortWords(p uint16) string {
	if p == 0 {
		return "the check's"
	}
	return strconv.Itoa(int(p))
}
