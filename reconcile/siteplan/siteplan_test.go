package siteplan

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/drift"
	"github.com/gitgw/gitgw/reconcile/plan"
)

const (
	lab     = "../../examples/lab"
	applied = "0123456789abcdef0123456789abcdef01234567"
)

// TestSiteOneEvaluationPerCommit: every node of the lab site is planned
// against its report; the commit both nodes report as applied is checked
// out once, not once per node; a node that runs that very site and left
// drift in place plans the drift's correction only, and its peer plans no
// change.
func TestSiteOneEvaluationPerCommit(t *testing.T) {
	ctx := context.Background()
	checkouts := 0
	o := Options{
		Reports: map[string]Report{
			"gw1": {Status: drift.Status{Node: "gw1", Applied: applied,
				Resources: []drift.Resource{{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_forward", State: "drift", Observed: []byte(`"0"`), Desired: []byte(`"1"`)}},
				Drift:     []drift.Item{{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_forward", Mode: "report", Observed: []byte(`"0"`), Desired: []byte(`"1"`)}}}},
			"gw2": {Status: drift.Status{Node: "gw2", Applied: applied}},
		},
		Checkout: func(_ context.Context, commit string) (reconcile.Revision, func(), error) {
			checkouts++
			if commit != applied {
				t.Errorf("checkout of %s, want %s", commit, applied)
			}
			return reconcile.Revision{Commit: commit, Dir: lab}, nil, nil
		},
	}
	site, errs, err := Site(ctx, reconcile.Revision{Commit: "next", Dir: lab}, o)
	if err != nil || len(errs) > 0 {
		t.Fatal(err, errs)
	}
	if checkouts != 1 {
		t.Errorf("the applied commit was checked out %d times for 2 nodes, want once", checkouts)
	}
	if len(site.Plans) != 2 || site.Plans[0].Node != "gw1" || site.Plans[1].Node != "gw2" {
		t.Fatalf("plans for %v", nodes(site))
	}
	if got := actionable(site.Plans[0]); !slices.Equal(got, []string{"update sysctl net.ipv4.ip_forward"}) {
		t.Errorf("gw1 changes %v, want its drift corrected only", got)
	}
	if got := actionable(site.Plans[1]); len(got) != 0 {
		t.Errorf("gw2 changes %v, want none", got)
	}
	if !site.HasChanges() {
		t.Error("site without changes")
	}
}

// TestSiteNewNode: a node without a status branch is planned as new, with
// a note that says why, and nothing is checked out for it.
func TestSiteNewNode(t *testing.T) {
	site, errs, err := Site(context.Background(), reconcile.Revision{Commit: "next", Dir: lab}, Options{
		Reports: map[string]Report{"gw1": {Status: drift.Status{Node: "gw1", Applied: "dir:abc"}}},
	})
	if err != nil || len(errs) > 0 {
		t.Fatal(err, errs)
	}
	gw2 := site.Plans[1]
	c := gw2.Count()
	if gw2.Node != "gw2" || c.Create == 0 || c.Update+c.Delete+c.NoOp != 0 {
		t.Errorf("gw2: %+v", c)
	}
	if len(gw2.Notes) == 0 || !strings.Contains(gw2.Notes[0], "gw2 has no status branch") {
		t.Errorf("gw2 notes %q", gw2.Notes)
	}
	if n := site.Plans[0].Notes; len(n) < 2 || !strings.Contains(n[1], `no applied commit of the repository ("dir:abc")`) {
		t.Errorf("gw1 notes %q", n)
	}
}

// TestSiteRefusedOnce: a check that refuses both nodes of a pair for the
// same reason reports it once, and no plan comes back.
func TestSiteRefusedOnce(t *testing.T) {
	var seen []string
	check := func(_ context.Context, _ reconcile.Revision, _, next *spec.Node) loader.Errors {
		seen = append(seen, next.Name)
		return loader.Errors{{File: "site.cue", Line: 29, Col: 19, Path: "vrrp.VI_1.vrid", Msg: "[vrid-unique] VRID 51 twice"}}
	}
	site, errs, err := Site(context.Background(), reconcile.Revision{Commit: "next", Dir: lab}, Options{Check: check})
	if err != nil || site != nil {
		t.Fatalf("site %v, err %v", site, err)
	}
	if !slices.Equal(seen, []string{"gw1", "gw2"}) || len(errs) != 1 || !strings.Contains(errs[0].Error(), "[vrid-unique]") {
		t.Errorf("checked %v; errors %v", seen, errs)
	}
}

func nodes(s *plan.Site) []string {
	var out []string
	for _, p := range s.Plans {
		out = append(out, p.Node)
	}
	return out
}

func actionable(p *plan.Plan) []string {
	var out []string
	for _, c := range p.Actionable() {
		out = append(out, string(c.Action)+" "+c.Kind+" "+c.ID)
	}
	return out
}
