package l4proxy

import (
	"slices"
	"strings"
	"time"
)

// Snapshot is the pool's statistics at one instant; it marshals to JSON.
type Snapshot struct {
	Time     time.Time      `json:"time"`
	Services []ServiceStats `json:"services"`
}

// ServiceStats are one service's counters (HAProxy's frontend+backend rows).
type ServiceStats struct {
	Name     string   `json:"name"`
	Protocol Protocol `json:"protocol,omitempty"` // "udp"; empty for TCP
	Binds    []string `json:"binds"`
	Balance  Balance  `json:"balance"`
	Status   Health   `json:"status"` // UP when a server can take traffic
	// Unchecked: the service has no health check, so its servers are
	// NOCHECK and a dead one keeps its share of the traffic.
	Unchecked bool  `json:"unchecked,omitempty"`
	Current   int64 `json:"current"`
	MaxConn   int   `json:"maxconn,omitempty"`
	Total     int64 `json:"total"`
	BytesIn   int64 `json:"bytes_in"`
	BytesOut  int64 `json:"bytes_out"`
	// Queue is every connection waiting for a server slot: those in the
	// service queue (any server will do) and those in the servers' own.
	Queue    int64 `json:"queue"`
	MaxQueue int64 `json:"max_queue"`
	// ServiceQueue is the part of Queue waiting for any server.
	ServiceQueue    int64 `json:"service_queue"`
	MaxServiceQueue int64 `json:"max_service_queue"`
	QueueTimeouts   int64 `json:"queue_timeouts"` // connections that gave up waiting (sQ)
	Errors          int64 `json:"errors"`         // connections that got no server
	Sticky          int   `json:"sticky_entries,omitempty"`
	// Denied counts connections refused by the source rules, by reason.
	Denied DeniedStats `json:"denied"`
	// SourceEntries is the size of the per-source limits table.
	SourceEntries int           `json:"source_entries,omitempty"`
	Servers       []ServerStats `json:"servers"`
}

// DeniedStats count connections refused right after accept by a
// service's source rules (SourceRules), one counter per reason.
type DeniedStats struct {
	DenyList   int64 `json:"deny_list"`   // source in the deny list
	NotAllowed int64 `json:"not_allowed"` // allow list set, source not in it
	ConnLimit  int64 `json:"conn_limit"`  // per-source concurrent connections reached
	RateLimit  int64 `json:"rate_limit"`  // per-source connection rate reached
}

// DenyReasons are the reasons of DeniedStats as ByReason and the metrics
// spell them (lower-case snake).
var DenyReasons = []string{"deny_list", "not_allowed", "conn_limit", "rate_limit"}

// ByReason returns the counters keyed by DenyReasons.
func (d DeniedStats) ByReason() map[string]int64 {
	return map[string]int64{"deny_list": d.DenyList, "not_allowed": d.NotAllowed, "conn_limit": d.ConnLimit, "rate_limit": d.RateLimit}
}

// ServerStats are one server's counters and state.
type ServerStats struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
	// Host is the DNS name of a server given by name; Addr is then the
	// address in use, empty until the name first resolves.
	Host string `json:"host,omitempty"`
	// Resolve is "" (resolved, or no name), "unresolved" (never answered:
	// the server is DOWN) or "stale" (no longer answers: the last address
	// stays in use, since StaleSince).
	Resolve       string        `json:"resolve,omitempty"`
	ResolvedAt    time.Time     `json:"resolved_at,omitzero"` // the last answer
	StaleSince    time.Time     `json:"stale_since,omitzero"`
	ResolveError  string        `json:"resolve_error,omitempty"` // the last failure
	Weight        int           `json:"weight"`
	Backup        bool          `json:"backup,omitempty"`
	Admin         AdminState    `json:"admin"`
	Status        Health        `json:"status"` // UP, DOWN, NOCHECK, DRAIN, MAINT, REMOVED
	Current       int64         `json:"current"`
	MaxConn       int           `json:"maxconn,omitempty"`
	Total         int64         `json:"total"`
	Queue         int64         `json:"queue"` // connections waiting for this very server
	MaxQueue      int64         `json:"max_queue"`
	QueueTimeouts int64         `json:"queue_timeouts"`
	BytesIn       int64         `json:"bytes_in"`
	BytesOut      int64         `json:"bytes_out"`
	ConnectErrors int64         `json:"connect_errors"`
	Retries       int64         `json:"retries"`
	FailedChecks  int64         `json:"failed_checks"`
	Check         string        `json:"check,omitempty"` // last result; empty without checks
	CheckDuration time.Duration `json:"check_duration_ns,omitempty"`
	// Checked: the service health-checks its servers. LastCheck is when
	// the last completed check began (zero before the first) and
	// LastCheckOK its result, so that a caller can wait for a check begun
	// after an event, such as a restart of the server.
	Checked     bool          `json:"checked,omitempty"`
	LastCheck   time.Time     `json:"last_check,omitzero"`
	LastCheckOK bool          `json:"last_check_ok,omitempty"`
	LastChange  time.Time     `json:"last_change"`
	Downtime    time.Duration `json:"downtime_ns"`
}

// Stats returns a snapshot of every service, sorted by name.
func (p *Pool) Stats() Snapshot {
	p.mu.Lock()
	svcs := make([]*service, 0, len(p.services))
	for _, s := range p.services {
		svcs = append(svcs, s)
	}
	binds := map[*service][]string{}
	for addr, g := range p.binds {
		binds[g.svc] = append(binds[g.svc], addr.String())
	}
	for addr, b := range p.udpBinds {
		svc := b.svc.Load()
		binds[svc] = append(binds[svc], addr.String())
	}
	p.mu.Unlock()
	now := p.clock.Now()
	snap := Snapshot{Time: now, Services: []ServiceStats{}}
	slices.SortFunc(svcs, func(a, b *service) int { return strings.Compare(a.name, b.name) })
	for _, svc := range svcs {
		set := svc.set.Load()
		ss := ServiceStats{
			Name: svc.name, Protocol: set.Protocol, Binds: binds[svc], Balance: set.Balance, Current: svc.cur.Load(),
			MaxConn: set.MaxConn, Total: svc.total.Load(), BytesIn: svc.bytesIn.Load(),
			BytesOut: svc.bytesOut.Load(), Queue: svc.queued.Load(), MaxQueue: svc.maxQueued.Load(),
			Errors: svc.errors.Load(), Sticky: svc.sticky.len(), Status: StatusDown,
			MaxServiceQueue: svc.maxSvcQueued.Load(), QueueTimeouts: svc.queueTimeouts.Load(),
			Denied: DeniedStats{
				DenyList: svc.deniedList.Load(), NotAllowed: svc.deniedNotAllowed.Load(),
				ConnLimit: svc.deniedConnLimit.Load(), RateLimit: svc.deniedRateLimit.Load(),
			},
			SourceEntries: svc.srcTbl.len(),
		}
		svc.qmu.Lock()
		ss.ServiceQueue = int64(len(svc.queue))
		svc.qmu.Unlock()
		slices.Sort(ss.Binds)
		if ss.Binds == nil {
			ss.Binds = []string{}
		}
		tbl := svc.tbl.Load()
		if len(tbl.primary)+len(tbl.backup) > 0 {
			ss.Status = StatusUp
		}
		svc.mu.Lock()
		all := append(append([]*server(nil), svc.servers...), svc.draining...)
		hasCheck := svc.checkCfg != nil
		svc.mu.Unlock()
		ss.Unchecked = !hasCheck
		for _, s := range all {
			ss.Servers = append(ss.Servers, s.stats(now, hasCheck))
		}
		snap.Services = append(snap.Services, ss)
	}
	routerStatus(svcs, snap.Services)
	return snap
}

func (s *server) stats(now time.Time, hasCheck bool) ServerStats {
	c := s.cfg.Load()
	st := ServerStats{
		Name: s.name, Addr: c.addrStr, Weight: c.Weight, Backup: c.Backup, Admin: c.admin(),
		Current: s.cur.Load(), MaxConn: c.MaxConn, Total: s.total.Load(),
		Queue: s.queued.Load(), MaxQueue: s.maxQueued.Load(), QueueTimeouts: s.queueTimeouts.Load(),
		BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load(), ConnectErrors: s.connErrors.Load(),
		Retries: s.retries.Load(), FailedChecks: s.failedChecks.Load(),
	}
	s.mu.Lock()
	st.LastChange, st.Downtime = s.lastChange, s.downtime
	if !s.downSince.IsZero() {
		st.Downtime += now.Sub(s.downSince)
	}
	hasCheck = hasCheck && !c.Unchecked // the service's check is not this server's
	if hasCheck {
		st.Check, st.CheckDuration = s.checkDesc, s.checkDur
		st.Checked, st.LastCheck, st.LastCheckOK = true, s.lastCheck, s.lastCheckOK
	}
	if d := s.dns; d != nil {
		st.Host, st.ResolvedAt, st.ResolveError = d.host, d.resolvedAt, d.err
		switch {
		case !d.addr.IsValid():
			st.Resolve = "unresolved"
		case !d.failedAt.IsZero():
			st.Resolve, st.StaleSince = "stale", d.failedAt
		}
	}
	s.mu.Unlock()
	switch {
	case s.removed.Load():
		st.Status = StatusRemoved
	case c.admin() == Maint:
		st.Status = StatusMaint
	case !s.up.Load() || c.unresolved:
		st.Status = StatusDown
	case c.admin() == Drain || c.Weight == 0:
		st.Status = StatusDrain
	case !hasCheck:
		st.Status = StatusNoCheck
	default:
		st.Status = StatusUp
	}
	return st
}

// Healthy reports whether a service has a server that can take new
// connections (a primary or a backup that is up, ready and weighted): what
// VRRP's track_services needs. Unknown services are not healthy.
func (p *Pool) Healthy(service string) bool {
	p.mu.Lock()
	svc := p.services[service]
	p.mu.Unlock()
	if svc == nil {
		return false
	}
	t := svc.tbl.Load()
	return len(t.primary)+len(t.backup) > 0
}

// routerStatus gives a service of HTTP rules without servers of its own
// (HAProxy's frontend without default_backend) the status of where its
// rules send: UP when a service they use can take traffic. Counted as a
// service without servers it would be DOWN for ever, and alert so. It
// has no check to be unchecked by either. stats[i] is svcs[i]'s.
func routerStatus(svcs []*service, stats []ServiceStats) {
	up := map[string]bool{}
	for _, ss := range stats {
		up[ss.Name] = ss.Status == StatusUp
	}
	for i, svc := range svcs {
		set := svc.set.Load()
		if len(stats[i].Servers) > 0 || set.HTTP == nil || len(set.HTTP.Rules) == 0 {
			continue
		}
		stats[i].Unchecked = false
		for _, r := range set.HTTP.Rules {
			if r.Use != "" && up[r.Use] {
				stats[i].Status = StatusUp
				break
			}
		}
	}
}
