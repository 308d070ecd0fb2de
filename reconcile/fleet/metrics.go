package fleet

import (
	"cmp"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/gitgw/gitgw/reconcile/drift"
)

// alwaysAlerted are the alert kinds exported even at zero, so that an
// alerting rule on them tells "none" from "not exported".
var alwaysAlerted = []string{"split-brain", "no-master", "stale", "rejected", "failing", "rolled-back", "suspended", "pending", "drift", "unreadable"}

var (
	descNodes = prometheus.NewDesc("gitgw_fleet_nodes",
		"Nodes with a status branch, by the outcome of their last pass (unreadable: no readable status.json).", []string{"outcome"}, nil)
	descStale = prometheus.NewDesc("gitgw_fleet_nodes_stale",
		"Nodes whose alive ref is older than the bound they promised (agent stopped or cut off from the repository).", nil, nil)
	descBehind = prometheus.NewDesc("gitgw_fleet_nodes_behind",
		"Nodes whose applied commit is not the tracked branch's head.", nil, nil)
	descAlerts = prometheus.NewDesc("gitgw_fleet_alerts",
		"Fleet alerts by kind (split-brain: a virtual router with two masters; no-master: one with none).", []string{"kind"}, nil)
	descLastSeen = prometheus.NewDesc("gitgw_fleet_node_last_seen_timestamp_seconds",
		"Newest of the node's last status commit and alive refresh.", []string{"node"}, nil)
	descReadOK = prometheus.NewDesc("gitgw_fleet_last_read_success_timestamp_seconds",
		"When the fleet was last read successfully (0: never); the metrics are from that read.", nil, nil)
	descReadDuration = prometheus.NewDesc("gitgw_fleet_last_read_duration_seconds",
		"How long the last read of the status branches took.", nil, nil)
	descReadFailures = prometheus.NewDesc("gitgw_fleet_read_failures_total",
		"Reads of the status branches that failed.", nil, nil)
)

// Registry returns the page's metrics (the snapshot's, read at scrape
// time, beside the Go runtime's and the process's).
func (p *Page) Registry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), pageCollector{p})
	return r
}

type pageCollector struct{ p *Page }

func (c pageCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descNodes, descStale, descBehind, descAlerts, descLastSeen, descReadOK, descReadDuration, descReadFailures} {
		ch <- d
	}
}

func (c pageCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.snapshot()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	ch <- prometheus.MustNewConstMetric(descReadFailures, prometheus.CounterValue, float64(s.Failures))
	gauge(descReadDuration, s.Took.Seconds())
	if s.ReadAt.IsZero() {
		gauge(descReadOK, 0)
		return // no fleet to tell of: absent, not zero
	}
	gauge(descReadOK, float64(s.ReadAt.UnixNano())/1e9)
	outcomes := map[string]int{}
	for _, o := range drift.Outcomes {
		outcomes[o] = 0
	}
	stale, behind := 0, 0
	for _, n := range s.Fleet.Nodes {
		outcomes[cmp.Or(n.Outcome, "unreadable")]++
		if n.Stale {
			stale++
		}
		if n.Sync == "behind" {
			behind++
		}
		gauge(descLastSeen, float64(n.LastSeen.UnixNano())/1e9, n.Node)
	}
	for o, n := range outcomes {
		gauge(descNodes, float64(n), o)
	}
	gauge(descStale, float64(stale))
	gauge(descBehind, float64(behind))
	kinds := map[string]int{}
	for _, k := range alwaysAlerted {
		kinds[k] = 0
	}
	for _, a := range s.Fleet.Alerts {
		kinds[a.Kind]++
	}
	for k, n := range kinds {
		gauge(descAlerts, float64(n), k)
	}
}
