package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/reconcile/control"
	"github.com/gitgw/gitgw/test/gitremote"
	"github.com/gitgw/gitgw/test/lab"
)

// operatorSite is the lab site's gw1 part (VI_1 at 150 over gw2's 100, the
// VIP, service web with s1 and s2) without units, with only the
// namespace's own nonlocal-bind sysctl and without pair-aware rollout;
// interval is the check interval.
func operatorSite(interval string) map[string]string {
	return map[string]string{
		"cue.mod/module.cue": "module: \"example.net/operator-e2e@v0\"\nlanguage: version: \"v0.17.0\"\n",
		"site.cue": fmt.Sprintf(`package site

site: {
	name: "operator-e2e"
	// gw2 does not run here: gw1 must not wait for it.
	rollout: pairs: false
	bake: window: "0s"
}

nodes: [_]: tuning: sysctls: {"net.ipv4.ip_nonlocal_bind": 1}
nodes: {
	gw1: interfaces: eth0: addresses: ["203.0.113.11/24"]
	gw2: interfaces: eth0: addresses: ["203.0.113.12/24"]
}

vrrp: VI_1: {
	interface:       "eth0"
	vrid:            51
	version:         3
	advert_interval: "100ms"
	nodes: {gw1: priority: 150, gw2: priority: 100}
	vips: ["203.0.113.100/24"]
}

services: web: {
	binds: ["203.0.113.100:80"]
	servers: {
		s1: address: "198.51.100.11:8080"
		s2: address: "198.51.100.12:8080"
	}
	check: {kind: "tcp", interval: %q, rise: 2, fall: 2}
}
`, interval),
	}
}

// TestOperatorControl runs the agent in a namespace on the lab site's gw1
// and drives it as an operator would: `gitgw status --json` over the 0600
// socket, metrics and the status page on the namespace's loopback, an
// override (drain s2) shown in status, metrics and on the status branch,
// suspend (passes go on, nothing applied), resume (the override cleared),
// give-up of VI_1, and an override cleared by a new commit.
func TestOperatorControl(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "git", "curl")
	gitremote.RequireGit(t)
	repo := gitremote.NewBare(t)
	repo.Commit(t, "main", operatorSite("500ms"), "lab: gw1")

	ns := gw1Alone(t, "op")

	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "gitgw.sock")
	units := filepath.Join(dir, "units")
	ag := startNetnsAgent(t, ns, "gw1",
		"--repo", repo.FileURL(), "--node", "gw1", "--state-dir", filepath.Join(dir, "state"),
		"--interval", "1s", "--resync", "1h", "--status-coalesce", "0",
		"--socket", sock, "--listen", "127.0.0.1:9142",
		"--unit-dir", units, "--systemd-socket", filepath.Join(units, "none"))

	gitgw := func(args ...string) string {
		t.Helper()
		out, errOut, code := runGitgw(t, append(args, "--socket", sock)...)
		if code != 0 {
			t.Fatalf("gitgw %v: exit %d\n%s%s", args, code, out, errOut)
		}
		return out
	}
	status := func() (control.Status, string) {
		out, _, code := runGitgw(t, "status", "--json", "--socket", sock)
		var st control.Status
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
			return st, out
		}
		return st, ""
	}
	server := func(st control.Status, name string) string {
		for _, s := range st.Services {
			for _, sv := range s.Servers {
				if s.Name+"/"+sv.Name == name {
					return sv.Status
				}
			}
		}
		return ""
	}
	vi1 := func(st control.Status) control.VRRPInstance {
		for _, in := range st.VRRP {
			if in.Name == "VI_1" {
				return in
			}
		}
		return control.VRRPInstance{}
	}
	waitStatus := func(what string, cond func(control.Status) bool) control.Status {
		t.Helper()
		var st control.Status
		nicEventually(t, 90*time.Second, what, func() (bool, string) {
			ag.alive(t, what)
			var bad string
			st, bad = status()
			if bad != "" {
				return false, bad
			}
			b, _ := json.Marshal(st)
			return cond(st), string(b)
		})
		return st
	}

	st := waitStatus("master of VI_1 with both servers up", func(st control.Status) bool {
		return vi1(st).State == "MASTER" && server(st, "web/s1") == "UP" && server(st, "web/s2") == "UP" && st.LastPass != nil
	})
	first := st.Applied
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket: %v %v", fi.Mode(), err)
	}
	if out := gitgw("status"); !strings.Contains(out, "VI_1  MASTER") || !strings.Contains(out, "web/s2") {
		t.Errorf("gitgw status:\n%s", out)
	}

	// Drain s2: at once in status and metrics, and on the status branch.
	if out := gitgw("override", "drain", "web/s2"); !strings.Contains(out, "override drain web/s2") {
		t.Errorf("override: %s", out)
	}
	st = waitStatus("s2 drained", func(st control.Status) bool {
		return server(st, "web/s2") == "DRAIN" && server(st, "web/s1") == "UP" && len(st.Overrides) == 1
	})
	metrics := ns.Run(t, "curl", "-sf", "http://127.0.0.1:9142/metrics")
	for _, want := range []string{
		`gitgw_proxy_server_up{server="s2",service="web"} 0`,
		`gitgw_proxy_server_up{server="s1",service="web"} 1`,
		`gitgw_vrrp_state{state="master",vrrp_instance="VI_1"} 1`,
		`gitgw_overrides{action="drain"} 1`,
		`gitgw_reconcile_duration_seconds_count{outcome="applied"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if page := ns.Run(t, "curl", "-sf", "http://127.0.0.1:9142/"); !strings.Contains(page, `<td class="drain">DRAIN</td>`) ||
		!strings.Contains(page, "OVERRIDE: drain web/s2") {
		t.Errorf("status page lacks the drained s2")
	}
	nicEventually(t, 60*time.Second, "the override on the status branch", func() (bool, string) {
		for _, e := range statusHistory(t, repo, "gw1") {
			b, _ := json.Marshal(e.st.Sections["overrides"])
			var sec control.SectionView
			if json.Unmarshal(b, &sec) == nil && len(sec.Overrides) == 1 && sec.Overrides[0].Target == "web/s2" {
				return true, ""
			}
		}
		return false, "no status commit with the override"
	})

	// Suspend: a pass plans and reports, and applies nothing.
	gitgw("suspend")
	out := gitgw("reconcile")
	if !strings.Contains(out, "suspended") {
		t.Errorf("reconcile while suspended: %s", out)
	}
	if st, _ := status(); !st.Suspended || st.LastPass == nil || st.LastPass.Outcome == "applied" {
		t.Errorf("status while suspended: %+v", st.LastPass)
	}
	// Resume: applying again, the override gone, s2 back.
	gitgw("resume")
	waitStatus("s2 back after resume", func(st control.Status) bool {
		return !st.Suspended && len(st.Overrides) == 0 && server(st, "web/s2") == "UP"
	})

	// Give up VI_1: priority 1, at least one transition out of master.
	before := vi1(st).Counters.Transitions
	gitgw("override", "give-up", "VI_1")
	st = waitStatus("VI_1 given up", func(st control.Status) bool {
		in := vi1(st)
		return in.BasePriority == 1 && in.Counters.Transitions > before && len(st.Overrides) == 1
	})
	gitgw("override", "clear")
	waitStatus("VI_1 back at 150 and master", func(st control.Status) bool {
		in := vi1(st)
		return in.BasePriority == 150 && in.State == "MASTER" && len(st.Overrides) == 0
	})

	// An override ends with the first pass that applies a new commit.
	gitgw("override", "weight", "web/s1", "10")
	waitStatus("s1 at weight 10", func(st control.Status) bool { return len(st.Overrides) == 1 })
	second := repo.Commit(t, "main", operatorSite("400ms"), "web: faster checks")
	st = waitStatus("the new commit applied and the override cleared", func(st control.Status) bool {
		return st.Applied == second && len(st.Overrides) == 0
	})
	if st.Applied == first {
		t.Fatal("applied commit did not move")
	}
	for _, s := range st.Services {
		for _, sv := range s.Servers {
			if sv.Weight == 10 {
				t.Errorf("%s/%s still at the override's weight", s.Name, sv.Name)
			}
		}
	}
}
