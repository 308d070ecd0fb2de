package gitrepo

// Fetch spread. When a commit lands on the tracked branch, every node sees
// it at its next poll, within one poll interval, and fetches it: with
// 10,000 nodes that is thousands of pack negotiations in a few seconds. A
// rollout's waves already hold most nodes back, so the fetch itself may
// wait too: each node delays it by an offset in [0, FetchSpread) that is
// fixed for a (node, commit) pair, so the fleet's fetches of one commit
// spread evenly over the window, and a node that restarts keeps its slot.
// Polls stay cheap while a fetch waits: one ref advertisement each.
//
// The window is the site's (site.rollout.fetch_spread, or what its waves
// imply; reconcile/fetchspread.go), set by the agent after each pass from
// the commit the node runs: a node must fetch a commit before it can read
// its settings, so the running commit's setting spreads the fetch of the
// next one. Until then, Options.FetchSpread (--fetch-spread).

import (
	"context"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
)

// spreadOffset is node's delay for fetching tip within spread.
func spreadOffset(node string, tip plumbing.Hash, spread time.Duration) time.Duration {
	if spread <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(node))
	h.Write(tip[:])
	return time.Duration(h.Sum64() % uint64(spread))
}

// SetFetchSpread sets the window over which the fetch of a new commit is
// spread from now on (0: fetch at once). A fetch already waiting keeps its
// place in the fleet's order: its offset is recomputed in the new window
// from when the commit was first seen. Safe to call during a Sync.
func (s *Source) SetFetchSpread(d time.Duration) {
	if d < 0 {
		d = 0
	}
	if old := time.Duration(s.spread.Swap(int64(d))); old != d {
		s.log.Info("fetch spread", "window", d, "previous", old)
	}
}

// FetchSpread is the window in use (SetFetchSpread, else
// Options.FetchSpread).
func (s *Source) FetchSpread() time.Duration { return time.Duration(s.spread.Load()) }

// spreadWait, before a fetch, asks the remote where the branch points and
// says whether the fetch must wait (the branch moved to a commit this node
// saw less than its offset ago). The first fetch of a Source never waits:
// a new node has nothing to run.
func (s *Source) spreadWait(ctx context.Context) (bool, error) {
	spread := s.FetchSpread()
	if spread <= 0 || isLocal(s.opts.URL) {
		return false, nil
	}
	cur, err := s.repo.Storer.Reference(s.local)
	if err != nil {
		return false, nil // nothing fetched yet
	}
	tip, err := s.remoteHead(ctx)
	if err != nil {
		return false, err
	}
	if tip == cur.Hash() {
		return true, nil // nothing new: no fetch needed either
	}
	now := time.Now()
	if tip != s.spreadTip {
		s.spreadTip, s.spreadSeen = tip, now
		if off := spreadOffset(s.opts.Node, tip, spread); off > 0 {
			s.log.Info("new commit; fetch spread over the fleet", "commit", short(tip.String()),
				"fetch_in", off.Round(time.Millisecond), slog.Duration("window", spread))
		}
	}
	return now.Before(s.spreadSeen.Add(spreadOffset(s.opts.Node, tip, spread))), nil
}

// DefaultFetchSpread is Options.FetchSpread, the window when the site
// sets none.
func (s *Source) DefaultFetchSpread() time.Duration { return s.opts.FetchSpread }
