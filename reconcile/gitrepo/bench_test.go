package gitrepo

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"

	"github.com/gitgw/gitgw/test/gitremote"
)

// summary is the median, min and max of a series.
type summary struct{ med, lo, hi time.Duration }

func summarize(d []time.Duration) summary {
	s := slices.Clone(d)
	slices.Sort(s)
	return summary{med: s[len(s)/2], lo: s[0], hi: s[len(s)-1]}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// agentLoop emulates the agent: every trigger, Sync, and report the commit.
func agentLoop(ctx context.Context, s *Source, trigger <-chan struct{}) <-chan string {
	seen := make(chan string, 64)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-trigger:
				if !ok {
					return
				}
			}
			if rev, err := s.Sync(ctx); err == nil {
				select {
				case seen <- rev.Commit:
				default:
				}
			}
		}
	}()
	return seen
}

// pollEvery signals every interval (±jitter·interval) until ctx ends, as
// the agent's own poll timer does.
func pollEvery(ctx context.Context, interval time.Duration, jitter float64) <-chan struct{} {
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		t := time.NewTimer(Jitter(interval, jitter))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				select {
				case out <- struct{}{}:
				default:
				}
				t.Reset(Jitter(interval, jitter))
			}
		}
	}()
	return out
}

func measurePushToSync(b *testing.B, r *gitremote.Repo, s *Source, seen <-chan string, pushes int) (lat, push []time.Duration) {
	for i := 0; i < pushes; i++ {
		want := r.Prepare(b, "main", map[string]string{"site.cue": fmt.Sprintf("serial: %d\n", i)}, fmt.Sprintf("change %d", i))
		t0 := time.Now()
		r.Push(b, "main")
		push = append(push, time.Since(t0))
		deadline := time.After(time.Minute)
	wait:
		for {
			select {
			case c := <-seen:
				if c == want {
					lat = append(lat, time.Since(t0))
					break wait
				}
			case <-deadline:
				b.Fatalf("push %d not synced within a minute", i)
			}
		}
	}
	return lat, push
}

func reportPushToSync(b *testing.B, name string, lat, push []time.Duration) {
	l, p := summarize(lat), summarize(push)
	fmt.Printf("\n%-34s %8s %10s %10s %10s\n", "push → Sync sees it ("+fmt.Sprint(len(lat))+" pushes)", "", "median", "min", "max")
	fmt.Printf("%-34s %8s %10s %10s %10s\n", name, "latency", ms(l.med), ms(l.lo), ms(l.hi))
	fmt.Printf("%-34s %8s %10s %10s %10s\n", "", "git push", ms(p.med), ms(p.lo), ms(p.hi))
	b.ReportMetric(float64(l.med)/float64(time.Millisecond), "ms-median")
	b.ReportMetric(float64(l.hi)/float64(time.Millisecond), "ms-max")
}

// BenchmarkPushToSyncLocalWatch: a push to a local bare repository until
// Sync (triggered by Watch) returns the new commit.
func BenchmarkPushToSyncLocalWatch(b *testing.B) {
	gitremote.RequireGit(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := gitremote.NewBare(b)
	r.Commit(b, "main", map[string]string{"site.cue": "serial: 0\n"}, "initial")
	s := openSource(b, Options{URL: r.FileURL()})
	if _, err := s.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	events, err := s.Watch(ctx)
	if err != nil {
		b.Fatal(err)
	}
	seen := agentLoop(ctx, s, events)
	lat, push := measurePushToSync(b, r, s, seen, 20)
	reportPushToSync(b, "local repository, fsnotify", lat, push)
}

// BenchmarkPushToSyncSSHPoll: a push to a repository reached over ssh,
// polled every second (±10 %), until Sync returns the new commit.
func BenchmarkPushToSyncSSHPoll(b *testing.B) {
	gitremote.RequireGit(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := gitremote.NewBare(b)
	r.Commit(b, "main", map[string]string{"site.cue": "serial: 0\n"}, "initial")
	sshd := gitremote.StartSSHD(b)
	s := openSource(b, Options{URL: sshd.URL(r.Dir), SSHKeyFile: sshd.ClientKey, KnownHostsFile: sshd.KnownHosts})
	if _, err := s.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	seen := agentLoop(ctx, s, pollEvery(ctx, time.Second, 0.1))
	lat, push := measurePushToSync(b, r, s, seen, 20)
	reportPushToSync(b, "ssh remote, polled every 1 s", lat, push)
}

// benchStatus is a status.json of realistic size (≈7 KiB: forty resources
// with distinct values) in which change i flips a few fields.
func benchStatus(node string, i int) map[string][]byte {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n  \"schema\": \"gitgw.status/v1\",\n  \"node\": %q,\n  \"desired\": \"3a9c1e2f00c0ffee3a9c1e2f00c0ffee3a9c1e2f\",\n  \"applied\": \"3a9c1e2f00c0ffee3a9c1e2f00c0ffee3a9c1e2f\",\n  \"resources\": [\n", node)
	for r := 0; r < 40; r++ {
		state := "ok"
		if r == i%40 {
			state = fmt.Sprintf("drift-%d", i)
		}
		// Per-resource values that do not repeat (pids, memory, unit
		// file hashes), so the JSON does not compress unrealistically well.
		seed := uint32(r*2654435761) ^ uint32(len(node))
		fmt.Fprintf(&b, "    {\"kind\": \"unit\", \"id\": \"app@%d.service\", \"state\": %q, \"active\": \"active\", \"sub\": \"running\", \"pid\": %d, \"memory\": %d, \"unit_sha\": \"%08x%08x\"}",
			8080+r, state, 1000+seed%60000, seed%(512<<20), seed, seed*2246822519)
		if r < 39 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "  ],\n  \"vrrp\": {\"VI_1\": {\"role\": \"MASTER\", \"transitions\": %d}},\n  \"drift_open\": %d\n}\n", i, i%3)
	md := fmt.Sprintf("# %s\n\nApplied 3a9c1e2 (change %d). %d drift items open.\n", node, i, i%3)
	return map[string][]byte{"status.json": []byte(b.String()), "STATUS.md": []byte(md)}
}

type countWriter struct{ n int }

func (c *countWriter) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }

// packBytes is the size of the pack the push of commit h sends to a remote
// that has h's parent (the same objects and encoder as pushRef).
func packBytes(b *testing.B, w *StatusWriter, h plumbing.Hash) int {
	s := w.repo.Storer
	c, err := w.repo.CommitObject(h)
	if err != nil {
		b.Fatal(err)
	}
	parent := plumbing.ZeroHash // the first commit: everything is new
	if len(c.ParentHashes) > 0 {
		parent = c.ParentHashes[0]
	}
	commits, stop, err := newCommits(s, h, parent, nil)
	if err != nil {
		b.Fatal(err)
	}
	hashes, err := objectsToSend(s, commits, stop, nil)
	if err != nil {
		b.Fatal(err)
	}
	var cw countWriter
	if _, err := packfile.NewEncoder(&cw, s, false).Encode(hashes, 10); err != nil {
		b.Fatal(err)
	}
	return cw.n
}

func measureStatusToRemote(b *testing.B, name string, r *gitremote.Repo, opts StatusOptions) {
	ctx := testCtx(b)
	w := startWriter(b, opts)
	refFile := filepath.Join(r.Dir, "refs", "heads", "gitgw", "status", opts.Node)
	remoteHead := func() string {
		c, _ := os.ReadFile(refFile)
		return strings.TrimSpace(string(c))
	}
	const changes = 20
	var lat []time.Duration
	var bytes []int
	for i := 1; i <= changes; i++ {
		t0 := time.Now()
		if ok, err := w.Write(ctx, benchStatus(opts.Node, i), Message{Subject: fmt.Sprintf("drift(%s): change %d", opts.Node, i)}); err != nil || !ok {
			b.Fatalf("write %d: %v %v", i, ok, err)
		}
		head := w.State().Head
		deadline := time.Now().Add(time.Minute)
		for remoteHead() != head {
			if time.Now().After(deadline) {
				b.Fatalf("change %d not on the remote after a minute: %v", i, w.State().LastError)
			}
			time.Sleep(time.Millisecond)
		}
		lat = append(lat, time.Since(t0))
		bytes = append(bytes, packBytes(b, w, plumbing.NewHash(head)))
	}
	l := summarize(lat)
	slices.Sort(bytes)
	fmt.Printf("\n(status.json %d B, STATUS.md %d B per commit)", len(benchStatus(opts.Node, 1)["status.json"]), len(benchStatus(opts.Node, 1)["STATUS.md"]))
	fmt.Printf("\n%-40s %10s %10s %10s %14s\n", "change → status commit on the remote", "median", "min", "max", "pack B/commit")
	fmt.Printf("%-40s %10s %10s %10s %8d (%d-%d)\n", name+fmt.Sprintf(" (%d changes)", changes), ms(l.med), ms(l.lo), ms(l.hi),
		bytes[len(bytes)/2], bytes[0], bytes[len(bytes)-1])
	b.ReportMetric(float64(l.med)/float64(time.Millisecond), "ms-median")
	b.ReportMetric(float64(l.hi)/float64(time.Millisecond), "ms-max")
	b.ReportMetric(float64(bytes[len(bytes)/2]), "pack-bytes/commit")
}

// BenchmarkStatusToRemoteLocal: Write until the commit is on a local bare
// repository, and the bytes each push carries.
func BenchmarkStatusToRemoteLocal(b *testing.B) {
	gitremote.RequireGit(b)
	r := gitremote.NewBare(b)
	r.Commit(b, "main", map[string]string{"site.cue": "a: 1\n"}, "site")
	measureStatusToRemote(b, "local", r, StatusOptions{Node: "gw1", URL: r.Dir})
}

// BenchmarkStatusToRemoteSSH: the same through an sshd on 127.0.0.1.
func BenchmarkStatusToRemoteSSH(b *testing.B) {
	gitremote.RequireGit(b)
	r := gitremote.NewBare(b)
	r.Commit(b, "main", map[string]string{"site.cue": "a: 1\n"}, "site")
	sshd := gitremote.StartSSHD(b)
	measureStatusToRemote(b, "ssh", r, StatusOptions{
		Node: "gw1", URL: sshd.URL(r.Dir), SSHKeyFile: sshd.ClientKey, KnownHostsFile: sshd.KnownHosts,
	})
}

func fleetFixture(b *testing.B, nodes int) *gitremote.Repo { return fleetFixtureT(b, nodes) }

func fleetFixtureT(b testing.TB, nodes int) *gitremote.Repo {
	r := gitremote.NewBare(b)
	r.Commit(b, "main", map[string]string{"site.cue": "a: 1\n"}, "site")
	branches := map[string]map[string]string{}
	for n := 0; n < nodes; n++ {
		node := fmt.Sprintf("gw%04d", n)
		files := map[string]string{}
		for k, v := range benchStatus(node, n) {
			files[k] = string(v)
		}
		branches[DefaultStatusPrefix+node] = files
	}
	r.ImportBranches(b, branches, "apply(node): 3a9c1e2, 4 changes\n\nGitgw-Applied: 3a9c1e2\nGitgw-Drift: none\n")
	return r
}

func measureFleet(b *testing.B, name, metric string, nodes int, opts ReadOptions) {
	measureFleetEach(b, name, metric, nodes, func() ReadOptions { return opts })
}

// measureFleetEach is measureFleet with the options of each round from
// next, called untimed before it.
func measureFleetEach(b *testing.B, name, metric string, nodes int, next func() ReadOptions) {
	ctx := testCtx(b)
	var d, cpu []time.Duration
	for i := 0; i < 5; i++ {
		opts := next()
		t0, c0 := time.Now(), selfCPU()
		got, err := ReadStatusBranches(ctx, opts)
		if err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(t0))
		cpu = append(cpu, selfCPU()-c0)
		if len(got) != nodes || len(got[0].Files["status.json"]) < 1000 {
			b.Fatalf("read %d branches", len(got))
		}
	}
	s := summarize(d)
	fmt.Printf("\n%-44s %10s %10s %10s\n", fmt.Sprintf("ReadStatusBranches, %d branches", nodes), "median", "min", "max")
	fmt.Printf("%-44s %10s %10s %10s\n", name, ms(s.med), ms(s.lo), ms(s.hi))
	// CPU time is steadier than wall time on a shared, loaded box.
	fmt.Printf("%-44s %10s\n", "  its CPU time (user+system), median", ms(summarize(cpu).med))
	b.ReportMetric(float64(s.med)/float64(time.Millisecond), metric)
}

// selfCPU is this process's CPU time so far (user and system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// unpack turns a repository's packs into loose objects: what a server
// holds between garbage collections after many small pushes.
func unpack(b testing.TB, dir string) {
	packs, _ := filepath.Glob(filepath.Join(dir, "objects", "pack", "*.pack"))
	for _, p := range packs {
		moved := filepath.Join(b.TempDir(), filepath.Base(p))
		if err := os.Rename(p, moved); err != nil {
			b.Fatal(err)
		}
		_ = os.Remove(strings.TrimSuffix(p, ".pack") + ".idx")
		f, err := os.Open(moved)
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command("git", "-C", dir, "unpack-objects", "-q")
		cmd.Stdin = f
		out, err := cmd.CombinedOutput()
		f.Close()
		if err != nil {
			b.Fatalf("unpack-objects: %v: %s", err, out)
		}
	}
}

// BenchmarkReadStatusBranches1000: the fleet view's read of 1,000 status
// branches from a local repository, packed (after a gc) and loose (as
// pushes leave them).
func BenchmarkReadStatusBranches1000(b *testing.B) {
	gitremote.RequireGit(b)
	r := fleetFixture(b, 1000)
	measureFleet(b, "local repository (packed)", "ms-median-packed", 1000, ReadOptions{URL: r.Dir})
	unpack(b, r.Dir)
	measureFleet(b, "local repository (loose objects)", "ms-median-loose", 1000, ReadOptions{URL: r.Dir})
}

// BenchmarkReadStatusBranches1000SSH: the same over ssh, fetched into
// memory each time.
func BenchmarkReadStatusBranches1000SSH(b *testing.B) {
	gitremote.RequireGit(b)
	r := fleetFixture(b, 1000)
	sshd := gitremote.StartSSHD(b)
	measureFleet(b, "ssh, fetched into memory", "ms-median", 1000, ReadOptions{
		URL: sshd.URL(r.Dir), SSHKeyFile: sshd.ClientKey, KnownHostsFile: sshd.KnownHosts,
	})
}

// BenchmarkNoopSync1000Branches: a poll that finds nothing new, in a
// repository that also holds 1,000 nodes' status branches (all advertised
// to every fetch: go-git speaks protocol v0 only).
func BenchmarkNoopSync1000Branches(b *testing.B) {
	gitremote.RequireGit(b)
	r := fleetFixture(b, 1000)
	rows := []struct {
		name string
		opts func() Options
	}{
		{"local", func() Options { return Options{URL: r.Dir} }},
		{"ssh", func() Options {
			sshd := gitremote.StartSSHD(b)
			return Options{URL: sshd.URL(r.Dir), SSHKeyFile: sshd.ClientKey, KnownHostsFile: sshd.KnownHosts}
		}},
	}
	fmt.Printf("\n%-44s %10s %10s %10s\n", "no-op Sync, 1,000 other branches (20 polls)", "median", "min", "max")
	for _, row := range rows {
		s := openSource(b, row.opts())
		ctx := testCtx(b)
		if _, err := s.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		var d []time.Duration
		for i := 0; i < 20; i++ {
			t0 := time.Now()
			if _, err := s.Sync(ctx); err != nil {
				b.Fatal(err)
			}
			d = append(d, time.Since(t0))
		}
		sm := summarize(d)
		fmt.Printf("%-44s %10s %10s %10s\n", row.name, ms(sm.med), ms(sm.lo), ms(sm.hi))
		b.ReportMetric(float64(sm.med)/float64(time.Millisecond), "ms-median-"+row.name)
	}
}

// BenchmarkStatusPushGrowth: the cost of one status push (Write + Flush)
// to a local repository holding 1,000 other nodes' branches, when this
// node's branch has 1 and then 1,000 commits behind it. go-git's own push
// would walk every advertised branch's history; pushRef does not.
func BenchmarkStatusPushGrowth(b *testing.B) {
	gitremote.RequireGit(b)
	r := fleetFixture(b, 1000)
	// Refs packed, as after a gc: 1,000 loose ref files make git's
	// receive-pack itself several times slower.
	if _, err := gitremote.Git(r.Dir, "pack-refs", "--all"); err != nil {
		b.Fatal(err)
	}
	ctx := testCtx(b)
	w, err := NewStatusWriter(ctx, StatusOptions{Node: "bench", URL: r.Dir, Dir: filepath.Join(b.TempDir(), "status.git")})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	measure := func(label string, from int) time.Duration {
		var d []time.Duration
		for i := 0; i < 20; i++ {
			if _, err := w.Write(ctx, benchStatus("bench", from+i), Message{Subject: fmt.Sprintf("change %d", from+i)}); err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			if err := w.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			d = append(d, time.Since(t0))
		}
		s := summarize(d)
		fmt.Printf("%-48s %10s %10s %10s\n", label, ms(s.med), ms(s.lo), ms(s.hi))
		return s.med
	}
	fmt.Printf("\n%-48s %10s %10s %10s\n", "one status push, 1,000 other branches (packed)", "median", "min", "max")
	short := measure("branch history ~20 commits", 0)
	for i := 20; i < 1000; i++ { // grow the history locally, one push at the end
		if _, err := w.Write(ctx, benchStatus("bench", 10000+i), Message{Subject: "filler"}); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	long := measure("branch history ~1,000 commits", 20000)
	b.ReportMetric(float64(short)/float64(time.Millisecond), "ms-median-short")
	b.ReportMetric(float64(long)/float64(time.Millisecond), "ms-median-long")
}
