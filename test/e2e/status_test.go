package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/gitremote"
)

// nobody is the unprivileged user the agent runs as when the test is root:
// the lab site's tuning must not touch the host, so the agent may observe
// but every write it tries is refused by the kernel.
const nobody = 65534

// statusLab is a site repository and a state directory an unprivileged
// agent can use.
type statusLab struct {
	base  string
	bin   string
	repo  *gitremote.Repo
	state string
	env   []string
}

func newStatusLab(t *testing.T) *statusLab {
	t.Helper()
	gitremote.RequireGit(t)
	base, err := os.MkdirTemp("", "gitgw-e2e-status-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	bare := filepath.Join(base, "site.git")
	// Shared: the agent (nobody) pushes its status branch into a
	// repository the test (root) owns and pushes to as well.
	if _, err := gitremote.Git("", "init", "-q", "--bare", "--shared=0666", "-b", "main", bare); err != nil {
		t.Fatal(err)
	}
	l := &statusLab{base: base, bin: filepath.Join(base, "gitgw"), repo: &gitremote.Repo{Dir: bare}, state: filepath.Join(base, "state")}
	// A copy of the binary where nobody may run it.
	b, err := os.ReadFile(gitgwBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(base, "home")
	for _, d := range []string{l.state, home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	gitconfig := filepath.Join(home, ".gitconfig")
	if err := os.WriteFile(gitconfig, []byte("[safe]\n\tdirectory = *\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		for _, d := range []string{l.state, home} {
			if err := os.Chown(d, nobody, nobody); err != nil {
				t.Fatal(err)
			}
		}
	}
	l.env = append(os.Environ(), "HOME="+home, "GIT_CONFIG_GLOBAL="+gitconfig, "GIT_CONFIG_NOSYSTEM=1")
	return l
}

// labFiles is the lab site as a commit's files, with edit applied to site.cue.
func labFiles(t *testing.T, edit func(string) string) map[string]string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "examples", "lab")
	site, err := os.ReadFile(filepath.Join(dir, "site.cue"))
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(filepath.Join(dir, "cue.mod", "module.cue"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(site)
	if edit != nil {
		s = edit(s)
	}
	return map[string]string{"site.cue": s, "cue.mod/module.cue": string(mod)}
}

// agentProc is a running `gitgw agent`.
type agentProc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	errb bytes.Buffer
	done chan struct{}
}

func (a *agentProc) stderr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.errb.String()
}

type lockedWriter struct{ a *agentProc }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.a.mu.Lock()
	defer w.a.mu.Unlock()
	return w.a.errb.Write(p)
}

func (l *statusLab) startAgent(t *testing.T, args ...string) *agentProc {
	t.Helper()
	a := &agentProc{done: make(chan struct{})}
	a.cmd = exec.Command(l.bin, append([]string{"agent", "--repo", l.repo.Dir, "--node", "gw1", "--state-dir", l.state,
		"--interval", "1s", "--resync", "1h", "--status-coalesce", "0", "--debug",
		// No control socket or status page: several agents share this host.
		"--socket", "", "--listen", "",
		// Never the host's systemd or /etc/systemd/system.
		"--unit-dir", filepath.Join(l.state, "units"), "--systemd-socket", filepath.Join(l.state, "no-systemd")}, args...)...)
	a.cmd.Env = l.env
	a.cmd.Stderr = lockedWriter{a}
	if os.Geteuid() == 0 {
		a.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, NoSetGroups: true}}
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	go func() { _ = a.cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.done:
		case <-time.After(30 * time.Second):
			_ = a.cmd.Process.Kill()
			<-a.done
		}
		if t.Failed() {
			t.Logf("agent stderr:\n%s", a.stderr())
		}
	})
	return a
}

// waitSubject waits for a commit on the status branch whose subject
// matches re, and returns it.
func (l *statusLab) waitSubject(t *testing.T, a *agentProc, re *regexp.Regexp) gitremote.LogEntry {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		for _, e := range l.repo.Log(t, "gitgw/status/gw1") {
			if re.MatchString(e.Subject) {
				return e
			}
		}
		select {
		case <-a.done:
			t.Fatalf("the agent exited before a status commit matching %s", re)
		default:
		}
		if time.Now().After(deadline) {
			var subjects []string
			for _, e := range l.repo.Log(t, "gitgw/status/gw1") {
				subjects = append(subjects, e.Subject)
			}
			t.Fatalf("no status commit matching %s; status branch has:\n%s", re, strings.Join(subjects, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAgentReportsStatus runs the real agent on the lab site, then pushes a
// broken revision: both passes are reported as commits on the node's
// status branch, the error with its position in site.cue; the fleet view
// and a plan against the reported state read them back.
func TestAgentReportsStatus(t *testing.T) {
	l := newStatusLab(t)
	good := l.repo.Commit(t, "main", labFiles(t, nil), "lab site")
	a := l.startAgent(t)

	first := l.waitSubject(t, a, regexp.MustCompile(`^(apply|error|status)\(gw1\): `+good[:7]))
	if !strings.Contains(first.Message, "Gitgw-Node: gw1") || !strings.Contains(first.Message, "Gitgw-Desired: "+good) {
		t.Errorf("first status commit lacks trailers:\n%s", first.Message)
	}
	var st struct {
		SchemaVersion int    `json:"schema_version"`
		Node          string `json:"node"`
		Desired       struct{ Commit string }
		LastPass      struct {
			Outcome string
			Errors  []struct {
				File      string
				Line, Col int
				Msg       string
			}
		} `json:"last_pass"`
		Resources []struct{ Driver, Kind, ID, State string }
	}
	if err := json.Unmarshal([]byte(l.repo.Show(t, first.Hash, "status.json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.SchemaVersion != 1 || st.Node != "gw1" || st.Desired.Commit != good || len(st.Resources) == 0 {
		t.Errorf("status.json of the first pass: %+v", st)
	}

	broken := l.repo.Commit(t, "main", labFiles(t, func(s string) string {
		return strings.Replace(s, "vrid:            51", "vrid:            300", 1)
	}), "vrid 300")
	rej := l.waitSubject(t, a, regexp.MustCompile(`^error\(gw1\): `+broken[:7]+` rejected: site\.cue:\d+:\d+: .*vrid`))
	if err := json.Unmarshal([]byte(l.repo.Show(t, rej.Hash, "status.json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.LastPass.Outcome != "rejected" || len(st.LastPass.Errors) == 0 || st.LastPass.Errors[0].File != "site.cue" || st.Desired.Commit != broken {
		t.Errorf("status.json of the rejected pass: %+v", st.LastPass)
	}
	if md := l.repo.Show(t, rej.Hash, "STATUS.md"); !strings.Contains(md, "rejected") || !strings.Contains(md, "site.cue:") {
		t.Errorf("STATUS.md:\n%s", md)
	}

	for _, e := range l.repo.Log(t, "gitgw/status/gw1") {
		t.Logf("status commit: %s", e.Subject)
	}
	// Two more passes over the same broken head (SIGHUP forces a pass):
	// nothing changed, so no new commit.
	n := len(l.repo.Log(t, "gitgw/status/gw1"))
	for range 2 {
		passes := strings.Count(a.stderr(), "pass done")
		if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(time.Minute)
		for strings.Count(a.stderr(), "pass done") == passes {
			if time.Now().After(deadline) {
				t.Fatal("no pass after SIGHUP")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if m := len(l.repo.Log(t, "gitgw/status/gw1")); m != n {
		t.Errorf("%d status commits after polls of an unchanged head, want %d", m, n)
	}

	// The fleet view reads it back.
	out, errOut, code := runGitgw(t, "fleet", "--repo", l.repo.Dir, "--json")
	if code != 0 {
		t.Fatalf("fleet: exit %d\n%s", code, errOut)
	}
	var fleet struct {
		Head  string
		Nodes []struct{ Node, Sync string }
	}
	if err := json.Unmarshal([]byte(out), &fleet); err != nil {
		t.Fatalf("fleet json: %v\n%s", err, out)
	}
	if fleet.Head != broken || len(fleet.Nodes) != 1 || fleet.Nodes[0].Node != "gw1" || fleet.Nodes[0].Sync != "rejected" {
		t.Errorf("fleet: %s", out)
	}
	out, _, code = runGitgw(t, "fleet", "--repo", l.repo.Dir)
	if code != 0 || !strings.Contains(out, "gw1") || !strings.Contains(out, "REJECTED: gw1") {
		t.Errorf("fleet text (exit %d):\n%s", code, out)
	}

	// CI on the site: plan a fixed site against what gw1 reported.
	fixed := t.TempDir()
	for name, content := range labFiles(t, func(s string) string {
		return strings.Replace(s, `"net.ipv4.ip_forward":       1`, `"net.ipv4.ip_forward":       0`, 1)
	}) {
		p := filepath.Join(fixed, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut, code = runGitgw(t, "plan", "--site", fixed, "--node", "gw1", "--observed", "status", "--status-repo", l.repo.Dir, "--json")
	if code != 0 {
		t.Fatalf("plan --observed status: exit %d\n%s%s", code, out, errOut)
	}
	var doc struct {
		Changes []struct{ Driver, Kind, ID, Action string }
		Notes   []string
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("plan json: %v\n%s", err, out)
	}
	if len(doc.Changes) == 0 || len(doc.Notes) == 0 || !strings.Contains(doc.Notes[0], "planned against the status gw1 reported") {
		t.Errorf("observed plan:\n%s", out)
	}
}

// TestAgentNoStatus: --no-status writes nothing.
func TestAgentNoStatus(t *testing.T) {
	l := newStatusLab(t)
	l.repo.Commit(t, "main", labFiles(t, func(s string) string {
		return strings.Replace(s, "vrid:            51", "vrid:            300", 1)
	}), "vrid 300")
	a := l.startAgent(t, "--no-status")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for !strings.Contains(a.stderr(), "pass done") {
		if ctx.Err() != nil {
			t.Fatal("the agent made no pass")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if b := l.repo.Branches(t, "gitgw/"); len(b) != 0 {
		t.Errorf("branches written with --no-status: %v", b)
	}
}

// fleetStatus is a minimal status.json for a fixture node.
func fleetStatus(node, applied string, roles map[string]string) string {
	var inst []string
	vrids := map[string]int{"VI_1": 51, "VI_2": 52}
	for _, name := range []string{"VI_1", "VI_2"} {
		if r, ok := roles[name]; ok {
			inst = append(inst, fmt.Sprintf(`{"name":%q,"vrid":%d,"interface":"eth0","state":%q,"priority":100}`, name, vrids[name], r))
		}
	}
	return fmt.Sprintf(`{"schema_version":1,"node":%q,"agent_version":"test","desired":{"commit":%q},"applied_commit":%q,`+
		`"last_pass":{"outcome":"converged"},"counts":{"in-sync":2},"resources":[],"drift":[],"drift_corrected":0,`+
		`"sections":{"vrrp":{"instances":[%s]},"proxy":{"services":[{"name":"web","servers":[{"name":"s1","health":"up"},{"name":"s2","health":"down"}]}]}}}`+"\n",
		node, applied, applied, strings.Join(inst, ","))
}

// fastImport writes one status branch per node into the bare repository
// with git fast-import (quick even for a thousand branches).
func fastImport(t testing.TB, bare string, statuses map[string]string) {
	t.Helper()
	var b strings.Builder
	mark := 0
	for node, js := range statuses {
		mark++
		fmt.Fprintf(&b, "blob\nmark :%d\ndata %d\n%s\n", mark, len(js), js)
		fmt.Fprintf(&b, "commit refs/heads/gitgw/status/%s\ncommitter gitgw <gitgw@%s> %d +0000\n", node, node, time.Now().Add(-time.Minute).Unix())
		msg := fmt.Sprintf("status(%s): fixture\n\nGitgw-Node: %s\n", node, node)
		fmt.Fprintf(&b, "data %d\n%s\nM 100644 :%d status.json\n\n", len(msg), msg, mark)
	}
	cmd := exec.Command("git", "-C", bare, "fast-import", "--quiet")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fast-import: %v\n%s", err, out)
	}
}

// TestFleetSplitBrain reads a fixture repository where two nodes both
// claim MASTER of VRID 51 and nobody is MASTER of VRID 52.
func TestFleetSplitBrain(t *testing.T) {
	gitremote.RequireGit(t)
	r := gitremote.NewBare(t)
	head := r.Commit(t, "main", labFiles(t, nil), "lab site")
	fastImport(t, r.Dir, map[string]string{
		"gw1": fleetStatus("gw1", head, map[string]string{"VI_1": "MASTER", "VI_2": "BACKUP"}),
		"gw2": fleetStatus("gw2", head, map[string]string{"VI_1": "MASTER", "VI_2": "BACKUP"}),
		"gw3": fleetStatus("gw3", "0123456789abcdef0123456789abcdef01234567", map[string]string{"VI_1": "BACKUP"}),
	})
	out, errOut, code := runGitgw(t, "fleet", "--repo", r.Dir)
	if code != 0 {
		t.Fatalf("fleet: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{"SPLIT BRAIN", "NO MASTER", "SPLIT-BRAIN: VRID 51 (VI_1): masters: gw1, gw2", "gw3   0123456", "behind", "1 down, 1 up"} {
		if !strings.Contains(out, want) {
			t.Errorf("fleet output lacks %q:\n%s", want, out)
		}
	}
	out, _, code = runGitgw(t, "fleet", "--site", r.Dir, "--json")
	var fl struct {
		Head string
		VRRP []struct {
			VRID    int
			Masters []string
			Flag    string
		}
		Nodes []struct{ Node, Sync string }
	}
	if err := json.Unmarshal([]byte(out), &fl); err != nil || code != 0 {
		t.Fatalf("fleet --json: exit %d, %v\n%s", code, err, out)
	}
	if fl.Head != head || len(fl.Nodes) != 3 || fl.Nodes[0].Sync != "current" || fl.Nodes[2].Sync != "behind" ||
		len(fl.VRRP) != 2 || fl.VRRP[0].Flag != "split-brain" || fl.VRRP[1].Flag != "no-master" {
		t.Errorf("fleet json:\n%s", out)
	}
}

// BenchmarkFleet1000 times `gitgw fleet` (the whole command) over a
// repository with 1,000 nodes' status branches. Target: ≤ 2 s.
func BenchmarkFleet1000(b *testing.B) {
	gitremote.RequireGit(b)
	r := gitremote.NewBare(b)
	head := r.Commit(b, "main", map[string]string{"README": "fleet\n"}, "site")
	statuses := map[string]string{}
	for i := range 1000 {
		node := fmt.Sprintf("gw%04d", i)
		role := "BACKUP"
		if i%2 == 0 {
			role = "MASTER"
		}
		statuses[node] = fleetStatus(node, head, map[string]string{"VI_1": role})
	}
	fastImport(b, r.Dir, statuses)
	var ds []time.Duration
	for range b.N {
		for range 5 {
			start := time.Now()
			out, errOut, code := runGitgw(b, "fleet", "--repo", r.Dir, "--json")
			ds = append(ds, time.Since(start))
			if code != 0 || !strings.Contains(out, "gw0999") {
				b.Fatalf("fleet: exit %d\n%s", code, errOut)
			}
		}
	}
	slices.Sort(ds)
	med := ds[len(ds)/2]
	fmt.Printf("\nfleet over 1000 status branches (gitgw fleet --json, whole process)\n")
	fmt.Printf("  runs %d  median %v  min %v  max %v  target ≤ 2s\n", len(ds), med.Round(time.Millisecond), ds[0].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
	b.ReportMetric(med.Seconds(), "s/fleet-1000")
}

// TestPlanObservedStatus: CI on the site repository plans the next
// revision against what gw1 last reported (the commit it applied, plus
// the drift it left in place), without reaching the node.
func TestPlanObservedStatus(t *testing.T) {
	gitremote.RequireGit(t)
	r := gitremote.NewBare(t)
	applied := r.Commit(t, "main", labFiles(t, nil), "lab site")
	next := r.Commit(t, "main", labFiles(t, func(s string) string {
		return strings.Replace(s, `s2: address: "198.51.100.12:8080"`, `s2: address: "198.51.100.22:8080"`, 1)
	}), "move s2")
	st := fmt.Sprintf(`{"schema_version":1,"node":"gw1","agent_version":"test","desired":{"commit":%q},"applied_commit":%q,`+
		`"last_pass":{"outcome":"converged"},"counts":{"drift":1},"resources":[`+
		`{"driver":"tuning","kind":"sysctl","id":"net.ipv4.ip_forward","state":"drift","observed":"0","desired":"1"}],`+
		`"drift":[{"driver":"tuning","kind":"sysctl","id":"net.ipv4.ip_forward","mode":"report","observed":"0","desired":"1"}],"drift_corrected":0}`+"\n",
		applied, applied)
	fastImport(t, r.Dir, map[string]string{"gw1": st})

	out, errOut, code := runGitgw(t, "plan", "--repo", r.Dir, "--node", "gw1", "--observed", "status", "--json", "--detailed-exitcode")
	if code != 2 {
		t.Fatalf("plan --observed status: exit %d, want 2 (changes)\n%s%s", code, out, errOut)
	}
	var doc struct {
		Commit  string
		Changes []struct {
			Driver, Kind, ID, Action string
			Before, After            any
		}
		Notes []string
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("plan json: %v\n%s", err, out)
	}
	actions := map[string]string{}
	for _, c := range doc.Changes {
		actions[c.Kind+" "+c.ID] = c.Action
	}
	want := map[string]string{
		"proxy_server web/s2":              "update", // changed in the site
		"proxy_server web/s1":              "no-op",
		"sysctl net.ipv4.ip_forward":       "update", // the drift gw1 left in place
		"sysctl net.ipv4.ip_nonlocal_bind": "no-op",
		"vrrp_instance VI_1":               "no-op",
	}
	for k, a := range want {
		if actions[k] != a {
			t.Errorf("%s: %q, want %q", k, actions[k], a)
		}
	}
	if doc.Commit != next || len(doc.Notes) == 0 || !strings.Contains(doc.Notes[0], "planned against the status gw1 reported") {
		t.Errorf("plan header: commit %s, notes %q", doc.Commit, doc.Notes)
	}
	// A node that never reported is an error, not an empty plan.
	_, errOut, code = runGitgw(t, "plan", "--repo", r.Dir, "--node", "gw2", "--observed", "status")
	if code == 0 || !strings.Contains(errOut, "gitgw/status/gw2") {
		t.Errorf("plan for a node without status: exit %d\n%s", code, errOut)
	}
}
