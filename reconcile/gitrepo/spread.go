package gitrepo

// Fetch spread. When a commit lands on the tracked branch, every node sees
// it at its next poll, within one poll interval, and fetches it: with
// 10,000 nodes that is thousands of pack negotiations in a few seconds. A
// rollout's waves already hold most nodes back, so the fetch itself may
// wait too: each node delays it by an offset in [0, FetchSpread) that is
// fixed for a (node, commit) pair, so the fleet's fetches of one commit
// spread evenly over the window, and a node that restarts keeps its slot.
// Polls stay cheap while a fetch waits: one ref advertisement each.

import (
	"context"
	"hash/fnv"
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

// spreadWait, before a fetch, asks the remote where the branch points and
// says whether the fetch must wait (the branch moved to a commit this node
// saw less than its offset ago). The first fetch of a Source never waits:
// a new node has nothing to run.
func (s *Source) spreadWait(ctx context.Context) (bool, error) {
	if s.opts.FetchSpread <= 0 || isLocal(s.opts.URL) {
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
		s.spreadTip = tip
		s.spreadAt = now.Add(spreadOffset(s.opts.Node, tip, s.opts.FetchSpread))
		if now.Before(s.spreadAt) {
			s.log.Info("new commit; fetch spread over the fleet", "commit", short(tip.String()), "fetch_in", s.spreadAt.Sub(now).Round(time.Millisecond))
		}
	}
	return now.Before(s.spreadAt), nil
}
