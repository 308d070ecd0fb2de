package control

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/gitgw/gitgw/dataplane/nic"
)

// fakeSpread is the collector's own seam: a window made of two readings.
type fakeSpread struct {
	rs nic.ReceiveSpread
	ok bool
}

func (f fakeSpread) ReceiveSpread() (nic.ReceiveSpread, bool) { return f.rs, f.ok }

func TestSpreadMetrics(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	w := nic.Window{Span: time.Minute}
	w.Add(nic.Counters{At: t0,
		NetRX: nic.Spread{PerCPU: []nic.CPUCount{{CPU: 0, Count: 100000}, {CPU: 1, Count: 100000}}},
		IRQs:  map[int][]nic.CPUCount{38: {{CPU: 0, Count: 500}, {CPU: 1, Count: 500}}, 40: {{CPU: 0, Count: 7}}}})
	w.Add(nic.Counters{At: t0.Add(time.Minute),
		NetRX: nic.Spread{PerCPU: []nic.CPUCount{{CPU: 0, Count: 109000}, {CPU: 1, Count: 101000}}},
		IRQs:  map[int][]nic.CPUCount{38: {{CPU: 0, Count: 1300}, {CPU: 1, Count: 700}}, 40: {{CPU: 0, Count: 9}}}})
	r, ok := w.Recent()
	if !ok {
		t.Fatal("no window from two readings")
	}
	src := fakeSpread{rs: nic.ReceiveSpread{Recent: r, IRQs: map[string][]int{"eth0": {38}, "eth1": nil}}, ok: true}
	want := `
# HELP gitgw_nic_interrupts_share Share (0..1) of a configured interface's queue interrupts taken by each CPU over the last minute.
# TYPE gitgw_nic_interrupts_share gauge
gitgw_nic_interrupts_share{cpu="0",interface="eth0"} 0.8
gitgw_nic_interrupts_share{cpu="1",interface="eth0"} 0.2
# HELP gitgw_nic_interrupts_total Queue interrupts of a configured interface taken by each CPU since boot (/proc/interrupts).
# TYPE gitgw_nic_interrupts_total counter
gitgw_nic_interrupts_total{cpu="0",interface="eth0"} 1300
gitgw_nic_interrupts_total{cpu="1",interface="eth0"} 700
# HELP gitgw_nic_softirq_net_rx_share Share (0..1) of the node's NET_RX softirqs run by each CPU over the last minute (gitgw_nic_spread_window_seconds).
# TYPE gitgw_nic_softirq_net_rx_share gauge
gitgw_nic_softirq_net_rx_share{cpu="0"} 0.9
gitgw_nic_softirq_net_rx_share{cpu="1"} 0.1
# HELP gitgw_nic_softirq_net_rx_total NET_RX softirqs run by each CPU since boot (/proc/softirqs).
# TYPE gitgw_nic_softirq_net_rx_total counter
gitgw_nic_softirq_net_rx_total{cpu="0"} 109000
gitgw_nic_softirq_net_rx_total{cpu="1"} 101000
# HELP gitgw_nic_spread_window_seconds The time the share metrics cover: about 60, less in the first minute after the agent started.
# TYPE gitgw_nic_spread_window_seconds gauge
gitgw_nic_spread_window_seconds 60
`
	body := scrape(t, New(Options{Node: "gw1", Spread: src}).Registry())
	var got []string
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, "gitgw_nic_") {
			got = append(got, l)
		}
	}
	if g, w := strings.Join(got, "\n"), strings.TrimSpace(want); g != w {
		t.Errorf("metrics:\n%s\nwant\n%s", g, w)
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "gitgw_nic_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}

	// Before the window has two readings: nothing, rather than a share
	// since boot under the name of the last minute.
	if body := scrape(t, New(Options{Node: "gw1", Spread: fakeSpread{}}).Registry()); strings.Contains(body, "gitgw_nic_") {
		t.Errorf("series before a window:\n%s", body)
	}
}

func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, err := io.ReadAll(rec.Result().Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
