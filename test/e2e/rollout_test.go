package e2e

import (
	"errors"
	"fmt"
	"net"
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

// rolloutSite is the lab pair (gw1 master at 150, gw2 backup at 100, VIP
// 203.0.113.100, service web on the VIP) without the global NIC knobs,
// with servers and check given as CUE and the safety settings of this
// test: a master waits up to 25 s for its backup to report a commit
// healthy (then proceeds: the default), and every new commit bakes 5 s.
func rolloutSite(servers, check string) map[string]string {
	return map[string]string{
		"cue.mod/module.cue": "module: \"example.net/rollout-e2e@v0\"\nlanguage: version: \"v0.17.0\"\n",
		"site.cue": fmt.Sprintf(`package site

site: {
	name: "rollout-e2e"
	rollout: peer_timeout: "25s"
	bake: window: "5s"
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
	preempt: true
	vips: ["203.0.113.100/24"]
}

services: web: {
	binds: ["203.0.113.100:80"]
	balance: "roundrobin"
	servers: {%s}
	check: {%s, interval: "500ms", rise: 2, fall: 2}
}
`, servers, check),
	}
}

// rolloutAgent is one `gitgw agent` running in a gateway's namespace.
type rolloutAgent struct {
	*netnsAgent
	node, state string
}

func startRolloutAgent(t *testing.T, ns *lab.Netns, node, repo string) *rolloutAgent {
	t.Helper()
	a := &rolloutAgent{node: node, state: filepath.Join(t.TempDir(), "state-"+node)}
	units := filepath.Join(t.TempDir(), "units")
	a.netnsAgent = startNetnsAgent(t, ns, node,
		"--repo", repo, "--node", node, "--state-dir", a.state,
		"--interval", "1s", "--resync", "1h", "--status-coalesce", "0", "--rollout-poll", "300ms",
		"--socket", "", "--listen", "", "--unit-dir", units, "--systemd-socket", filepath.Join(units, "none"))
	return a
}

// statusEntry is one commit of a status branch with its status.json.
type statusEntry struct {
	hash, subject string
	st            drift.Status
}

func statusHistory(t *testing.T, repo *gitremote.Repo, node string) []statusEntry {
	t.Helper()
	var out []statusEntry
	for _, e := range repo.Log(t, "gitgw/status/"+node) {
		st, err := drift.Parse([]byte(repo.Show(t, e.Hash, drift.StatusFile)))
		if err != nil {
			continue
		}
		out = append(out, statusEntry{hash: e.Hash, subject: e.Subject, st: st})
	}
	return out
}

// commitTime is a status commit's committer time (seconds).
func commitTime(t *testing.T, repo *gitremote.Repo, hash string) int64 {
	t.Helper()
	out, err := gitremote.Git(repo.Dir, "log", "-1", "--format=%ct", hash)
	if err != nil {
		t.Fatal(err)
	}
	var s int64
	if _, err := fmt.Sscan(out, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// firstStatus waits for the first status commit of node matching cond and
// returns its index in the branch's history and the entry.
func firstStatus(t *testing.T, repo *gitremote.Repo, a *rolloutAgent, within time.Duration, what string, cond func(drift.Status) bool) statusEntry {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, e := range statusHistory(t, repo, a.node) {
			if cond(e.st) {
				return e
			}
		}
		a.alive(t, what)
		if time.Now().After(deadline) {
			var subjects []string
			for _, e := range statusHistory(t, repo, a.node) {
				subjects = append(subjects, fmt.Sprintf("%s applied=%.7s outcome=%s", e.subject, e.st.Applied, e.st.LastPass.Outcome))
			}
			t.Fatalf("after %s, %s: no status commit of %s; its branch has:\n%s", within, what, a.node, strings.Join(subjects, "\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// gw1Alone is a namespace holding the lab site's gw1 without its peer:
// eth0 on 203.0.113.11 (a veth whose other end stays in the namespace) and
// the two lab backends on loopback, answering TCP checks.
func gw1Alone(t *testing.T, name string) *lab.Netns {
	t.Helper()
	ns := gw1Host(t, name)
	backends(t, ns, "198.51.100.11:8080", "198.51.100.12:8080")
	return ns
}

// gw1Host is gw1Alone without the backends: the backends' addresses are on
// loopback, and whatever the test runs on port 8080 serves them.
func gw1Host(t *testing.T, name string) *lab.Netns {
	t.Helper()
	ns := lab.NewNetns(t, name)
	ns.Run(t, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
	ns.Run(t, "ip", "addr", "add", "203.0.113.11/24", "dev", "eth0")
	ns.Run(t, "ip", "link", "set", "eth0", "up")
	ns.Run(t, "ip", "link", "set", "eth1", "up")
	ns.Run(t, "ip", "addr", "add", "198.51.100.11/32", "dev", "lo")
	ns.Run(t, "ip", "addr", "add", "198.51.100.12/32", "dev", "lo")
	return ns
}

// backends listens on addrs (host:port) inside ns and accepts and closes
// every connection: enough for TCP health checks.
func backends(t *testing.T, ns *lab.Netns, addrs ...string) {
	t.Helper()
	for _, addr := range addrs {
		var l net.Listener
		if err := ns.Do(func() error {
			var err error
			l, err = net.Listen("tcp", addr)
			return err
		}); err != nil {
			t.Fatalf("backend %s: %v", addr, err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
}

// TestRolloutBackupFirstAndRollback runs two agents on the lab pair in
// network namespaces, following one repository:
//   - a commit changing both nodes is applied by the backup (gw2) first; the
//     master (gw1) waits for gw2's status branch to show it applied and
//     healthy, then applies it: the order shows in the status commits;
//   - a commit whose servers all fail their health checks is applied by
//     gw2, fails its bake, is rolled back by itself and pinned; gw1, whose
//     peer never reports it healthy, holds it past the site's timeout and
//     never applies it;
//   - a newer commit clears the pin and reaches both.
func TestRolloutBackupFirstAndRollback(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "git")
	gitremote.RequireGit(t)

	front, back := lab.NewSwitch(t), lab.NewSwitch(t)
	gw1, gw2, be := lab.NewNetns(t, "ro1"), lab.NewNetns(t, "ro2"), lab.NewNetns(t, "rob")
	front.Attach(t, gw1, "eth0", "203.0.113.11/24")
	front.Attach(t, gw2, "eth0", "203.0.113.12/24")
	back.Attach(t, gw1, "eth1", "198.51.100.1/24")
	back.Attach(t, gw2, "eth1", "198.51.100.2/24")
	back.Attach(t, be, "eth0", "198.51.100.11/24", "198.51.100.12/24", "198.51.100.13/24")
	backends(t, be, "198.51.100.11:8080", "198.51.100.12:8080", "198.51.100.13:8080")

	const (
		two   = `s1: address: "198.51.100.11:8080", s2: address: "198.51.100.12:8080"`
		three = two + `, s3: address: "198.51.100.13:8080"`
		tcp   = `kind: "tcp"`
		// The backends accept and close: an HTTP check fails on every one.
		http = `kind: "http", path: "/health"`
	)
	repo := gitremote.NewBare(t)
	c1 := repo.Commit(t, "main", rolloutSite(two, tcp), "web: two servers")
	a1 := startRolloutAgent(t, gw1, "gw1", repo.Dir)
	a2 := startRolloutAgent(t, gw2, "gw2", repo.Dir)
	settled := func(c string) func(drift.Status) bool {
		return func(st drift.Status) bool { return reconcile.Settled(st, c) }
	}
	firstStatus(t, repo, a1, 90*time.Second, "c1 applied on gw1", settled(c1))
	firstStatus(t, repo, a2, 90*time.Second, "c1 applied on gw2", settled(c1))

	// A commit changing both nodes: backup first.
	c2 := repo.Commit(t, "main", rolloutSite(three, tcp), "web: a third server")
	on2 := firstStatus(t, repo, a2, 90*time.Second, "c2 applied on gw2", settled(c2))
	on1 := firstStatus(t, repo, a1, 90*time.Second, "c2 applied on gw1", settled(c2))
	t2, t1 := commitTime(t, repo, on2.hash), commitTime(t, repo, on1.hash)
	if t1 < t2 {
		t.Errorf("gw1 reported c2 applied at %d, before gw2 did at %d", t1, t2)
	}
	l1 := a1.logs.String()
	wait := strings.Index(l1, "waiting for peers before applying")
	done := strings.Index(l1, "peers applied the commit; applying")
	if wait < 0 || done < wait || !strings.Contains(l1[wait:], "gw2") {
		t.Errorf("gw1 did not wait for gw2 before applying c2 (log: wait at %d, done at %d)", wait, done)
	}
	if strings.Contains(a2.logs.String(), "waiting for peers") {
		t.Errorf("gw2, the backup, waited for a peer")
	}
	// gw1's own branch says it waited: a held commit for c2 before the
	// one that shows c2 applied.
	heldAt, appliedAt := -1, -1
	for i, e := range statusHistory(t, repo, "gw1") {
		if heldAt < 0 && e.st.Desired.Commit == c2 && e.st.LastPass.Outcome == drift.Held && strings.Contains(e.st.LastPass.Error, "waits for gw2") {
			heldAt = i
		}
		if appliedAt < 0 && reconcile.Settled(e.st, c2) {
			appliedAt = i
		}
	}
	if heldAt < 0 || appliedAt < heldAt {
		t.Errorf("gw1's status branch: held for c2 at %d, applied at %d", heldAt, appliedAt)
	}
	t.Logf("c2: gw2 reported at %d, gw1 at %d (gw1 waited, then baked 5 s)", t2, t1)

	// A commit whose servers all fail their checks: gw2 applies it, the bake fails, the
	// node goes back to c2 and pins c3; gw1 holds it.
	c3 := repo.Commit(t, "main", rolloutSite(three, http), "web: an HTTP check the servers fail")
	c3At := time.Now()
	rb := firstStatus(t, repo, a2, 90*time.Second, "c3 rolled back on gw2", func(st drift.Status) bool {
		return st.Desired.Commit == c3 && st.LastPass.Outcome == string(reconcile.RolledBack)
	})
	if rb.st.Applied != c2 || !strings.Contains(rb.st.LastPass.Error, "service web: 0 healthy servers") {
		t.Errorf("gw2 after the rollback: applied %.7s, error %q", rb.st.Applied, rb.st.LastPass.Error)
	}
	pin, err := reconcile.LoadPin(a2.state)
	if err != nil || pin == nil || pin.Commit != c3 {
		t.Fatalf("gw2 pin = %+v, %v; want %s", pin, err, c3)
	}
	// gw1 waits for gw2, which rolls c3 back: gw1 holds it for good, though
	// the site says proceed after the timeout (wait past it).
	firstStatus(t, repo, a1, 90*time.Second, "c3 held on gw1: gw2 rolled it back", func(st drift.Status) bool {
		return st.Desired.Commit == c3 && st.LastPass.Outcome == drift.Held && strings.Contains(st.LastPass.Error, "gw2 rolled it back")
	})
	// Past the 25 s peer timeout, gw1 still holds c3.
	for time.Since(c3At) < 30*time.Second {
		a1.alive(t, "the peer timeout passed")
		time.Sleep(200 * time.Millisecond)
	}
	hist := statusHistory(t, repo, "gw1")
	last := hist[len(hist)-1]
	if last.st.Desired.Commit != c3 || last.st.LastPass.Outcome != drift.Held || last.st.Applied != c2 {
		t.Errorf("gw1 past the peer timeout: %s (applied %.7s)", last.subject, last.st.Applied)
	}
	for _, e := range statusHistory(t, repo, "gw1") {
		if e.st.Applied == c3 {
			t.Errorf("gw1 applied the bad commit: %s", e.subject)
		}
	}
	if p, err := reconcile.LoadPin(a1.state); p != nil || (err != nil && !errors.Is(err, os.ErrNotExist)) {
		t.Errorf("gw1 pinned %+v (%v): it never applied c3", p, err)
	}
	if !strings.Contains(a2.logs.String(), "health gate failed; rolling back") {
		t.Errorf("gw2 log has no rollback")
	}

	// A newer commit clears the pin and reaches both, backup first.
	c4 := repo.Commit(t, "main", rolloutSite(two, tcp), "web: back to two servers")
	firstStatus(t, repo, a2, 90*time.Second, "c4 applied on gw2", settled(c4))
	firstStatus(t, repo, a1, 90*time.Second, "c4 applied on gw1", settled(c4))
	if pin, _ := reconcile.LoadPin(a2.state); pin != nil {
		t.Errorf("gw2 still pins %.7s after a newer commit", pin.Commit)
	}
	for _, node := range []string{"gw2", "gw1"} {
		var lines []string
		for _, e := range statusHistory(t, repo, node) {
			lines = append(lines, fmt.Sprintf("  %d %s", commitTime(t, repo, e.hash), e.subject))
		}
		t.Logf("gitgw/status/%s:\n%s", node, strings.Join(lines, "\n"))
	}
}
