package control

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/gitgw/gitgw/test/goldenfile"
	"github.com/gitgw/gitgw/test/lab"
)

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return string(b)
}

func TestMetrics(t *testing.T) {
	srv := httptest.NewServer(fixture(t).WebHandler(DefaultListen))
	defer srv.Close()
	body := get(t, srv.URL+"/metrics")
	for _, want := range []string{
		`gitgw_vrrp_state{state="master",vrrp_instance="VI_1"} 1`,
		`gitgw_vrrp_state{state="backup",vrrp_instance="VI_1"} 0`,
		`gitgw_vrrp_priority{vrrp_instance="VI_1"} 140`,
		`gitgw_vrrp_transitions_total{vrrp_instance="VI_1"} 2`,
		`gitgw_vrrp_adverts_sent_total{vrrp_instance="VI_1"} 1200`,
		`gitgw_vrrp_drops_total{reason="auth",vrrp_instance="VI_1"} 1`,
		`gitgw_proxy_server_up{server="s1",service="web"} 1`,
		`gitgw_proxy_server_up{server="s2",service="web"} 0`,
		`gitgw_proxy_server_status{server="s2",service="web",status="drain"} 1`,
		// No check: it takes connections (up), and its status says NOCHECK.
		`gitgw_proxy_server_up{server="ns1",service="dns"} 1`,
		`gitgw_proxy_server_status{server="ns1",service="dns",status="nocheck"} 1`,
		`gitgw_proxy_server_status{server="ns1",service="dns",status="up"} 0`,
		`gitgw_proxy_server_status{server="s1",service="web",status="nocheck"} 0`,
		`gitgw_vrrp_drops_total{reason="source",vrrp_instance="VI_1"} 0`,
		`gitgw_proxy_connections{service="web"} 3`,
		`gitgw_proxy_connections_total{service="web"} 120`,
		`gitgw_proxy_bytes_sent_total{service="web"} 65536`,
		`gitgw_proxy_queue{service="web"} 2`,
		`gitgw_proxy_queue_timeouts_total{service="web"} 5`,
		`gitgw_proxy_denied_total{reason="deny_list",service="web"} 7`,
		`gitgw_proxy_denied_total{reason="rate_limit",service="web"} 2`,
		`gitgw_proxy_denied_total{reason="not_allowed",service="web"} 0`,
		`gitgw_proxy_server_queue{server="s1",service="web"} 2`,
		`gitgw_proxy_server_queue{server="s2",service="web"} 0`,
		`gitgw_unit_active{unit="app@8080.service"} 1`,
		`gitgw_unit_active{unit="app@8081.service"} 0`,
		`gitgw_reconcile_duration_seconds_count{outcome="applied"} 1`,
		`gitgw_reconcile_passes_total{outcome="applied"} 1`,
		`gitgw_drift_items{driver="tuning",state="corrected"} 1`,
		`gitgw_drift_items{driver="vrrp",state="left_in_place"} 0`,
		`gitgw_applied_commit_info{commit="0123456789abcdef0123456789abcdef01234567",desired="0123456789abcdef0123456789abcdef01234567"} 1`,
		`gitgw_overrides{action="drain"} 1`,
		`gitgw_suspended 0`,
		`go_goroutines `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// Label values an operator writes in an alert: lower-case words
	// joined by _ (version, commit, unit, instance, service and server
	// names are the site's own and are left alone).
	labelValue := regexp.MustCompile(`(state|status|reason|outcome|action|driver)="([^"]*)"`)
	for _, m := range labelValue.FindAllStringSubmatch(body, -1) {
		if !regexp.MustCompile(`^[a-z][a-z0-9_-]*$`).MatchString(m[2]) {
			t.Errorf("label %s=%q: want lower-case snake_case", m[1], m[2])
		}
	}
	// Prometheus's own conventions (units, _total on counters, help).
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "gitgw_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
	if js := get(t, srv.URL+"/status.json"); !strings.Contains(js, `"node": "gw1"`) {
		t.Errorf("status.json: %.200s", js)
	}
	// The web listener is read-only.
	resp, err := http.Post(srv.URL+"/v1/suspend", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Error("the loopback listener accepts control requests")
	}
}

// TestPageInChromium loads the status page in headless Chromium (Debian's
// chromium package): the DOM it builds must show the VRRP role, the
// servers' health with their colours, the override and the commit; the
// screenshot is kept in testdata/page.png for a person to look at.
func TestPageInChromium(t *testing.T) {
	lab.SkipShort(t, "no browser")
	lab.RequireCommand(t, "chromium")
	srv := httptest.NewServer(fixture(t).WebHandler(DefaultListen))
	defer srv.Close()
	page := get(t, srv.URL+"/")
	if !strings.Contains(page, `<meta http-equiv="refresh" content="5">`) {
		t.Error("the page does not refresh itself")
	}

	profile := t.TempDir()
	chromium := func(args ...string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
			"--user-data-dir=" + profile, "--window-size=1100,800"}
		cmd := exec.CommandContext(ctx, "chromium", append(base, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
		}
		return out
	}
	dom := string(chromium("--dump-dom", srv.URL+"/"))
	for _, re := range []string{
		`<h1>gitgw — gw1</h1>`,
		`<td class="master">MASTER</td><td>140 <span class="muted">\(base 150, tracking -10 = 140\)</span></td><td>203\.0\.113\.100/24</td>`,
		`<tr id="srv-web-s1"><td>s1</td><td class="up">UP</td>`,
		`<tr id="srv-web-s2"><td>s2</td><td class="drain">DRAIN</td>`,
		`OVERRIDE: drain web/s2`,
		`<code id="applied">0123456789ab</code>`,
		`<td class="up" id="outcome">applied</td>`,
		`<td>app@8081.service</td><td class="down">failed \(failed\)</td>`,
		`tuning sysctl net.ipv4.ip_forward</td><td class="up">corrected</td>`,
	} {
		if !regexp.MustCompile(re).MatchString(dom) {
			t.Errorf("rendered page lacks %s", re)
		}
	}
	shot := filepath.Join(t.TempDir(), "page.png")
	chromium("--screenshot="+shot, "--hide-scrollbars", srv.URL+"/")
	b, err := os.ReadFile(shot)
	if err != nil || len(b) < 8 || string(b[1:4]) != "PNG" {
		t.Fatalf("no screenshot: %v", err)
	}
	if goldenfile.Update() {
		if err := os.WriteFile(filepath.Join("testdata", "page.png"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
