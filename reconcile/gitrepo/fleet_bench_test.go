package gitrepo

// Benchmarks of a fleet's cost to its Git server (issue 19): the size of a
// year of status history with and without the bound, fleet reads over
// 10,000 status branches, and 1,000 agents pushing and polling against one
// real Git server process (git http-backend). The box is shared and noisy:
// every timing is a median, and the figures are printed for the record.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/gitgw/gitgw/test/gitremote"
)

// yearRate is the status commits a node makes a day in the size benchmark:
// one an hour on average. A node commits on a change only (coalesced over
// 5 s): the applies of a site that changes a few times a day, each
// reported once applied and once baked, the drift an hourly resync finds
// and corrects, failovers, holds. The 100 a day is a node in a
// bad week; the per-commit size below scales either.
const yearRate = 24

// envInt is an integer from the environment, or def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// simulateYear writes a year of one node's status changes through a real
// StatusWriter (signed, the fold on the bound as the agent runs it after
// its pushes), pushes the result once and returns the server's size after
// its gc, and the commits on the branch.
func simulateYear(b *testing.B, r *gitremote.Repo, key, node string, historyCommits int) int {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	w, err := NewStatusWriter(ctx, StatusOptions{Node: node, URL: r.Dir, Dir: filepath.Join(b.TempDir(), "status.git"),
		SigningKeyFile: key, HistoryCommits: historyCommits, HistoryAge: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	n := yearRate * 365
	for i := 0; i < n; i++ {
		if _, err := w.Write(ctx, benchStatus(node, i), Message{Subject: fmt.Sprintf("status(%s): change %d", node, i), Applied: "3a9c1e2"}); err != nil {
			b.Fatal(err)
		}
		// The agent pushes (and folds) after each commit; here every
		// 32 commits, to keep the benchmark short: the branch may grow
		// up to 31 commits past the fold trigger.
		if historyCommits > 0 && i%32 == 31 {
			if err := w.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			w.maintain(ctx)
		}
	}
	if err := w.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	return len(r.Log(b, w.Branch()))
}

// BenchmarkStatusHistoryYear: a year of status commits of NODES simulated
// nodes (default 1, GITGW_BENCH_YEAR_NODES) at yearRate, pushed into a site
// repository with and without the history bound, sized after the server's
// gc and extrapolated to 10,000 nodes (status branches share nothing but
// the per-node site: the size is linear in the nodes). Goal: under 1 GB a
// year at 10,000 nodes.
func BenchmarkStatusHistoryYear(b *testing.B) {
	gitremote.RequireGit(b)
	nodes := envInt("GITGW_BENCH_YEAR_NODES", 1)
	key, _ := gitremote.SSHSigningKey(b, b.TempDir(), "gw")
	type result struct {
		name    string
		commits int
		bytes   int64
	}
	var res []result
	for _, mode := range []struct {
		name    string
		commits int
	}{{"unbounded", -1}, {fmt.Sprintf("bounded %d", DefaultHistoryCommits), DefaultHistoryCommits}} {
		r := gitremote.NewBare(b)
		commits := 0
		for n := 0; n < nodes; n++ {
			commits += simulateYear(b, r, key, fmt.Sprintf("gw%05d", n), mode.commits)
		}
		r.GC(b)
		res = append(res, result{mode.name, commits / nodes, r.Size(b) / int64(nodes)})
	}
	fmt.Printf("\nstatus history after a year at %d commits/node/day (%d commits), signed, server gc'd; %d nodes simulated\n", yearRate, yearRate*365, nodes)
	fmt.Printf("%-16s %14s %14s %14s %18s\n", "history", "commits/node", "bytes/node", "bytes/commit", "10,000 nodes")
	for _, x := range res {
		fmt.Printf("%-16s %14d %14d %14d %15.2f GB\n", x.name, x.commits, x.bytes, x.bytes/int64(max(x.commits, 1)), float64(x.bytes)*10000/1e9)
	}
	b.ReportMetric(float64(res[0].bytes)*10000/1e9, "GB/year-10k-unbounded")
	b.ReportMetric(float64(res[1].bytes)*10000/1e9, "GB-10k-bounded")
}

// fleetFixtureAlive is fleetFixtureT plus every node's alive ref.
func fleetFixtureAlive(b testing.TB, nodes int) *gitremote.Repo {
	r := fleetFixtureT(b, nodes)
	refs := map[string]map[string]string{}
	for n := 0; n < nodes; n++ {
		refs[AliveRefPrefix+fmt.Sprintf("gw%04d", n)] = map[string]string{}
	}
	r.ImportRefs(b, refs, "alive(node)\n\nGitgw-Alive-Bound: 3m0s\nGitgw-Applied: 3a9c1e2\nGitgw-Agent-Version: bench\n")
	return r
}

// BenchmarkReadStatusBranches10000: the fleet read (status.json only, as
// `gitgw fleet` reads) over 10,000 nodes' status branches and alive refs,
// in place and through a real Git server (https, git http-backend): into a
// cache cold (a first read), warm (nothing moved; every alive ref moved, as
// between reads a minute apart), and into memory. Goal: ≤ 2 s.
func BenchmarkReadStatusBranches10000(b *testing.B) {
	const nodes = 10000
	r := fleetFixtureAlive(b, nodes)
	measureFleet(b, "local, in place", "ms/read-10000", nodes, ReadOptions{URL: r.Dir, Files: []string{"status.json"}})
	got, err := ReadStatusBranches(testCtx(b), ReadOptions{URL: r.Dir, Files: []string{"status.json"}})
	if err != nil || got[nodes-1].Alive == nil {
		b.Fatalf("alive refs not read: %v", err)
	}

	srv := gitremote.StartHTTPS(b, filepath.Dir(r.Dir), "tok")
	token := filepath.Join(b.TempDir(), "token")
	if err := os.WriteFile(token, []byte("tok\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	opts := ReadOptions{URL: srv.RepoURL(b, r.Dir), TokenFile: token, CAFile: srv.CAFile, Files: []string{"status.json"},
		CacheDir: filepath.Join(b.TempDir(), "fleet.git")}
	measureFleetEach(b, "over https, cold cache (first read)", "ms/read-10000-https-cold", nodes, func() ReadOptions {
		cold := opts
		cold.CacheDir = filepath.Join(b.TempDir(), "cold.git")
		return cold
	})
	if _, err := ReadStatusBranches(testCtx(b), opts); err != nil {
		b.Fatal(err)
	}
	measureFleet(b, "over https, warm cache, nothing moved", "ms/read-10000-https", nodes, opts)
	// Every node refreshes its alive ref every minute: reads a minute
	// apart find them all moved.
	moves := 0
	aliveRefs := map[string]map[string]string{}
	for n := 0; n < nodes; n++ {
		aliveRefs[AliveRefPrefix+fmt.Sprintf("gw%04d", n)] = map[string]string{}
	}
	measureFleetEach(b, "over https, warm cache, all alive refs moved", "ms/read-10000-https-alive-moved", nodes, func() ReadOptions {
		moves++
		r.ImportRefs(b, aliveRefs, fmt.Sprintf("alive(node)\n\nGitgw-Alive-Bound: 3m0s\nGitgw-Applied: 3a9c1e2\nGitgw-Agent-Version: bench %d\n", moves))
		return opts
	})
	noCache := opts
	noCache.CacheDir = ""
	measureFleet(b, "over https, no cache (into memory)", "ms/read-10000-https-nocache", nodes, noCache)

	// What one agent's poll of this repository costs (the ref
	// advertisement, all of it: go-git speaks protocol v0 only): the
	// status branches and alive refs of 10,000 nodes in the site
	// repository make every poll carry them.
	bytes, cpu := pollCost(b, srv, opts.URL, token)
	b.ReportMetric(float64(bytes), "B/poll-10000")
	b.ReportMetric(float64(cpu)/1e6, "ms-server-cpu/poll-10000")
}

// BenchmarkReadStatusHistory10000: the fleet read over https of 10,000
// status branches that have a history (GITGW_BENCH_HISTORY commits each,
// default 8; the bound keeps up to DefaultHistoryCommits), with no cache:
// what `gitgw fleet` pays for a remote it has not read before. A read
// fetches the heads only (depth 1), so the history costs it nothing.
func BenchmarkReadStatusHistory10000(b *testing.B) {
	const nodes = 10000
	commits := envInt("GITGW_BENCH_HISTORY", 8)
	r := gitremote.NewBare(b)
	names := make([]string, nodes)
	for n := range names {
		names[n] = DefaultStatusPrefix + fmt.Sprintf("gw%04d", n)
	}
	r.ImportHistory(b, names, commits, func(branch string, i int) map[string]string {
		files := map[string]string{}
		for k, v := range benchStatus(strings.TrimPrefix(branch, DefaultStatusPrefix), i) {
			files[k] = string(v)
		}
		return files
	}, "apply(node): 3a9c1e2, 4 changes\n\nGitgw-Applied: 3a9c1e2\nGitgw-Drift: none\n")
	srv := gitremote.StartHTTPS(b, filepath.Dir(r.Dir), "tok")
	token := filepath.Join(b.TempDir(), "token")
	if err := os.WriteFile(token, []byte("tok\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	opts := ReadOptions{URL: srv.RepoURL(b, r.Dir), TokenFile: token, CAFile: srv.CAFile, Files: []string{"status.json"}}
	before := srv.Stats()
	measureFleet(b, fmt.Sprintf("over https, %d commits a branch, no cache", commits), "ms/read-10000-history-https", nodes, opts)
	d := srv.Stats().Sub(before)
	fmt.Printf("  the server sent %d bytes a read, %s CPU\n", d.BytesOut/5, ms(d.CPU/5))
	b.ReportMetric(float64(d.BytesOut)/5/1e6, "MB-served/read")
}

// pollCost is what one agent's poll of url costs its server (mean of 10):
// the bytes the server sends and its CPU.
func pollCost(b *testing.B, srv *gitremote.HTTPS, url, token string) (int64, time.Duration) {
	ra, err := Credentials{TokenFile: token, CAFile: srv.CAFile}.access(url)
	if err != nil {
		b.Fatal(err)
	}
	rem := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{url}})
	const polls = 10
	before := srv.Stats()
	t0 := time.Now()
	for i := 0; i < polls; i++ {
		if _, err := rem.ListContext(testCtx(b), &git.ListOptions{Auth: ra.auth, CABundle: ra.caBundle}); err != nil {
			b.Fatal(err)
		}
	}
	wall := time.Since(t0) / polls
	d := srv.Stats().Sub(before)
	fmt.Printf("a poll of %s: %d bytes, %s server CPU, %s wall\n", url, d.BytesOut/polls, ms(d.CPU/polls), ms(wall))
	return d.BytesOut / polls, d.CPU / polls
}

// BenchmarkPollSiteRepo: a poll of a site repository that holds the site
// only (the status branches in a repository of their own, --status-repo),
// the peer of the 10,000-node poll in BenchmarkReadStatusBranches10000.
func BenchmarkPollSiteRepo(b *testing.B) {
	r := gitremote.NewBare(b)
	r.Commit(b, "main", map[string]string{"site.cue": "package site\n"}, "site")
	srv := gitremote.StartHTTPS(b, filepath.Dir(r.Dir), "tok")
	token := filepath.Join(b.TempDir(), "token")
	if err := os.WriteFile(token, []byte("tok\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	bytes, cpu := pollCost(b, srv, srv.RepoURL(b, r.Dir), token)
	b.ReportMetric(float64(bytes), "B/poll")
	b.ReportMetric(float64(cpu)/1e6, "ms-server-cpu/poll")
}

// BenchmarkAgents1000 runs 1,000 simulated agents (the StatusWriter and
// Source code paths, one process, real concurrency) against one Git server
// process per request (git http-backend behind https): each agent pushes
// two status commits at random times within a window, then every agent
// polls the site. It checks no status commit is lost and reports the push
// latency (p50, p99), the server's CPU per push and per poll, and the bytes
// a poll costs with the status branches in the site repository and in a
// repository of their own (--status-repo).
func BenchmarkAgents1000(b *testing.B) {
	gitremote.RequireGit(b)
	agents := envInt("GITGW_BENCH_AGENTS", 1000)
	const perAgent = 2
	window := time.Duration(envInt("GITGW_BENCH_WINDOW_S", 60)) * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	root := b.TempDir()
	site := &gitremote.Repo{Dir: filepath.Join(root, "site.git")}
	if _, err := gitremote.Git("", "init", "-q", "--bare", "-b", "main", site.Dir); err != nil {
		b.Fatal(err)
	}
	site.Commit(b, "main", map[string]string{"site.cue": "a: 1\n"}, "site")
	alone := &gitremote.Repo{Dir: filepath.Join(root, "alone.git")}
	if _, err := gitremote.Git("", "init", "-q", "--bare", "-b", "main", alone.Dir); err != nil {
		b.Fatal(err)
	}
	alone.Commit(b, "main", map[string]string{"site.cue": "a: 1\n"}, "site")
	srv := gitremote.StartHTTPS(b, root, "tok")
	token := filepath.Join(b.TempDir(), "token")
	if err := os.WriteFile(token, []byte("tok\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	url := srv.RepoURL(b, site.Dir)

	writers := make([]*StatusWriter, agents)
	for i := range writers {
		w, err := NewStatusWriter(ctx, StatusOptions{Node: fmt.Sprintf("gw%04d", i), URL: url, TokenFile: token, CAFile: srv.CAFile,
			Dir: filepath.Join(root, "agents", strconv.Itoa(i), "status.git"), PushTimeout: 2 * time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		writers[i] = w
	}
	before := srv.Stats()
	var mu sync.Mutex
	var lat []time.Duration
	var failed []error
	var wg sync.WaitGroup
	start := time.Now()
	for _, w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at := []time.Duration{rand.N(window), rand.N(window)}
			slices.Sort(at)
			for k, d := range at {
				time.Sleep(time.Until(start.Add(d)))
				if _, err := w.Write(ctx, statusFiles(w.opts.Node, k), Message{Subject: fmt.Sprintf("status(%s): change %d", w.opts.Node, k)}); err != nil {
					b.Error(err)
					return
				}
				t0 := time.Now()
				// A failed push is retried by the agent's Run with backoff;
				// here the same push is retried until it lands.
				var err error
				for try := 0; try < 20; try++ {
					if err = w.Flush(ctx); err == nil {
						break
					}
					time.Sleep(Jitter(500*time.Millisecond, 0.5))
				}
				mu.Lock()
				if err != nil {
					failed = append(failed, err)
				}
				lat = append(lat, time.Since(t0))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	pushes := srv.Stats().Sub(before)
	pushTook := time.Since(start)
	if len(failed) > 0 {
		b.Fatalf("%d pushes failed, first: %v", len(failed), failed[0])
	}
	// No status commit lost: every branch holds both commits, the head the
	// writer's.
	out, err := gitremote.Git(site.Dir, "for-each-ref", "--format=%(refname:lstrip=2) %(objectname)", "refs/heads/gitgw/status/")
	if err != nil {
		b.Fatal(err)
	}
	heads := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		name, h, _ := strings.Cut(l, " ")
		heads[name] = h
	}
	for _, w := range writers {
		if heads[w.Branch()] != w.State().Head {
			b.Fatalf("%s: remote %s, local %s: a status commit was lost", w.Branch(), heads[w.Branch()], w.State().Head)
		}
	}
	if n, _ := gitremote.Git(site.Dir, "rev-list", "--count", "--branches=gitgw/status/*"); n != strconv.Itoa(agents*perAgent) {
		b.Fatalf("server holds %s status commits, want %d", n, agents*perAgent)
	}
	slices.Sort(lat)

	// Polls: every agent's Source, one poll each spread over the window
	// (the first fetches the site), then the measured round: nothing new.
	poll := func(repo *gitremote.Repo, label string) (gitremote.ServerStats, time.Duration, int) {
		srcs := make([]*Source, agents)
		for i := range srcs {
			s, err := Open(ctx, Options{URL: srv.RepoURL(b, repo.Dir), Ref: "main", TokenFile: token, CAFile: srv.CAFile,
				Dir: filepath.Join(root, "agents", strconv.Itoa(i), "src-"+label)})
			if err != nil {
				b.Fatal(err)
			}
			srcs[i] = s
		}
		round := func() (gitremote.ServerStats, time.Duration, int) {
			var lmu sync.Mutex
			retried := 0
			var plat []time.Duration
			before := srv.Stats()
			var wg sync.WaitGroup
			for _, s := range srcs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					time.Sleep(rand.N(window / 3))
					t0 := time.Now()
					// A poll that fails (a server too busy to finish a
					// TLS handshake in 10 s) is the agent's next poll's
					// to do: asked again after a jittered pause, and
					// counted.
					var err error
					for try := 0; try < 5; try++ {
						if _, err = s.Sync(ctx); err == nil {
							break
						}
						lmu.Lock()
						retried++
						lmu.Unlock()
						time.Sleep(Jitter(window/6, 0.5))
					}
					if err != nil {
						b.Errorf("a poll failed 5 times: %v", err)
					}
					lmu.Lock()
					plat = append(plat, time.Since(t0))
					lmu.Unlock()
				}()
			}
			wg.Wait()
			slices.Sort(plat)
			return srv.Stats().Sub(before), plat[len(plat)/2], retried
		}
		round() // first poll: fetches the site
		return round()
	}
	withStatus, latStatus, retriedStatus := poll(site, "site")
	own, latOwn, retriedOwn := poll(alone, "alone")

	fmt.Printf("\n%d agents against one git http-backend over https (a git process per request), %d status pushes in %s\n", agents, len(lat), window)
	fmt.Printf("  push latency: p50 %s  p99 %s  max %s  (all %d pushes took %s)\n", ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]), ms(lat[len(lat)-1]), len(lat), pushTook.Round(time.Millisecond))
	fmt.Printf("  server per push: %.1f ms CPU, %.1f requests\n", float64(pushes.CPU)/float64(len(lat))/1e6, float64(pushes.Requests)/float64(len(lat)))
	for _, p := range []struct {
		label   string
		st      gitremote.ServerStats
		lat     time.Duration
		retried int
	}{{fmt.Sprintf("site repository with %d status branches", agents), withStatus, latStatus, retriedStatus},
		{"site repository alone (--status-repo elsewhere)", own, latOwn, retriedOwn}} {
		fmt.Printf("  poll, %s: %.1f ms server CPU, %d bytes, %.1f requests per poll; median poll %s; %d polls failed and were asked again\n", p.label,
			float64(p.st.CPU)/float64(agents)/1e6, p.st.BytesOut/int64(agents), float64(p.st.Requests)/float64(agents), ms(p.lat), p.retried)
	}
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "ms-p99-push")
	b.ReportMetric(float64(withStatus.CPU)/float64(agents)/1e6, "ms-cpu/poll")
}
