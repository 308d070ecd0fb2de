package planapply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/control"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// TestPlanLocallyAndSave: with no agent, Plan plans with Local and says so
// first; the plan saved with -out reads back for its node only, and a
// one-shot apply of it is refused once the site's head moved.
func TestPlanLocallyAndSave(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "none.sock")
	local := &plan.Plan{Node: "gw1", Commit: "c1", Changes: []plan.Change{
		{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_forward", Action: plan.Update, Before: "0", After: "1"}},
		Notes: []string{"vrrp VI_1: gw1 will be master"}}
	pl, err := Plan(context.Background(), PlanOptions{Client: control.NewClient(sock), Socket: sock, Node: "gw1", Commit: "c1",
		Desired: &spec.Node{Name: "gw1"}, Local: func(context.Context) (*plan.Plan, error) { return local, nil }})
	if err != nil || pl.Agent != nil || pl.Plan != local {
		t.Fatalf("no agent: %+v %v", pl, err)
	}
	if len(pl.Plan.Notes) != 2 || pl.Plan.Notes[0] != NoAgentNote(sock) || !strings.Contains(pl.Plan.Notes[0], "predicted as if nothing ran") {
		t.Errorf("notes: %q", pl.Plan.Notes)
	}
	if _, err := Plan(context.Background(), PlanOptions{Client: control.NewClient(sock), Socket: sock, Node: "gw1",
		Local: func(context.Context) (*plan.Plan, error) { return nil, errors.New("no drivers") }}); err == nil {
		t.Error("a failed local plan: no error")
	}

	file := filepath.Join(dir, "gw1.plan")
	if err := Save(file, pl, plan.Source{Repo: "file:///srv/site.git", Ref: "main"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSaved(file, "")
	if err != nil || s.Observed.By != plan.ObservedHost || s.Source.Repo != "file:///srv/site.git" || s.Commit != "c1" {
		t.Fatalf("load: %+v %v", s, err)
	}
	if _, err := LoadSaved(file, "gw2"); err == nil || !strings.Contains(err.Error(), "is a plan for node gw1, not gw2") {
		t.Errorf("another node: %v", err)
	}
	var b bytes.Buffer
	if err := WriteSavedHeader(&b, file, s); err != nil || !strings.Contains(b.String(), "against this host, with no agent answering") {
		t.Errorf("header: %q %v", b.String(), err)
	}
	if err := CheckHead(file, s, "c1", "git file:///srv/site.git"); err != nil {
		t.Errorf("same head: %v", err)
	}
	if err := CheckHead(file, s, "c2", "git file:///srv/site.git"); err == nil ||
		!strings.Contains(err.Error(), "nothing applied: "+file+" was planned at c1, and the site (git file:///srv/site.git) is now at c2") {
		t.Errorf("head moved: %v", err)
	}
}

// TestWriteOnce: a one-shot pass says what it applied and what it left to
// the agent; a moved plan and a failed pass are errors.
func TestWriteOnce(t *testing.T) {
	p := &plan.Plan{Node: "gw1", Changes: []plan.Change{
		{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_forward", Action: plan.Update},
		{Driver: "proxy", Kind: "proxy_bind", ID: "web/203.0.113.100:80", Action: plan.Create},
		{Driver: "vrrp", Kind: "vip", ID: "VI_1/203.0.113.100/24", Action: plan.Create},
	}}
	only := OneShotKinds(nil)
	var b bytes.Buffer
	err := WriteOnce(&b, reconcile.Result{Commit: "c1", Outcome: reconcile.Applied, Applied: p.Changes[:1]}, p, only)
	if err != nil || !strings.Contains(b.String(), "applied by this process (tuning, units): c1 applied, 1 change") ||
		!strings.Contains(b.String(), "2 changes not applied (proxy, vrrp)") {
		t.Errorf("applied: %v\n%s", err, b.String())
	}
	b.Reset()
	moved := reconcile.Result{Outcome: reconcile.Rejected, Err: fmt.Errorf("%w: sysctl net.ipv4.ip_forward: planned update, now nothing to do", reconcile.ErrPlanMoved)}
	if err := WriteOnce(&b, moved, p, only); err == nil || !strings.Contains(err.Error(), "nothing applied") || !strings.Contains(err.Error(), "plan again") {
		t.Errorf("moved: %v", err)
	}
	if err := WriteOnce(&b, reconcile.Result{Outcome: reconcile.Failed, Err: errors.New("sysfs")}, p, only); !errors.Is(err, ErrOnceFailed) {
		t.Errorf("failed: %v", err)
	}
}
