package gitrepo

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/gitremote"
)

// A running writer replaces its alive ref, a signed parentless commit,
// without adding to the status branch's history; fleet readers see it
// through a real Git server and call the node stale once it stops
// refreshing past the bound it promised.
func TestAliveRef(t *testing.T) {
	t.Parallel()
	agentID := AgentID{Machine: "0123abcd", Host: "gw-a", Boot: "b007", PID: 4242, StartTicks: 99, Started: time.Date(2026, 12, 6, 6, 0, 0, 0, time.UTC)}
	ctx := testCtx(t)
	rem := startHTTPSRemote(t)
	r := rem.repo
	key, pub := gitremote.SSHSigningKey(t, t.TempDir(), "gw1")
	w, err := NewStatusWriter(ctx, StatusOptions{Node: "gw1", URL: rem.url, TokenFile: rem.token, CAFile: rem.caFile,
		Dir: filepath.Join(t.TempDir(), "status.git"), SigningKeyFile: key,
		AliveInterval: 300 * time.Millisecond, AgentVersion: "v-test", RetryMin: 20 * time.Millisecond, Agent: agentID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(ctx, statusFiles("gw1", 1), Message{Subject: "apply(gw1): 3a9c1e2", Applied: "3a9c1e2"}); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(runCtx); close(done) }()
	stop := func() { cancel(); <-done }
	defer stop()
	defer w.Close()

	const ref = AliveRefPrefix + "gw1"
	aliveHead := func() string { h, _ := gitremote.Git(r.Dir, "rev-parse", "-q", "--verify", ref); return h }
	waitFor(t, time.Minute, "the alive ref with the applied commit", func() bool {
		h := aliveHead()
		if h == "" {
			return false
		}
		msg, _ := gitremote.Git(r.Dir, "log", "-1", "--format=%B", h)
		return CommitTrailers(msg).Get(TrailerApplied) == "3a9c1e2"
	})
	first := aliveHead()
	waitFor(t, time.Minute, "a refresh of the alive ref", func() bool { h := aliveHead(); return h != "" && h != first })
	if parents, _ := gitremote.Git(r.Dir, "rev-list", "--parents", "-n1", aliveHead()); strings.Contains(parents, " ") {
		t.Fatalf("alive commit has parents: %s", parents)
	}
	if n := len(r.Log(t, "gitgw/status/gw1")); n != 1 {
		t.Fatalf("status branch has %d commits after liveness refreshes, want 1", n)
	}
	if b := r.Branches(t, ""); len(b) != 1 {
		t.Fatalf("branches = %v: the alive ref must not be a branch", b)
	}

	read := func() *Alive {
		t.Helper()
		got, err := ReadStatusBranches(ctx, ReadOptions{URL: rem.url, TokenFile: rem.token, CAFile: rem.caFile})
		if err != nil || len(got) != 1 {
			t.Fatalf("read = %+v, %v", got, err)
		}
		if got[0].Alive == nil {
			t.Fatal("no alive ref read")
		}
		return got[0].Alive
	}
	a := read()
	if a.Bound != 900*time.Millisecond || a.Applied != "3a9c1e2" || a.Version != "v-test" || a.Node != "gw1" {
		t.Fatalf("alive = %+v", a)
	}
	if a.Stale(a.Time.Add(800*time.Millisecond)) || !a.Stale(a.Time.Add(time.Second)) {
		t.Fatalf("staleness of %+v wrong around its bound", a)
	}
	if _, err := a.VerifySignedBy(pub); err != nil {
		t.Fatalf("alive commit signature: %v", err)
	}
	gitVerify(t, r.Dir, a.Commit, pub)
	// The agent's identity is in the ref, and ReadAlive reads that one ref
	// (what an agent checks at start), remote and local alike.
	if a.Agent == nil || *a.Agent != agentID {
		t.Fatalf("alive agent = %+v, want %+v", a.Agent, agentID)
	}
	for _, o := range []ReadOptions{{URL: rem.url, TokenFile: rem.token, CAFile: rem.caFile}, {URL: r.Dir}} {
		one, err := ReadAlive(ctx, o, "gw1")
		if err != nil || one == nil || one.Agent == nil || *one.Agent != agentID || one.Bound != a.Bound {
			t.Fatalf("ReadAlive(%s) = %+v, %v", o.URL, one, err)
		}
		if none, err := ReadAlive(ctx, o, "gw9"); none != nil || err != nil {
			t.Fatalf("ReadAlive(%s) of a node with no ref = %+v, %v", o.URL, none, err)
		}
	}
	size, _ := gitremote.Git(r.Dir, "cat-file", "-s", a.Commit)
	t.Logf("a signed alive commit: %s bytes (uncompressed)", size)

	// The agent stops: its alive ref ages past the bound.
	stop()
	last := read()
	waitFor(t, time.Minute, "the stopped node stale", func() bool { return read().Stale(time.Now()) })
	if a := read(); a.Commit != last.Commit {
		t.Fatalf("alive ref moved after the writer stopped: %s, then %s", last.Commit, a.Commit)
	}
	// The replaced alive commits go with the server's gc.
	if len(r.Unreachable(t)) == 0 {
		t.Fatal("no replaced alive commit is unreachable")
	}
	r.GC(t)
	if _, err := gitremote.Git(r.Dir, "cat-file", "-e", first); err == nil {
		t.Fatalf("replaced alive commit %s still on the server after gc", first)
	}
}

func TestAgentIDRoundTrip(t *testing.T) {
	id := AgentID{Machine: "m1", Host: "gw-a", Boot: "b1", PID: 7, StartTicks: 12345, Started: time.Date(2026, 12, 6, 6, 0, 0, 0, time.UTC)}
	back, err := ParseAgentID(id.String())
	if err != nil || back != id {
		t.Fatalf("ParseAgentID(%q) = %+v, %v", id.String(), back, err)
	}
	if _, err := ParseAgentID("machine=m1 pid=x"); err == nil {
		t.Fatal("a bad pid parses")
	}
	if !id.SameBoot(back) || id.SameBoot(AgentID{Machine: "m1", Boot: "b2"}) || (AgentID{}).SameBoot(AgentID{}) {
		t.Fatal("SameBoot wrong")
	}
}
