package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitgw/gitgw/reconcile/control"
	"github.com/gitgw/gitgw/test/gitremote"
	"github.com/gitgw/gitgw/test/lab"
	"github.com/gitgw/gitgw/test/systemd"
)

// pairRestartSite is the lab pair: VI_1 (advert interval 1 s, gw1 at 150,
// gw2 at 100) holds 203.0.113.100, where both proxies serve two echo
// servers on the segment.
func pairRestartSite() map[string]string {
	return map[string]string{
		"cue.mod/module.cue": "module: \"example.net/pair-restart-e2e@v0\"\nlanguage: version: \"v0.17.0\"\n",
		"site.cue": `package site

site: {
	name: "pair-restart-e2e"
	rollout: pairs: false
	bake: window: "0s"
}

nodes: {
	gw1: interfaces: eth0: addresses: ["203.0.113.11/24"]
	gw2: interfaces: eth0: addresses: ["203.0.113.12/24"]
}

vrrp: VI_1: {
	interface:       "eth0"
	vrid:            51
	version:         3
	advert_interval: "1s"
	nodes: {gw1: priority: 150, gw2: priority: 100}
	vips: ["203.0.113.100/24"]
}

services: web: {
	binds: ["203.0.113.100:80"]
	servers: {
		s1: address: "203.0.113.21:8080"
		s2: address: "203.0.113.22:8080"
	}
	check: {kind: "tcp", interval: "500ms", rise: 1, fall: 2}
}
`,
	}
}

// startPairUnitAgent runs packaging/gitgw.service as node under its own
// namespaced systemd in ns, following a repository of its own with the
// pair's site (as startUnitAgent does for gw1 alone).
func startPairUnitAgent(t *testing.T, ctx context.Context, ns *lab.Netns, node string) *unitAgent {
	t.Helper()
	h := systemd.New(t, systemd.Options{Name: "vr" + node, Netns: ns.Path()})
	repo := &gitremote.Repo{Dir: filepath.Join(h.StateDir, "site.git")}
	if _, err := gitremote.Git("", "init", "-q", "--bare", "-b", "main", repo.Dir); err != nil {
		t.Fatal(err)
	}
	repo.Commit(t, "main", pairRestartSite(), "pair with VI_1 and web on the VIP")
	bin, err := h.Install(gitgwBin, "gitgw")
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(h.StateDir, "var-lib-gitgw")
	siteUnits := filepath.Join(h.StateDir, "site-units")
	for _, d := range []string{state, siteUnits} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	env := filepath.Join(h.StateDir, "agent.env")
	if err := os.WriteFile(env, []byte("GITGW_REPO="+repo.FileURL()+"\n"+
		"GITGW_OPTS=--node "+node+" --interval 1s --resync 1h --status-coalesce 0 --unit-dir "+siteUnits+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile(filepath.Join(repoRoot(t), "packaging", "gitgw.service"))
	if err != nil {
		t.Fatal(err)
	}
	u := strings.NewReplacer(
		"/usr/local/bin/gitgw", bin,
		"/etc/gitgw/agent.env", env,
		"/var/lib/gitgw", state,
		"StateDirectory=gitgw\n", "",
		"StateDirectoryMode=0750\n", "",
		"ReadWritePaths=/etc/systemd/system", "ReadWritePaths="+siteUnits+" "+state+" "+repo.Dir,
	).Replace(string(unit))
	if err := h.WriteUnit(ctx, "gitgw.service", u); err != nil {
		t.Fatal(err)
	}
	if out, err := h.Systemctl(ctx, "start", "gitgw.service"); err != nil {
		st, _ := h.Systemctl(ctx, "status", "--no-pager", "gitgw.service")
		t.Fatalf("start %s: %v\n%s\n%s", node, err, out, st)
	}
	return &unitAgent{h: h, bin: bin}
}

// vi1 is the agent's VI_1 as `gitgw status --json` shows it (zero when
// the agent does not answer).
func (a *unitAgent) vi1(ctx context.Context) (control.VRRPInstance, string) {
	out, err := a.h.Try(ctx, a.bin, "status", "--json")
	if err != nil {
		return control.VRRPInstance{}, err.Error() + out
	}
	var st control.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return control.VRRPInstance{}, out
	}
	for _, in := range st.VRRP {
		if in.Name == "VI_1" {
			b, _ := json.Marshal(in)
			return in, string(b)
		}
	}
	return control.VRRPInstance{}, out
}

// addrWatch records every address deleted in a namespace (`ip monitor`).
type addrWatch struct {
	mu      sync.Mutex
	deleted []string
}

func watchAddrs(t *testing.T, ns *lab.Netns) *addrWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := ns.Command(ctx, "ip", "-o", "monitor", "address")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &addrWatch{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "Deleted") {
				w.mu.Lock()
				w.deleted = append(w.deleted, l)
				w.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done; _ = cmd.Wait() })
	return w
}

func (w *addrWatch) deletions(addr string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, l := range w.deleted {
		if strings.Contains(l, " "+addr+"/") {
			out = append(out, l)
		}
	}
	return out
}

// vrrpPairLab is the pair under systemd, a client and the servers on one
// segment, with gw1 master and gw2 backup.
type vrrpPairLab struct {
	gw1, gw2 *unitAgent
	ns1, ns2 *lab.Netns
	client   *lab.Netns
}

func newVRRPPairLab(t *testing.T, ctx context.Context) *vrrpPairLab {
	t.Helper()
	systemd.Require(t)
	lab.RequireCommand(t, "ip", "git")
	gitremote.RequireGit(t)
	sw := lab.NewSwitch(t)
	l := &vrrpPairLab{ns1: lab.NewNetns(t, "vr-gw1"), ns2: lab.NewNetns(t, "vr-gw2"), client: lab.NewNetns(t, "vr-cl")}
	srv := lab.NewNetns(t, "vr-srv")
	sw.Attach(t, l.ns1, "eth0", "203.0.113.11/24")
	sw.Attach(t, l.ns2, "eth0", "203.0.113.12/24")
	sw.Attach(t, l.client, "eth0", "203.0.113.50/24")
	sw.Attach(t, srv, "eth0", "203.0.113.21/24", "203.0.113.22/24")
	echoServers(t, srv, "203.0.113.21:8080", "203.0.113.22:8080")
	l.gw1 = startPairUnitAgent(t, ctx, l.ns1, "gw1")
	l.gw1.serversUp(t, ctx, 2)
	nicEventually(t, 60*time.Second, "gw1 master of VI_1", func() (bool, string) {
		in, seen := l.gw1.vi1(ctx)
		return in.State == "MASTER", seen
	})
	l.gw2 = startPairUnitAgent(t, ctx, l.ns2, "gw2")
	l.gw2.serversUp(t, ctx, 2)
	nicEventually(t, 60*time.Second, "gw2 backup of VI_1", func() (bool, string) {
		in, seen := l.gw2.vi1(ctx)
		return in.State == "BACKUP", seen
	})
	return l
}

// TestVRRPPairRestartKeepsMastership restarts the master's unit
// (`systemctl restart`, as an upgrade does) three times while streams and
// short connections go through the VIP: the backup never becomes master,
// the VIP is never removed from gw1, and no connection fails. Then
// `systemctl stop` hands over at once (priority 0), as before.
func TestVRRPPairRestartKeepsMastership(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	l := newVRRPPairLab(t, ctx)
	in2, _ := l.gw2.vi1(ctx)
	transitions := in2.Counters.Transitions
	deleted := watchAddrs(t, l.ns1)

	const vip = "203.0.113.100:80"
	var streams []*e2eStream
	for i := range 8 {
		s, err := dialE2EStream(l.client, vip, i)
		if err != nil {
			t.Fatal(err)
		}
		defer s.c.Close()
		streams = append(streams, s)
	}
	short := runShortLoad(l.client, vip, 2)
	echoed := func(min int64) func() (bool, string) {
		return func() (bool, string) {
			var lag []string
			for i, s := range streams {
				if err := s.err(); err != nil {
					return true, "" // reported below
				}
				if s.recv.Load() < min {
					lag = append(lag, fmt.Sprintf("%d:%d/%d", i, s.recv.Load(), s.sent.Load()))
				}
			}
			return len(lag) == 0, strings.Join(lag, " ")
		}
	}
	const rounds, step = 3, 4 << 20
	for round := range rounds {
		for _, s := range streams {
			s.allow(int64(round+1) * step)
		}
		nicEventually(t, 60*time.Second, "streams flowing", echoed(int64(round)*step+1<<20))
		before := l.gw1.mainPID(ctx)
		if out, err := l.gw1.h.Systemctl(ctx, "restart", "gitgw.service"); err != nil {
			t.Fatalf("round %d: restart: %v %s\n%s", round, err, out, nicLastLines(l.gw1.h.Log(), 40))
		}
		if after := l.gw1.mainPID(ctx); after == before || after == "0" {
			t.Fatalf("round %d: main PID %s before the restart, %s after", round, before, after)
		}
		nicEventually(t, 60*time.Second, "gw1 master again", func() (bool, string) {
			in, seen := l.gw1.vi1(ctx)
			return in.State == "MASTER", seen
		})
		nicEventually(t, 60*time.Second, "streams echoed after the restart", echoed(int64(round+1)*step))
	}
	for _, s := range streams {
		s.finish()
	}
	ok, failed, errs := short.stop()
	in2, seen := l.gw2.vi1(ctx)
	if in2.State != "BACKUP" || in2.Counters.Transitions != transitions {
		t.Errorf("gw2 changed state across gw1's restarts (transitions %d before): %s", transitions, seen)
	}
	if d := deleted.deletions("203.0.113.100"); len(d) != 0 {
		t.Errorf("the VIP was removed from gw1 during its restarts: %v", d)
	}
	for i, s := range streams {
		if err := s.err(); err != nil {
			t.Errorf("stream %d: %v", i, err)
		} else if s.recv.Load() != s.sent.Load() || s.sent.Load() != rounds*step {
			t.Errorf("stream %d: sent %d bytes of %d, got %d back", i, s.sent.Load(), rounds*step, s.recv.Load())
		}
	}
	if failed != 0 {
		t.Errorf("%d short connections failed across %d restarts (%d ok): %v", failed, rounds, ok, errs)
	}
	log := l.gw1.h.Log()
	if n := strings.Count(log, `to=MASTER reason="resumed after a restart"`); n != rounds {
		t.Errorf("%d resumes logged, want %d:\n%s", n, rounds, nicLastLines(log, 80))
	}
	t.Logf("%d streams, %d MiB each, and %d short connections (%d failed) across %d restarts of the master; gw2 made %d transitions",
		len(streams), rounds*step>>20, ok, failed, rounds, in2.Counters.Transitions-transitions)

	// A stop is a stop: priority 0, gw2 takes over within its skew time
	// (0.6 s here), far below its Master_Down_Interval (3.6 s).
	// --no-block: the clock measures the takeover, not how long the rest
	// of the agent's stop takes (its last status push may wait up to 10 s).
	stopped := time.Now()
	if out, err := l.gw1.h.Systemctl(ctx, "--no-block", "stop", "gitgw.service"); err != nil {
		t.Fatalf("stop: %v %s", err, out)
	}
	nicEventually(t, 30*time.Second, "gw2 master after gw1's stop", func() (bool, string) {
		in, seen := l.gw2.vi1(ctx)
		return in.State == "MASTER", seen
	})
	if took := time.Since(stopped); took > 3*time.Second {
		t.Errorf("gw2 took %v to take over after systemctl stop (its own timer is 3.6 s: no priority 0?)", took)
	}
	nicEventually(t, 30*time.Second, "gw1's agent stopped", func() (bool, string) {
		out, _ := l.gw1.h.Systemctl(ctx, "is-active", "gitgw.service")
		return strings.TrimSpace(string(out)) == "inactive", string(out)
	})
	if out, _ := l.ns1.Command(ctx, "ip", "-o", "addr", "show", "dev", "eth0").CombinedOutput(); strings.Contains(string(out), "203.0.113.100/") {
		t.Errorf("the VIP stayed on gw1 after systemctl stop:\n%s", out)
	}
}

// TestVRRPPairKillHandsOver kills the master's agent with SIGKILL: its
// guardian releases mastership at once (priority 0), the restart logic
// keeps nothing. The restart systemd then makes (Restart=on-failure) finds
// gw2 master and gw1 takes the role back by preemption.
func TestVRRPPairKillHandsOver(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	l := newVRRPPairLab(t, ctx)
	killed := time.Now()
	if out, err := l.gw1.h.Systemctl(ctx, "kill", "--kill-who=main", "--signal=SIGKILL", "gitgw.service"); err != nil {
		t.Fatalf("kill: %v %s", err, out)
	}
	nicEventually(t, 30*time.Second, "gw2 master after gw1's agent was killed", func() (bool, string) {
		in, seen := l.gw2.vi1(ctx)
		return in.State == "MASTER", seen
	})
	if took := time.Since(killed); took > 3*time.Second {
		t.Errorf("gw2 took %v to take over after SIGKILL (its own timer is 3.6 s: no guardian release?)", took)
	}
	if log := l.gw1.h.Log(); !strings.Contains(log, "released mastership") {
		t.Errorf("no release logged after SIGKILL:\n%s", nicLastLines(log, 60))
	}
}

// TestVRRPPairSlowRestart makes the master's restart outlast the backup's
// Master_Down_Interval (ExecStartPre= sleeps 6 s): gw2 takes over by its
// own timer, the next agent on gw1 finds its restart record stale and
// starts as backup (no resume, no split brain), then preempts with its
// higher priority under the normal rules. One master at the end, holding
// the VIP alone.
func TestVRRPPairSlowRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	l := newVRRPPairLab(t, ctx)
	in2, _ := l.gw2.vi1(ctx)
	transitions := in2.Counters.Transitions
	if err := os.MkdirAll(filepath.Join(l.gw1.h.UnitDir, "gitgw.service.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := l.gw1.h.WriteUnit(ctx, "gitgw.service.d/slow.conf", "[Service]\nExecStartPre=/bin/sleep 6\n"); err != nil {
		t.Fatal(err)
	}
	if out, err := l.gw1.h.Systemctl(ctx, "restart", "gitgw.service"); err != nil {
		t.Fatalf("restart: %v %s\n%s", err, out, nicLastLines(l.gw1.h.Log(), 40))
	}
	nicEventually(t, 60*time.Second, "gw1 master again (preempting) and gw2 backup", func() (bool, string) {
		in1, seen1 := l.gw1.vi1(ctx)
		in2, seen2 := l.gw2.vi1(ctx)
		return in1.State == "MASTER" && in2.State == "BACKUP", seen1 + "\n" + seen2
	})
	in2, seen := l.gw2.vi1(ctx)
	if got := in2.Counters.Transitions - transitions; got != 2 {
		t.Errorf("gw2 made %d transitions across gw1's slow restart, want 2 (to master by its timer, back to backup): %s", got, seen)
	}
	log := l.gw1.h.Log()
	for _, want := range []string{"restart took longer than the peers wait", `from=INIT to=BACKUP`} {
		if !strings.Contains(log, want) {
			t.Errorf("gw1's log lacks %q:\n%s", want, nicLastLines(log, 60))
		}
	}
	if strings.Contains(log, `reason="resumed after a restart"`) {
		t.Errorf("gw1 resumed mastership from a stale record:\n%s", nicLastLines(log, 60))
	}
	if out, _ := l.ns2.Command(ctx, "ip", "-o", "addr", "show", "dev", "eth0").CombinedOutput(); strings.Contains(string(out), "203.0.113.100/") {
		t.Errorf("the VIP is on gw2 too after gw1 preempted:\n%s", out)
	}
}
