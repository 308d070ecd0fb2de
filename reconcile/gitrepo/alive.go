package gitrepo

// Liveness without history. A fleet view must tell a stopped agent from a
// quiet one, but a commit per heartbeat would be millions of commits a
// day at a fleet's size. Instead each node replaces one ref,
// refs/gitgw/alive/NODE (outside refs/heads: clones and branch listings do
// not see it), with a tiny parentless commit: the time, the applied
// commit, the agent's version and the bound it promises to refresh within.
// The replaced commits are unreferenced and go with the server's gc: the
// repository holds one such commit per node, a few hundred bytes.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"
)

// AliveRefPrefix is where the nodes' liveness refs live.
const AliveRefPrefix = "refs/gitgw/alive/"

// Trailer keys of an alive commit (besides Gitgw-Node and Gitgw-Applied).
const (
	TrailerAliveBound   = "Gitgw-Alive-Bound"
	TrailerAgentVersion = "Gitgw-Agent-Version"
	TrailerStatusHead   = "Gitgw-Status"
)

// aliveMisses is how many intervals a node may miss before fleet calls it
// stale: one late refresh (a slow Git server) is not an outage.
const aliveMisses = 3

// Alive is a node's last liveness refresh.
type Alive struct {
	Node, Commit string
	// Time the node refreshed it; Bound the longest it promised to go
	// without refreshing.
	Time  time.Time
	Bound time.Duration
	// Applied is the site commit the node runs, Version its agent's.
	Applied, Version string

	signature string
	payload   []byte
}

// Stale says whether the node broke its promise by now: no refresh within
// its bound (or no readable bound).
func (a Alive) Stale(now time.Time) bool {
	return a.Bound <= 0 || now.Sub(a.Time) > a.Bound
}

// VerifySignedBy checks that the alive commit is signed by key, as a
// status branch's head is (BranchStatus.VerifySignedBy).
func (a Alive) VerifySignedBy(key string) (Signer, error) {
	return BranchStatus{Node: a.Node, Commit: a.Commit, Time: a.Time, signature: a.signature, payload: a.payload}.VerifySignedBy(key)
}

// readAlive parses the alive commit c of node.
func readAlive(node string, c *object.Commit) (Alive, error) {
	t := CommitTrailers(c.Message)
	a := Alive{Node: node, Commit: c.Hash.String(), Time: c.Committer.When,
		Applied: t.Get(TrailerApplied), Version: t.Get(TrailerAgentVersion)}
	if b := t.Get(TrailerAliveBound); b != "" {
		d, err := time.ParseDuration(b)
		if err != nil {
			return a, fmt.Errorf("alive commit %s: %s: %w", short(a.Commit), TrailerAliveBound, err)
		}
		a.Bound = d
	}
	if c.PGPSignature != "" {
		msg := &plumbing.MemoryObject{}
		if err := c.EncodeWithoutSignature(msg); err != nil {
			return a, err
		}
		var err error
		if a.payload, err = objectBytes(msg); err != nil {
			return a, err
		}
		a.signature = c.PGPSignature
	}
	return a, nil
}

// aliveRef is the node's liveness ref.
func (w *StatusWriter) aliveRef() plumbing.ReferenceName {
	return plumbing.ReferenceName(AliveRefPrefix + w.opts.Node)
}

// pushAlive replaces the node's alive ref by a fresh commit. The commit is
// built in memory: a node makes one a minute, and none of them is worth a
// file in the state dir.
func (w *StatusWriter) pushAlive(ctx context.Context) error {
	applied, statusHead := "", ""
	if ref, err := w.pushRepo.Storer.Reference(w.branch); err == nil {
		statusHead = ref.Hash().String()
		if c, err := object.GetCommit(w.pushRepo.Storer, ref.Hash()); err == nil {
			applied = CommitTrailers(c.Message).Get(TrailerApplied)
		}
	}
	mem := memory.NewStorage()
	tree := mem.NewEncodedObject()
	if err := (&object.Tree{}).Encode(tree); err != nil {
		return err
	}
	treeHash, err := mem.SetEncodedObject(tree)
	if err != nil {
		return err
	}
	bound := time.Duration(aliveMisses) * w.opts.AliveInterval
	msg := Message{Subject: "alive(" + w.opts.Node + ")", Applied: applied, Trailers: []Trailer{
		{TrailerAliveBound, bound.String()},
		{TrailerStatusHead, statusHead},
		{TrailerAgentVersion, w.opts.AgentVersion},
	}}
	now := time.Now()
	sig := identity(w.opts.Node, now)
	c := &object.Commit{Author: sig, Committer: sig, Message: msg.format(w.opts.Node), TreeHash: treeHash}
	if w.signer != nil {
		if err := w.signer.signCommit(c); err != nil {
			return err
		}
	}
	obj := mem.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return err
	}
	h, err := mem.SetEncodedObject(obj)
	if err != nil {
		return err
	}
	ra, err := w.creds.access(w.opts.URL)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, w.opts.PushTimeout)
	defer cancel()
	_, err = pushRef(ctx, mem, w.opts.URL, ra, pushSpec{ref: w.aliveRef(), head: h, replace: true})
	return err
}

// runAlive refreshes the alive ref every AliveInterval (jittered by a
// tenth, so that a fleet started at once does not refresh in step) until
// ctx ends or the writer closes.
func (w *StatusWriter) runAlive(ctx context.Context) {
	if w.opts.AliveInterval <= 0 {
		return
	}
	t := time.NewTimer(0)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.done:
			return
		case <-t.C:
		}
		err := w.pushAlive(ctx)
		switch {
		case err == nil:
			if lastErr != "" {
				w.log.Info("alive ref refreshed again")
			}
			lastErr = ""
		case errors.Is(err, context.Canceled):
			return
		case err.Error() != lastErr:
			lastErr = err.Error()
			w.log.Warn("refresh alive ref; will retry", "ref", w.aliveRef(), "err", strings.TrimSpace(err.Error()))
		}
		t.Reset(Jitter(w.opts.AliveInterval, 0.1))
	}
}
