package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/test/gitremote"
)

// labStatus is a node's status file: it runs applied; with drift, it left
// net.ipv4.ip_forward at 0 (report mode).
func labStatus(node, applied string, withDrift bool) string {
	resources, drift, counts := "", "", `{}`
	if withDrift {
		resources = `{"driver":"tuning","kind":"sysctl","id":"net.ipv4.ip_forward","state":"drift","observed":"0","desired":"1"}`
		drift = `{"driver":"tuning","kind":"sysctl","id":"net.ipv4.ip_forward","mode":"report","observed":"0","desired":"1"}`
		counts = `{"drift":1}`
	}
	return fmt.Sprintf(`{"schema_version":1,"node":%q,"agent_version":"test","desired":{"commit":%q},"applied_commit":%q,`+
		`"last_pass":{"outcome":"converged"},"counts":%s,"resources":[%s],"drift":[%s],"drift_corrected":0}`+"\n",
		node, applied, applied, counts, resources, drift)
}

// TestPlanAllNodesObservedStatus: `plan --all-nodes --observed status` plans
// every node of the lab site against its own status branch in one run: gw1
// (drift left in place) and gw2 both see the moved server, only gw1 sees
// its drift; the summary table, the markdown of a review comment and the
// JSON agree; --detailed-exitcode says 2 while a node would change and 0
// once every node reports the proposed commit applied; without --observed
// the command refuses, naming the flag.
func TestPlanAllNodesObservedStatus(t *testing.T) {
	gitremote.RequireGit(t)
	r := gitremote.NewBare(t)
	applied := r.Commit(t, "main", labFiles(t, nil), "lab site")
	next := r.Commit(t, "main", labFiles(t, func(s string) string {
		return strings.Replace(s, `s2: address: "198.51.100.12:8080"`, `s2: address: "198.51.100.22:8080"`, 1)
	}), "move s2")
	fastImport(t, r.Dir, map[string]string{"gw1": labStatus("gw1", applied, true), "gw2": labStatus("gw2", applied, false)})

	out, errOut, code := runGitgw(t, "plan", "--repo", r.Dir, "--all-nodes", "--observed", "status", "--format", "json", "--detailed-exitcode")
	if code != 2 {
		t.Fatalf("plan --all-nodes: exit %d, want 2 (changes)\n%s%s", code, out, errOut)
	}
	var doc struct {
		Commit  string
		Changes bool
		Nodes   []struct {
			Node    string
			Changes []struct{ Kind, ID, Action string }
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("plan json: %v\n%s", err, out)
	}
	if doc.Commit != next || !doc.Changes || len(doc.Nodes) != 2 || doc.Nodes[0].Node != "gw1" || doc.Nodes[1].Node != "gw2" {
		t.Fatalf("site plan: commit %s, changes %v, nodes %+v", doc.Commit, doc.Changes, doc.Nodes)
	}
	for i, want := range []map[string]string{
		{"proxy_server web/s2": "update", "sysctl net.ipv4.ip_forward": "update", "vrrp_instance VI_1": "no-op"},
		{"proxy_server web/s2": "update", "sysctl net.ipv4.ip_forward": "no-op", "vrrp_instance VI_1": "no-op"},
	} {
		got := map[string]string{}
		for _, c := range doc.Nodes[i].Changes {
			got[c.Kind+" "+c.ID] = c.Action
		}
		for k, a := range want {
			if got[k] != a {
				t.Errorf("%s: %s is %q, want %q", doc.Nodes[i].Node, k, got[k], a)
			}
		}
	}

	out, errOut, code = runGitgw(t, "plan", "--repo", r.Dir, "--all-nodes", "--observed", "status", "--format", "markdown")
	if code != 0 {
		t.Fatalf("plan --format markdown: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"## gitgw plan at `" + next[:12] + "`",
		"| node | create | update | delete | unchanged | pending | waits for |",
		"\n### gw1\n", "\n### gw2\n",
		"~ proxy_server web/s2: 198.51.100.12:8080 → 198.51.100.22:8080",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
	if i, j := strings.Index(out, "| node |"), strings.Index(out, "### gw1"); i < 0 || j < i {
		t.Errorf("the summary table does not come first:\n%s", out)
	}
	row := func(node string) string {
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "| "+node+" |") {
				return l
			}
		}
		return ""
	}
	if !strings.HasPrefix(row("gw1"), "| gw1 | 0 | 2 | 0 |") || !strings.HasPrefix(row("gw2"), "| gw2 | 0 | 1 | 0 |") {
		t.Errorf("summary rows:\n%s\n%s", row("gw1"), row("gw2"))
	}

	out, errOut, code = runGitgw(t, "plan", "--repo", r.Dir, "--all-nodes", "--observed", "status")
	if code != 0 || !strings.Contains(out, "gitgw plan for node gw1") || !strings.Contains(out, "gitgw plan for node gw2") ||
		!strings.Contains(out, "2 of 2 nodes change") {
		t.Errorf("text: exit %d\n%s%s", code, out, errOut)
	}

	// Every node runs the proposed commit, drift gone: nothing to do.
	for _, n := range []string{"gw1", "gw2"} {
		if b, err := exec.Command("git", "-C", r.Dir, "update-ref", "-d", "refs/heads/gitgw/status/"+n).CombinedOutput(); err != nil {
			t.Fatalf("drop the status branch of %s: %v\n%s", n, err, b)
		}
	}
	fastImport(t, r.Dir, map[string]string{"gw1": labStatus("gw1", next, false), "gw2": labStatus("gw2", next, false)})
	out, errOut, code = runGitgw(t, "plan", "--repo", r.Dir, "--all-nodes", "--observed", "status", "--detailed-exitcode")
	if code != 0 || !strings.Contains(out, "No changes on any of 2 nodes.") {
		t.Errorf("converged site: exit %d, want 0\n%s%s", code, out, errOut)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--all-nodes", "--detailed-exitcode"}, "--observed status"},
		{[]string{"--all-nodes", "--observed", "status", "--node", "gw1"}, "--node and --all-nodes"},
		{[]string{"--node", "gw1", "--format", "markdown"}, "--all-nodes --observed status"},
		{[]string{"--all-nodes", "--observed", "status", "--format", "html"}, `--format "html"`},
	} {
		_, errOut, code = runGitgw(t, append([]string{"plan", "--repo", r.Dir}, tc.args...)...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("plan %v: exit %d, want 1 naming %s\n%s", tc.args, code, tc.want, errOut)
		}
	}

	// A guardrail broken by the pair: refused, reported once, positioned.
	bad := gitremote.NewBare(t)
	var line int
	bad.Commit(t, "main", labFiles(t, func(s string) string {
		s, line = dupVRID(s)
		return s
	}), "second instance, same VRID")
	out, errOut, code = runGitgw(t, "plan", "--repo", bad.Dir, "--all-nodes", "--observed", "status", "--detailed-exitcode")
	want := fmt.Sprintf("site.cue:%d:13: vrrp.VI_2.vrid: [vrid-unique]", line)
	if code != 1 || strings.Count(errOut, want) != 1 || out != "" {
		t.Errorf("guardrail: exit %d, want 1 with %q once\nstdout:\n%s\nstderr:\n%s", code, want, out, errOut)
	}
}
