package control

import (
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gitgw/gitgw/dataplane/nic"
)

// SpreadSource gives the spread of receive work over the CPUs, over the
// last minute: the tuning driver (reconcile.TuningDriver) once sampling.
type SpreadSource interface {
	ReceiveSpread() (nic.ReceiveSpread, bool)
}

var (
	descNetRXShare = desc("gitgw_nic_softirq_net_rx_share",
		"Share (0..1) of the node's NET_RX softirqs run by each CPU over the last minute (gitgw_nic_spread_window_seconds).", "cpu")
	descNetRXTotal = desc("gitgw_nic_softirq_net_rx_total",
		"NET_RX softirqs run by each CPU since boot (/proc/softirqs).", "cpu")
	descIRQShare = desc("gitgw_nic_interrupts_share",
		"Share (0..1) of a configured interface's queue interrupts taken by each CPU over the last minute.", "interface", "cpu")
	descIRQTotal = desc("gitgw_nic_interrupts_total",
		"Queue interrupts of a configured interface taken by each CPU since boot (/proc/interrupts).", "interface", "cpu")
	descSpreadWindow = desc("gitgw_nic_spread_window_seconds",
		"The time the share metrics cover: about 60, less in the first minute after the agent started.")
)

// spreadCollector exports a SpreadSource at scrape time. Nothing is
// exported before the source has a window (a few seconds after start).
type spreadCollector struct{ src SpreadSource }

func (s spreadCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descNetRXShare, descNetRXTotal, descIRQShare, descIRQTotal, descSpreadWindow} {
		ch <- d
	}
}

func (s spreadCollector) Collect(ch chan<- prometheus.Metric) {
	rs, ok := s.src.ReceiveSpread()
	if !ok {
		return
	}
	r := rs.Recent
	ch <- prometheus.MustNewConstMetric(descSpreadWindow, prometheus.GaugeValue, r.To.Sub(r.From).Seconds())
	for i, share := range r.NetRX.Shares() {
		ch <- prometheus.MustNewConstMetric(descNetRXShare, prometheus.GaugeValue, share, strconv.Itoa(r.NetRX.PerCPU[i].CPU))
	}
	for _, c := range r.Total.PerCPU {
		ch <- prometheus.MustNewConstMetric(descNetRXTotal, prometheus.CounterValue, float64(c.Count), strconv.Itoa(c.CPU))
	}
	names := make([]string, 0, len(rs.IRQs))
	for name := range rs.IRQs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if len(rs.IRQs[name]) == 0 {
			continue
		}
		window, total := r.Interrupts(name, rs.IRQs[name])
		for i, share := range window.Shares() {
			ch <- prometheus.MustNewConstMetric(descIRQShare, prometheus.GaugeValue, share, name, strconv.Itoa(window.PerCPU[i].CPU))
		}
		for _, c := range total.PerCPU {
			ch <- prometheus.MustNewConstMetric(descIRQTotal, prometheus.CounterValue, float64(c.Count), name, strconv.Itoa(c.CPU))
		}
	}
}
