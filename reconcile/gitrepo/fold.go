package gitrepo

// Bounded status history. A status branch gains a commit per change,
// forever: at a fleet's size that is gigabytes a year in the repository
// everyone clones. The node owns its branch, so it may rewrite it: past a
// bound (the last N commits, or D days) the older commits are folded into
// one parentless commit whose tree is the state they ended in and whose
// message says what it replaces; the kept commits are replayed on top of it
// (re-signed, trees unchanged) and the branch is force-pushed, only that
// ref, with a lease on the value this node last pushed; the local branch
// moves only once the server took it. The commits folded away become
// unreferenced on the server and go with its next gc. A server that
// refuses the rewrite (branch protection) turns folding off, loudly: the
// branch keeps growing, but status keeps flowing.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Defaults of the history bound: a few days of a busy node's changes stay
// readable in `git log` (the last month of a quiet one), and 10,000 nodes
// keep their status under a GB (BenchmarkStatusHistoryYear: about 750
// bytes a signed commit after the server's gc, at most 1.5 × 64 commits
// and one fold a node).
const (
	DefaultHistoryCommits = 64
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

// foldPlan is a fold written locally, not yet pushed nor on the branch.
type foldPlan struct {
	base, head plumbing.Hash // the branch (all pushed) and its folded form
	kept       int
	folded     int
	keptOldest time.Time
	// baseTrees are the trees of base's history that the folded one
	// reuses: the remote has them.
	baseTrees []plumbing.Hash
}

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

// planFoldLocked writes the folded form of the local branch when it is
// past its bound and everything is pushed (w.mu and w.pushMu held); nil
// when there is nothing to fold.
func (w *StatusWriter) planFoldLocked(now time.Time) (*foldPlan, error) {
	b := w.bound
	if !b.on() {
		return nil, nil
	}
	limit := b.commits + b.slack() + 1
	if h := w.hist; h.known && h.n < limit && (b.age <= 0 || h.n <= 1 || !h.oldest.Before(now.Add(-b.age-b.age/10))) {
		return nil, nil
	}
	s := w.repo.Storer
	ref, err := s.Reference(w.branch)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	w.stateMu.Lock()
	pushed := w.pushed
	w.stateMu.Unlock()
	if ref.Hash() != pushed {
		return nil, nil // fold what the remote holds, after the next push
	}
	// Newest first, first parents, up to one past the fold trigger.
	var chain []*object.Commit
	var prevFold *object.Commit
	for h := ref.Hash(); !h.IsZero() && len(chain) < limit; {
		c, err := w.repo.CommitObject(h)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", short(h.String()), err)
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
		return nil, nil
	}
	if over {
		// The walk stopped early: fold everything below the kept commits.
		if err := w.completeChain(&chain, &prevFold); err != nil {
			return nil, err
		}
	}
	fold, err := w.foldCommit(chain[keep:], prevFold)
	if err != nil {
		return nil, err
	}
	newHead, err := w.replayChain(chain[:keep], fold)
	if err != nil {
		return nil, err
	}
	trees := make([]plumbing.Hash, 0, keep+1)
	for _, c := range chain[:keep+1] {
		trees = append(trees, c.TreeHash)
	}
	return &foldPlan{base: ref.Hash(), head: newHead, kept: keep, folded: len(chain) - keep,
		keptOldest: chain[keep-1].Committer.When, baseTrees: trees}, nil
}

// pushFold force-pushes a fold over its base (the lease) and, once the
// server took it, moves the local branch to it, replaying the commits made
// meanwhile. w.pushMu is held. It reports whether the fold landed.
func (w *StatusWriter) pushFold(ctx context.Context, p *foldPlan) bool {
	ra, err := w.creds.access(w.opts.URL)
	if err != nil {
		w.log.Warn("fold status history: not pushed; will retry", "err", err)
		return false
	}
	pctx, cancel := context.WithTimeout(ctx, w.opts.PushTimeout)
	defer cancel()
	remote, err := pushRef(pctx, w.pushRepo.Storer, w.opts.URL, ra,
		pushSpec{ref: w.branch, head: p.head, replace: true, lease: p.base, haveTrees: p.baseTrees})
	var rejected *rejectedError
	switch {
	case errors.Is(err, errNotFastForward):
		// The remote moved since this node's last push: not ours to clobber.
		w.setPushResult(plumbing.ZeroHash, &DivergedError{Node: w.opts.Node, Branch: w.branch.Short(), Local: p.base.String(), Remote: remote.String()})
		return false
	case errors.As(err, &rejected):
		w.mu.Lock()
		w.bound.commits = 0
		w.mu.Unlock()
		w.log.Error("the Git server refuses to rewrite this node's status branch: its history is NOT bounded; "+
			"allow force-pushes of gitgw/status/* (the node's own branch, see branch protection), or set --status-history-commits -1 to stop trying",
			"branch", w.branch.Short(), "err", err)
		return false
	case err != nil:
		w.log.Warn("fold status history: not pushed; will retry after the next push", "err", err)
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	head := p.head
	n := p.kept
	if ref, err := w.repo.Storer.Reference(w.branch); err == nil && ref.Hash() != p.base {
		// Commits made during the push: on top of the fold.
		newer, _, err := newCommits(w.repo.Storer, ref.Hash(), p.base, nil)
		if err == nil {
			head, err = w.replayChain(newer, p.head)
		}
		if err != nil {
			w.log.Error("fold status history: replay the newest commits", "err", err)
			return false
		}
		n += len(newer)
	}
	if err := w.repo.Storer.SetReference(plumbing.NewHashReference(w.branch, head)); err != nil {
		w.log.Error("fold status history: move the local branch", "err", err)
		return false
	}
	w.setHead(head)
	w.setPushResult(p.head, nil)
	w.hist = history{known: true, n: n, oldest: p.keptOldest}
	w.log.Info("status history folded", "folded", p.folded, "kept", p.kept, "head", short(head.String()))
	return true
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
