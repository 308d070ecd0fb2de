package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/test/gitremote"
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

// TestPlanDetailedExitCode checks Terraform's convention: 0 for no
// changes, 2 for changes, 1 for an error. No changes and changes are
// planned against gw1's reported status (the live host would plan the
// test machine): converged on the commit it applied, then one commit on.
func TestPlanDetailedExitCode(t *testing.T) {
	_, _, code := runGitgw(t, "plan", "--site", filepath.Join(repoRoot(t), "cue/loader/testdata/vrid-300"), "--node", "gw1", "--detailed-exitcode")
	if code != 1 {
		t.Errorf("invalid site: exit %d, want 1", code)
	}
	_, _, code = runGitgw(t, "plan", "--site", filepath.Join(repoRoot(t), "examples/lab"), "--node", "nosuchnode", "--detailed-exitcode")
	if code != 1 {
		t.Errorf("unknown node: exit %d, want 1", code)
	}

	gitremote.RequireGit(t)
	r := gitremote.NewBare(t)
	applied := r.Commit(t, "main", labFiles(t, nil), "lab site")
	fastImport(t, r.Dir, map[string]string{"gw1": fmt.Sprintf(`{"schema_version":1,"node":"gw1","agent_version":"test",`+
		`"desired":{"commit":%q},"applied_commit":%q,"last_pass":{"outcome":"converged"},"counts":{},"resources":[],"drift":[],"drift_corrected":0}`+"\n",
		applied, applied)})
	out, errOut, code := runGitgw(t, "plan", "--repo", r.Dir, "--node", "gw1", "--observed", "status", "--detailed-exitcode")
	if code != 0 {
		t.Errorf("converged node: exit %d, want 0 (no changes)\n%s%s", code, out, errOut)
	}
	r.Commit(t, "main", labFiles(t, func(s string) string {
		return strings.Replace(s, `s2: address: "198.51.100.12:8080"`, `s2: address: "198.51.100.22:8080"`, 1)
	}), "move s2")
	out, errOut, code = runGitgw(t, "plan", "--repo", r.Dir, "--node", "gw1", "--observed", "status", "--detailed-exitcode")
	if code != 2 || !strings.Contains(out, "web/s2") {
		t.Errorf("a commit that moves s2: exit %d, want 2 (changes) with web/s2 in the plan\n%s%s", code, out, errOut)
	}
}
