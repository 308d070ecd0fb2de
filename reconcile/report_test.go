package reconcile_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/drift"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
	"github.com/gitgw/gitgw/reconcile/plan"
	"github.com/gitgw/gitgw/test/gitremote"
)

const (
	reportC1 = "3a9c1e2b6f0d4c8e9a1b2c3d4e5f60718293a4b5"
	reportC2 = "7f00d1e2c3b4a5968778695a4b3c2d1e0f1a2b3c"
)

func reportCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func reportWait(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func reportWriter(t testing.TB, url string, coalesce time.Duration) *gitrepo.StatusWriter {
	t.Helper()
	w, err := gitrepo.NewStatusWriter(reportCtx(t), gitrepo.StatusOptions{
		Node: "gw1", URL: url, Dir: filepath.Join(t.TempDir(), "status.git"), Coalesce: coalesce,
		RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func reportPlan(actions ...plan.Action) *plan.Plan {
	p := &plan.Plan{Node: "gw1"}
	ids := []string{"net.ipv4.ip_forward", "net.ipv4.ip_nonlocal_bind"}
	for i, a := range actions {
		c := plan.Change{Driver: "tuning", Kind: "sysctl", ID: ids[i], Action: a, After: "1"}
		if a != plan.Create {
			c.Before = "1"
			if a == plan.Update {
				c.Before = "0"
			}
		}
		p.Changes = append(p.Changes, c)
	}
	return p
}

func TestReporterCommitsOnlyChanges(t *testing.T) {
	t.Parallel()
	ctx := reportCtx(t)
	remote := gitremote.NewBare(t)
	w := reportWriter(t, remote.Dir, 0)
	rep, err := reconcile.NewReporter(reconcile.ReporterOptions{Node: "gw1", AgentVersion: "test", Sink: w})
	if err != nil {
		t.Fatal(err)
	}
	report := func(res reconcile.Result) {
		t.Helper()
		if err := rep.Report(ctx, res); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// An apply, then quiet resyncs: one commit.
	p := reportPlan(plan.Update, plan.Update)
	report(reconcile.Result{Commit: reportC1, Subject: "lab", Outcome: reconcile.Applied, AppliedCommit: reportC1, Plan: p, Applied: p.Actionable()})
	quiet := reconcile.Result{Commit: reportC1, Subject: "lab", Outcome: reconcile.Unchanged, AppliedCommit: reportC1, Plan: reportPlan(plan.NoOp, plan.NoOp)}
	report(quiet)
	report(quiet)
	// Drift found and corrected: a drift commit, then quiet again.
	dp := reportPlan(plan.Update, plan.NoOp)
	dp.Changes[0].Drift = true
	report(reconcile.Result{Commit: reportC1, Subject: "lab", Outcome: reconcile.Applied, AppliedCommit: reportC1, Plan: dp, Applied: dp.Actionable(), Drift: dp.Actionable()})
	report(quiet)
	// A broken revision: an error commit with the position.
	report(reconcile.Result{Commit: reportC2, Subject: "vrid 300", Outcome: reconcile.Rejected, AppliedCommit: reportC1, Plan: reportPlan(plan.NoOp, plan.NoOp),
		Errors: loader.Errors{{File: "site.cue", Line: 7, Col: 13, Path: "vrrp.VI_1.vrid", Msg: "invalid value 300 (out of bound <=255)"}}})
	// The same broken revision again: nothing new.
	rejected := reconcile.Result{Commit: reportC2, Subject: "vrid 300", Outcome: reconcile.Rejected, AppliedCommit: reportC1, Plan: reportPlan(plan.NoOp, plan.NoOp),
		Errors: loader.Errors{{File: "site.cue", Line: 7, Col: 13, Path: "vrrp.VI_1.vrid", Msg: "invalid value 300 (out of bound <=255)"}}}
	report(rejected)
	// A failover event, then a fixed revision.
	rep.Event(reconcile.Event{Driver: "vrrp", Kind: "transition", Message: "VI_1 BACKUP -> MASTER (peer silent 360 ms)"})
	report(quiet)

	log := remote.Log(t, "gitgw/status/gw1")
	var got []string
	for _, e := range log {
		got = append(got, e.Subject)
	}
	want := []string{
		"apply(gw1): 3a9c1e2, 2 changes",
		"drift(gw1): sysctl net.ipv4.ip_forward changed outside gitgw (0, site says 1); corrected",
		"error(gw1): 7f00d1e rejected: site.cue:7:13: vrrp.VI_1.vrid: invalid value 300 (out of bound <=255)",
		"failover(gw1): VI_1 BACKUP -> MASTER (peer silent 360 ms)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("status commits:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	tr := gitrepo.CommitTrailers(log[2].Message)
	if tr.Get(gitrepo.TrailerDesired) != reportC2 {
		t.Errorf("trailers of the error commit: %v", tr)
	}
	tr = gitrepo.CommitTrailers(log[3].Message)
	if tr.Get(gitrepo.TrailerNode) != "gw1" || tr.Get(gitrepo.TrailerDesired) != reportC1 || tr.Get(gitrepo.TrailerApplied) != reportC1 || tr.Get(gitrepo.TrailerDrift) != "none" {
		t.Errorf("trailers of the failover commit: %v", tr)
	}
	st, err := drift.Parse([]byte(remote.Show(t, "gitgw/status/gw1", "status.json")))
	if err != nil {
		t.Fatal(err)
	}
	if st.LastPass.Outcome != drift.Converged || st.Applied != reportC1 || st.Corrected != 1 || len(st.Events) != 1 {
		t.Errorf("status.json: %+v", st)
	}
	st, err = drift.Parse([]byte(remote.Show(t, log[2].Hash, "status.json")))
	if err != nil {
		t.Fatal(err)
	}
	if st.LastPass.Outcome != drift.Rejected || len(st.LastPass.Errors) != 1 || st.LastPass.Errors[0].Line != 7 ||
		st.Applied != reportC1 || st.Desired.Commit != reportC2 {
		t.Errorf("status.json of the error commit: %+v", st)
	}
	if md := remote.Show(t, log[2].Hash, "STATUS.md"); !strings.HasPrefix(md, "# gw1: 7f00d1e rejected, running 3a9c1e2") {
		t.Errorf("STATUS.md:\n%s", md)
	}
}

func TestReporterCoalescesBursts(t *testing.T) {
	t.Parallel()
	ctx := reportCtx(t)
	remote := gitremote.NewBare(t)
	w := reportWriter(t, remote.Dir, 400*time.Millisecond)
	rep, err := reconcile.NewReporter(reconcile.ReporterOptions{Node: "gw1", Sink: w})
	if err != nil {
		t.Fatal(err)
	}
	// A flapping link: 30 transitions, each followed by a pass.
	res := reconcile.Result{Commit: reportC1, Outcome: reconcile.Unchanged, AppliedCommit: reportC1, Plan: reportPlan(plan.NoOp)}
	for i := range 30 {
		state := []string{"BACKUP -> MASTER", "MASTER -> BACKUP"}[i%2]
		rep.Event(reconcile.Event{Driver: "vrrp", Kind: "transition", Message: "VI_1 " + state})
		if err := rep.Report(ctx, res); err != nil {
			t.Fatal(err)
		}
	}
	reportWait(t, "the coalesce window to close", func() bool { return !w.Pending() })
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	log := remote.Log(t, "gitgw/status/gw1")
	if len(log) >= 30 || len(log) < 1 {
		t.Fatalf("%d commits for a burst of 30 changes", len(log))
	}
	st, err := drift.Parse([]byte(remote.Show(t, "gitgw/status/gw1", "status.json")))
	if err != nil {
		t.Fatal(err)
	}
	if last := st.Events[len(st.Events)-1]; last.Seq != 30 || len(st.Events) != drift.MaxEvents {
		t.Errorf("last event %+v, %d kept", last, len(st.Events))
	}
	if !strings.Contains(log[len(log)-1].Message, "changes in this commit") && len(log) > 1 {
		t.Errorf("the coalesced commit does not list its changes:\n%s", log[len(log)-1].Message)
	}
	t.Logf("30 changes in %d commits", len(log))
}

func TestReporterAdoptProposal(t *testing.T) {
	t.Parallel()
	ctx := reportCtx(t)
	remote := gitremote.NewBare(t)
	site := `package site

nodes: gw1: tuning: sysctls: {
	"net.ipv4.ip_forward": 1 // routing
}
`
	head := remote.Commit(t, "main", map[string]string{"site.cue": site, "cue.mod/module.cue": "module: \"example.com/site\"\n"}, "site")
	src, err := gitrepo.Open(ctx, gitrepo.Options{URL: remote.Dir, Dir: filepath.Join(t.TempDir(), "src"), Node: "gw1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	w := reportWriter(t, remote.Dir, 0)
	rep, err := reconcile.NewReporter(reconcile.ReporterOptions{Node: "gw1", Sink: w, Site: src})
	if err != nil {
		t.Fatal(err)
	}
	p := &plan.Plan{Changes: []plan.Change{
		{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_forward", Action: plan.Update, Before: "0", After: "1"},
		{Driver: "units", Kind: "unit_instance", ID: "app@8080.service", Action: plan.Update, Before: "inactive", After: "active"},
	}}
	res := reconcile.Result{Commit: head, Outcome: reconcile.Unchanged, AppliedCommit: head, Plan: p, Reported: p.Actionable()}
	if err := rep.Report(ctx, res); err != nil {
		t.Fatal(err)
	}
	rep.FlushProposals(ctx)
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := remote.Show(t, "gitgw/adopt/gw1", "site.cue")
	if want := strings.Replace(site, `"net.ipv4.ip_forward": 1`, `"net.ipv4.ip_forward": 0`, 1); got != want {
		t.Errorf("proposed site.cue:\n%s\nwant:\n%s", got, want)
	}
	log := remote.Log(t, "gitgw/adopt/gw1")
	if last := log[len(log)-1]; !strings.HasPrefix(last.Subject, "adopt(gw1): 2 changes") || !strings.Contains(last.Message, "app@8080.service") {
		t.Errorf("proposal commit:\n%s", last.Message)
	}
	st, err := drift.Parse([]byte(remote.Show(t, "gitgw/status/gw1", "status.json")))
	if err != nil {
		t.Fatal(err)
	}
	adopt := map[string]string{}
	for _, it := range st.Drift {
		adopt[it.ID] = it.Adopt
	}
	if adopt["net.ipv4.ip_forward"] != "proposed" || adopt["app@8080.service"] != "manual" {
		t.Errorf("drift items: %+v", st.Drift)
	}
	// The same drift again: no new proposal, no new status commit.
	before := len(log)
	if err := rep.Report(ctx, res); err != nil {
		t.Fatal(err)
	}
	rep.FlushProposals(ctx)
	if n := len(remote.Log(t, "gitgw/adopt/gw1")); n != before {
		t.Errorf("proposal rewritten for the same drift: %d commits, want %d", n, before)
	}
	if n := len(remote.Log(t, "gitgw/status/gw1")); n != 1 {
		t.Errorf("%d status commits, want 1", n)
	}
}

func TestReporterDuplicateNodeIsLoud(t *testing.T) {
	t.Parallel()
	ctx := reportCtx(t)
	remote := gitremote.NewBare(t)
	res := reconcile.Result{Commit: reportC1, Outcome: reconcile.Unchanged, AppliedCommit: reportC1, Plan: reportPlan(plan.NoOp)}
	var reps []*reconcile.Reporter
	var ws []*gitrepo.StatusWriter
	for range 2 {
		w := reportWriter(t, remote.Dir, 0)
		rep, err := reconcile.NewReporter(reconcile.ReporterOptions{Node: "gw1", Sink: w})
		if err != nil {
			t.Fatal(err)
		}
		reps, ws = append(reps, rep), append(ws, w)
	}
	// Both report and push once (the second continues the first's history,
	// as a node that lost its state dir would), then both report again.
	for i := range 2 {
		reps[i].Event(reconcile.Event{Driver: "vrrp", Kind: "transition", Message: fmt.Sprintf("from node %d", i)})
		if err := reps[i].Report(ctx, res); err != nil {
			t.Fatal(err)
		}
		if err := ws[i].Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	reps[0].Event(reconcile.Event{Driver: "vrrp", Kind: "transition", Message: "from node A"})
	if err := reps[0].Report(ctx, res); err != nil {
		t.Fatal(err)
	}
	err := ws[0].Flush(ctx)
	if !errors.Is(err, gitrepo.ErrDiverged) {
		t.Fatalf("push of a branch another node moved: %v, want ErrDiverged", err)
	}
	if err := reps[0].Report(ctx, res); !errors.Is(err, gitrepo.ErrDiverged) {
		t.Errorf("Report after the clash: %v, want ErrDiverged", err)
	}
}

// benchPlan is a lab-sized plan: every resource of the lab site's node.
func benchPlan() *plan.Plan {
	p := &plan.Plan{Node: "gw1"}
	add := func(driver, kind, id string, v any) {
		p.Changes = append(p.Changes, plan.Change{Driver: driver, Kind: kind, ID: id, Action: plan.NoOp, Before: v, After: v})
	}
	add("tuning", "sysctl", "net.ipv4.ip_forward", "1")
	add("tuning", "sysctl", "net.ipv4.ip_nonlocal_bind", "1")
	add("tuning", "rps_sock_flow_entries", "net.core.rps_sock_flow_entries", "32768")
	for q := range 4 {
		add("tuning", "rps_cpus", fmt.Sprintf("eth0/rx-%d", q), "3")
		add("tuning", "rps_flow_cnt", fmt.Sprintf("eth0/rx-%d", q), "32768")
	}
	add("units", "unit_file", "app@.service", "sha256:5d41402abc4b2a76b9719d911017c592")
	add("units", "unit_instance", "app@8080.service", "active")
	add("units", "unit_instance", "app@8081.service", "active")
	add("proxy", "proxy_service", "web", map[string]any{"balance": "roundrobin", "binds": []string{"203.0.113.100:80"}})
	add("proxy", "proxy_bind", "web/203.0.113.100:80", "203.0.113.100:80")
	add("proxy", "proxy_server", "web/s1", map[string]any{"address": "198.51.100.11:8080", "weight": 100, "state": "ready"})
	add("proxy", "proxy_server", "web/s2", map[string]any{"address": "198.51.100.12:8080", "weight": 100, "state": "ready"})
	add("vrrp", "vrrp_instance", "VI_1", "vrid 51 v3 100ms priority 150 on eth0")
	add("vrrp", "vip", "VI_1/203.0.113.100/24", "203.0.113.100/24")
	return p
}

// remoteHead reads a branch's ref in a bare repository (loose or packed).
func remoteHead(dir, branch string) string {
	if b, err := os.ReadFile(filepath.Join(dir, "refs", "heads", filepath.FromSlash(branch))); err == nil {
		return strings.TrimSpace(string(b))
	}
	out, _ := gitremote.Git(dir, "rev-parse", "-q", "--verify", "refs/heads/"+branch)
	return out
}

// objectBytes is the size of a bare repository's object store.
func objectBytes(t testing.TB, dir string) int64 {
	var n int64
	err := filepath.WalkDir(filepath.Join(dir, "objects"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			n += info.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// countingProxy forwards TCP connections to target and counts the bytes
// sent towards it.
type countingProxy struct {
	ln   net.Listener
	sent atomic.Int64
}

func startCountingProxy(t testing.TB, target string) *countingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				done := make(chan struct{})
				go func() {
					_, _ = io.Copy(countingWriter{u, &p.sent}, c)
					u.(*net.TCPConn).CloseWrite()
					close(done)
				}()
				_, _ = io.Copy(c, u)
				c.(*net.TCPConn).CloseWrite()
				<-done
			}()
		}
	}()
	return p
}

// countingWriter counts the bytes written through it as they pass.
type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// BenchmarkReportToRemote measures a change observed (Reporter.Report of a
// pass after a driver event) until the commit is visible on the remote,
// for a local bare repository and for ssh to an sshd on 127.0.0.1, and the
// bytes each status commit adds (objects stored on the remote; over ssh
// also every byte sent on the wire, handshake included). Targets: ≤ 1 s
// median to either remote; ≤ 4 KiB pushed per commit.
func BenchmarkReportToRemote(b *testing.B) {
	const changes = 20
	type row struct {
		name         string
		med, lo, hi  time.Duration
		objPerCommit float64
		wirePerCmt   float64
		session      float64
	}
	var rows []row
	run := func(name string, remote *gitremote.Repo, opts gitrepo.StatusOptions, wire *countingProxy) {
		ctx := reportCtx(b)
		opts.Node, opts.Dir = "gw1", filepath.Join(b.TempDir(), "status.git")
		w, err := gitrepo.NewStatusWriter(ctx, opts)
		if err != nil {
			b.Fatal(err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { _ = w.Run(runCtx); close(done) }()
		defer func() { cancel(); <-done; _ = w.Close() }()
		rep, err := reconcile.NewReporter(reconcile.ReporterOptions{Node: "gw1", AgentVersion: "bench", Sink: w})
		if err != nil {
			b.Fatal(err)
		}
		p := benchPlan()
		res := reconcile.Result{Commit: reportC1, Subject: "lab", Outcome: reconcile.Unchanged, AppliedCommit: reportC1, Plan: p}
		// A first commit, so that every measured one is an update.
		if err := rep.Report(ctx, res); err != nil {
			b.Fatal(err)
		}
		branch := "gitgw/status/gw1"
		reportWait(b, name+": the first status commit (last push error: see below)", func() bool {
			if err := w.State().LastError; err != nil {
				b.Logf("%s: push: %v", name, err)
			}
			return remoteHead(remote.Dir, branch) != ""
		})
		var lat []time.Duration
		objStart := objectBytes(b, remote.Dir)
		var wireStart int64
		if wire != nil {
			wireStart = wire.sent.Load()
		}
		for i := range changes {
			before := remoteHead(remote.Dir, branch)
			rep.Event(reconcile.Event{Driver: "vrrp", Kind: "transition", Message: fmt.Sprintf("VI_1 change %d", i)})
			t0 := time.Now()
			if err := rep.Report(ctx, res); err != nil {
				b.Fatal(err)
			}
			for remoteHead(remote.Dir, branch) == before {
				if time.Since(t0) > time.Minute {
					b.Fatalf("%s: change %d not on the remote after a minute", name, i)
				}
				time.Sleep(2 * time.Millisecond)
			}
			lat = append(lat, time.Since(t0))
		}
		r := row{name: name, objPerCommit: float64(objectBytes(b, remote.Dir)-objStart) / changes}
		if wire != nil {
			r.wirePerCmt = float64(wire.sent.Load()-wireStart) / changes
			// What one ssh session costs by itself: an ls-remote and a
			// fetch with nothing to fetch, sent by the client.
			ro := gitrepo.ReadOptions{URL: opts.URL, SSHKeyFile: opts.SSHKeyFile, KnownHostsFile: opts.KnownHostsFile,
				CacheDir: filepath.Join(b.TempDir(), "cache.git")}
			if _, err := gitrepo.ReadStatusBranches(ctx, ro); err != nil {
				b.Fatal(err)
			}
			before := wire.sent.Load()
			if _, err := gitrepo.ReadStatusBranches(ctx, ro); err != nil {
				b.Fatal(err)
			}
			r.session = float64(wire.sent.Load() - before)
		}
		slices.Sort(lat)
		r.med, r.lo, r.hi = lat[len(lat)/2], lat[0], lat[len(lat)-1]
		rows = append(rows, r)
	}
	for range b.N {
		rows = rows[:0]
		local := gitremote.NewBare(b)
		run("local", local, gitrepo.StatusOptions{URL: local.Dir}, nil)
		if os.Geteuid() == 0 {
			sshd := gitremote.StartSSHD(b)
			proxy := startCountingProxy(b, fmt.Sprintf("127.0.0.1:%d", sshd.Port))
			remote := gitremote.NewBare(b)
			port := proxy.ln.Addr().(*net.TCPAddr).Port
			known := filepath.Join(b.TempDir(), "known_hosts")
			kh, err := os.ReadFile(sshd.KnownHosts)
			if err != nil {
				b.Fatal(err)
			}
			// The proxy listens on another port: the host key is the same.
			kh = []byte(strings.Replace(string(kh), fmt.Sprintf("]:%d ", sshd.Port), fmt.Sprintf("]:%d ", port), 1))
			if err := os.WriteFile(known, kh, 0o600); err != nil {
				b.Fatal(err)
			}
			url := fmt.Sprintf("ssh://%s@127.0.0.1:%d%s", sshd.User, port, remote.Dir)
			run("ssh", remote, gitrepo.StatusOptions{URL: url, SSHKeyFile: sshd.ClientKey, KnownHostsFile: known}, proxy)
		} else {
			fmt.Println("(ssh remote skipped: needs root for sshd)")
		}
	}
	fmt.Printf("\nstatus change observed → commit visible on the remote (%d changes each, lab-sized status)\n", changes)
	fmt.Printf("  %-6s %10s %10s %10s %16s %16s %18s\n", "remote", "median", "min", "max", "objects/commit", "wire/commit", "ssh session alone")
	for _, r := range rows {
		wire, session := "-", "-"
		if r.wirePerCmt > 0 {
			wire, session = fmt.Sprintf("%.0f B", r.wirePerCmt), fmt.Sprintf("%.0f B", r.session)
		}
		fmt.Printf("  %-6s %10v %10v %10v %14.0f B %16s %18s\n", r.name, r.med.Round(100*time.Microsecond), r.lo.Round(100*time.Microsecond), r.hi.Round(100*time.Microsecond), r.objPerCommit, wire, session)
		b.ReportMetric(float64(r.med.Milliseconds()), "ms-median-"+r.name)
		b.ReportMetric(r.objPerCommit, "B/commit-"+r.name)
		if r.wirePerCmt > 0 {
			b.ReportMetric(r.wirePerCmt, "wireB/commit-"+r.name)
		}
	}
	fmt.Println("  objects/commit: what each commit adds to the remote's object store (the pushed payload);")
	fmt.Println("  wire/commit: every byte the client sent over ssh, key exchange and ref negotiation included;")
	fmt.Println("  ssh session alone: the same for a connection that pushes nothing.")
	fmt.Println("  targets: ≤ 1 s median; ≤ 4 KiB pushed per commit")
}

// TestReporterRemoteDownThenBack: 30 changes while the remote is gone are
// all committed locally and all arrive, in order, once it is back.
func TestReporterRemoteDownThenBack(t *testing.T) {
	t.Parallel()
	ctx := reportCtx(t)
	remote := gitremote.NewBare(t)
	w := reportWriter(t, remote.Dir, 0)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = w.Run(runCtx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	rep, err := reconcile.NewReporter(reconcile.ReporterOptions{Node: "gw1", Sink: w})
	if err != nil {
		t.Fatal(err)
	}
	res := reconcile.Result{Commit: reportC1, Outcome: reconcile.Unchanged, AppliedCommit: reportC1, Plan: reportPlan(plan.NoOp)}
	if err := rep.Report(ctx, res); err != nil {
		t.Fatal(err)
	}
	reportWait(t, "the first commit on the remote", func() bool { return remoteHead(remote.Dir, "gitgw/status/gw1") != "" })

	gone := remote.Dir + ".gone"
	if err := os.Rename(remote.Dir, gone); err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		rep.Event(reconcile.Event{Driver: "vrrp", Kind: "transition", Message: fmt.Sprintf("change %02d", i)})
		if err := rep.Report(ctx, res); err != nil {
			t.Fatal(err)
		}
	}
	reportWait(t, "a failed push", func() bool { return w.State().LastError != nil })
	if err := os.Rename(gone, remote.Dir); err != nil {
		t.Fatal(err)
	}
	reportWait(t, "every commit on the remote", func() bool { return len(remote.Log(t, "gitgw/status/gw1")) == 31 })
	for i, e := range remote.Log(t, "gitgw/status/gw1")[1:] {
		if want := fmt.Sprintf("failover(gw1): change %02d", i); e.Subject != want {
			t.Fatalf("commit %d: %q, want %q", i, e.Subject, want)
		}
	}
}

// sectionDriver is a driver that reports VRRP roles for status.json.
type sectionDriver struct {
	reconcile.Pending
	state string
}

func (d sectionDriver) StatusSection(context.Context) (any, error) {
	return drift.VRRPSection{Instances: []drift.VRRPInstance{{Name: "VI_1", VRID: 51, Interface: "eth0", State: d.state, Priority: 150}}}, nil
}

func TestReporterDriverSections(t *testing.T) {
	t.Parallel()
	ctx := reportCtx(t)
	remote := gitremote.NewBare(t)
	w := reportWriter(t, remote.Dir, 0)
	d := &sectionDriver{Pending: reconcile.Pending{Family: "vrrp"}, state: "BACKUP"}
	rep, err := reconcile.NewReporter(reconcile.ReporterOptions{Node: "gw1", Sink: w, Drivers: []reconcile.Driver{d}})
	if err != nil {
		t.Fatal(err)
	}
	res := reconcile.Result{Commit: reportC1, Outcome: reconcile.Unchanged, AppliedCommit: reportC1, Plan: reportPlan(plan.NoOp)}
	for _, state := range []string{"BACKUP", "BACKUP", "MASTER"} {
		d.state = state
		if err := rep.Report(ctx, res); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(remote.Log(t, "gitgw/status/gw1")); n != 2 {
		t.Errorf("%d status commits for BACKUP, BACKUP, MASTER; want 2", n)
	}
	st, err := drift.Parse([]byte(remote.Show(t, "gitgw/status/gw1", "status.json")))
	if err != nil {
		t.Fatal(err)
	}
	v, ok := drift.VRRPOf(st)
	if !ok || len(v.Instances) != 1 || v.Instances[0].State != "MASTER" {
		t.Errorf("vrrp section: %+v", st.Sections)
	}
	if last, ok := rep.Last(); !ok || last.Sections == nil {
		t.Errorf("Last: %+v, %v", last, ok)
	}
	if md := remote.Show(t, "gitgw/status/gw1", "STATUS.md"); !strings.Contains(md, "| VI_1 | 51 | MASTER | 150 |") {
		t.Errorf("STATUS.md lacks the VRRP role:\n%s", md)
	}
}

// TestReporterSSH reports to a repository behind sshd on 127.0.0.1 (key
// authentication, checked known_hosts).
func TestReporterSSH(t *testing.T) {
	t.Parallel()
	ctx := reportCtx(t)
	sshd := gitremote.StartSSHD(t)
	remote := gitremote.NewBare(t)
	w, err := gitrepo.NewStatusWriter(ctx, gitrepo.StatusOptions{
		Node: "gw1", URL: sshd.URL(remote.Dir), Dir: filepath.Join(t.TempDir(), "status.git"),
		SSHKeyFile: sshd.ClientKey, KnownHostsFile: sshd.KnownHosts,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	rep, err := reconcile.NewReporter(reconcile.ReporterOptions{Node: "gw1", Sink: w})
	if err != nil {
		t.Fatal(err)
	}
	p := reportPlan(plan.Update)
	if err := rep.Report(ctx, reconcile.Result{Commit: reportC1, Outcome: reconcile.Applied, AppliedCommit: reportC1, Plan: p, Applied: p.Actionable()}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("push over ssh: %v\nsshd log:\n%s", err, sshd.Log())
	}
	log := remote.Log(t, "gitgw/status/gw1")
	if len(log) != 1 || log[0].Subject != "apply(gw1): 3a9c1e2, 1 change" {
		t.Errorf("status branch over ssh: %+v", log)
	}
}
