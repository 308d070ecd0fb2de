package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
)

// errNotFastForward: the remote's ref is not in the pushed history.
var errNotFastForward = errors.New("non-fast-forward")

// pushSpec is one ref update.
type pushSpec struct {
	ref  plumbing.ReferenceName
	head plumbing.Hash
	// replace lets the update move the ref off its history, but only from
	// the value just advertised (a lease), never blindly.
	replace bool
	// known are commits the remote is known to have besides the ref's
	// current value (e.g. the base of a proposal).
	known []plumbing.Hash
	// lease, with replace, is the only value the remote's ref may be
	// replaced from (besides not existing): what this node last pushed, so
	// that it never clobbers a commit it did not see.
	lease plumbing.Hash
	// haveTrees are trees the remote holds (a rewritten history reusing
	// the trees of the one it replaces): not sent again.
	haveTrees []plumbing.Hash
}

// pushRef sends one ref update and the objects it needs. It is go-git's
// push without its costly part: go-git lists every object reachable from
// every ref the remote advertises (for a local remote, from the remote's
// own storage) to decide what not to send, which grows with the history
// and with the number of nodes' branches. Here the history is walked from
// head back to the first commit the remote has, and only the objects of
// the new commits that the remote's tip does not hold are sent. It returns
// what the remote held before.
func pushRef(ctx context.Context, s storer.EncodedObjectStorer, url string, ra remoteAccess, spec pushSpec) (plumbing.Hash, error) {
	if isLocal(url) {
		// A push to a local repository runs git-receive-pack as a child.
		// When ctx ends mid-pack, go-git kills it, then waits for its
		// stderr, which the unpack-objects or index-pack it started still
		// holds while that one waits on the stdin go-git keeps open until
		// the wait is over: the push can hang for ever, and with it the
		// status writer's Run and the agent's stop (a CI run hung 17
		// minutes in a status writer's cleanup). A local push cannot stall
		// on a network: it is not cancelled, it finishes.
		ctx = context.WithoutCancel(ctx)
	}
	ep, err := transport.NewEndpoint(url)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	ep.CaBundle = ra.caBundle
	cl, err := client.NewClient(ep)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	sess, err := cl.NewReceivePackSession(ep, ra.auth)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	defer sess.Close()
	adv, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil && !errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return plumbing.ZeroHash, err
	}
	old := plumbing.ZeroHash
	if adv != nil {
		refs, err := adv.AllReferences()
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if r, ok := refs[spec.ref]; ok {
			old = r.Hash()
		}
	} else {
		adv = packp.NewAdvRefs()
	}
	if old == spec.head {
		return old, nil
	}
	commits, stop, err := newCommits(s, spec.head, old, spec.known)
	if err != nil {
		return old, err
	}
	if !old.IsZero() && stop != old && (!spec.replace || (!spec.lease.IsZero() && old != spec.lease)) {
		return old, errNotFastForward
	}
	hashes, err := objectsToSend(s, commits, stop, spec.haveTrees)
	if err != nil {
		return old, err
	}
	req := packp.NewReferenceUpdateRequestFromCapabilities(adv.Capabilities)
	req.Commands = []*packp.Command{{Name: spec.ref, Old: old, New: spec.head}}
	rd, wr := io.Pipe()
	req.Packfile = rd
	encoded := make(chan error, 1)
	go func() {
		enc := packfile.NewEncoder(wr, s, !adv.Capabilities.Supports(capability.OFSDelta))
		if _, err := enc.Encode(hashes, 10); err != nil {
			encoded <- wr.CloseWithError(err)
			return
		}
		encoded <- wr.Close()
	}()
	report, err := sess.ReceivePack(ctx, req)
	if err != nil {
		_ = rd.CloseWithError(err) // unblock the encoder
		<-encoded
		if report != nil && report.Error() != nil {
			return old, &rejectedError{err}
		}
		return old, err
	}
	if err := <-encoded; err != nil {
		return old, err
	}
	if report != nil {
		if err := report.Error(); err != nil {
			return old, &rejectedError{err}
		}
	}
	return old, nil
}

// rejectedError is the server's refusal of a ref update it received (a
// hook, branch protection, receive.denyNonFastForwards): the connection
// and the objects were fine, the policy said no.
type rejectedError struct{ err error }

func (e *rejectedError) Error() string { return e.err.Error() }
func (e *rejectedError) Unwrap() error { return e.err }

// newCommits walks first parents from head until a commit the remote has
// (old or one of known), returning the commits before it, newest first,
// and the commit it stopped at (zero when the walk reached the root).
func newCommits(s storer.EncodedObjectStorer, head, old plumbing.Hash, known []plumbing.Hash) ([]*object.Commit, plumbing.Hash, error) {
	stops := map[plumbing.Hash]bool{}
	if !old.IsZero() {
		stops[old] = true
	}
	for _, k := range known {
		stops[k] = true
	}
	var out []*object.Commit
	for h := head; !h.IsZero(); {
		if stops[h] {
			return out, h, nil
		}
		c, err := object.GetCommit(s, h)
		if err != nil {
			return nil, plumbing.ZeroHash, fmt.Errorf("read commit %s: %w", short(h.String()), err)
		}
		out = append(out, c)
		h = plumbing.ZeroHash
		if len(c.ParentHashes) > 0 {
			h = c.ParentHashes[0]
		}
	}
	return out, plumbing.ZeroHash, nil
}

// objectsToSend lists the new commits and every tree and blob of theirs
// that the stop commit's tree and haveTrees do not hold. An object the remote has from
// older history may be sent again: harmless, and rare for status trees.
func objectsToSend(s storer.EncodedObjectStorer, commits []*object.Commit, stop plumbing.Hash, haveTrees []plumbing.Hash) ([]plumbing.Hash, error) {
	have := map[plumbing.Hash]bool{}
	for _, t := range haveTrees {
		have[t] = true
	}
	if !stop.IsZero() {
		c, err := object.GetCommit(s, stop)
		if err == nil {
			if err := treeObjects(s, c.TreeHash, have, nil); err != nil {
				return nil, err
			}
		}
	}
	var out []plumbing.Hash
	for i := len(commits) - 1; i >= 0; i-- {
		out = append(out, commits[i].Hash)
		if err := treeObjects(s, commits[i].TreeHash, have, &out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// treeObjects adds tree h and everything under it to seen, appending to out
// (when not nil) what was not seen before.
func treeObjects(s storer.EncodedObjectStorer, h plumbing.Hash, seen map[plumbing.Hash]bool, out *[]plumbing.Hash) error {
	if seen[h] {
		return nil
	}
	seen[h] = true
	if out != nil {
		*out = append(*out, h)
	}
	t, err := object.GetTree(s, h)
	if err != nil {
		return fmt.Errorf("read tree %s: %w", short(h.String()), err)
	}
	for _, e := range t.Entries {
		switch e.Mode {
		case filemode.Dir:
			if err := treeObjects(s, e.Hash, seen, out); err != nil {
				return err
			}
		case filemode.Submodule:
		default:
			if !seen[e.Hash] {
				seen[e.Hash] = true
				if out != nil {
					*out = append(*out, e.Hash)
				}
			}
		}
	}
	return nil
}
