package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
)

func labSite(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../examples/lab")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCheckStart: only what no retry can fix stops the start.
func TestCheckStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	lab, err := StaticDir(labSite(t))
	if err != nil {
		t.Fatal(err)
	}
	// A remote nobody answers on: a network error, retried by the loop.
	down, err := NewGitSource(ctx, gitrepo.Options{URL: "https://127.0.0.1:1/site.git", Dir: t.TempDir(), Site: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		src  Source
		node string
		want []string // nil: the agent starts
	}{
		{"node in the site", lab, "gw1", nil},
		{"node not in the site", lab, "gw9", []string{`node "gw9" is not declared in the site`, "gw1, gw2", "--node"}},
		{"remote unreachable", down, "gw9", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckStart(ctx, tc.src, tc.node, nil, nil)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("CheckStart = %v, want nil (the loop retries)", err)
				}
				return
			}
			if !errors.Is(err, ErrCannotStart) {
				t.Fatalf("CheckStart = %v, want ErrCannotStart", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
		})
	}
}

// TestCheckStartHostAddresses: the lab's gw1 started on a host that has
// gw2's address refuses to start; on its own address it starts.
func TestCheckStartHostAddresses(t *testing.T) {
	ctx := t.Context()
	lab, err := StaticDir(labSite(t))
	if err != nil {
		t.Fatal(err)
	}
	host := func(a string) func() (map[string][]netip.Prefix, error) {
		return func() (map[string][]netip.Prefix, error) {
			return map[string][]netip.Prefix{"eth0": {netip.MustParsePrefix(a)}}, nil
		}
	}
	if err := CheckStart(ctx, lab, "gw1", host("203.0.113.11/24"), nil); err != nil {
		t.Fatalf("gw1 on its own address: %v", err)
	}
	err = CheckStart(ctx, lab, "gw1", host("203.0.113.12/24"), nil)
	if !errors.Is(err, ErrCannotStart) || !strings.Contains(err.Error(), "--node gw2") {
		t.Fatalf("gw1 on gw2's address: %v, want ErrCannotStart naming gw2", err)
	}
}

// TestRejectedCountsAgree: the log line of a rejected revision and its
// summary count the same errors (a rejection for an unpositioned error is
// one error, not zero beside "1 errors").
func TestRejectedCountsAgree(t *testing.T) {
	var logs bytes.Buffer
	r, err := NewRunner(RunnerOptions{Node: "gw9", StateDir: t.TempDir(), Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	res := r.Pass(context.Background(), Revision{Commit: "c1", Dir: labSite(t)}, PassOptions{})
	if res.Outcome != Rejected || !strings.Contains(res.Summary(), "rejected, 1 error") {
		t.Fatalf("pass: %s", res.Summary())
	}
	var line struct {
		Msg    string `json:"msg"`
		Errors int    `json:"errors"`
	}
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if err := json.Unmarshal([]byte(l), &line); err == nil && strings.HasPrefix(line.Msg, "revision rejected") {
			if line.Errors != 1 {
				t.Errorf("the log counts %d errors, the summary 1: %s", line.Errors, l)
			}
			return
		}
	}
	t.Fatalf("no rejection logged:\n%s", logs.String())
}

// TestStartCheckEvaluationIsTheFirstPass: the agent's start-up check and
// its first pass share one evaluation of the head (HandOn), and the pass
// after that evaluates nothing either (the Runner's cache).
func TestStartCheckEvaluationIsTheFirstPass(t *testing.T) {
	ctx := t.Context()
	src, err := StaticDir(labSite(t))
	if err != nil {
		t.Fatal(err)
	}
	counter := &countingLoad{}
	load := HandOn(counter.load)
	o := loader.Options{Scope: loader.ScopeAuto}
	if err := CheckStartWith(ctx, src, "gw1", load, o, nil, nil); err != nil {
		t.Fatal(err)
	}
	r, err := NewRunner(RunnerOptions{Node: "gw1", StateDir: t.TempDir(), Drivers: []Driver{&applyRecorder{}}, Load: load, Scope: loader.ScopeAuto})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := src.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if res := r.Pass(ctx, rev, PassOptions{}); res.Outcome != Applied && res.Outcome != Unchanged {
			t.Fatalf("pass %d: %s %v", i, res.Outcome, res.Err)
		}
	}
	if n := counter.of(rev.Dir); n != 1 {
		t.Errorf("the head was evaluated %d times by the start-up check and two passes, want 1", n)
	}
}
