package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/drift"
	"github.com/gitgw/gitgw/test/gitremote"
	"github.com/gitgw/gitgw/test/lab"
)

// signSite is a pair (gw1 master of VI_1, gw2 backup) whose nodes list
// the keys their status commits are signed with; gw1 waits for gw2 for as
// long as it takes (on_timeout hold), so that only gw2's status can
// release it. Each rev flips a sysctl of the node's own network namespace:
// a change for both nodes.
func signSite(rev int, key1, key2 string) map[string]string {
	return map[string]string{
		"cue.mod/module.cue": "module: \"example.net/sign-e2e@v0\"\nlanguage: version: \"v0.17.0\"\n",
		"site.cue": fmt.Sprintf(`package site

site: {
	name: "sign-e2e"
	rollout: {peer_timeout: "10m", on_timeout: "hold"}
}

nodes: [_]: tuning: sysctls: {"net.ipv4.ip_nonlocal_bind": %d}
nodes: {
	gw1: { interfaces: eth0: addresses: ["203.0.113.11/24"], status_key: %q}
	gw2: {interfaces: eth0: addresses: ["203.0.113.12/24"], status_key: %q}
}

vrrp: VI_1: {
	interface:       "eth0"
	vrid:            51
	version:         3
	advert_interval: "100ms"
	nodes: {gw1: priority: 150, gw2: priority: 100}
	vips: ["203.0.113.100/24"]
}
`, rev%2, key1, key2),
	}
}

// TestForgedPeerStatusDoesNotReleaseMaster runs the real agents of a pair,
// each signing its status commits with its own key. While the backup
// (gw2) is stopped, someone with push access writes gw2's status branch to
// say the new commit is applied and healthy: unsigned, then signed by a
// key of their own. The master (gw1) keeps holding the commit and says
// why; once the branch is gw2's own again and the real gw2 applies the
// commit and reports it, signed, gw1 applies it.
func TestForgedPeerStatusDoesNotReleaseMaster(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "git", "ssh-keygen")
	gitremote.RequireGit(t)
	keys := t.TempDir()
	key1, pub1 := gitremote.SSHSigningKey(t, keys, "gw1")
	key2, pub2 := gitremote.SSHSigningKey(t, keys, "gw2")
	mallory, _ := gitremote.SSHSigningKey(t, keys, "mallory")

	front := lab.NewSwitch(t)
	ns1, ns2 := lab.NewNetns(t, "sg1"), lab.NewNetns(t, "sg2")
	front.Attach(t, ns1, "eth0", "203.0.113.11/24")
	front.Attach(t, ns2, "eth0", "203.0.113.12/24")
	repo := gitremote.NewBare(t)
	c1 := repo.Commit(t, "main", signSite(1, pub1, pub2), "rev 1")
	start := func(ns *lab.Netns, node, key, state, name string) *rolloutAgent {
		a := &rolloutAgent{node: node, state: state}
		units := filepath.Join(t.TempDir(), "units")
		a.netnsAgent = startNetnsAgent(t, ns, name,
			"--repo", repo.Dir, "--node", node, "--state-dir", state, "--status-signing-key", key,
			"--interval", "1s", "--resync", "1h", "--status-coalesce", "0", "--rollout-poll", "300ms",
			"--socket", "", "--listen", "", "--unit-dir", units, "--systemd-socket", filepath.Join(units, "none"))
		return a
	}
	state2 := filepath.Join(t.TempDir(), "state-gw2")
	a1 := start(ns1, "gw1", key1, filepath.Join(t.TempDir(), "state-gw1"), "gw1")
	a2 := start(ns2, "gw2", key2, state2, "gw2")
	settled := func(c string) func(drift.Status) bool {
		return func(st drift.Status) bool { return reconcile.Settled(st, c) }
	}
	firstStatus(t, repo, a1, 90*time.Second, "c1 applied on gw1", settled(c1))
	real2 := firstStatus(t, repo, a2, 90*time.Second, "c1 applied on gw2", settled(c1))
	a2.stop(t)
	real2.hash = repo.Head(t, "gitgw/status/gw2")

	c2 := repo.Commit(t, "main", signSite(2, pub1, pub2), "rev 2")
	heldFor := func(what, why string) {
		t.Helper()
		firstStatus(t, repo, a1, 60*time.Second, what, func(st drift.Status) bool {
			return st.Desired.Commit == c2 && st.LastPass.Outcome == drift.Held && strings.Contains(st.LastPass.Error, why)
		})
	}
	heldFor("c2 held on gw1, waiting for gw2", "waits for gw2")

	// The forger's status for gw2: c2 applied and healthy.
	work := filepath.Join(t.TempDir(), "work")
	git := func(args ...string) string {
		t.Helper()
		out, err := gitremote.Git(work, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if _, err := gitremote.Git("", "clone", "-q", repo.Dir, work); err != nil {
		t.Fatal(err)
	}
	git("checkout", "-q", "-b", "forge", "origin/gitgw/status/gw2")
	st, err := drift.Parse([]byte(repo.Show(t, real2.hash, drift.StatusFile)))
	if err != nil {
		t.Fatal(err)
	}
	forge := func(rev, signingKey string) {
		t.Helper()
		st.Applied, st.Desired.Commit = c2, c2
		st.LastPass = drift.Pass{Outcome: drift.Converged}
		st.Counts = map[string]int{drift.InSync: 1}
		b, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, drift.StatusFile), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		git("add", drift.StatusFile)
		args := []string{"-c", "user.name=gw2", "-c", "user.email=gw2@gitgw", "commit", "-q", "--allow-empty", "-m", "apply(gw2): " + c2[:7] + " " + rev}
		if signingKey != "" {
			args = append([]string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + signingKey}, append(args, "-S")...)
		}
		git(args...)
		git("push", "-q", "origin", "forge:gitgw/status/gw2")
	}
	forge("unsigned", "")
	heldFor("c2 still held on gw1: gw2's status is unsigned", "status of gw2 not trusted: gitrepo: verify")
	forge("signed by mallory", mallory)
	heldFor("c2 still held on gw1: gw2's status is signed by another key", "not signed by a trusted key: unknown key SHA256:")
	if l := a1.logs.String(); !strings.Contains(l, "not signed by its status_key") || !strings.Contains(l, `"peer":"gw2"`) {
		t.Errorf("gw1's log does not say why it distrusts gw2's status")
	}
	for _, e := range statusHistory(t, repo, "gw1") {
		if e.st.Applied == c2 {
			t.Fatalf("gw1 applied c2 on a forged status: %s", e.subject)
		}
	}

	// The operator puts gw2's branch back; the real gw2 applies c2 and
	// reports it, signed: gw1 applies it.
	if _, err := gitremote.Git(repo.Dir, "update-ref", "refs/heads/gitgw/status/gw2", real2.hash); err != nil {
		t.Fatal(err)
	}
	a2 = start(ns2, "gw2", key2, state2, "gw2-again")
	firstStatus(t, repo, a2, 90*time.Second, "c2 applied on gw2", settled(c2))
	firstStatus(t, repo, a1, 90*time.Second, "c2 applied on gw1 after gw2's signed status", settled(c2))
	if !strings.Contains(a1.logs.String(), "peers applied the commit; applying") {
		t.Errorf("gw1 did not apply c2 on gw2's report")
	}
}
