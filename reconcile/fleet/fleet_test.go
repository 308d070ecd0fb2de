package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/reconcile/drift"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
	"github.com/gitgw/gitgw/test/gitremote"
)

// status is a node's status.json with one VRRP instance on a segment.
func status(t *testing.T, node, applied, instance string, vrid int, segment, state string) string {
	t.Helper()
	st := drift.Status{SchemaVersion: drift.SchemaVersion, Node: node, Applied: applied, Desired: drift.Revision{Commit: applied},
		LastPass: drift.Pass{Outcome: drift.Converged}, Counts: map[string]int{}, Resources: []drift.Resource{}, Drift: []drift.Item{},
		Sections: map[string]any{"vrrp": drift.VRRPSection{Instances: []drift.VRRPInstance{
			{Name: instance, VRID: vrid, Interface: "eth0", State: state, Family: "IPv4", Segments: []string{segment}}}}}}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReadSplitBrainPerSegment reads a real repository with four nodes'
// status branches: two segments reuse VRID 51, each with one master (no
// split brain: the vrid-unique guardrail allows it), and a third pair on
// one segment has two masters (a split brain, named by its segment).
func TestReadSplitBrainPerSegment(t *testing.T) {
	gitremote.RequireGit(t)
	r := gitremote.NewBare(t)
	head := r.Commit(t, "main", map[string]string{"README": "site\n"}, "site")
	for _, n := range []struct {
		node, instance string
		vrid           int
		segment, state string
	}{
		{"gw1", "VI_1", 51, "198.51.100.0/25", "MASTER"},
		{"gw2", "VI_1", 51, "198.51.100.0/25", "BACKUP"},
		{"gw3", "VI_7", 51, "198.51.100.128/25", "MASTER"},
		{"gw4", "VI_7", 51, "198.51.100.128/25", "BACKUP"},
		{"gw5", "VI_9", 52, "203.0.113.0/24", "MASTER"},
		{"gw6", "VI_9", 52, "203.0.113.0/24", "MASTER"},
	} {
		r.Commit(t, "gitgw/status/"+n.node, map[string]string{drift.StatusFile: status(t, n.node, head, n.instance, n.vrid, n.segment, n.state)},
			fmt.Sprintf("status(%s): fixture\n\nGitgw-Node: %s", n.node, n.node))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var warnings []error
	f, err := Read(ctx, Options{URL: r.Dir, Ref: "main", Warn: func(err error) { warnings = append(warnings, err) }})
	if err != nil {
		t.Fatal(err)
	}
	if f.Head != head || len(warnings) > 0 {
		t.Fatalf("head = %q (want %q), warnings %v", f.Head, head, warnings)
	}
	if len(f.Nodes) != 6 || f.Nodes[0].Sync != "current" {
		t.Fatalf("nodes: %+v", f.Nodes)
	}
	var got []string
	for _, rt := range f.Routers {
		got = append(got, fmt.Sprintf("%d %s %s", rt.VRID, strings.Join(rt.Segments, ","), rt.Flag))
	}
	want := []string{"51 198.51.100.0/25 ", "51 198.51.100.128/25 ", "52 203.0.113.0/24 split-brain"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("routers = %q, want %q", got, want)
	}
	var alerts []string
	for _, a := range f.Alerts {
		alerts = append(alerts, a.Kind+": "+a.Subject)
	}
	if len(alerts) != 1 || alerts[0] != "split-brain: VRID 52 on 203.0.113.0/24 (VI_9)" {
		t.Errorf("alerts = %q, want only the split brain on 203.0.113.0/24", alerts)
	}
}

// TestReportsNameTheAgent: the fleet names the agent of each alive ref, so that an operator sees
// which process holds a node's name.
func TestReportsNameTheAgent(t *testing.T) {
	now := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	id := gitrepo.AgentID{Machine: "m1", Host: "gw-a", Boot: "b1", PID: 412, Started: now.Add(-time.Hour)}
	rs := Reports([]gitrepo.BranchStatus{
		{Node: "gw1", Alive: &gitrepo.Alive{Node: "gw1", Time: now.Add(-time.Minute), Bound: 3 * time.Minute, Agent: &id}},
		{Node: "gw2", Alive: &gitrepo.Alive{Node: "gw2", Time: now.Add(-time.Hour), Bound: 3 * time.Minute}},
	}, now)
	if rs[0].Agent != "pid 412 on host gw-a (machine m1, started 2026-12-06T06:00:00Z)" || rs[0].Stale || rs[0].Err != "status.json missing" {
		t.Errorf("gw1: %+v", rs[0])
	}
	if rs[1].Agent != "" || !rs[1].Stale {
		t.Errorf("gw2: %+v", rs[1])
	}
}
