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

// TestAgentServerByName runs the agent in a namespace on a site whose
// servers are given by name: s1 is in the namespace's own hosts file
// (/etc/netns/NAME/hosts, mounted over /etc/hosts by `ip netns exec`), s2
// resolves nowhere. The commit applies, s1 is UP at the address of its
// name and s2 is shown DOWN, unresolved; once the hosts file moves s1's
// name, `gitgw status` shows the new address.
func TestAgentServerByName(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "git")
	gitremote.RequireGit(t)
	ns := gw1Alone(t, "dn")
	etc := filepath.Join("/etc/netns", ns.Name)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(etc) })
	writeHosts := func(ip string) {
		t.Helper()
		// In place (same inode): the namespace's mount of the file follows.
		if err := os.WriteFile(filepath.Join(etc, "hosts"), []byte("127.0.0.1 localhost\n"+ip+" app.lab.test\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeHosts("198.51.100.11")

	site := operatorSite("500ms")
	old := "\t\ts1: address: \"198.51.100.11:8080\"\n\t\ts2: address: \"198.51.100.12:8080\"\n"
	if !strings.Contains(site["site.cue"], old) {
		t.Fatal("operatorSite changed: update this test")
	}
	site["site.cue"] = strings.Replace(site["site.cue"], old,
		"\t\ts1: address: \"app.lab.test:8080\"\n\t\ts2: address: \"missing.lab.test:8080\"\n", 1)
	site["site.cue"] = strings.Replace(site["site.cue"], "binds: [\"203.0.113.100:80\"]\n",
		"binds: [\"203.0.113.100:80\"]\n\tresolve_interval: \"300ms\"\n", 1)
	repo := gitremote.NewBare(t)
	repo.Commit(t, "main", site, "lab: servers by name")

	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "gitgw.sock")
	units := filepath.Join(dir, "units")
	ag := startNetnsAgent(t, ns, "gw1",
		"--repo", repo.FileURL(), "--node", "gw1", "--state-dir", filepath.Join(dir, "state"),
		"--interval", "1s", "--resync", "1h", "--status-coalesce", "0",
		"--socket", sock, "--listen", "127.0.0.1:0",
		"--unit-dir", units, "--systemd-socket", filepath.Join(units, "none"))

	servers := func() (map[string]control.Server, string) {
		out, _, code := runGitgw(t, "status", "--json", "--socket", sock)
		var st control.Status
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
			return nil, out
		}
		m := map[string]control.Server{}
		for _, s := range st.Services {
			for _, sv := range s.Servers {
				m[s.Name+"/"+sv.Name] = sv
			}
		}
		return m, out
	}
	wait := func(what string, cond func(map[string]control.Server) bool) {
		t.Helper()
		nicEventually(t, 90*time.Second, what, func() (bool, string) {
			ag.alive(t, what)
			m, out := servers()
			return m != nil && cond(m), out
		})
	}
	wait("s1 up at its name's address, s2 unresolved", func(m map[string]control.Server) bool {
		s1, s2 := m["web/s1"], m["web/s2"]
		return s1.Host == "app.lab.test" && s1.Addr == "198.51.100.11:8080" && s1.Status == "UP" && !s1.ResolvedAt.IsZero() &&
			s2.Host == "missing.lab.test" && s2.Resolve == "unresolved" && s2.Status == "DOWN" && s2.Addr == ""
	})
	out, errOut, code := runGitgw(t, "status", "--socket", sock)
	if code != 0 || !strings.Contains(out, "app.lab.test → 198.51.100.11:8080 resolved at") || !strings.Contains(out, "missing.lab.test unresolved") {
		t.Fatalf("gitgw status: exit %d\n%s%s", code, out, errOut)
	}

	writeHosts("198.51.100.12")
	wait("s1 at the name's new address", func(m map[string]control.Server) bool {
		s1 := m["web/s1"]
		return s1.Addr == "198.51.100.12:8080" && s1.Status == "UP"
	})
}
