package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// applyRecorder is a driver that remembers the last state applied to it and
// plans one update whenever the desired state differs from it.
type applyRecorder struct {
	applied []byte
	applies int
}

func (d *applyRecorder) Name() string { return "proxy" }

func (d *applyRecorder) Plan(_ context.Context, desired *spec.Node) ([]plan.Change, error) {
	b, err := json.Marshal(desired)
	if err != nil {
		return nil, err
	}
	a := plan.NoOp
	if !bytes.Equal(b, d.applied) {
		a = plan.Update
	}
	return []plan.Change{{Kind: "node", ID: desired.Name, Action: a}}, nil
}

func (d *applyRecorder) Apply(_ context.Context, desired *spec.Node) error {
	b, err := json.Marshal(desired)
	d.applied, d.applies = b, d.applies+1
	return err
}

// writeSite writes a two-node site whose parts the test swaps commit by
// commit.
func writeSite(t *testing.T, dir, vrrp, services, extra string) {
	t.Helper()
	files := map[string]string{
		"cue.mod/module.cue": "module: \"example.net/lab@v0\"\nlanguage: version: \"v0.17.0\"\n",
		"site.cue": "package site\n\nnodes: {\n\tgw1: {labels: zone: \"a\", interfaces: eth0: addresses: [\"203.0.113.11/24\"]}\n" +
			"\tgw2: interfaces: eth0: addresses: [\"203.0.113.12/24\"]\n}\n" + vrrp + "\n" + services + "\n" + extra + "\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const (
	labVRRP = `vrrp: VI_1: {
	interface: "eth0", vrid: 51
	nodes: {gw1: priority: 150, gw2: priority: 100}
	vips: ["203.0.113.100/24"]
}`
	labServices = `services: web: {
	binds: ["203.0.113.100:80"]
	servers: {s1: address: "198.51.100.11:8080", s2: address: "198.51.100.12:8080"}
	check: kind: "tcp"
}`
)

// TestPolicyCheckInPass: a revision that breaks a guardrail or a change
// policy is rejected with positioned, named errors and nothing of it is
// applied; the trailer and the maintenance window let a change through.
func TestPolicyCheckInPass(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	now := time.Date(2026, 11, 18, 14, 0, 0, 0, time.UTC) // a Wednesday
	var logBuf bytes.Buffer
	drv := &applyRecorder{}
	r, err := NewRunner(RunnerOptions{Node: "gw1", StateDir: t.TempDir(), Drivers: []Driver{drv},
		Check: PolicyCheck(PolicyOptions{Logger: slog.New(slog.NewTextHandler(&logBuf, nil)), Now: func() time.Time { return now }})})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name           string
		vrrp, services string
		extra          string
		trailers       map[string]string
		want           Outcome
		wantErr        string // the first error, as rendered
	}{
		{"lab", labVRRP, labServices, "", nil, Applied, ""},
		{"priority tie", strings.Replace(labVRRP, "150", "100", 1), labServices, "", nil, Rejected,
			"site.cue:9:45: vrrp.VI_1.nodes.gw2.priority: [priority-distinct] priority 100 is also gw1's: the master would be chosen by the higher address, not by the site"},
		{"tie allowed by name", strings.Replace(labVRRP, "150", "100", 1), labServices,
			`site: policies: disable: ["priority-distinct"]`, nil, Applied, ""},
		{"every server replaced", labVRRP, strings.NewReplacer("s1:", "s3:", "s2:", "s4:").Replace(labServices), "", nil, Rejected,
			"site.cue:14:2: services.web.servers: [server-removal] this commit removes 2 of the 2 servers of service web (s1=198.51.100.11:8080, s2=198.51.100.12:8080), more than the 50% one commit may remove (site: policies: max_server_removal_percent)"},
		// With VI_1 gone, the service listens on every address (bind-address
		// refuses a bind on an address the node will never hold).
		{"every VIP removed", "", strings.Replace(labServices, "203.0.113.100:80", "0.0.0.0:80", 1), "", nil, Rejected,
			"site.cue:4:2: nodes.gw1: [allow-empty] this commit removes every VIP of node gw1 (1 before): say so with a Gitgw-Allow-Empty: trailer in the commit message"},
		{"every VIP removed, said so", "", strings.Replace(labServices, "203.0.113.100:80", "0.0.0.0:80", 1), "", map[string]string{"Gitgw-Allow-Empty": "moving VI_1 to gw3"}, Applied, ""},
		{"outside the window", labVRRP, labServices,
			`site: policies: maintenance_windows: [{name: "night", labels: zone: "a", start: "01:00", end: "05:00"}]`, nil, Rejected,
			"site.cue:17:39: site.policies.maintenance_windows.0: [maintenance-window] node gw1 changes only inside its maintenance window night (every day 01:00-05:00 UTC); it is Wed 14:00 UTC: the change is held and retried on every resync"},
	}
	for i, s := range steps {
		writeSite(t, dir, s.vrrp, s.services, s.extra)
		before := drv.applies
		res := r.Pass(ctx, Revision{Commit: s.name, Dir: dir, Trailers: s.trailers}, PassOptions{})
		if res.Outcome != s.want {
			t.Fatalf("step %d %s: outcome %s, want %s (errors %v, err %v)", i, s.name, res.Outcome, s.want, res.Errors, res.Err)
		}
		if s.want != Rejected {
			continue
		}
		if drv.applies != before {
			t.Errorf("step %s: a rejected revision was applied", s.name)
		}
		if len(res.Errors) == 0 || res.Errors[0].Error() != s.wantErr {
			t.Errorf("step %s: errors\n%v\nwant first\n%s", s.name, res.Errors, s.wantErr)
		}
	}
	// Held by the window, then let through once it opens (on a resync).
	now = time.Date(2026, 11, 19, 2, 0, 0, 0, time.UTC)
	if res := r.Pass(ctx, Revision{Commit: "outside the window", Dir: dir}, PassOptions{}); res.Outcome != Applied {
		t.Errorf("inside the window: %s %v", res.Outcome, res.Errors)
	}
}

// TestPolicyCheckSecretWarning: a password in the site is a warning, logged
// without the password, and the revision is applied.
func TestPolicyCheckSecretWarning(t *testing.T) {
	dir := t.TempDir()
	v2 := strings.Replace(labVRRP, "vrid: 51", `vrid: 51, version: 2, advert_interval: "1s", auth: {type: "pass", password: "s3cr3t"}`, 1)
	writeSite(t, dir, v2, labServices, "")
	var logBuf bytes.Buffer
	drv := &applyRecorder{}
	r, err := NewRunner(RunnerOptions{Node: "gw1", Drivers: []Driver{drv},
		Check: PolicyCheck(PolicyOptions{Logger: slog.New(slog.NewTextHandler(&logBuf, nil))})})
	if err != nil {
		t.Fatal(err)
	}
	res := r.Pass(context.Background(), Revision{Commit: "c1", Dir: dir}, PassOptions{})
	if res.Outcome != Applied {
		t.Fatalf("outcome %s: %v %v", res.Outcome, res.Errors, res.Err)
	}
	log := logBuf.String()
	if !strings.Contains(log, "secret-in-clear") || !strings.Contains(log, "vrrp.VI_1.auth.password") {
		t.Errorf("no warning logged:\n%s", log)
	}
	if strings.Contains(log, "s3cr3t") {
		t.Errorf("the log shows the password:\n%s", log)
	}
	// A resync over the same revision does not log it again.
	r.Pass(context.Background(), Revision{Commit: "c1", Dir: dir}, PassOptions{})
	if n := strings.Count(logBuf.String(), "secret-in-clear"); n != 1 {
		t.Errorf("warning logged %d times for one revision:\n%s", n, logBuf.String())
	}
}

// TestPolicyCheckSitePolicies: the site's own policies refuse a revision,
// positioned and named; a later revision that follows them is applied.
func TestPolicyCheckSitePolicies(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	writeSite(t, dir, strings.Replace(labVRRP, "vrid: 51", `vrid: 51, version: 2, advert_interval: "1s"`, 1), labServices, "")
	if err := os.MkdirAll(filepath.Join(dir, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "policies", "v3only.cue"), []byte("package site\n\nvrrp: [_]: version: 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	drv := &applyRecorder{}
	r, err := NewRunner(RunnerOptions{Node: "gw1", Drivers: []Driver{drv}, Check: PolicyCheck(PolicyOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	const want = "site.cue:8:40: vrrp.VI_1.version: [v3only] conflicting values 3 and 2"
	for range 2 { // the second pass over the same commit reuses the first's finding
		res := r.Pass(ctx, Revision{Commit: "v2", Dir: dir}, PassOptions{})
		if res.Outcome != Rejected || len(res.Errors) != 1 || res.Errors[0].Error() != want || drv.applies != 0 {
			t.Fatalf("outcome %s, errors %v, applies %d; want rejected with\n%s", res.Outcome, res.Errors, drv.applies, want)
		}
	}
	writeSite(t, dir, labVRRP, labServices, "")
	if res := r.Pass(ctx, Revision{Commit: "v3", Dir: dir}, PassOptions{}); res.Outcome != Applied {
		t.Errorf("a revision that follows the policies: %s %v", res.Outcome, res.Errors)
	}
}
