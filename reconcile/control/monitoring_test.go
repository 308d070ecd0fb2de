package control

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/test/lab"
)

// monitoring is where the shipped alerting rules and dashboard live.
var monitoring = filepath.Join("..", "..", "packaging", "monitoring")

// TestShippedRules runs promtool over the shipped alerting rules: they
// load, and their own unit tests (each alert fires on the series that
// should trigger it, and a healthy pair raises none) pass.
func TestShippedRules(t *testing.T) {
	lab.RequireCommand(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", "gitgw-alerts.yml"},
		{"test", "rules", "gitgw-alerts_test.yml"},
	} {
		cmd := exec.Command("promtool", args...)
		cmd.Dir = monitoring
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestShippedDashboard checks the Grafana dashboard: valid JSON, every
// query a valid PromQL expression (promtool checks them as recording
// rules, with Grafana's variables filled in), and every gitgw_ metric it or
// the alerts name is one the agent exports, with the labels they use.
func TestShippedDashboard(t *testing.T) {
	lab.RequireCommand(t, "promtool")
	b, err := os.ReadFile(filepath.Join(monitoring, "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	vars := strings.NewReplacer("$__rate_interval", "5m", "$job", "gitgw", "$node", ".*")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	var exprs []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			e := vars.Replace(tg.Expr)
			exprs = append(exprs, e)
			q, _ := json.Marshal(e)
			rules.WriteString("      - record: dashboard:query\n        expr: " + string(q) + "\n")
		}
	}
	if len(exprs) < 10 {
		t.Fatalf("only %d queries in the dashboard", len(exprs))
	}
	file := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(file, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("promtool", "check", "rules", file).CombinedOutput(); err != nil {
		t.Errorf("dashboard queries: %v\n%s", err, out)
	}

	// What the agent exports: names and label names, from a scrape of the
	// fixture (every family present).
	srv := httptest.NewServer(fixture(t).WebHandler(DefaultListen))
	defer srv.Close()
	exported := map[string]map[string]bool{}
	sample := regexp.MustCompile(`^(gitgw_[a-z_]+?)(_bucket|_sum|_count)?(\{([^}]*)\})? `)
	for _, line := range strings.Split(get(t, srv.URL+"/metrics"), "\n") {
		m := sample.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		name := m[1] + m[2]
		if exported[name] == nil {
			exported[name] = map[string]bool{"job": true, "instance": true, "le": true}
		}
		for _, kv := range regexp.MustCompile(`([a-z_]+)="`).FindAllStringSubmatch(m[4], -1) {
			exported[name][kv[1]] = true
		}
	}
	alerts, err := os.ReadFile(filepath.Join(monitoring, "gitgw-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range append(exprs, string(alerts)) {
		for _, m := range regexp.MustCompile(`(gitgw_[a-z_]+)(\{[^}]*\})?`).FindAllStringSubmatch(e, -1) {
			labels, ok := exported[m[1]]
			if !ok {
				t.Errorf("%s is not a metric the agent exports (in %q)", m[1], firstLine(e))
				continue
			}
			for _, l := range regexp.MustCompile(`([a-z_]+)\s*(=~|!=|=)`).FindAllStringSubmatch(m[2], -1) {
				if !labels[l[1]] {
					t.Errorf("%s has no label %s (in %q)", m[1], l[1], firstLine(e))
				}
			}
		}
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
