package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/reconcile/control"
	"github.com/gitgw/gitgw/test/gitremote"
	"github.com/gitgw/gitgw/test/lab"
)

// withServer is the operator site with one more server in web.
func withServer(files map[string]string, name, addr string) map[string]string {
	out := map[string]string{}
	for k, v := range files {
		out[k] = v
	}
	out["site.cue"] = strings.Replace(out["site.cue"], `s2: address: "198.51.100.12:8080"`,
		"s2: address: \"198.51.100.12:8080\"\n\t\t"+name+": address: \""+addr+"\"", 1)
	return out
}

// TestPlanApplyBesideAgent is the "look before you switch" on a
// live gateway: gw1's agent runs in a namespace and holds its VIP and the
// proxy; it fetches its repository over https inside the namespace with a
// poll interval of an hour, so that it sees a push only when asked (a
// local repository would be watched and applied at once). The operator's
// gitgw plan and apply run beside it, against the same repository:
//
//   - converged, `plan --detailed-exitcode` exits 0 with "No changes";
//   - after a push that adds server s3, the plan lists exactly that change
//     and exits 2;
//   - `apply --auto-approve` hands the plan to the agent, which applies
//     it and keeps it: s3 in its status, the VIP still on eth0, and no
//     drift commit on the status branch;
//   - a plan saved with -out before a further push is refused, and one
//     saved at the head is applied exactly.
func TestPlanApplyBesideAgent(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "git")
	gitremote.RequireGit(t)
	repo := gitremote.NewBare(t)
	site := operatorSite("500ms")
	repo.Commit(t, "main", site, "lab: gw1")

	ns := gw1Alone(t, "pa")
	ns.Run(t, "ip", "addr", "add", "198.51.100.13/32", "dev", "lo")
	ns.Run(t, "ip", "addr", "add", "198.51.100.14/32", "dev", "lo")
	backends(t, ns, "198.51.100.13:8080", "198.51.100.14:8080")
	var srv *gitremote.HTTPS
	if err := ns.Do(func() error {
		// The listener is made in the namespace: only the agent reaches it.
		srv = gitremote.StartHTTPS(t, filepath.Dir(repo.Dir), "t0ken")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "run", "gitgw.sock")
	units := filepath.Join(dir, "units")
	ag := startNetnsAgent(t, ns, "gw1",
		"--repo", srv.RepoURL(t, repo.Dir), "--token-file", token, "--ca-file", srv.CAFile,
		"--node", "gw1", "--state-dir", filepath.Join(dir, "state"),
		"--interval", "1h", "--resync", "1h", "--status-coalesce", "0",
		"--socket", sock, "--listen", "",
		"--unit-dir", units, "--systemd-socket", filepath.Join(units, "none"))

	status := func() control.Status {
		out, _, code := runGitgw(t, "status", "--json", "--socket", sock)
		var st control.Status
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
			return control.Status{}
		}
		return st
	}
	hasServer := func(st control.Status, name string) bool {
		for _, s := range st.Services {
			for _, sv := range s.Servers {
				if s.Name+"/"+sv.Name == name {
					return true
				}
			}
		}
		return false
	}
	master := func(st control.Status) bool {
		for _, in := range st.VRRP {
			if in.Name == "VI_1" && in.State == "MASTER" {
				return true
			}
		}
		return false
	}
	waitStatus := func(what string, cond func(control.Status) bool) control.Status {
		t.Helper()
		var st control.Status
		nicEventually(t, 90*time.Second, what, func() (bool, string) {
			ag.alive(t, what)
			st = status()
			b, _ := json.Marshal(st)
			return cond(st), string(b)
		})
		return st
	}
	// gitgw runs the CLI beside the agent, on the host, against the
	// repository itself (the same commits the agent fetches over https).
	gitgw := func(args ...string) (string, string, int) {
		t.Helper()
		return runGitgw(t, append(args, "--socket", sock, "--unit-dir", units, "--systemd-socket", filepath.Join(units, "none"))...)
	}
	vipHeld := func() bool {
		return strings.Contains(ns.Run(t, "ip", "-o", "addr", "show", "dev", "eth0"), "203.0.113.100/24")
	}

	waitStatus("converged: master of VI_1, both servers in the proxy", func(st control.Status) bool {
		return master(st) && hasServer(st, "web/s2") && st.Applied != "" && st.Applied == st.Desired
	})
	out, errOut, code := gitgw("plan", "--repo", repo.FileURL(), "--node", "gw1", "--detailed-exitcode")
	if code != 0 || !strings.Contains(out, "No changes. The node matches the site") || !strings.Contains(out, "observed: the running agent (pid ") {
		t.Fatalf("plan on a converged node: exit %d, want 0 and no changes, observed by the agent\n%s%s", code, out, errOut)
	}

	// A push: the plan is exactly it.
	c2 := repo.Commit(t, "main", withServer(site, "s3", "198.51.100.13:8080"), "web: add s3")
	out, errOut, code = gitgw("plan", "--repo", repo.FileURL(), "--node", "gw1", "--json")
	if code != 0 {
		t.Fatalf("plan --json: exit %d\n%s", code, errOut)
	}
	var doc struct {
		Commit  string
		Changes []struct{ Driver, Kind, ID, Action string }
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var actionable []string
	for _, c := range doc.Changes {
		if c.Action == "create" || c.Action == "update" || c.Action == "delete" {
			actionable = append(actionable, c.Action+" "+c.Kind+" "+c.ID)
		}
	}
	if doc.Commit != c2 || len(actionable) != 1 || actionable[0] != "create proxy_server web/s3" {
		t.Fatalf("plan after the push of %s: at %s, changes %q; want exactly create proxy_server web/s3", c2, doc.Commit, actionable)
	}
	out, errOut, code = gitgw("plan", "--repo", repo.FileURL(), "--node", "gw1", "--detailed-exitcode", "--no-color")
	if code != 2 || !strings.Contains(out, "+ proxy_server web/s3") || !strings.Contains(out, "Plan: 1 to create, 0 to update, 0 to delete") {
		t.Fatalf("plan after the push: exit %d, want 2 with the one change\n%s%s", code, out, errOut)
	}
	t.Logf("gitgw plan after the push:\n%s", out)

	// Apply through the agent: it applies and keeps it.
	out, errOut, code = gitgw("apply", "--repo", repo.FileURL(), "--node", "gw1", "--auto-approve", "--no-color")
	if code != 0 || !strings.Contains(out, "applied by the agent (pid ") || !strings.Contains(out, "applied, 1 change") {
		t.Fatalf("apply through the agent: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("gitgw apply:\n%s", out)
	// The reply may come before the status records the pass: awaited.
	waitStatus("the agent running the applied commit, s3 in its proxy, master of VI_1", func(st control.Status) bool {
		return st.Applied == c2 && hasServer(st, "web/s3") && master(st)
	})
	if !vipHeld() {
		t.Fatal("the VIP left eth0 after apply")
	}
	if out, errOut, code = gitgw("plan", "--repo", repo.FileURL(), "--node", "gw1", "--detailed-exitcode"); code != 0 {
		t.Fatalf("plan after apply: exit %d, want 0\n%s%s", code, out, errOut)
	}

	// A plan saved before a further push is refused; the agent then
	// follows its repository to the new head, as it would by its poll.
	saved := filepath.Join(dir, "s4.plan")
	repo.Commit(t, "main", withServer(withServer(site, "s3", "198.51.100.13:8080"), "s4", "198.51.100.14:8080"), "web: add s4")
	if out, errOut, code = gitgw("plan", "--repo", repo.FileURL(), "--node", "gw1", "-out", saved); code != 0 {
		t.Fatalf("plan -out: exit %d\n%s%s", code, out, errOut)
	}
	c4 := repo.Commit(t, "main", withServer(site, "s4", "198.51.100.14:8080"), "web: s3 leaves")
	out, errOut, code = gitgw("apply", saved)
	if code != 1 || !strings.Contains(errOut, "nothing applied") || !strings.Contains(errOut, "whose head is "+c4[:12]) {
		t.Fatalf("a saved plan made before a push: exit %d, want 1 and the head named\n%s%s", code, out, errOut)
	}
	t.Logf("gitgw apply of a stale saved plan:\n%s%s", out, errOut)
	waitStatus("the agent at the new head", func(st control.Status) bool { return st.Applied == c4 && !hasServer(st, "web/s3") })

	// A plan saved at the head is applied exactly.
	c5 := repo.Commit(t, "main", withServer(withServer(site, "s3", "198.51.100.13:8080"), "s4", "198.51.100.14:8080"), "web: s3 back")
	if out, errOut, code = gitgw("plan", "--repo", repo.FileURL(), "--node", "gw1", "--out", saved); code != 0 {
		t.Fatalf("plan --out: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = gitgw("apply", saved)
	if code != 0 || !strings.Contains(out, "applied, 1 change") {
		t.Fatalf("apply of a saved plan: exit %d\n%s%s", code, out, errOut)
	}
	waitStatus("the saved plan running", func(st control.Status) bool { return st.Applied == c5 && hasServer(st, "web/s3") })
	if !vipHeld() {
		t.Fatal("the VIP left eth0 after the saved plan")
	}

	// Nobody was blamed: no status commit reports drift.
	nicEventually(t, 60*time.Second, "the last apply on the status branch", func() (bool, string) {
		h := statusHistory(t, repo, "gw1")
		return len(h) > 0 && h[len(h)-1].st.Applied == c5, ""
	})
	for _, e := range statusHistory(t, repo, "gw1") {
		if strings.HasPrefix(e.subject, "drift(") || len(e.st.Drift) > 0 {
			t.Errorf("status commit %s reports drift: %s", e.hash[:12], e.subject)
		}
	}
}

// TestApplyWithoutAgent: with no agent, apply changes only what outlives
// it. A plan that changes VRRP or the proxy is refused, nothing applied;
// with --kinds tuning the sysctl is set and no VIP or listener is brought
// up (nor torn down as the process exits).
func TestApplyWithoutAgent(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip")
	site := t.TempDir()
	for name, body := range operatorSite("1s") {
		p := filepath.Join(site, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ns := gw1Host(t, "pa1")
	units := t.TempDir()
	apply := func(extra ...string) (string, int) {
		t.Helper()
		out, err := ns.Try(gitgwBin, append([]string{"apply", "--site", site, "--node", "gw1", "--auto-approve", "--no-color",
			"--socket", filepath.Join(units, "no-agent.sock"), "--unit-dir", units, "--systemd-socket", filepath.Join(units, "none")}, extra...)...)
		if err != nil {
			return out + err.Error(), 1
		}
		return out, 0
	}
	nonlocal := func() string {
		return strings.TrimSpace(ns.Run(t, "cat", "/proc/sys/net/ipv4/ip_nonlocal_bind"))
	}
	if nonlocal() != "0" {
		t.Fatal("the namespace starts with ip_nonlocal_bind set")
	}
	out, code := apply()
	if code == 0 || !strings.Contains(out, "VRRP and the proxy run inside the agent") || !strings.Contains(out, "Nothing was applied") ||
		!strings.Contains(out, "--kinds tuning,units") {
		t.Fatalf("one-shot apply of a plan with a VIP: exit %d, want a refusal\n%s", code, out)
	}
	if nonlocal() != "0" {
		t.Error("a refused apply changed the sysctl")
	}
	out, code = apply("--kinds", "tuning")
	if code != 0 || !strings.Contains(out, "applied by this process (tuning)") || !strings.Contains(out, "changes not applied (proxy, vrrp)") {
		t.Fatalf("--kinds tuning: exit %d\n%s", code, out)
	}
	if nonlocal() != "1" {
		t.Error("--kinds tuning did not set the sysctl")
	}
	if addrs := ns.Run(t, "ip", "-o", "addr", "show", "dev", "eth0"); strings.Contains(addrs, "203.0.113.100") {
		t.Errorf("a one-shot apply limited to tuning brought the VIP up:\n%s", addrs)
	}
}
