package reconcile

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitgw/gitgw/reconcile/gitrepo"
	"github.com/gitgw/gitgw/reconcile/plan"
	"github.com/gitgw/gitgw/test/gitremote"
)

// TestReporting runs an agent's status reporting against a real bare
// repository: a pass is committed and pushed, a driver event passes
// through to the agent and into the next commit, every push is told to
// OnPush, and Stop pushes what is pending.
func TestReporting(t *testing.T) {
	gitremote.RequireGit(t)
	bare := gitremote.NewBare(t)
	var mu sync.Mutex
	var pushes []error
	r, err := StartReporting(t.Context(), ReportingOptions{AgentVersion: "v-test",
		Status: gitrepo.StatusOptions{Node: "gw1", URL: bare.Dir, Dir: filepath.Join(t.TempDir(), "status.git"),
			OnPush: func(_ time.Time, err error) { mu.Lock(); pushes = append(pushes, err); mu.Unlock() }}})
	if err != nil {
		t.Fatal(err)
	}
	const c1 = "3a9c1e2b6f0d4c8e9a1b2c3d4e5f60718293a4b5"
	pass := Result{Commit: c1, AppliedCommit: c1, Outcome: Unchanged, Plan: &plan.Plan{Changes: []plan.Change{
		{Driver: "units", Kind: "unit_instance", ID: "app@8080.service", Action: plan.Pending, After: "active", Reason: "no systemd"}}}}
	r.Report(t.Context(), pass)

	in := make(chan Event, 1)
	out := r.Events(t.Context(), []<-chan Event{in})
	in <- Event{Driver: "vrrp", Kind: "transition", Message: "VI_1 BACKUP -> MASTER (peer silent 360 ms)"}
	if ev := <-out[0]; ev.Message != "VI_1 BACKUP -> MASTER (peer silent 360 ms)" {
		t.Fatalf("event passed on: %+v", ev)
	}
	r.Report(t.Context(), pass)
	close(in) // the driver stops: its forwarder ends, and Stop can wait for it
	r.Stop(10 * time.Second)

	var subjects []string
	for _, e := range bare.Log(t, "gitgw/status/gw1") {
		subjects = append(subjects, e.Subject)
	}
	want := []string{"status(gw1): 3a9c1e2 pending, 1 resource (1 pending)", "failover(gw1): VI_1 BACKUP -> MASTER (peer silent 360 ms)"}
	if strings.Join(subjects, "\n") != strings.Join(want, "\n") {
		t.Errorf("status branch:\n%s\nwant:\n%s", strings.Join(subjects, "\n"), strings.Join(want, "\n"))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(pushes) == 0 || pushes[len(pushes)-1] != nil {
		t.Errorf("OnPush heard %v, want the pushes, the last one a success", pushes)
	}
}
