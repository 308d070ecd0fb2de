package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile/drift"
)

// viewOf builds the node view of name in a site of VRRP instances given as
// instance → node → priority.
func viewOf(name string, instances map[string]map[string]int, ro spec.Rollout) *spec.Node {
	n := &spec.Node{Name: name, Site: spec.SiteSettings{Rollout: ro}, VRRP: map[string]spec.VRRPInstance{}}
	for in, prios := range instances {
		if _, ok := prios[name]; !ok {
			continue
		}
		v := spec.VRRPInstance{Nodes: map[string]spec.VRRPNode{}}
		for node, p := range prios {
			v.Nodes[node] = spec.VRRPNode{Priority: p}
		}
		n.VRRP[in] = v
	}
	return n
}

func waitNodes(ws []Wait) string {
	var out []string
	for _, w := range ws {
		out = append(out, w.Node)
	}
	return strings.Join(out, ",")
}

func TestWaits(t *testing.T) {
	t.Parallel()
	pairs := spec.Rollout{Pairs: true}
	lab := map[string]map[string]int{"VI_1": {"gw1": 150, "gw2": 100}}
	activeActive := map[string]map[string]int{"VI_1": {"gw1": 150, "gw2": 100}, "VI_2": {"gw1": 100, "gw2": 150}}
	three := map[string]map[string]int{"VI_1": {"a": 200, "b": 150, "c": 100}}
	twoPairs := map[string]map[string]int{"VI_1": {"gw1": 150, "gw2": 100}, "VI_2": {"gw3": 150, "gw4": 100}}
	waves := spec.Rollout{Pairs: true, Waves: []spec.WaveSpec{{Labels: map[string]string{"ring": "canary"}}, {Labels: map[string]string{"ring": "main"}}}}
	labels := map[string]map[string]string{
		"gw1": {"ring": "main"}, "gw2": {"ring": "main"}, "gw3": {"ring": "canary"}, "gw4": {"ring": "canary"}, "gw5": {},
	}
	for _, tc := range []struct {
		name   string
		node   string
		site   map[string]map[string]int
		ro     spec.Rollout
		labels map[string]map[string]string
		want   string
	}{
		{"lab master waits for the backup", "gw1", lab, pairs, nil, "gw2"},
		{"lab backup goes first", "gw2", lab, pairs, nil, ""},
		{"pairs off", "gw1", lab, spec.Rollout{}, nil, ""},
		{"active-active: by name, gw2 waits", "gw2", activeActive, pairs, nil, "gw1"},
		{"active-active: gw1 goes first", "gw1", activeActive, pairs, nil, ""},
		{"three nodes: the master waits for both", "a", three, pairs, nil, "b,c"},
		{"three nodes: the middle waits for the lowest", "b", three, pairs, nil, "c"},
		{"three nodes: the lowest goes first", "c", three, pairs, nil, ""},
		{"waves: canary backup first", "gw4", twoPairs, waves, labels, ""},
		{"waves: canary master waits for its backup", "gw3", twoPairs, waves, labels, "gw4"},
		{"waves: main backup waits for the canary wave", "gw2", twoPairs, waves, labels, "gw3,gw4"},
		{"waves: main master waits for its backup and the canary wave", "gw1", twoPairs, waves, labels, "gw2,gw3,gw4"},
		{"waves: a node in no wave waits for the last one", "gw5", twoPairs, waves, labels, "gw1,gw2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := waitNodes(Waits(viewOf(tc.node, tc.site, tc.ro), tc.labels))
			if got != tc.want {
				t.Fatalf("%s waits for %q, want %q", tc.node, got, tc.want)
			}
		})
	}
	// Exactly one of every pair waits for the other.
	for _, site := range []map[string]map[string]int{lab, activeActive, three, twoPairs} {
		nodes := map[string]bool{}
		for _, in := range site {
			for n := range in {
				nodes[n] = true
			}
		}
		for _, a := range slices.Sorted(maps.Keys(nodes)) {
			for _, b := range peersOf(viewOf(a, site, pairs)) {
				ab, _ := goesFirst(viewOf(a, site, pairs), b)
				ba, _ := goesFirst(viewOf(b, site, pairs), a)
				if ab == ba {
					t.Errorf("%s and %s: both or neither wait (%v)", a, b, ab)
				}
			}
		}
	}
}

func TestRolloutNotesLab(t *testing.T) {
	t.Parallel()
	for node, want := range map[string]string{
		"gw1": "rollout: gw1 waits for gw2 to report a new commit applied and healthy (backup of VI_1 (priority 100 < 150))",
		"gw2": "rollout: gw2 applies a new commit without waiting",
	} {
		_, n, err := loader.LoadWith(context.Background(), "../examples/lab", node, loader.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := RolloutNotes(n, nil); len(got) != 1 || got[0] != want {
			t.Errorf("%s: notes = %q, want %q", node, got, want)
		}
	}
}

// fakePeers is a status branch reader whose content the test changes.
type fakePeers struct {
	mu    sync.Mutex
	st    map[string]drift.Status
	reads int
	// signedBy is the key each node's head commit is signed with.
	signedBy map[string]string
}

func (f *fakePeers) set(node, applied, outcome string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st == nil {
		f.st = map[string]drift.Status{}
	}
	f.st[node] = drift.Status{Node: node, Applied: applied, LastPass: drift.Pass{Outcome: outcome}}
}

func (f *fakePeers) read(context.Context) (map[string]PeerStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	out := map[string]PeerStatus{}
	for node, st := range f.st {
		signed := f.signedBy[node]
		out[node] = PeerStatus{Status: st, SignedBy: func(key string) error {
			switch {
			case signed == "":
				return errors.New("commit is not signed")
			case signed != key:
				return errors.New("unknown key")
			}
			return nil
		}}
	}
	return out, nil
}

func TestRolloutHold(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	lab := map[string]map[string]int{"VI_1": {"gw1": 150, "gw2": 100}}
	prev := &LastGood{Commit: "c1"}
	rev := Revision{Commit: "c2"}
	gw1 := func(ro spec.Rollout) *spec.Node { return viewOf("gw1", lab, ro) }
	type clock struct{ now time.Time }
	newRollout := func(p *fakePeers, c *clock) *Rollout {
		return NewRollout(RolloutOptions{Node: "gw1", Peers: p.read, Timeout: time.Minute, Now: func() time.Time { return c.now }})
	}

	t.Run("first apply and re-apply never wait", func(t *testing.T) {
		p := &fakePeers{}
		r := newRollout(p, &clock{})
		if err := r.Hold(ctx, rev, nil, gw1(spec.Rollout{Pairs: true}), nil); err != nil {
			t.Fatal(err)
		}
		if err := r.Hold(ctx, rev, &LastGood{Commit: "c2"}, gw1(spec.Rollout{Pairs: true}), nil); err != nil {
			t.Fatal(err)
		}
		if p.readsNow() != 0 {
			t.Fatalf("read the peers %d times", p.readsNow())
		}
	})
	t.Run("held until the backup reports the commit applied", func(t *testing.T) {
		p := &fakePeers{}
		c := &clock{now: time.Unix(1000, 0)}
		r := newRollout(p, c)
		ro := spec.Rollout{Pairs: true}
		p.set("gw2", "c1", drift.Converged)
		err := r.Hold(ctx, rev, prev, gw1(ro), nil)
		var he *HoldError
		if !errors.As(err, &he) || he.TimedOut || len(he.Waiting) != 1 || he.Waiting[0].Node != "gw2" {
			t.Fatalf("Hold = %v", err)
		}
		msg := err.Error()
		// Still waiting: the same message (one status commit).
		c.now = c.now.Add(10 * time.Second)
		p.set("gw2", "c2", drift.Rejected)
		if err := r.Hold(ctx, rev, prev, gw1(ro), nil); err == nil || err.Error() != msg {
			t.Fatalf("second Hold = %v, want %q", err, msg)
		}
		p.set("gw2", "c2", drift.Converged)
		if err := r.Hold(ctx, rev, prev, gw1(ro), nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a peer still differing is not healthy", func(t *testing.T) {
		st := drift.Status{Applied: "c2", LastPass: drift.Pass{Outcome: drift.Converged}, Counts: map[string]int{drift.Differs: 1}}
		if Settled(st, "c2") {
			t.Fatal("a node whose resources still differ counts as settled")
		}
		st.Counts = map[string]int{drift.InSync: 3, drift.Pending: 1}
		if !Settled(st, "c2") || Settled(st, "c3") {
			t.Fatal("Settled")
		}
	})
	t.Run("a peer that never reported is not waited for", func(t *testing.T) {
		p := &fakePeers{}
		p.set("gw9", "c0", drift.Converged)
		if err := newRollout(p, &clock{}).Hold(ctx, rev, prev, gw1(spec.Rollout{Pairs: true}), nil); err != nil || p.readsNow() != 1 {
			t.Fatalf("Hold = %v after %d reads", err, p.readsNow())
		}
	})
	t.Run("a commit a peer rolled back is held, whatever the timeout policy", func(t *testing.T) {
		p := &fakePeers{}
		c := &clock{now: time.Unix(1000, 0)}
		r := newRollout(p, c)
		ro := spec.Rollout{Pairs: true, OnTimeout: "proceed"}
		p.set("gw2", "c1", drift.RolledBack)
		p.mu.Lock()
		st := p.st["gw2"]
		st.Desired.Commit = "c2"
		p.st["gw2"] = st
		p.mu.Unlock()
		for _, after := range []time.Duration{0, time.Hour} {
			c.now = c.now.Add(after)
			err := r.Hold(ctx, rev, prev, gw1(ro), nil)
			var he *HoldError
			if !errors.As(err, &he) || len(he.RolledBack) != 1 || !strings.Contains(err.Error(), "gw2 rolled it back") {
				t.Fatalf("after %s: Hold = %v", after, err)
			}
		}
		// Later passes of gw2 refuse the pinned commit: still rolled back.
		st.LastPass = drift.Pass{Outcome: drift.Rejected, Error: ErrPinned.Error() + ": c2 was rolled back"}
		if !RolledBackBy(st, "c2") || RolledBackBy(st, "c3") {
			t.Fatal("RolledBackBy")
		}
	})
	t.Run("waves: labels loaded once per commit", func(t *testing.T) {
		p := &fakePeers{}
		p.set("gw9", "c1", drift.Converged)
		loads := 0
		r := NewRollout(RolloutOptions{Node: "gw1", Peers: p.read, Timeout: time.Minute,
			Labels: func(context.Context, Revision) (map[string]map[string]string, error) {
				loads++
				return map[string]map[string]string{"gw1": {"ring": "main"}, "gw9": {"ring": "canary"}}, nil
			}})
		ro := spec.Rollout{Waves: []spec.WaveSpec{{Labels: map[string]string{"ring": "canary"}}}}
		for range 3 {
			if err := r.Hold(ctx, rev, prev, gw1(ro), nil); !errors.Is(err, ErrHeld) || !strings.Contains(err.Error(), "gw9 (wave 0") {
				t.Fatalf("Hold = %v", err)
			}
		}
		p.set("gw9", "c2", drift.Converged)
		if err := r.Hold(ctx, rev, prev, gw1(ro), nil); err != nil || loads != 1 {
			t.Fatalf("Hold = %v after %d label loads", err, loads)
		}
	})
	t.Run("timeout proceeds", func(t *testing.T) {
		p := &fakePeers{}
		p.set("gw2", "c1", drift.Converged)
		c := &clock{now: time.Unix(1000, 0)}
		r := newRollout(p, c)
		ro := spec.Rollout{Pairs: true, OnTimeout: "proceed"}
		if err := r.Hold(ctx, rev, prev, gw1(ro), nil); !errors.Is(err, ErrHeld) {
			t.Fatalf("Hold = %v", err)
		}
		c.now = c.now.Add(time.Minute)
		if err := r.Hold(ctx, rev, prev, gw1(ro), nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("timeout holds; the site's timeout wins", func(t *testing.T) {
		p := &fakePeers{}
		p.set("gw2", "c1", drift.Converged)
		c := &clock{now: time.Unix(1000, 0)}
		r := newRollout(p, c)
		ro := spec.Rollout{Pairs: true, OnTimeout: "hold", PeerTimeout: spec.Duration(5 * time.Second)}
		if err := r.Hold(ctx, rev, prev, gw1(ro), nil); !errors.Is(err, ErrHeld) {
			t.Fatalf("Hold = %v", err)
		}
		c.now = c.now.Add(5 * time.Second)
		err := r.Hold(ctx, rev, prev, gw1(ro), nil)
		var he *HoldError
		if !errors.As(err, &he) || !he.TimedOut || !strings.Contains(err.Error(), "the site says hold") {
			t.Fatalf("Hold = %v", err)
		}
		// A newer commit starts its own wait.
		if err := r.Hold(ctx, Revision{Commit: "c3"}, prev, gw1(ro), nil); !errors.As(err, &he) || he.TimedOut {
			t.Fatalf("c3: %v", err)
		}
		p.set("gw2", "c3", drift.Converged)
		if err := r.Hold(ctx, Revision{Commit: "c3"}, prev, gw1(ro), nil); err != nil {
			t.Fatal(err)
		}
	})
}

func (f *fakePeers) readsNow() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads
}

func TestNodeLabelsAndWaveNotes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mod, err := os.ReadFile("../examples/lab/cue.mod/module.cue")
	if err != nil {
		t.Fatal(err)
	}
	site := `package site

site: rollout: waves: [{labels: ring: "canary"}]
nodes: {
	gw1: {labels: ring: "main", interfaces: eth0: addresses: ["203.0.113.11/24"]}
	gw2: {labels: ring: "main", interfaces: eth0: addresses: ["203.0.113.12/24"]}
	gw3: {labels: ring: "canary", interfaces: eth0: addresses: ["203.0.113.13/24"]}
}
vrrp: VI_1: {
	interface: "eth0", vrid: 51, version: 3, advert_interval: "100ms"
	nodes: {gw1: priority: 150, gw2: priority: 100}
	vips: ["203.0.113.100/24"]
}
`
	if err := os.MkdirAll(filepath.Join(dir, "cue.mod"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cue.mod", "module.cue"), mod, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "site.cue"), []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	labels, err := NodeLabels(ctx, dir, "gw1")
	if err != nil {
		t.Fatal(err)
	}
	if len(labels) != 3 || labels["gw3"]["ring"] != "canary" {
		t.Fatalf("labels = %v", labels)
	}
	_, n, err := loader.LoadWith(ctx, dir, "gw1", loader.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(RolloutNotes(n, labels), "\n")
	want := "rollout: gw1 waits for gw2 to report a new commit applied and healthy (backup of VI_1 (priority 100 < 150))\n" +
		"rollout: gw1 waits for gw3 to report a new commit applied and healthy (wave 0 (ring=canary) before wave 1)"
	if got != want {
		t.Fatalf("notes:\n%s\nwant:\n%s", got, want)
	}
}

// TestRolloutAuthenticatedPeers: once the site lists status keys, a peer's
// status counts only when signed by the key listed for that peer; an
// unsigned or wrongly signed one, or a missing branch, is treated as not
// reported (held, then on_timeout), with a log line saying why. A forged
// rollback holds nothing either.
func TestRolloutAuthenticatedPeers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	lab := map[string]map[string]int{"VI_1": {"gw1": 150, "gw2": 100}}
	prev := &LastGood{Commit: "c1"}
	rev := Revision{Commit: "c2"}
	view := func(keys map[string]string) *spec.Node {
		n := viewOf("gw1", lab, spec.Rollout{Pairs: true, OnTimeout: "proceed"})
		n.StatusKeys = keys
		return n
	}
	both := map[string]string{"gw1": "key-gw1", "gw2": "key-gw2"}
	type clock struct{ now time.Time }
	setup := func() (*fakePeers, *clock, *Rollout, *syncBuffer) {
		p := &fakePeers{signedBy: map[string]string{}}
		c := &clock{now: time.Unix(1000, 0)}
		var log syncBuffer
		r := NewRollout(RolloutOptions{Node: "gw1", Peers: p.read, Timeout: time.Minute, Now: func() time.Time { return c.now },
			Logger: slog.New(slog.NewTextHandler(&log, nil))})
		return p, c, r, &log
	}
	held := func(t *testing.T, err error, why string) {
		t.Helper()
		var he *HoldError
		if !errors.As(err, &he) || len(he.Waiting) != 1 || !strings.Contains(he.Untrusted["gw2"], why) ||
			!strings.Contains(err.Error(), "status of gw2 not trusted: ") {
			t.Fatalf("Hold = %v; want held, gw2 not trusted: %s", err, why)
		}
	}
	for _, tc := range []struct {
		name     string
		keys     map[string]string
		signedBy string // "" unsigned, "-" no branch at all
		why      string
	}{
		{"unsigned", both, "", "not signed"},
		{"signed by another key", both, "key-mallory", "unknown key"},
		{"no key listed for the peer", map[string]string{"gw1": "key-gw1"}, "key-gw2", "lists no status_key for gw2"},
		{"no status branch", both, "-", "no status branch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, c, r, log := setup()
			if tc.signedBy != "-" {
				p.set("gw2", "c2", drift.Converged) // claims the commit applied and healthy
				p.signedBy["gw2"] = tc.signedBy
			}
			held(t, r.Hold(ctx, rev, prev, view(tc.keys), nil), tc.why)
			c.now = c.now.Add(30 * time.Second)
			held(t, r.Hold(ctx, rev, prev, view(tc.keys), nil), tc.why)
			if n := strings.Count(log.String(), "not signed by its status_key"); n != 1 {
				t.Errorf("%d log lines about gw2's status, want 1:\n%s", n, log.String())
			}
			if !strings.Contains(log.String(), "peer=gw2") || !strings.Contains(log.String(), tc.why) {
				t.Errorf("log does not say why:\n%s", log.String())
			}
			// The timeout applies: on_timeout proceed.
			c.now = c.now.Add(30 * time.Second)
			if err := r.Hold(ctx, rev, prev, view(tc.keys), nil); err != nil {
				t.Fatalf("after the timeout: %v", err)
			}
		})
	}
	t.Run("signed by the peer's key", func(t *testing.T) {
		p, _, r, log := setup()
		p.set("gw2", "c1", drift.Converged)
		p.signedBy["gw2"] = "key-gw2"
		var he *HoldError
		if err := r.Hold(ctx, rev, prev, view(both), nil); !errors.As(err, &he) || len(he.Untrusted) != 0 {
			t.Fatalf("Hold = %v; want held, waiting only", err)
		}
		p.set("gw2", "c2", drift.Converged)
		if err := r.Hold(ctx, rev, prev, view(both), nil); err != nil {
			t.Fatalf("Hold = %v; want released by the signed status", err)
		}
		if strings.Contains(log.String(), "not signed by its status_key") {
			t.Errorf("a signed status logged as untrusted:\n%s", log.String())
		}
	})
	t.Run("a forged rollback holds nothing", func(t *testing.T) {
		p, c, r, _ := setup()
		p.set("gw2", "c1", drift.RolledBack)
		p.mu.Lock()
		st := p.st["gw2"]
		st.Desired.Commit = "c2"
		p.st["gw2"] = st
		p.mu.Unlock()
		var he *HoldError
		if err := r.Hold(ctx, rev, prev, view(both), nil); !errors.As(err, &he) || len(he.RolledBack) != 0 {
			t.Fatalf("Hold = %v; an unsigned rollback counted", err)
		}
		c.now = c.now.Add(time.Minute)
		if err := r.Hold(ctx, rev, prev, view(both), nil); err != nil {
			t.Fatalf("after the timeout: %v", err)
		}
	})
	t.Run("no keys in the site, but the agent verifies signatures", func(t *testing.T) {
		// Push access must not release a master: with verification on, an
		// unsigned status counts as not reported even with no key listed.
		p := &fakePeers{signedBy: map[string]string{}}
		c := &clock{now: time.Unix(1000, 0)}
		var log syncBuffer
		r := NewRollout(RolloutOptions{Node: "gw1", Peers: p.read, Timeout: time.Minute, Now: func() time.Time { return c.now },
			Logger: slog.New(slog.NewTextHandler(&log, nil)), RequireSigned: true})
		p.set("gw2", "c2", drift.Converged) // unsigned, claims the commit applied
		held(t, r.Hold(ctx, rev, prev, view(nil), nil), "lists no status_key for gw2")
		c.now = c.now.Add(time.Minute)
		if err := r.Hold(ctx, rev, prev, view(nil), nil); err != nil {
			t.Fatalf("after the timeout: %v", err)
		}
	})
	t.Run("no keys in the site: as before", func(t *testing.T) {
		p, _, r, _ := setup()
		p.set("gw2", "c2", drift.Converged) // unsigned
		if err := r.Hold(ctx, rev, prev, view(nil), nil); err != nil {
			t.Fatalf("Hold = %v; an unsigned status counts when no key is configured", err)
		}
	})
}
