package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile/plan"
	sdharness "github.com/gitgw/gitgw/test/systemd"
	"github.com/gitgw/gitgw/units"
)

// healthProxy stands in for the proxy driver: it remembers the services it
// was given, and a server is healthy when its port is 8080 (the lab's
// backends listen there; anything else is refused).
type healthProxy struct {
	mu      sync.Mutex
	applied map[string]spec.Service
	applies int
}

func (d *healthProxy) Name() string { return "proxy" }

func (d *healthProxy) Plan(_ context.Context, n *spec.Node) ([]plan.Change, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	have, _ := json.Marshal(d.applied)
	want, _ := json.Marshal(n.Services)
	ch := plan.Change{Kind: "service", ID: "all", Action: plan.NoOp}
	if string(have) != string(want) {
		ch.Action = plan.Update
	}
	return []plan.Change{ch}, nil
}

func (d *healthProxy) Apply(_ context.Context, n *spec.Node) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.applied = n.Services
	d.applies++
	return nil
}

func (d *healthProxy) ProbeHealth(context.Context, *spec.Node) (Health, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := Health{Servers: map[string]int{}}
	for name, svc := range d.applied {
		for _, s := range svc.Servers {
			if strings.HasSuffix(s.Address, ":8080") {
				h.Servers[name]++
			}
		}
	}
	return h, nil
}

func (d *healthProxy) servers(svc string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, s := range d.applied[svc].Servers {
		out = append(out, s.Address)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// labVariant writes the lab site with its servers' port replaced by port
// and extra CUE appended.
func labVariant(t testing.TB, port, extra string) string {
	t.Helper()
	dir := t.TempDir()
	src, err := os.ReadFile("../examples/lab/site.cue")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile("../examples/lab/cue.mod/module.cue")
	if err != nil {
		t.Fatal(err)
	}
	site := strings.ReplaceAll(string(src), ":8080\"", ":"+port+"\"") + "\n" + extra + "\n"
	if err := os.MkdirAll(filepath.Join(dir, "cue.mod"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cue.mod", "module.cue"), mod, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "site.cue"), []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestHealthGateRollsBackAndPins(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	state := t.TempDir()
	d := &healthProxy{}
	var gate *HealthGate
	runner, err := NewRunner(RunnerOptions{
		Node: "gw1", StateDir: state, Drivers: []Driver{d},
		Admit: func(ctx context.Context, rev Revision, prev *LastGood) error { return gate.Admit(ctx, rev, prev) },
		Hold: func(ctx context.Context, _ Revision, prev *LastGood, _ *spec.Node, _ *plan.Plan) error {
			gate.Before(ctx, prev)
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	gate, err = NewHealthGate(HealthGateOptions{Runner: runner, StateDir: state, Window: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	pass := func(commit, dir string) Result {
		t.Helper()
		prev := runner.LastGood()
		res := runner.Pass(ctx, Revision{Commit: commit, Dir: dir}, PassOptions{})
		if res.Outcome == Applied && (prev == nil || prev.Commit != res.AppliedCommit) {
			res = gate.Bake(ctx, prev, res)
		}
		return res
	}
	good := labVariant(t, "8080", "")
	bad := labVariant(t, "9999", "")
	newer := labVariant(t, "8080", `services: web: servers: s3: address: "198.51.100.13:8080"`)

	if res := pass("c1", good); res.Outcome != Applied {
		t.Fatalf("c1: %s", res.Summary())
	}
	// c2's servers all fail: rolled back to c1, pinned.
	res := pass("c2", bad)
	if res.Outcome != RolledBack || res.AppliedCommit != "c1" || !strings.Contains(res.Summary(), "service web: 0 healthy servers, want at least 2") {
		t.Fatalf("c2: %s", res.Summary())
	}
	if got := d.servers("web"); got != "198.51.100.11:8080 198.51.100.12:8080" {
		t.Fatalf("servers after rollback: %s", got)
	}
	if lg := runner.LastGood(); lg.Commit != "c1" {
		t.Fatalf("last good = %s", lg.Commit)
	}
	if p, err := LoadPin(state); err != nil || p == nil || p.Commit != "c2" || !strings.Contains(p.Reason, "service web") {
		t.Fatalf("pin = %+v, %v", p, err)
	}
	// c2 again (a resync, a restarted agent): refused, nothing applied.
	applies := d.applies
	for _, g := range []*HealthGate{gate, mustGate(t, runner, state)} {
		gate = g
		res = pass("c2", bad)
		if res.Outcome != Rejected || !errors.Is(res.Err, ErrPinned) || d.applies != applies {
			t.Fatalf("pinned c2: %s (applies %d → %d)", res.Summary(), applies, d.applies)
		}
	}
	// A newer commit clears the pin and passes the gate.
	if res := pass("c3", newer); res.Outcome != Applied {
		t.Fatalf("c3: %s", res.Summary())
	}
	if p, _ := LoadPin(state); p != nil || gate.Pinned() != nil {
		t.Fatalf("pin left after a newer commit: %+v", p)
	}
}

func mustGate(t *testing.T, r *Runner, state string) *HealthGate {
	t.Helper()
	g, err := NewHealthGate(HealthGateOptions{Runner: r, StateDir: state, Window: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestRegressions(t *testing.T) {
	t.Parallel()
	svc := func(servers ...spec.Server) spec.Service {
		s := spec.Service{Servers: map[string]spec.Server{}}
		for i, srv := range servers {
			s.Servers[string(rune('a'+i))] = srv
		}
		return s
	}
	up := spec.Server{Weight: 1}
	drained := spec.Server{Weight: 1, Drain: true}
	node := func(b spec.Bake, services map[string]spec.Service) *spec.Node {
		return &spec.Node{Site: spec.SiteSettings{Bake: b}, Services: services}
	}
	bake := spec.Bake{MaxTransitions: 2, UnitsActive: true}
	for _, tc := range []struct {
		name               string
		before, start, end Health
		desired            *spec.Node
		want               string
	}{
		{"healthy", Health{Servers: map[string]int{"web": 2}}, Health{}, Health{Servers: map[string]int{"web": 2}},
			node(bake, map[string]spec.Service{"web": svc(up, up)}), ""},
		{"fewer healthy servers", Health{Servers: map[string]int{"web": 2}}, Health{}, Health{Servers: map[string]int{"web": 1}},
			node(bake, map[string]spec.Service{"web": svc(up, up)}), "service web: 1 healthy servers, want at least 2"},
		{"a server drained on purpose", Health{Servers: map[string]int{"web": 2}}, Health{}, Health{Servers: map[string]int{"web": 1}},
			node(bake, map[string]spec.Service{"web": svc(up, drained)}), ""},
		{"site minimum", Health{Servers: map[string]int{"web": 3}}, Health{}, Health{Servers: map[string]int{"web": 1}},
			node(spec.Bake{MinHealthyServers: 1}, map[string]spec.Service{"web": svc(up, up, up)}), ""},
		{"site minimum, a service of rules without servers", Health{}, Health{}, Health{Servers: map[string]int{"web": 1}},
			node(spec.Bake{MinHealthyServers: 1}, map[string]spec.Service{"web": svc(up),
				"front": {HTTP: &spec.ServiceHTTP{Rules: []spec.HTTPRule{{Use: "web"}}}}}), ""},
		{"site minimum missed", Health{}, Health{}, Health{Servers: map[string]int{"web": 0}},
			node(spec.Bake{MinHealthyServers: 1}, map[string]spec.Service{"web": svc(up)}), "service web: 0 healthy servers, want at least 1"},
		{"flapping", Health{}, Health{Transitions: map[string]uint64{"VI_1": 4}}, Health{Transitions: map[string]uint64{"VI_1": 9}},
			node(bake, nil), "vrrp VI_1: 5 transitions during the bake window (flapping; at most 2)"},
		{"one failover is no flapping", Health{}, Health{Transitions: map[string]uint64{"VI_1": 4}}, Health{Transitions: map[string]uint64{"VI_1": 5}},
			node(bake, nil), ""},
		{"a unit stopped", Health{Inactive: []string{"app@8081.service"}}, Health{}, Health{Inactive: []string{"app@8080.service", "app@8081.service"}},
			node(bake, nil), "unit app@8080.service is not active"},
		{"units not watched", Health{}, Health{}, Health{Inactive: []string{"app@8080.service"}},
			node(spec.Bake{MaxTransitions: 2}, nil), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(Regressions(tc.before, tc.start, tc.end, tc.desired), "; ")
			if got != tc.want {
				t.Fatalf("Regressions = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestUnitsProbeHealthAgainstSystemd: the units driver's health lists an
// instance stopped by hand, and nothing once it runs again.
func TestUnitsProbeHealthAgainstSystemd(t *testing.T) {
	h := sdharness.New(t, sdharness.Options{Name: "rbu"})
	d, err := NewUnitsDriver(UnitsOptions{UnitDir: h.UnitDir, Socket: h.Socket(), Manager: units.Options{Settle: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	ctx := context.Background()
	n := &spec.Node{
		Name: "gw1",
		Site: spec.SiteSettings{Drift: spec.DriftByKind{Units: spec.DriftCorrect}},
		Units: map[string]spec.UnitTemplate{"app": {
			Description: "app on %i", Type: "exec", ExecStart: "/bin/sleep infinity", Restart: "no",
			Instances: []spec.InstanceSet{{List: []string{"7011", "7012"}}}, RollTimeout: spec.Duration(30 * time.Second),
		}},
	}
	if err := d.Apply(ctx, n); err != nil {
		t.Fatal(err)
	}
	probeInactive := func() string {
		t.Helper()
		hl, err := d.ProbeHealth(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(hl.Inactive, ",")
	}
	if got := probeInactive(); got != "" {
		t.Fatalf("inactive after apply: %s", got)
	}
	h.MustSystemctl(t, "stop", "app@7012.service")
	deadline := time.Now().Add(30 * time.Second)
	for probeInactive() != "app@7012.service" {
		if time.Now().After(deadline) {
			t.Fatalf("stopped instance not reported; inactive: %q", probeInactive())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := d.Apply(ctx, n); err != nil {
		t.Fatal(err)
	}
	if got := probeInactive(); got != "" {
		t.Fatalf("inactive after restart: %s", got)
	}
}

// TestRunnerOwnsHealthGate: with RunnerOptions.Health the Runner takes
// the health before an apply (hold step), bakes (Runner.Bake, the agent's
// default) and refuses the commit its gate pinned (admit step), also after
// a restart, with no hook wired by the caller.
func TestRunnerOwnsHealthGate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	state := t.TempDir()
	d := &healthProxy{}
	newRunner := func() *Runner {
		r, err := NewRunner(RunnerOptions{Node: "gw1", StateDir: state, Drivers: []Driver{d},
			Health: &HealthGateOptions{Window: 100 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := newRunner()
	pass := func(r *Runner, commit, dir string) Result {
		t.Helper()
		prev := r.LastGood()
		res := r.Pass(ctx, Revision{Commit: commit, Dir: dir}, PassOptions{})
		if res.Outcome == Applied && (prev == nil || prev.Commit != res.AppliedCommit) {
			res = r.Bake(ctx, prev, res)
		}
		return res
	}
	good, bad := labVariant(t, "8080", ""), labVariant(t, "9999", "")
	if res := pass(r, "c1", good); res.Outcome != Applied {
		t.Fatalf("c1: %s", res.Summary())
	}
	if res := pass(r, "c2", bad); res.Outcome != RolledBack || res.AppliedCommit != "c1" {
		t.Fatalf("c2: %s", res.Summary())
	}
	if p := r.HealthGate().Pinned(); p == nil || p.Commit != "c2" {
		t.Fatalf("pin = %+v", p)
	}
	applies := d.applies
	for _, r := range []*Runner{r, newRunner()} {
		if res := pass(r, "c2", bad); res.Outcome != Rejected || !errors.Is(res.Err, ErrPinned) || d.applies != applies {
			t.Fatalf("pinned c2: %s (applies %d → %d)", res.Summary(), applies, d.applies)
		}
	}
}
