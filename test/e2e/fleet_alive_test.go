package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/gitremote"
)

// TestAgentBoundedHistoryAndAlive runs the real agent against a real Git
// server process (git http-backend over https, with a token): its status
// branch stays bounded (older commits folded into one), its alive ref is
// refreshed without adding history, `gitgw fleet` and `plan --observed
// status` read the folded branch, and fleet flags the node STALE once the
// agent stops.
func TestAgentBoundedHistoryAndAlive(t *testing.T) {
	l := newStatusLab(t)
	srv := gitremote.StartHTTPS(t, l.base, "tok-e2e")
	// The agent may run as nobody: its token and CA in the lab's base.
	token := filepath.Join(l.base, "token")
	ca := filepath.Join(l.base, "ca.pem")
	caPEM, err := os.ReadFile(srv.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	for p, b := range map[string][]byte{token: []byte("tok-e2e\n"), ca: caPEM} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	url := srv.RepoURL(t, l.repo.Dir)
	// `git init --shared` refuses non-fast-forward pushes to every ref; the
	// fold needs them on the node's own status branch (what a Git host's
	// branch protection must allow for gitgw/status/*).
	if _, err := gitremote.Git(l.repo.Dir, "config", "receive.denyNonFastForwards", "false"); err != nil {
		t.Fatal(err)
	}
	creds := []string{"--token-file", token, "--ca-file", ca}

	head := l.repo.Commit(t, "main", labFiles(t, nil), "lab site")
	// A 1 s alive interval promises a refresh within 3 s: a fleet read
	// (a process start and an https fetch) on a loaded CI box fits in it.
	a := l.startAgent(t, append([]string{"--repo", url, "--alive-interval", "1s", "--status-history-commits", "2"}, creds...)...)
	l.waitSubject(t, a, regexp.MustCompile(`\(gw1\): `+head[:7]))
	// Each site commit is a status commit: push past the bound (2, folded
	// at 2+1+1 commits).
	for i := range 4 {
		head = l.repo.Commit(t, "main", labFiles(t, func(s string) string { return s + "\n// revision " + string(rune('a'+i)) + "\n" }), "revision")
		l.waitSubject(t, a, regexp.MustCompile(`\(gw1\): `+head[:7]))
	}
	deadline := time.Now().Add(time.Minute)
	for {
		log := l.repo.Log(t, "gitgw/status/gw1")
		if len(log) > 0 && strings.HasPrefix(log[0].Subject, "fold(gw1): ") && len(log) <= 2+1+1 {
			break
		}
		if time.Now().After(deadline) {
			var s []string
			for _, e := range log {
				s = append(s, e.Subject)
			}
			t.Fatalf("status branch not folded to its bound:\n%s", strings.Join(s, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := gitremote.Git(l.repo.Dir, "rev-parse", "-q", "--verify", "refs/gitgw/alive/gw1"); err != nil {
		t.Fatalf("no alive ref: %v", err)
	}

	type fleetDoc struct {
		Nodes []struct {
			Node, Applied string
			Alive         *time.Time
			Stale         bool
		}
		Alerts []struct{ Kind, Subject string }
	}
	// The reads share a cache, as an operator's runs do (the default
	// one lives in the home directory).
	fleetArgs := append([]string{"fleet", "--repo", url, "--cache-dir", filepath.Join(t.TempDir(), "fleet.git")}, creds...)
	readFleet := func() fleetDoc {
		t.Helper()
		out, errOut, code := runGitgw(t, slices.Concat(fleetArgs, []string{"--json"})...)
		if code != 0 {
			t.Fatalf("fleet: exit %d\n%s", code, errOut)
		}
		var doc fleetDoc
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("fleet json: %v\n%s", err, out)
		}
		if len(doc.Nodes) != 1 || doc.Nodes[0].Node != "gw1" || doc.Nodes[0].Alive == nil {
			t.Fatalf("fleet: %s", out)
		}
		return doc
	}
	// A running agent refreshes its alive ref and is not stale. One read
	// can come just past a slow refresh on a loaded box: the condition is
	// polled, and only counts with an alive time newer than the first one
	// seen (the ref is refreshed, not merely written once).
	first := *readFleet().Nodes[0].Alive
	deadline = time.Now().Add(30 * time.Second)
	for {
		doc := readFleet()
		if n := doc.Nodes[0]; !n.Stale && n.Alive.After(first) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a running agent stays stale, or does not refresh its alive ref (first %s): %+v", first, doc)
		}
		time.Sleep(200 * time.Millisecond)
	}
	site := t.TempDir()
	for name, content := range labFiles(t, nil) {
		p := filepath.Join(site, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut, code := runGitgw(t, "plan", "--site", site, "--node", "gw1", "--observed", "status", "--status-repo", l.repo.Dir, "--json")
	var plan struct{ Notes []string }
	if code != 0 || json.Unmarshal([]byte(out), &plan) != nil || len(plan.Notes) == 0 || !strings.Contains(plan.Notes[0], "planned against the status gw1 reported") {
		t.Fatalf("plan --observed status on a folded branch: exit %d\n%s%s", code, out, errOut)
	}

	// The agent stops: fleet says so once its promise (3 × 1 s) is
	// broken.
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-a.done
	deadline = time.Now().Add(time.Minute)
	for !readFleet().Nodes[0].Stale {
		if time.Now().After(deadline) {
			t.Fatal("a stopped agent is not stale after a minute")
		}
		time.Sleep(200 * time.Millisecond)
	}
	text, _, _ := runGitgw(t, fleetArgs...)
	if !strings.Contains(text, "STALE") || !strings.Contains(text, "STALE: gw1: no liveness refresh since") {
		t.Fatalf("fleet text does not flag the stopped node:\n%s", text)
	}
}

// BenchmarkFleet10000 times `gitgw fleet --json` (the whole command) over
// 10,000 nodes' status branches, each with its alive ref: read in place
// from the bare repository, and over https (git http-backend) with its
// cache cold (a first run), warm (the next runs: every alive ref moved
// between runs, as a fleet's do a minute apart) and without a cache
// (--no-cache). Goal: ≤ 2 s.
func BenchmarkFleet10000(b *testing.B) {
	const nodes = 10000
	gitremote.RequireGit(b)
	r := gitremote.NewBare(b)
	head := r.Commit(b, "main", map[string]string{"README": "fleet\n"}, "site")
	statuses := map[string]string{}
	alive := map[string]map[string]string{}
	for i := range nodes {
		node := fmt.Sprintf("gw%05d", i)
		role := "BACKUP"
		if i%2 == 0 {
			role = "MASTER"
		}
		statuses[node] = fleetStatus(node, head, map[string]string{"VI_1": role})
		alive["refs/gitgw/alive/"+node] = map[string]string{}
	}
	fastImport(b, r.Dir, statuses)
	r.ImportRefs(b, alive, "alive(node)\n\nGitgw-Alive-Bound: 3m0s\nGitgw-Agent-Version: bench\n")
	srv := gitremote.StartHTTPS(b, filepath.Dir(r.Dir), "tok")
	token := filepath.Join(b.TempDir(), "token")
	if err := os.WriteFile(token, []byte("tok\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	url := srv.RepoURL(b, r.Dir)
	warm := filepath.Join(b.TempDir(), "warm.git")
	moves := 0
	type mode struct {
		name   string
		metric string
		before func() // untimed, before each run
		args   func() []string
	}
	https := func(extra ...string) []string {
		return append([]string{"fleet", "--repo", url, "--json", "--token-file", token, "--ca-file", srv.CAFile}, extra...)
	}
	modes := []mode{
		{"local, in place", "s/fleet-10000", nil, func() []string { return []string{"fleet", "--repo", r.Dir, "--json"} }},
		{"https, cold cache (first run)", "s/fleet-10000-https-cold", nil, func() []string { return https("--cache-dir", filepath.Join(b.TempDir(), "cold.git")) }},
		{"https, warm cache (all alive refs moved)", "s/fleet-10000-https-warm", func() {
			// Every node refreshed its alive ref since the last run (an
			// agent does every minute).
			moves++
			r.ImportRefs(b, alive, fmt.Sprintf("alive(node)\n\nGitgw-Alive-Bound: 3m0s\nGitgw-Agent-Version: bench %d\n", moves))
		}, func() []string { return https("--cache-dir", warm) }},
		{"https, --no-cache", "s/fleet-10000-https-nocache", nil, func() []string { return https("--no-cache") }},
	}
	// The warm cache's first fill is not timed.
	if out, errOut, code := runGitgw(b, https("--cache-dir", warm)...); code != 0 || !strings.Contains(out, "gw09999") {
		b.Fatalf("fleet: exit %d\n%s", code, errOut)
	}
	fmt.Printf("\nfleet over %d status branches and alive refs (gitgw fleet --json, whole process; shared noisy box), target ≤ 2s\n", nodes)
	for _, m := range modes {
		var ds []time.Duration
		for range b.N {
			for range 5 {
				if m.before != nil {
					m.before()
				}
				args := m.args()
				start := time.Now()
				out, errOut, code := runGitgw(b, args...)
				ds = append(ds, time.Since(start))
				if code != 0 || !strings.Contains(out, "gw09999") || !strings.Contains(out, `"stale": true`) {
					b.Fatalf("fleet %s: exit %d\n%s", m.name, code, errOut)
				}
			}
		}
		slices.Sort(ds)
		med := ds[len(ds)/2]
		fmt.Printf("  %-36s runs %d  median %v  min %v  max %v\n", m.name, len(ds), med.Round(time.Millisecond), ds[0].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
		b.ReportMetric(med.Seconds(), m.metric)
	}
}
