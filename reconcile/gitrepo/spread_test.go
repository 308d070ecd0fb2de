package gitrepo

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
)

// A new commit is fetched no sooner than the node's offset in the spread
// window, polls meanwhile cost one request each (the ref advertisement)
// and return the commit the node has; the first fetch never waits.
func TestFetchSpread(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rem := startHTTPSRemote(t)
	c1 := rem.repo.Commit(t, "main", map[string]string{"site.cue": "a: 1\n"}, "one")
	srv := rem.srv
	const spread = 3 * time.Second
	c2 := rem.repo.Prepare(t, "main", map[string]string{"site.cue": "a: 2\n"}, "two")
	// A node whose offset for c2 is at least a second: the search is
	// deterministic for a given commit.
	node := ""
	for i := 0; node == ""; i++ {
		n := fmt.Sprintf("gw%d", i)
		if spreadOffset(n, plumbing.NewHash(c2), spread) >= time.Second {
			node = n
		}
	}
	off := spreadOffset(node, plumbing.NewHash(c2), spread)
	s, err := Open(ctx, Options{URL: rem.url, TokenFile: rem.token, CAFile: rem.caFile, Dir: filepath.Join(t.TempDir(), "src"),
		Node: node, FetchSpread: spread})
	if err != nil {
		t.Fatal(err)
	}
	if rev, err := s.Sync(ctx); err != nil || rev.Commit != c1 {
		t.Fatalf("first sync = %s, %v; want %s at once", rev.Commit, err, c1)
	}
	rem.repo.Push(t, "main")
	t0 := time.Now()
	before := srv.Stats()
	rev, err := s.Sync(ctx)
	if err != nil || rev.Commit != c1 {
		t.Fatalf("sync right after the push = %s, %v; want %s until the offset %v", rev.Commit, err, c1, off)
	}
	if n := srv.Stats().Sub(before).Requests; n != 1 {
		t.Fatalf("a waiting poll made %d requests, want 1 (the ref advertisement)", n)
	}
	deadline := time.Now().Add(time.Minute)
	for rev.Commit != c2 {
		if time.Now().After(deadline) {
			t.Fatalf("%s not fetched within a minute (offset %v)", c2, off)
		}
		time.Sleep(50 * time.Millisecond)
		if rev, err = s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(t0); took < off {
		t.Fatalf("fetched %v after the push, before the node's offset %v", took, off)
	}
}

// A fleet whose window comes at run time (SetFetchSpread, as the agent
// sets it from the commit it runs, with no --fetch-spread): every node
// fetches a new commit no sooner than its offset in the window, so the
// fleet's fetches spread over it instead of all landing at the first
// poll; a node that may fetch at once does.
func TestFetchSpreadFleet(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rem := startHTTPSRemote(t)
	c1 := rem.repo.Commit(t, "main", map[string]string{"site.cue": "a: 1\n"}, "one")
	c2 := rem.repo.Prepare(t, "main", map[string]string{"site.cue": "a: 2\n"}, "two")
	const spread = 2 * time.Second
	// Nodes early and late in the window (the offsets are fixed for c2).
	var nodes []string
	early, late := 0, 0
	for i := 0; early+late < 8; i++ {
		n := fmt.Sprintf("gw%d", i)
		switch off := spreadOffset(n, plumbing.NewHash(c2), spread); {
		case off < spread/4 && early < 4:
			early++
			nodes = append(nodes, n)
		case off >= spread/2 && late < 4:
			late++
			nodes = append(nodes, n)
		}
	}
	srcs := make([]*Source, len(nodes))
	for i, n := range nodes {
		s, err := Open(ctx, Options{URL: rem.url, TokenFile: rem.token, CAFile: rem.caFile,
			Dir: filepath.Join(t.TempDir(), n), Node: n})
		if err != nil {
			t.Fatal(err)
		}
		if rev, err := s.Sync(ctx); err != nil || rev.Commit != c1 {
			t.Fatalf("%s: first sync = %s, %v; want %s", n, rev.Commit, err, c1)
		}
		s.SetFetchSpread(spread)
		if s.FetchSpread() != spread {
			t.Fatalf("%s: FetchSpread() = %v after SetFetchSpread(%v)", n, s.FetchSpread(), spread)
		}
		srcs[i] = s
	}
	rem.repo.Push(t, "main")
	t0 := time.Now()
	took := make([]time.Duration, len(nodes))
	left := len(nodes)
	deadline := t0.Add(time.Minute)
	for left > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d nodes did not fetch %s within a minute", left, c2)
		}
		for i, s := range srcs {
			if took[i] != 0 {
				continue
			}
			rev, err := s.Sync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if rev.Commit == c2 {
				took[i] = time.Since(t0)
				left--
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i, n := range nodes {
		off := spreadOffset(n, plumbing.NewHash(c2), spread)
		t.Logf("%s: offset %v, fetched after %v", n, off.Round(time.Millisecond), took[i].Round(time.Millisecond))
		if took[i] < off {
			t.Errorf("%s fetched %v after the push, before its offset %v", n, took[i], off)
		}
	}
}
