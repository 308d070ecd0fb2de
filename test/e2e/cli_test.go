package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValidateExamples(t *testing.T) {
	for _, site := range []string{"examples/lab", "examples/seed-site", "examples/demo"} {
		out, errOut, code := runGitgw(t, "validate", "--site", filepath.Join(repoRoot(t), site))
		if code != 0 {
			t.Errorf("validate %s: exit %d\n%s%s", site, code, out, errOut)
		}
	}
}

// TestValidateBroken checks the CLI contract: exit 1 and one
// file:line:col: message line per error.
func TestValidateBroken(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "cue/loader/testdata/all-at-once")
	out, _, code := runGitgw(t, "validate", "--site", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	want, err := os.ReadFile(filepath.Join(repoRoot(t), "cue/loader/testdata/all-at-once.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(string(want), out); d != "" {
		t.Errorf("validate output (-want +got):\n%s", d)
	}
}

// TestPlanSeedSite: the plan for server-1 lists every resource kind the
// schema has, as changes or, for drivers not available, plainly as pending.
func TestPlanSeedSite(t *testing.T) {
	out, errOut, code := runGitgw(t, "plan", "--site", filepath.Join(repoRoot(t), "examples/seed-site"), "--node", "server-1", "--json")
	if code != 0 {
		t.Fatalf("plan: exit %d\n%s", code, errOut)
	}
	var doc struct {
		FormatVersion int `json:"format_version"`
		Node          string
		Changes       []struct {
			Driver, Kind, ID, Action string
			Before, After            any
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("plan json: %v\n%s", err, out)
	}
	if doc.FormatVersion != 1 || doc.Node != "server-1" {
		t.Errorf("header: %+v", doc)
	}
	seen := map[string]bool{}
	ids := map[string]bool{}
	for _, c := range doc.Changes {
		seen[c.Driver] = true
		ids[c.ID] = true
		if c.Kind == "" || c.ID == "" || c.Action == "" {
			t.Errorf("incomplete change %+v", c)
		}
	}
	for _, d := range []string{"tuning", "units", "proxy", "vrrp"} {
		if !seen[d] {
			t.Errorf("plan has nothing for %s", d)
		}
	}
	for _, id := range []string{"app@8085.service", "net.ipv4.ip_forward"} {
		if !ids[id] {
			t.Errorf("plan lacks %s", id)
		}
	}
	// Everything the node runs is named somewhere in the plan.
	for _, name := range []string{"EX_1", "INT_2", "VI_1", "antivirus", "delivery", "antispam", "web"} {
		if !strings.Contains(out, name) {
			t.Errorf("plan does not mention %s", name)
		}
	}
}

func TestPlanDetailedExitCode(t *testing.T) {
	_, _, code := runGitgw(t, "plan", "--site", filepath.Join(repoRoot(t), "cue/loader/testdata/vrid-300"), "--node", "gw1", "--detailed-exitcode")
	if code != 1 {
		t.Errorf("invalid site: exit %d, want 1", code)
	}
	_, _, code = runGitgw(t, "plan", "--site", filepath.Join(repoRoot(t), "examples/lab"), "--node", "nosuchnode", "--detailed-exitcode")
	if code != 1 {
		t.Errorf("unknown node: exit %d, want 1", code)
	}
}
