package gitrepo

// Bounded status history. A status branch gains a commit per change,
// forever: at a fleet's size that is gigabytes a year in the repository
// everyone clones. The node owns its branch, so it may rewrite it: past a
// bound (the last N commits, or D days) the older commits are folded into
// one parentless commit whose tree is the state they ended in and whose
// message says what it replaces; the kept commits are replayed on top of it
// (re-signed, trees unchanged) and the branch is force-pushed, only that
// ref, with a lease on the value this node last pushed. The commits folded
// away become unreferenced on the server and go with its next gc.

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Defaults of the history bound: a month of a busy node's changes stays
// readable in `git log`, and 10,000 nodes keep the repository near a GB
// (see the fleet benchmarks).
const (
	DefaultHistoryCommits = 200
	DefaultHistoryAge     = 30 * 24 * time.Hour
)

// Trailer keys of a fold commit.
const (
	TrailerFoldCount = "Gitgw-Fold-Count"
	TrailerFoldFirst = "Gitgw-Fold-First"
	TrailerFoldLast  = "Gitgw-Fold-Last"
	TrailerFoldFrom  = "Gitgw-Fold-From"
	TrailerFoldTo    = "Gitgw-Fold-To"
)

// leaseRef, in the writer's repository, holds the remote value a pending
// fold replaces: the next push is forced, but only over that value. It
// survives a restart, and keeps the old commits (whose trees the remote
// holds) until the fold is pushed.
const leaseRef = plumbing.ReferenceName("refs/gitgw/fold-lease")

// historyBound is the writer's bound, resolved.
type historyBound struct {
	commits int           // kept commits, ≥ 1; 0: unbounded
	age     time.Duration // kept age; 0: no age bound
}

func (b historyBound) on() bool { return b.commits > 0 }

// slack is how far past the bound a branch grows before it is folded:
// folding rewrites every kept commit, so it is done once per commits/2 new
// ones, not after each.
func (b historyBound) slack() int { return max(1, b.commits/2) }

// history is what the writer knows of its branch's history since the fold
// (or the root), so that the check after each push reads no commit: n
// commits, the oldest committed at oldest. Guarded by w.mu.
type history struct {
	known  bool
	n      int
	oldest time.Time
}

// committed records a new commit on the branch.
func (h *history) committed(at time.Time) {
	if !h.known {
		return
	}
	if h.n == 0 {
		h.oldest = at
	}
	h.n++
}

// foldLocked folds the local branch when it is past its bound (w.mu and
// w.pushMu held, everything pushed). It reports whether it did.
func (w *StatusWriter) foldLocked(now time.Time) (bool, error) {
	b := w.bound
	if !b.on() {
		return false, nil
	}
	limit := b.commits + b.slack() + 1
	if h := w.hist; h.known && h.n < limit && (b.age <= 0 || h.n <= 1 || !h.oldest.Before(now.Add(-b.age-b.age/10))) {
		return false, nil
	}
	s := w.repo.Storer
	ref, err := s.Reference(w.branch)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// Newest first, first parents, up to one past the fold trigger.
	var chain []*object.Commit
	var prevFold *object.Commit
	for h := ref.Hash(); !h.IsZero() && len(chain) < limit; {
		c, err := w.repo.CommitObject(h)
		if err != nil {
			return false, fmt.Errorf("read %s: %w", short(h.String()), err)
		}
		if len(c.ParentHashes) == 0 && CommitTrailers(c.Message).Get(TrailerFoldCount) != "" {
			prevFold = c
			break
		}
		chain = append(chain, c)
		h = plumbing.ZeroHash
		if len(c.ParentHashes) > 0 {
			h = c.ParentHashes[0]
		}
	}
	cutoff := time.Time{}
	if b.age > 0 {
		cutoff = now.Add(-b.age)
	}
	keep := 0
	for keep < len(chain) && keep < b.commits && (cutoff.IsZero() || !chain[keep].Committer.When.Before(cutoff)) {
		keep++
	}
	keep = max(keep, 1)
	over := len(chain) >= limit
	// Aged out: the oldest commit is past the age bound by a tenth of it
	// (a day for 10 days), so a quiet node folds about once per that.
	aged := b.age > 0 && len(chain) > keep && chain[len(chain)-1].Committer.When.Before(now.Add(-b.age-b.age/10))
	if !over && !aged {
		w.hist = history{known: true, n: len(chain)}
		if len(chain) > 0 {
			w.hist.oldest = chain[len(chain)-1].Committer.When
		}
		return false, nil
	}
	if over {
		// The walk stopped early: fold everything below the kept commits.
		if err := w.completeChain(&chain, &prevFold); err != nil {
			return false, err
		}
	}
	fold, err := w.foldCommit(chain[keep:], prevFold)
	if err != nil {
		return false, err
	}
	newHead, err := w.replayChain(chain[:keep], fold)
	if err != nil {
		return false, err
	}
	w.stateMu.Lock()
	lease := w.pushed
	w.stateMu.Unlock()
	if lease.IsZero() {
		lease = ref.Hash()
	}
	if _, err := s.Reference(leaseRef); errors.Is(err, plumbing.ErrReferenceNotFound) {
		// An earlier fold not pushed yet keeps its lease: the remote still
		// holds what that one replaces.
		if err := s.SetReference(plumbing.NewHashReference(leaseRef, lease)); err != nil {
			return false, err
		}
	}
	if err := s.SetReference(plumbing.NewHashReference(w.branch, newHead)); err != nil {
		return false, err
	}
	w.setHead(newHead)
	w.hist = history{known: true, n: keep, oldest: chain[keep-1].Committer.When}
	w.log.Info("status history folded", "folded", len(chain)-keep, "kept", keep, "head", short(newHead.String()))
	return true, nil
}

// completeChain walks the rest of the first-parent history below chain.
func (w *StatusWriter) completeChain(chain *[]*object.Commit, prevFold **object.Commit) error {
	c := (*chain)[len(*chain)-1]
	for len(c.ParentHashes) > 0 {
		p, err := w.repo.CommitObject(c.ParentHashes[0])
		if err != nil {
			return fmt.Errorf("read %s: %w", short(c.ParentHashes[0].String()), err)
		}
		if len(p.ParentHashes) == 0 && CommitTrailers(p.Message).Get(TrailerFoldCount) != "" {
			*prevFold = p
			return nil
		}
		*chain = append(*chain, p)
		c = p
	}
	return nil
}

// foldCommit writes the parentless commit standing for folded (newest
// first) and what an earlier fold already stood for.
func (w *StatusWriter) foldCommit(folded []*object.Commit, prev *object.Commit) (plumbing.Hash, error) {
	newest, oldest := folded[0], folded[len(folded)-1]
	count := len(folded)
	first := oldest.Hash.String()
	from := oldest.Committer.When
	if prev != nil {
		t := CommitTrailers(prev.Message)
		n, _ := strconv.Atoi(t.Get(TrailerFoldCount))
		count += n
		if f := t.Get(TrailerFoldFirst); f != "" {
			first = f
		}
		if f, err := time.Parse(time.RFC3339, t.Get(TrailerFoldFrom)); err == nil {
			from = f
		}
	}
	to := newest.Committer.When
	var body strings.Builder
	fmt.Fprintf(&body, "Older history of this status branch, folded to keep it bounded (%s).\n", w.bound)
	body.WriteString("The tree is the status as of the last folded commit. Folded commits\n")
	body.WriteString("are gone from the server after its next gc.")
	msg := Message{
		Subject: fmt.Sprintf("fold(%s): %d status commits from %s to %s", w.opts.Node, count,
			from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339)),
		Body: body.String(),
		Trailers: []Trailer{
			{TrailerFoldCount, strconv.Itoa(count)},
			{TrailerFoldFirst, first},
			{TrailerFoldLast, newest.Hash.String()},
			{TrailerFoldFrom, from.UTC().Format(time.RFC3339)},
			{TrailerFoldTo, to.UTC().Format(time.RFC3339)},
		},
	}
	sig := identity(w.opts.Node, newest.Committer.When)
	return w.storeCommit(&object.Commit{Author: sig, Committer: sig, Message: msg.format(w.opts.Node), TreeHash: newest.TreeHash})
}

// replayChain re-creates kept (newest first) on top of base, oldest first,
// keeping trees, messages and times; it returns the new head.
func (w *StatusWriter) replayChain(kept []*object.Commit, base plumbing.Hash) (plumbing.Hash, error) {
	parent := base
	for i := len(kept) - 1; i >= 0; i-- {
		c := kept[i]
		h, err := w.storeCommit(&object.Commit{Author: c.Author, Committer: c.Committer, Message: c.Message,
			TreeHash: c.TreeHash, ParentHashes: []plumbing.Hash{parent}})
		if err != nil {
			return plumbing.ZeroHash, err
		}
		parent = h
	}
	return parent, nil
}

// storeCommit signs c (when the writer signs) and stores it.
func (w *StatusWriter) storeCommit(c *object.Commit) (plumbing.Hash, error) {
	if w.signer != nil {
		if err := w.signer.signCommit(c); err != nil {
			return plumbing.ZeroHash, err
		}
	}
	obj := w.repo.Storer.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return w.repo.Storer.SetEncodedObject(obj)
}

// String is the bound as the fold message states it.
func (b historyBound) String() string {
	if b.age <= 0 {
		return fmt.Sprintf("last %d commits", b.commits)
	}
	days := b.age.Hours() / 24
	if days == float64(int(days)) {
		return fmt.Sprintf("last %d commits or %d days", b.commits, int(days))
	}
	return fmt.Sprintf("last %d commits or %s", b.commits, b.age)
}

// leaseTrees are the trees of the first n commits of the remote's history
// below lease (which this repository still holds): the remote has them, so
// a fold's replayed commits, which reuse them, send no tree or blob.
func leaseTrees(w *StatusWriter, lease plumbing.Hash, n int) []plumbing.Hash {
	var out []plumbing.Hash
	for h := lease; !h.IsZero() && len(out) < n; {
		c, err := object.GetCommit(w.pushRepo.Storer, h)
		if err != nil {
			break
		}
		out = append(out, c.TreeHash)
		h = plumbing.ZeroHash
		if len(c.ParentHashes) > 0 {
			h = c.ParentHashes[0]
		}
	}
	return out
}
