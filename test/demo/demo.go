package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gitgw/gitgw/dataplane/vrrp"
	"github.com/gitgw/gitgw/reconcile/control"
	"github.com/gitgw/gitgw/test/gitremote"
	"github.com/gitgw/gitgw/test/lab"
)

//go:embed app.py
var backend []byte

// options configure one run of the demo.
type options struct {
	// Gitgw is the gitgw binary to run on the gateways.
	Gitgw string
	// Root is the module's root: examples/demo and packaging/gitgw.service.
	Root string
	// KeepLogs, when set, is a directory that receives the gateways'
	// console logs (systemd and every service) and the status branches.
	KeepLogs string
	// Out receives the narration; TTY says whether it is a terminal.
	Out io.Writer
	TTY bool
}

// The VIPs of the demo site and who is master of each.
const (
	vipA = "203.0.113.66" // EX_1: gw1 150, gw2 100
	vipB = "203.0.113.67" // EX_2: gw2 150, gw1 100
)

// steps is the number of numbered steps the demo narrates.
const steps = 10

// demo is one run: the lab, the repository and the narration.
type demo struct {
	o    options
	n    *narrator
	lab  *topology
	repo string // the bare site repository (in the shared directory)
	work string // the operator's clone (in the shared directory)
}

// run plays the whole demo and removes everything it created, also when a
// step fails or ctx is cancelled (Ctrl-C).
func run(ctx context.Context, o options) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("the demo needs root: network namespaces and a systemd per gateway (sudo make demo)")
	}
	for _, c := range []string{"ip", "git", "python3", "nsenter", "unshare", "/lib/systemd/systemd", "/lib/systemd/systemd-socket-proxyd", "/usr/bin/dbus-daemon"} {
		if _, err := lab.LookPath(c); err != nil {
			return fmt.Errorf("the demo needs %s: %w", c, err)
		}
	}
	if _, err := os.Stat(o.Gitgw); err != nil {
		return fmt.Errorf("the gitgw binary: %w (make build)", err)
	}
	if o.KeepLogs != "" {
		if err := os.MkdirAll(o.KeepLogs, 0o755); err != nil {
			return err
		}
	}
	d := &demo{o: o, n: newNarrator(o.Out, o.TTY, steps), lab: &topology{}}
	defer func() {
		if err != nil && ctx.Err() == nil {
			d.consoles()
		}
		d.keepStatus()
		cerr := d.lab.close(o.KeepLogs)
		switch {
		case cerr != nil:
			fmt.Fprintf(o.Out, "\ncleanup: %v\n", cerr)
			err = errors.Join(err, cerr)
		default:
			fmt.Fprintf(o.Out, "\ncleaned up: both gateways' systemd and everything they ran, %d network namespaces, %s\n", len(d.lab.netns), d.lab.shared)
		}
		if o.KeepLogs != "" {
			fmt.Fprintf(o.Out, "logs kept in %s\n", o.KeepLogs)
		}
	}()
	for _, step := range []func(context.Context) error{
		d.labUp, d.push, d.validate, d.plan, d.start, d.traffic, d.failover, d.converge, d.drift, d.fleet,
	} {
		if err := step(ctx); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted in step %d (%s): %w", d.n.step, d.n.title, err)
			}
			return fmt.Errorf("step %d (%s): %w", d.n.step, d.n.title, err)
		}
	}
	d.summary()
	return nil
}

func (d *demo) gw(name string) *gateway {
	for _, g := range d.lab.gws {
		if g.name == name {
			return g
		}
	}
	panic("no gateway " + name)
}

// both runs fn for each gateway at once.
func (d *demo) both(fn func(g *gateway) error) error {
	errs := make([]error, len(d.lab.gws))
	var wg sync.WaitGroup
	for i, g := range d.lab.gws {
		wg.Go(func() { errs[i] = fn(g) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (d *demo) labUp(ctx context.Context) error {
	d.n.Step("The lab: two gateway hosts, a switch and a client in namespaces")
	start := time.Now()
	if err := d.lab.up(ctx, d.o.Gitgw, backend); err != nil {
		return err
	}
	d.n.Say("external network 203.0.113.0/24 (br0), internal network 198.51.100.0/24 (br1)")
	for _, g := range d.lab.gws {
		d.n.Say("%s: eth0 %s, eth1 %s; systemd %s as PID 1 of its own pid, mount, uts, ipc and cgroup namespaces, a D-Bus system bus",
			g.name, g.ext, g.int, systemdVersion(ctx, g))
	}
	d.n.Say("client: eth0 203.0.113.50/24")
	d.n.Say("up in %s", seconds(time.Since(start)))
	return nil
}

func systemdVersion(ctx context.Context, g *gateway) string {
	out, err := g.h.Try(ctx, "systemctl", "--version")
	if f := strings.Fields(out); err == nil && len(f) > 1 {
		return f[1]
	}
	return ""
}

func (d *demo) push(ctx context.Context) error {
	d.n.Step("The site in Git: examples/demo pushed to a bare repository")
	d.repo = filepath.Join(d.lab.shared, "site.git")
	d.work = filepath.Join(d.lab.shared, "work")
	if _, err := gitremote.Git("", "init", "-q", "--bare", "-b", "main", d.repo); err != nil {
		return err
	}
	if _, err := gitremote.Git("", "clone", "-q", d.repo, d.work); err != nil {
		return err
	}
	if err := os.CopyFS(d.work, os.DirFS(filepath.Join(d.o.Root, "examples", "demo"))); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"add", "-A"},
		{"commit", "-q", "-m", "demo site: gw1 and gw2 active-active, web on both VIPs over app@ units"},
		{"push", "-q", "origin", "main"},
	} {
		if _, err := gitremote.Git(d.work, args...); err != nil {
			return err
		}
	}
	out, err := gitremote.Git(d.work, "log", "--oneline", "-1")
	if err != nil {
		return err
	}
	d.n.Say("%s  (%s)", out, d.repo)
	d.n.Say("EX_1: VIP A %s, gw1 master (150), gw2 backup (100)", vipA)
	d.n.Say("EX_2: VIP B %s, gw2 master (150), gw1 backup (100)", vipB)
	d.n.Say("web: both VIPs port 80, roundrobin over app@8080 and app@8081 of both gateways, http check \"Still alive\"")
	return nil
}

func (d *demo) validate(ctx context.Context) error {
	d.n.Step("gitgw validate: schema and guardrails over the whole site")
	out, err := sh(ctx, d.o.Gitgw, "validate", "--site", d.work)
	d.n.Show("", "gitgw validate --site work/", out)
	return err
}

func (d *demo) plan(ctx context.Context) error {
	d.n.Step("gitgw plan for gw1: a dry run against gw1 itself (its interfaces, its systemd)")
	out, err := d.gw("gw1").gitgw(ctx, "plan", "--repo", "file://"+d.repo, "--node", "gw1", "--no-color")
	d.n.Show("gw1", "gitgw plan --repo file://…/site.git --node gw1", out)
	return err
}

// agentOpts are the agent's flags in the demo: a fast poll (the
// repository is local, so pushes are also seen at once), status commits
// without coalescing, a held commit retried often.
const agentOpts = "--interval 1s --resync 10s --status-coalesce 0 --rollout-poll 500ms"

// install writes packaging/gitgw.service into the gateway, with only its
// paths adapted, as test/e2e/service_test.go does: the binary, the
// settings file and the state directory (systemd's StateDirectory= is
// under the read-only /var/lib here), and the repository, which the agent
// pushes its status branch to.
func (d *demo) install(ctx context.Context, g *gateway) error {
	unit, err := os.ReadFile(filepath.Join(d.o.Root, "packaging", "gitgw.service"))
	if err != nil {
		return err
	}
	env := filepath.Join(g.h.StateDir, "agent.env")
	if err := os.WriteFile(env, []byte("GITGW_REPO=file://"+d.repo+"\nGITGW_OPTS=--node "+g.name+" "+agentOpts+"\n"), 0o600); err != nil {
		return err
	}
	pairs := []string{
		"/usr/local/bin/gitgw", g.bin,
		"/etc/gitgw/agent.env", env,
		"/var/lib/gitgw", g.state,
		"StateDirectory=gitgw\n", "",
		"StateDirectoryMode=0750\n", "",
		"ReadWritePaths=/etc/systemd/system", "ReadWritePaths=/etc/systemd/system " + g.state + " " + d.repo,
	}
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(string(unit), pairs[i]) {
			return fmt.Errorf("packaging/gitgw.service no longer has %q: adapt the demo", pairs[i])
		}
	}
	return g.h.WriteUnit(ctx, "gitgw.service", strings.NewReplacer(pairs...).Replace(string(unit)))
}

// status asks the gateway's agent for its status over the unit's control
// socket.
func (g *gateway) status(ctx context.Context) (*control.Status, string) {
	out, err := g.gitgw(ctx, "status", "--json", "--timeout", "5s")
	if err != nil {
		return nil, err.Error()
	}
	var st control.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, out
	}
	return &st, ""
}

// ready says whether the gateway's agent runs commit (any commit when
// empty) with every server of every service UP.
func (g *gateway) ready(ctx context.Context, commit string, servers int) (bool, string) {
	st, why := g.status(ctx)
	if st == nil {
		return false, why
	}
	if commit != "" && st.Applied != commit {
		return false, "applied " + short(st.Applied)
	}
	up := 0
	var seen []string
	for _, s := range st.Services {
		for _, sv := range s.Servers {
			if sv.Status == "UP" {
				up++
			}
			seen = append(seen, sv.Name+" "+sv.Status)
		}
	}
	return up == servers, strings.Join(seen, ", ")
}

func (g *gateway) active(ctx context.Context, unit string) (bool, string) {
	out, _ := g.systemctl(ctx, "is-active", unit)
	out = strings.TrimSpace(out)
	return out == "active", unit + " " + out
}

func (d *demo) start(ctx context.Context) error {
	d.n.Step("systemctl start gitgw: packaging/gitgw.service on both gateways, the first apply")
	if err := d.both(func(g *gateway) error { return d.install(ctx, g) }); err != nil {
		return err
	}
	d.n.Say("Type=notify: start returns once the agent's first pass is done (READY=1); times from the start")
	begin := time.Now()
	if err := d.both(func(g *gateway) error {
		if _, err := g.systemctl(ctx, "start", "gitgw.service"); err != nil {
			st, _ := g.systemctl(ctx, "status", "gitgw.service")
			return fmt.Errorf("%s: %w\n%s", g.name, err, st)
		}
		d.n.Say("%s: gitgw.service active after %s", g.name, seconds(time.Since(begin)))
		return nil
	}); err != nil {
		return err
	}
	gw1, gw2 := d.gw("gw1"), d.gw("gw2")
	waits := []struct {
		what string
		cond func(context.Context) (bool, string)
	}{
		{"gw1 holds VIP A " + vipA, func(ctx context.Context) (bool, string) { return gw1.hasVIP(ctx, vipA) }},
		{"gw2 holds VIP B " + vipB, func(ctx context.Context) (bool, string) { return gw2.hasVIP(ctx, vipB) }},
		{"both gateways see the four backends UP", func(ctx context.Context) (bool, string) {
			ok1, s1 := gw1.ready(ctx, "", 4)
			ok2, s2 := gw2.ready(ctx, "", 4)
			return ok1 && ok2, "gw1: " + s1 + "; gw2: " + s2
		}},
	}
	for _, w := range waits {
		if _, err := d.n.Wait(ctx, w.what, begin, 60*time.Second, w.cond); err != nil {
			return err
		}
	}
	out, err := gw1.systemctl(ctx, "list-units", "--legend=false", "app@*")
	d.n.Show("gw1", "systemctl list-units --legend=false 'app@*'", out)
	if err != nil {
		return err
	}
	out, err = gw1.gitgw(ctx, "status")
	d.n.Show("gw1", "gitgw status", out)
	return err
}

// sample asks each VIP n times from the client and tells who answered.
func (d *demo) sample(vip string, n int) (string, error) {
	count := map[string]int{}
	for range n {
		body, err := d.lab.get(vip)
		if err != nil {
			return "", err
		}
		count[body]++
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(count)) {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, count[k]))
	}
	return strings.Join(parts, ", "), nil
}

func (d *demo) traffic(ctx context.Context) error {
	d.n.Step("Traffic from the client through both VIPs")
	for _, v := range []struct{ vip, name, master string }{{vipA, "VIP A", "gw1"}, {vipB, "VIP B", "gw2"}} {
		got, err := d.sample(v.vip, 8)
		if err != nil {
			return fmt.Errorf("http://%s/: %w", v.vip, err)
		}
		d.n.Say("%s %s (master %s): %s", v.name, v.vip, v.master, got)
	}
	return ctx.Err()
}

func (d *demo) failover(ctx context.Context) error {
	d.n.Step("gw1's agent is killed (SIGKILL): VIP A is handed over at once, systemd restarts the unit")
	gw1, gw2 := d.gw("gw1"), d.gw("gw2")
	out, err := gw1.systemctl(ctx, "show", "-p", "MainPID", "--value", "gitgw.service")
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		return fmt.Errorf("gitgw.service's MainPID %q: %w", out, err)
	}
	// The signal is sent from here, to the agent's pid on the host, so
	// that the handover is timed from the kill itself.
	hpid, err := hostPID(gw1.h.PID, pid)
	if err != nil {
		return err
	}
	logFrom := len(gw1.h.Log())
	begin := time.Now()
	if err := syscall.Kill(hpid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill gw1's agent: %w", err)
	}
	d.n.Show("gw1", fmt.Sprintf("kill -KILL %d   # gitgw.service's MainPID", pid), "")
	// The dead master's last advert left at most one interval before the
	// kill: by its own timer gw2 could not take over before the master
	// down interval minus one interval after it.
	byTimer := vrrp.MasterDownInterval(gw2PrioA, demoInterval) - demoInterval
	d.n.Say("without a handover gw2 would wait for the master down interval: 3 × 100 ms + skew = %s after gw1's last advert,", seconds(vrrp.MasterDownInterval(gw2PrioA, demoInterval)))
	d.n.Say("at least %s after the kill", seconds(byTimer))
	if _, err := d.n.Wait(ctx, "gw2 holds VIP A", begin, 10*time.Second, func(ctx context.Context) (bool, string) {
		return gw2.hasVIP(ctx, vipA)
	}); err != nil {
		return err
	}
	// The transition's own time, from gw2's log: the VIP check above
	// also counts an `ip` process and the polling.
	master, ok := masterAfter(gw2.h.Log(), "EX_1", begin)
	for deadline := time.Now().Add(10 * time.Second); !ok; master, ok = masterAfter(gw2.h.Log(), "EX_1", begin) {
		if time.Now().After(deadline) {
			return errors.New("gw2 holds VIP A, but its agent logged no transition of EX_1 to MASTER")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollEvery):
		}
	}
	// The log's times have millisecond precision.
	took := master.Sub(begin.Truncate(time.Millisecond))
	d.n.Say("gw2's agent logged EX_1's transition to MASTER %s after the kill", seconds(took))
	if took >= byTimer {
		return fmt.Errorf("gw2 became master %s after the kill, as late as its own master-down timer could have made it (%s): no handover", seconds(took), seconds(byTimer))
	}
	if _, err := d.n.Wait(ctx, "the client is answered through VIP A", begin, 10*time.Second, func(context.Context) (bool, string) {
		body, err := d.lab.get(vipA)
		if err != nil {
			return false, err.Error()
		}
		return true, body
	}); err != nil {
		return err
	}
	if _, err := d.n.Wait(ctx, "systemd restarted gitgw.service on gw1 (Restart=on-failure)", begin, 60*time.Second, func(ctx context.Context) (bool, string) {
		out, _ := gw1.systemctl(ctx, "show", "-p", "NRestarts", "-p", "ActiveState", "-p", "SubState", "gitgw.service")
		return strings.Contains(out, "NRestarts=1\n") && strings.Contains(out, "ActiveState=active\n") && strings.Contains(out, "SubState=running"), out
	}); err != nil {
		return err
	}
	if _, err := d.n.Wait(ctx, "gw1 holds VIP A again (preempt: priority 150 > 100)", begin, 60*time.Second, func(ctx context.Context) (bool, string) {
		return gw1.hasVIP(ctx, vipA)
	}); err != nil {
		return err
	}
	d.n.Say("the handover (priority-0 advert, VIP removed) comes from the agent's guardian process: it ignores the")
	d.n.Say("SIGTERM that KillMode=control-group sends after the crash; ExecStopPost=gitgw vrrp release is the backstop")
	d.n.Show("gw1", "the console (systemd and the unit's output), from the kill to the restart", crashLines(gw1.h.Log()[logFrom:]))
	out, err = gw1.systemctl(ctx, "show", "-p", "NRestarts", "-p", "MainPID", "-p", "ActiveState", "-p", "StatusText", "gitgw.service")
	d.n.Show("gw1", "systemctl show -p NRestarts -p MainPID -p ActiveState -p StatusText gitgw.service", out)
	if err != nil {
		return err
	}
	for _, v := range []struct{ vip, name string }{{vipA, "VIP A"}, {vipB, "VIP B"}} {
		got, err := d.sample(v.vip, 4)
		if err != nil {
			return fmt.Errorf("http://%s/ after the failover: %w", v.vip, err)
		}
		d.n.Say("%s %s: %s", v.name, v.vip, got)
	}
	return nil
}

// The demo site's EX_1 (VIP A): gw2's priority and the advert interval.
const (
	gw2PrioA     = 100
	demoInterval = 100 * time.Millisecond
)

// masterAfter returns when an agent's console log (slog text) says
// instance became MASTER, at or after since.
func masterAfter(log, instance string, since time.Time) (time.Time, bool) {
	for l := range strings.SplitSeq(log, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || !strings.HasPrefix(f[0], "time=") || !strings.Contains(l, " msg=transition ") ||
			!slices.Contains(f, "instance="+instance) || !slices.Contains(f, "to=MASTER") {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(f[0], "time="))
		if err == nil && !t.Before(since.Truncate(time.Millisecond)) {
			return t, true
		}
	}
	return time.Time{}, false
}

// hostPID is the host's pid of the process that is pid in the pid
// namespace of the process init (a harness's systemd).
func hostPID(init, pid int) (int, error) {
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", init))
	if err != nil {
		return 0, fmt.Errorf("pid namespace of %d: %w", init, err)
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		if l, err := os.Readlink(dir + "/ns/pid"); err != nil || l != ns {
			continue
		}
		b, err := os.ReadFile(dir + "/status")
		if err != nil {
			continue
		}
		for l := range strings.SplitSeq(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "NSpid:" && f[len(f)-1] == strconv.Itoa(pid) {
				return strconv.Atoi(filepath.Base(dir))
			}
		}
	}
	return 0, fmt.Errorf("no process %d in the pid namespace of %d", pid, init)
}

// crashLines picks from a gateway's console what tells the crash and the
// restart: systemd's lines about gitgw.service (the kill, the stop of the
// rest of the unit, the restart) and the handover.
func crashLines(log string) string {
	var out []string
	for l := range strings.SplitSeq(log, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "gitgw.service: "), strings.Contains(l, "msg=\"released mastership\""),
			strings.Contains(l, "msg=\"VRRP guardian started\""):
			out = append(out, l)
		case strings.Contains(l, "msg=\"agent starting\""):
			return strings.Join(append(out, l), "\n")
		}
	}
	return strings.Join(out, "\n")
}

// The push: a third app instance on each gateway, and its servers.
var pushEdits = []struct{ old, new string }{
	{`instances: [{list: ["8080", "8081"]}]`, `instances: [{list: ["8080", "8081", "8082"]}]`},
	{`		"gw2-8081": {address: "198.51.100.12:8081", maxconn: 2000}` + "\n",
		`		"gw2-8081": {address: "198.51.100.12:8081", maxconn: 2000}` + "\n" +
			`		"gw1-8082": {address: "198.51.100.11:8082", maxconn: 2000}` + "\n" +
			`		"gw2-8082": {address: "198.51.100.12:8082", maxconn: 2000}` + "\n"},
}

func (d *demo) converge(ctx context.Context) error {
	d.n.Step("A push: app@8082 on each gateway, in the pool; pair-aware rollout")
	path := filepath.Join(d.work, "site.cue")
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	site := string(b)
	for _, e := range pushEdits {
		if !strings.Contains(site, e.old) {
			return fmt.Errorf("examples/demo/site.cue no longer has %q: adapt the demo's push", e.old)
		}
		site = strings.Replace(site, e.old, e.new, 1)
	}
	if err := os.WriteFile(path, []byte(site), 0o644); err != nil {
		return err
	}
	if _, err := gitremote.Git(d.work, "commit", "-q", "-am", "web: a third app instance on each gateway (app@8082)"); err != nil {
		return err
	}
	gw1, gw2 := d.gw("gw1"), d.gw("gw2")
	// The running agent owns the proxy and the VRRP engine: a plan in
	// another process reads them from gw2's last reported status, as the
	// site repository's CI would.
	out, err := sh(ctx, d.o.Gitgw, "plan", "--site", d.work, "--node", "gw2", "--observed", "status", "--status-repo", "file://"+d.repo, "--no-color")
	var lines []string
	for l := range strings.SplitSeq(out, "\n") {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "+") || strings.HasPrefix(t, "~") || strings.HasPrefix(t, "-") ||
			strings.HasPrefix(l, "note: rollout") || strings.HasPrefix(l, "Plan:") {
			lines = append(lines, l)
		}
	}
	d.n.Show("", "gitgw plan --site work/ --node gw2 --observed status   # before the push", strings.Join(lines, "\n"))
	if err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	begin := time.Now()
	if _, err := gitremote.Git(d.work, "push", "-q", "origin", "main"); err != nil {
		return err
	}
	commit, err := gitremote.Git(d.work, "rev-parse", "HEAD")
	if err != nil {
		return err
	}
	d.n.Say("pushed %s; both agents see it at once (a local repository is watched)", short(commit))
	for _, g := range []*gateway{gw1, gw2} {
		if _, err := d.n.Wait(ctx, g.name+" applied "+short(commit)+", app@8082 active, six backends UP", begin, 90*time.Second,
			func(ctx context.Context) (bool, string) {
				if ok, why := g.active(ctx, "app@8082.service"); !ok {
					return false, why
				}
				return g.ready(ctx, commit, 6)
			}); err != nil {
			return err
		}
	}
	out, err = gitremote.Git(d.repo, "log", "--format=%h %s", "-3", "gitgw/status/gw2")
	d.n.Show("", "git log --oneline -3 gitgw/status/gw2", out)
	if err != nil {
		return err
	}
	got, err := d.sample(vipB, 12)
	if err != nil {
		return err
	}
	d.n.Say("VIP B %s: %s", vipB, got)
	return nil
}

func (d *demo) drift(ctx context.Context) error {
	d.n.Step("A change by hand on gw1: systemctl stop app@8081, corrected and committed as drift")
	gw1 := d.gw("gw1")
	head, err := gitremote.Git(d.repo, "rev-parse", "gitgw/status/gw1")
	if err != nil {
		return err
	}
	begin := time.Now()
	out, err := gw1.systemctl(ctx, "stop", "app@8081.service")
	d.n.Show("gw1", "systemctl stop app@8081.service", out)
	if err != nil {
		return err
	}
	if _, err := d.n.Wait(ctx, "gitgw started app@8081 again (drift: correct)", begin, 60*time.Second, func(ctx context.Context) (bool, string) {
		return gw1.active(ctx, "app@8081.service")
	}); err != nil {
		return err
	}
	if _, err := d.n.Wait(ctx, "a drift commit on gitgw/status/gw1", begin, 60*time.Second, func(context.Context) (bool, string) {
		out, err := gitremote.Git(d.repo, "log", "--format=%s", head+"..gitgw/status/gw1")
		if err != nil {
			return false, err.Error()
		}
		for l := range strings.SplitSeq(out, "\n") {
			if strings.HasPrefix(l, "drift(gw1)") {
				return true, l
			}
		}
		return false, out
	}); err != nil {
		return err
	}
	out, err = gitremote.Git(d.repo, "log", "--format=%h %ad %s", "--date=format:%H:%M:%S", "-4", "gitgw/status/gw1")
	d.n.Show("", "git log -4 gitgw/status/gw1", out)
	return err
}

func (d *demo) fleet(ctx context.Context) error {
	d.n.Step("The fleet view: every gateway's status branch")
	out, err := sh(ctx, d.o.Gitgw, "fleet", "--repo", "file://"+d.repo)
	d.n.Show("", "gitgw fleet --repo file://…/site.git", out)
	return err
}

// summary prints the measured waits.
func (d *demo) summary() {
	fmt.Fprintf(d.o.Out, "\n%s\n", d.n.bold(fmt.Sprintf("Done in %.1f s. Measured:", d.n.Elapsed().Seconds())))
	for _, m := range d.n.Waits() {
		fmt.Fprintf(d.o.Out, "  [%d] %-70s %s\n", m.Step, m.What, seconds(m.Took))
	}
}

// consoles prints the end of each gateway's console after a failure:
// systemd's view of the units and the agents' logs.
func (d *demo) consoles() {
	for _, g := range d.lab.gws {
		if g.h == nil {
			continue
		}
		log := strings.TrimRight(g.h.Log(), "\n")
		lines := strings.Split(log, "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		fmt.Fprintf(d.o.Out, "\n--- %s console, last %d lines (KEEP_LOGS=DIR keeps all of it) ---\n%s\n", g.name, len(lines), strings.Join(lines, "\n"))
	}
}

// keepStatus writes the status branches' logs into the kept logs.
func (d *demo) keepStatus() {
	if d.o.KeepLogs == "" || d.repo == "" {
		return
	}
	for _, g := range d.lab.gws {
		out, err := gitremote.Git(d.repo, "log", "--format=%h %ci %s%n%b", "gitgw/status/"+g.name)
		if err != nil {
			out = err.Error()
		}
		_ = os.WriteFile(filepath.Join(d.o.KeepLogs, "status-"+g.name+".txt"), []byte(out+"\n"), 0o644)
	}
}

func short(c string) string {
	if len(c) > 7 {
		return c[:7]
	}
	return c
}
