package l4proxy

import (
	"encoding/json"
	"html/template"
	"net/http"
	"slices"
	"strconv"
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
	Binds    []string `json:"binds"`
	Balance  Balance  `json:"balance"`
	Status   string   `json:"status"` // UP when a server can take traffic
	Current  int64    `json:"current"`
	MaxConn  int      `json:"maxconn,omitempty"`
	Total    int64    `json:"total"`
	BytesIn  int64    `json:"bytes_in"`
	BytesOut int64    `json:"bytes_out"`
	// Queue is every connection waiting for a server slot: those in the
	// service queue (any server will do) and those in the servers' own.
	Queue    int64 `json:"queue"`
	MaxQueue int64 `json:"max_queue"`
	// ServiceQueue is the part of Queue waiting for any server.
	ServiceQueue    int64         `json:"service_queue"`
	MaxServiceQueue int64         `json:"max_service_queue"`
	QueueTimeouts   int64         `json:"queue_timeouts"` // connections that gave up waiting (sQ)
	Errors          int64         `json:"errors"`         // connections that got no server
	Sticky          int           `json:"sticky_entries,omitempty"`
	Servers         []ServerStats `json:"servers"`
}

// ServerStats are one server's counters and state.
type ServerStats struct {
	Name          string        `json:"name"`
	Addr          string        `json:"addr"`
	Weight        int           `json:"weight"`
	Backup        bool          `json:"backup,omitempty"`
	Admin         AdminState    `json:"admin"`
	Status        string        `json:"status"` // UP, DOWN, DRAIN, MAINT, REMOVED
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
	LastChange    time.Time     `json:"last_change"`
	Downtime      time.Duration `json:"downtime_ns"`
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
	p.mu.Unlock()
	now := p.clock.Now()
	snap := Snapshot{Time: now, Services: []ServiceStats{}}
	slices.SortFunc(svcs, func(a, b *service) int { return strings.Compare(a.name, b.name) })
	for _, svc := range svcs {
		set := svc.set.Load()
		ss := ServiceStats{
			Name: svc.name, Binds: binds[svc], Balance: set.Balance, Current: svc.cur.Load(),
			MaxConn: set.MaxConn, Total: svc.total.Load(), BytesIn: svc.bytesIn.Load(),
			BytesOut: svc.bytesOut.Load(), Queue: svc.queued.Load(), MaxQueue: svc.maxQueued.Load(),
			Errors: svc.errors.Load(), Sticky: svc.sticky.len(), Status: "DOWN",
			MaxServiceQueue: svc.maxSvcQueued.Load(), QueueTimeouts: svc.queueTimeouts.Load(),
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
			ss.Status = "UP"
		}
		svc.mu.Lock()
		all := append(append([]*server(nil), svc.servers...), svc.draining...)
		hasCheck := svc.checkCfg != nil
		svc.mu.Unlock()
		for _, s := range all {
			ss.Servers = append(ss.Servers, s.stats(now, hasCheck))
		}
		snap.Services = append(snap.Services, ss)
	}
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
	if hasCheck {
		st.Check, st.CheckDuration = s.checkDesc, s.checkDur
	}
	s.mu.Unlock()
	switch {
	case s.removed.Load():
		st.Status = "REMOVED"
	case c.admin() == Maint:
		st.Status = "MAINT"
	case !s.up.Load():
		st.Status = "DOWN"
	case c.admin() == Drain || c.Weight == 0:
		st.Status = "DRAIN"
	default:
		st.Status = "UP"
	}
	return st
}

// StatsHandler serves the stats page: HTML by default, the JSON snapshot
// with ?json (or Accept: application/json).
func (p *Pool) StatsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		snap := p.Stats()
		if r.URL.Query().Has("json") || strings.Contains(r.Header.Get("Accept"), "application/json") {
			w.Header().Set("Content-Type", "application/json")
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			_ = enc.Encode(snap)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = statsPage.Execute(w, snap)
	})
}

var statsPage = template.Must(template.New("stats").Funcs(template.FuncMap{
	"bytes": func(n int64) string {
		const u = "KMGTPE"
		if n < 1024 {
			return formatInt(n) + " B"
		}
		f, i := float64(n)/1024, 0
		for f >= 1024 && i < len(u)-1 {
			f /= 1024
			i++
		}
		return strings.TrimRight(strings.TrimRight(formatFloat(f), "0"), ".") + " " + u[i:i+1] + "iB"
	},
	"since": func(now, t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return now.Sub(t).Round(time.Second).String()
	},
	"dur":   func(d time.Duration) string { return d.Round(time.Second).String() },
	"lower": strings.ToLower,
}).Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>gitgw L4 proxy statistics</title>
<style>
body{font-family:sans-serif;font-size:13px;margin:1em}
table{border-collapse:collapse;margin-bottom:1.5em}
th,td{border:1px solid #999;padding:2px 6px;text-align:right}
th{background:#20507a;color:#fff}
td.l{text-align:left}
tr.svc td{background:#c4e0f5;font-weight:bold}
tr.up td{background:#c0ffc0} tr.down td{background:#ff9090}
tr.drain td{background:#b0d0ff} tr.maint td{background:#c8c8c8} tr.removed td{background:#e0e0e0;color:#666}
</style></head><body>
<h1>gitgw L4 proxy</h1><p>{{.Time.Format "2006-01-02 15:04:05 MST"}} · <a href="?json">JSON</a></p>
{{$now := .Time}}{{range .Services}}
<h2>{{.Name}}</h2>
<table>
<tr><th>name</th><th>address</th><th>status</th><th>weight</th><th>cur</th><th>max</th><th>total</th><th>queue</th><th>bytes in</th><th>bytes out</th><th>conn err</th><th>retries</th><th>check</th><th>failed checks</th><th>last change</th><th>downtime</th></tr>
<tr class="svc"><td class="l">{{.Name}} ({{.Balance}})</td><td class="l">{{range $i, $b := .Binds}}{{if $i}}, {{end}}{{$b}}{{end}}</td><td>{{.Status}}</td><td></td><td>{{.Current}}</td><td>{{if .MaxConn}}{{.MaxConn}}{{end}}</td><td>{{.Total}}</td><td>{{.Queue}} (max {{.MaxQueue}}; any server {{.ServiceQueue}}, max {{.MaxServiceQueue}}; timeouts {{.QueueTimeouts}})</td><td>{{bytes .BytesIn}}</td><td>{{bytes .BytesOut}}</td><td>{{.Errors}}</td><td></td><td></td><td></td><td></td><td></td></tr>
{{range .Servers}}<tr class="{{lower .Status}}"><td class="l">{{.Name}}{{if .Backup}} (backup){{end}}</td><td class="l">{{.Addr}}</td><td>{{.Status}}</td><td>{{.Weight}}</td><td>{{.Current}}</td><td>{{if .MaxConn}}{{.MaxConn}}{{end}}</td><td>{{.Total}}</td><td>{{.Queue}} (max {{.MaxQueue}}{{if .QueueTimeouts}}; timeouts {{.QueueTimeouts}}{{end}})</td><td>{{bytes .BytesIn}}</td><td>{{bytes .BytesOut}}</td><td>{{.ConnectErrors}}</td><td>{{.Retries}}</td><td class="l">{{.Check}}</td><td>{{.FailedChecks}}</td><td>{{since $now .LastChange}}</td><td>{{dur .Downtime}}</td></tr>
{{end}}</table>
{{end}}</body></html>
`))

func formatInt(n int64) string { return strconv.FormatInt(n, 10) }

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

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
