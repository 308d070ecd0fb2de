package control

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/gitgw/gitgw/dataplane/l4proxy"
	"github.com/gitgw/gitgw/dataplane/vrrp"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// passMetrics are the reconcile metrics kept between scrapes.
type passMetrics struct {
	duration *prometheus.HistogramVec
	passes   *prometheus.CounterVec
	lastRun  prometheus.Gauge
	lastOK   prometheus.Gauge
}

func newPassMetrics() *passMetrics {
	return &passMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gitgw_reconcile_duration_seconds",
			Help:    "Duration of reconcile passes, by outcome.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"outcome"}),
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gitgw_reconcile_passes_total",
			Help: "Reconcile passes, by outcome (applied, unchanged, rejected, failed, held, rolled-back, suspended).",
		}, []string{"outcome"}),
		lastRun: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gitgw_reconcile_last_pass_timestamp_seconds",
			Help: "When the last reconcile pass started.",
		}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gitgw_reconcile_last_success_timestamp_seconds",
			Help: "When the last pass that left the node as desired (applied or unchanged) started.",
		}),
	}
}

func (m *passMetrics) observe(res Result) {
	o := res.Outcome
	m.duration.WithLabelValues(o).Observe(res.Duration.Seconds())
	m.passes.WithLabelValues(o).Inc()
	m.lastRun.Set(float64(res.Started.UnixNano()) / 1e9)
	if res.OK {
		m.lastOK.Set(float64(res.Started.UnixNano()) / 1e9)
	}
}

// Registry returns a Prometheus registry with the agent's metrics, the Go
// runtime's and the process's. Snapshot metrics (VRRP, proxy, units,
// drift) are read from the sources at scrape time.
func (c *Controller) Registry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		c.metrics.duration, c.metrics.passes, c.metrics.lastRun, c.metrics.lastOK,
		snapshotCollector{c},
	)
	if c.o.Spread != nil {
		r.MustRegister(spreadCollector{c.o.Spread})
	}
	return r
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	descVRRPState       = desc("gitgw_vrrp_state", "VRRP instance state: 1 for the current state (init, backup, master, fault), 0 for the others.", "vrrp_instance", "state")
	descVRRPPriority    = desc("gitgw_vrrp_priority", "Effective VRRP priority (after tracking).", "vrrp_instance")
	descVRRPBase        = desc("gitgw_vrrp_base_priority", "VRRP priority as the site (and overrides) set it.", "vrrp_instance")
	descVRRPTransitions = desc("gitgw_vrrp_transitions_total", "VRRP state transitions.", "vrrp_instance")
	descVRRPAdvIn       = desc("gitgw_vrrp_adverts_received_total", "VRRP advertisements received and accepted.", "vrrp_instance")
	descVRRPAdvOut      = desc("gitgw_vrrp_adverts_sent_total", "VRRP advertisements sent.", "vrrp_instance")
	descVRRPDrops       = desc("gitgw_vrrp_drops_total", "VRRP packets dropped, by reason.", "vrrp_instance", "reason")
	descVRRPVIPs        = desc("gitgw_vrrp_vips", "VIPs of the instance (installed while master).", "vrrp_instance")

	descSvcUp       = desc("gitgw_proxy_service_up", "1 when the proxy service has a server that can take traffic.", "service")
	descSvcCur      = desc("gitgw_proxy_connections", "Current client connections of a proxy service.", "service")
	descSvcTotal    = desc("gitgw_proxy_connections_total", "Client connections accepted by a proxy service.", "service")
	descSvcBytesIn  = desc("gitgw_proxy_bytes_received_total", "Bytes received from clients by a proxy service.", "service")
	descSvcBytesOut = desc("gitgw_proxy_bytes_sent_total", "Bytes sent to clients by a proxy service.", "service")
	descSvcQueue    = desc("gitgw_proxy_queue", "Connections waiting for a server.", "service")
	descSvcQueueTO  = desc("gitgw_proxy_queue_timeouts_total", "Connections that gave up waiting for a server (queue timeout).", "service")
	descSvcErrors   = desc("gitgw_proxy_errors_total", "Connections that got no server.", "service")
	descSvcDenied   = desc("gitgw_proxy_denied_total", "Connections refused by the service's source rules, by reason (deny_list, not_allowed, conn_limit, rate_limit).", "service", "reason")
	descSrvUp       = desc("gitgw_proxy_server_up", "1 when the server takes new connections (UP, or NOCHECK: no health check), 0 when DOWN, DRAIN or MAINT.", "service", "server")
	descSrvStatus   = desc("gitgw_proxy_server_status", "Server status: 1 for the current one (up, down, drain, maint, nocheck).", "service", "server", "status")
	descSrvWeight   = desc("gitgw_proxy_server_weight", "Server weight in effect.", "service", "server")
	descSrvCur      = desc("gitgw_proxy_server_connections", "Current connections to a server.", "service", "server")
	descSrvQueue    = desc("gitgw_proxy_server_queue", "Connections waiting for this very server (source hash, persistence).", "service", "server")
	descSrvTotal    = desc("gitgw_proxy_server_connections_total", "Connections made to a server.", "service", "server")
	descSrvFailed   = desc("gitgw_proxy_server_check_failures_total", "Failed health checks of a server.", "service", "server")
	// Servers given by DNS name (host: the name, lower-case, without its
	// trailing dot), so that an operator can alert on a name that never
	// resolved (the server is DOWN) or stopped resolving (its last address
	// stays in use, for as long as the name fails).
	descSrvResolved     = desc("gitgw_proxy_server_resolved", "1 when the DNS name of a server given by name answered its last lookup; 0 while it never has (the server is DOWN) or no longer does (stale: the last address stays in use).", "service", "server", "host")
	descSrvResolveState = desc("gitgw_proxy_server_resolve_state", "Resolution of a server given by name: 1 for the current state (resolved, stale, unresolved), 0 for the others.", "service", "server", "host", "state")
	descSrvAddress      = desc("gitgw_proxy_server_address_info", "The address a server given by name is used at (value 1; absent while its name never resolved).", "service", "server", "host", "address")
	descSrvResolvedAt   = desc("gitgw_proxy_server_resolve_last_success_timestamp_seconds", "When the DNS name of a server given by name last answered (0: never since the agent started).", "service", "server", "host")

	descUnitActive = desc("gitgw_unit_active", "1 when the site's systemd unit instance is active.", "unit")
	descDrift      = desc("gitgw_drift_items", "Drift found by the last pass, by driver (tuning, units, proxy, vrrp) and state (corrected, left_in_place).", "driver", "state")
	descCorrected  = desc("gitgw_drift_corrected_total", "Drift corrected since the agent started.")
	descPending    = desc("gitgw_pending_changes", "What the last pass left undone: pending changes (no driver, an action gitgw will not force) and changes still to apply (not converged, or suspended).")
	descOutcome    = desc("gitgw_node_outcome", "The node's outcome as its status branch records it: 1 for the current one (converged, pending, suspended, held, failed, rejected, rolled-back), 0 for the others.", "outcome")
	descPushFail   = desc("gitgw_status_push_failures_total", "Failed pushes of the node's status branch since the agent started.")
	descPushOK     = desc("gitgw_status_last_push_timestamp_seconds", "When the node's status branch was last pushed (0: not since the agent started).")
	descCommit     = desc("gitgw_applied_commit_info", "The commit running on the node (value 1).", "commit", "desired")
	descSuspended  = desc("gitgw_suspended", "1 while applying is suspended by the operator.")
	descOverrides  = desc("gitgw_overrides", "Runtime overrides in force, by action.", "action")
	descFetchFail  = desc("gitgw_source_fetch_failures_total", "Failed fetches of the site repository since the agent started.")
	descFetchOK    = desc("gitgw_source_last_success_timestamp_seconds", "When the site repository last answered a fetch (0: never since the agent started).")
	descBuild      = desc("gitgw_build_info", "The agent's version (value 1).", "version")
)

// resolveStates are the values of gitgw_proxy_server_resolve_state's
// state label: Server.Resolve, "" being resolved.
var resolveStates = []string{"resolved", "stale", "unresolved"}

// snapshotCollector reads the controller's status at scrape time.
type snapshotCollector struct{ c *Controller }

func (s snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descVRRPState, descVRRPPriority, descVRRPBase, descVRRPTransitions, descVRRPAdvIn,
		descVRRPAdvOut, descVRRPDrops, descVRRPVIPs, descSvcUp, descSvcCur, descSvcTotal, descSvcBytesIn, descSvcBytesOut,
		descSvcQueue, descSvcQueueTO, descSvcErrors, descSvcDenied, descSrvUp, descSrvStatus, descSrvWeight, descSrvCur, descSrvQueue,
		descSrvTotal, descSrvFailed, descSrvResolved, descSrvResolveState, descSrvAddress, descSrvResolvedAt,
		descUnitActive, descDrift, descCorrected, descPending, descCommit, descSuspended, descOverrides, descBuild,
		descFetchFail, descFetchOK, descOutcome, descPushFail, descPushOK} {
		ch <- d
	}
}

func (s snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	st := s.c.Status()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	b := func(ok bool) float64 {
		if ok {
			return 1
		}
		return 0
	}
	for _, in := range st.VRRP {
		for _, state := range vrrp.States {
			gauge(descVRRPState, b(strings.EqualFold(in.State, state.String())), in.Name, strings.ToLower(state.String()))
		}
		gauge(descVRRPPriority, float64(in.Priority), in.Name)
		gauge(descVRRPBase, float64(in.BasePriority), in.Name)
		counter(descVRRPTransitions, float64(in.Counters.Transitions), in.Name)
		counter(descVRRPAdvIn, float64(in.Counters.AdvertsIn), in.Name)
		counter(descVRRPAdvOut, float64(in.Counters.AdvertsOut), in.Name)
		for _, reason := range vrrp.DropReasons() {
			counter(descVRRPDrops, float64(in.Counters.Drops[string(reason)]), in.Name, string(reason))
		}
		gauge(descVRRPVIPs, float64(len(in.VIPs)), in.Name)
	}
	for _, svc := range st.Services {
		gauge(descSvcUp, b(svc.Status == string(l4proxy.StatusUp)), svc.Name)
		gauge(descSvcCur, float64(svc.Current), svc.Name)
		counter(descSvcTotal, float64(svc.Total), svc.Name)
		counter(descSvcBytesIn, float64(svc.BytesIn), svc.Name)
		counter(descSvcBytesOut, float64(svc.BytesOut), svc.Name)
		gauge(descSvcQueue, float64(svc.Queue), svc.Name)
		counter(descSvcQueueTO, float64(svc.QueueTimeouts), svc.Name)
		counter(descSvcErrors, float64(svc.Errors), svc.Name)
		for _, reason := range l4proxy.DenyReasons {
			counter(descSvcDenied, float64(svc.Denied[reason]), svc.Name, reason)
		}
		for _, srv := range svc.Servers {
			gauge(descSrvUp, b(l4proxy.Health(srv.Status).Serving()), svc.Name, srv.Name)
			for _, status := range []l4proxy.Health{l4proxy.StatusUp, l4proxy.StatusDown, l4proxy.StatusDrain, l4proxy.StatusMaint, l4proxy.StatusNoCheck} {
				gauge(descSrvStatus, b(srv.Status == string(status)), svc.Name, srv.Name, strings.ToLower(string(status)))
			}
			gauge(descSrvWeight, float64(srv.Weight), svc.Name, srv.Name)
			gauge(descSrvCur, float64(srv.Current), svc.Name, srv.Name)
			gauge(descSrvQueue, float64(srv.Queue), svc.Name, srv.Name)
			counter(descSrvTotal, float64(srv.Total), svc.Name, srv.Name)
			counter(descSrvFailed, float64(srv.FailedChecks), svc.Name, srv.Name)
			if srv.Host != "" {
				host := strings.ToLower(strings.TrimSuffix(srv.Host, "."))
				state := srv.Resolve
				if state == "" {
					state = "resolved"
				}
				gauge(descSrvResolved, b(state == "resolved"), svc.Name, srv.Name, host)
				for _, st := range resolveStates {
					gauge(descSrvResolveState, b(state == st), svc.Name, srv.Name, host, st)
				}
				if srv.Addr != "" {
					gauge(descSrvAddress, 1, svc.Name, srv.Name, host, srv.Addr)
				}
				at := 0.0
				if !srv.ResolvedAt.IsZero() {
					at = float64(srv.ResolvedAt.UnixNano()) / 1e9
				}
				gauge(descSrvResolvedAt, at, svc.Name, srv.Name, host)
			}
		}
	}
	for _, u := range st.Units {
		if u.Kind != plan.KindUnitInstance || u.Action == string(plan.Delete) {
			continue
		}
		gauge(descUnitActive, b(strings.HasPrefix(u.State, "active")), u.ID)
	}
	// Every driver's drift, VRRP's included, by driver and state; zero
	// series exist from the start so that an alert can read them.
	drift := map[[2]string]int{}
	for _, fam := range plan.Families {
		drift[[2]string{fam.String(), "corrected"}] = 0
		drift[[2]string{fam.String(), "left_in_place"}] = 0
	}
	for _, d := range st.Drift {
		state := "left_in_place"
		if d.State == "corrected" {
			state = "corrected"
		}
		drift[[2]string{d.Driver, state}]++
	}
	for k, n := range drift {
		gauge(descDrift, float64(n), k[0], k[1])
	}
	counter(descCorrected, float64(st.DriftCorrected))
	gauge(descPending, float64(len(st.Pending)))
	if st.Applied != "" {
		gauge(descCommit, 1, st.Applied, st.Desired)
	}
	gauge(descSuspended, b(st.Suspended))
	byAction := map[string]int{ActionDrain: 0, ActionEnable: 0, ActionWeight: 0, ActionGiveUp: 0}
	for _, o := range st.Overrides {
		byAction[o.Action]++
	}
	for a, n := range byAction {
		gauge(descOverrides, float64(n), a)
	}
	gauge(descBuild, 1, st.AgentVersion)
	counter(descFetchFail, float64(st.Fetches.Failures))
	ok := 0.0
	if !st.Fetches.LastSuccess.IsZero() {
		ok = float64(st.Fetches.LastSuccess.UnixNano()) / 1e9
	}
	gauge(descFetchOK, ok)
	if st.Outcome != "" {
		for _, o := range nodeOutcomes {
			gauge(descOutcome, b(st.Outcome == o), o)
		}
	}
	counter(descPushFail, float64(st.Reporting.Failures))
	pushed := 0.0
	if !st.Reporting.LastPush.IsZero() {
		pushed = float64(st.Reporting.LastPush.UnixNano()) / 1e9
	}
	gauge(descPushOK, pushed)
}
