package reconcile

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
	"github.com/gitgw/gitgw/test/gitremote"
)

// TestFetchSpreadFromRunningCommit: the site's rollout.fetch_spread, in
// the commit the agent runs, reaches the Git source before its next
// fetch; until a commit runs, the source keeps --fetch-spread.
func TestFetchSpreadFromRunningCommit(t *testing.T) {
	remote := gitremote.NewBare(t)
	remote.Commit(t, "main", map[string]string{
		"cue.mod/module.cue": "module: \"example.net/lab@v0\"\nlanguage: version: \"v0.17.0\"\n",
		"site.cue": "package site\n\nnodes: {\n\tgw1: {labels: zone: \"a\", interfaces: eth0: addresses: [\"203.0.113.11/24\"]}\n" +
			"\tgw2: interfaces: eth0: addresses: [\"203.0.113.12/24\"]\n}\n" + labVRRP + "\n" + labServices + "\n" +
			"site: rollout: fetch_spread: \"90s\"\n",
	}, "site")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src, err := NewGitSource(ctx, gitrepo.Options{URL: remote.Dir, Dir: filepath.Join(t.TempDir(), "src"), Node: "gw1", FetchSpread: 7 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRunner(RunnerOptions{Node: "gw1"})
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan Result, 4)
	synced := make(chan time.Duration, 4)
	kick := make(chan struct{}, 1)
	a := NewAgent(AgentOptions{Source: src, Runner: r, Kick: kick,
		OnResult: func(res Result) { results <- res },
		OnSync:   func(time.Time, error) { synced <- src.Repo().FetchSpread() },
	})
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	wait := func(what string) time.Duration {
		select {
		case d := <-synced:
			return d
		case <-time.After(30 * time.Second):
			t.Fatalf("no %s", what)
			return 0
		}
	}
	if d := wait("first sync"); d != 7*time.Second {
		t.Errorf("fetch spread before any commit runs = %v, want the flag's 7s", d)
	}
	select {
	case res := <-results:
		if r.LastGood() == nil || r.LastGood().Commit != res.Commit {
			t.Fatalf("first pass left no last good state: %s, %v", res.Outcome, res.Err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no pass")
	}
	kick <- struct{}{}
	if d := wait("second sync"); d != 90*time.Second {
		t.Errorf("fetch spread once the commit runs = %v, want the site's 90s", d)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestFetchSpreadWindow: the site's setting wins, then --fetch-spread;
// with waves and neither, the nodes after the first wave spread their
// fetch over the bake window, the first wave fetches at once.
func TestFetchSpreadWindow(t *testing.T) {
	d := func(v time.Duration) *spec.Duration { s := spec.Duration(v); return &s }
	node := func(labels map[string]string, fs *spec.Duration, waves bool) *spec.Node {
		n := &spec.Node{Name: "gw", Node: spec.NodeSettings{Labels: labels}}
		n.Site.Bake.Window = spec.Duration(2 * time.Minute)
		n.Site.Rollout.FetchSpread = fs
		if waves {
			n.Site.Rollout.Waves = []spec.WaveSpec{{Labels: map[string]string{"wave": "canary"}}, {Labels: map[string]string{"wave": "rest"}}}
		}
		return n
	}
	canary, rest, none := map[string]string{"wave": "canary"}, map[string]string{"wave": "rest"}, map[string]string{}
	for _, c := range []struct {
		name    string
		desired *spec.Node
		flag    time.Duration
		want    time.Duration
	}{
		{"no commit runs: the flag", nil, 5 * time.Second, 5 * time.Second},
		{"site setting wins over the flag", node(rest, d(30*time.Second), true), 5 * time.Second, 30 * time.Second},
		{"site says at once", node(rest, d(0), true), 5 * time.Second, 0},
		{"flag when the site says nothing", node(rest, nil, true), 5 * time.Second, 5 * time.Second},
		{"first wave: at once", node(canary, nil, true), 0, 0},
		{"later wave: the bake window", node(rest, nil, true), 0, 2 * time.Minute},
		{"in no wave: after the last, the bake window", node(none, nil, true), 0, 2 * time.Minute},
		{"no waves: at once", node(none, nil, false), 0, 0},
	} {
		if got := FetchSpread(c.desired, c.flag); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
