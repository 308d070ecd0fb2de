package reconcile

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// flakySource fails its first fetches, then answers.
type flakySource struct {
	mu    sync.Mutex
	fails int
	rev   Revision
}

func (s *flakySource) Sync(context.Context) (Revision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fails > 0 {
		s.fails--
		return Revision{}, errors.New("fetch: connection refused")
	}
	return s.rev, nil
}
func (s *flakySource) Changes() <-chan struct{} { return nil }
func (s *flakySource) Describe() string         { return "flaky" }

// TestOnSyncReportsFetches: every fetch is reported to OnSync with its
// error, so that status and metrics can say the source cannot be reached.
func TestOnSyncReportsFetches(t *testing.T) {
	dir := t.TempDir()
	writeSite(t, dir, labVRRP, labServices, "")
	r, err := NewRunner(RunnerOptions{Node: "gw1"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []error
	got := make(chan struct{}, 8)
	a := NewAgent(AgentOptions{
		Source: &flakySource{fails: 1, rev: Revision{Commit: "c1", Dir: dir}}, Runner: r,
		OnSync: func(_ time.Time, err error) {
			mu.Lock()
			seen = append(seen, err)
			mu.Unlock()
			got <- struct{}{}
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	for i := 0; i < 2; i++ {
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatalf("fetch %d not reported", i+1)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if seen[0] == nil || seen[1] != nil {
		t.Errorf("OnSync saw %v; want the failure, then a success", seen)
	}
}
