package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/memory"
)

// ReadOptions say where to read status branches from.
type ReadOptions struct {
	// URL of the repository. A local one (path or file://) is read in
	// place; any other is fetched first: the status branches' and alive
	// refs' heads only (depth 1), the objects this reader lacks.
	URL string
	// Prefix of status branches (default DefaultStatusPrefix).
	Prefix string
	// CacheDir keeps fetched objects between calls (a bare repository,
	// made when missing); empty fetches into memory. Its refs are not
	// kept: each read takes them from the remote's advertisement. Reads
	// of one cache take turns (a lock file beside it, CacheDir.lock); it
	// starts over past MaxCachePacks, and one that cannot be read is
	// moved to CacheDir.corrupt and the read done again.
	CacheDir string
	// SSHKeyFile, KnownHostsFile, TokenFile, CAFile: see Credentials.
	SSHKeyFile, KnownHostsFile, TokenFile, CAFile string
	// Files limits which paths are read from each branch (default all).
	Files []string
	// Logger receives what happens to CacheDir: started over, moved
	// aside (default: discard).
	Logger *slog.Logger
}

// BranchStatus is the newest commit of one node's status branch.
type BranchStatus struct {
	// Node is the branch name without the prefix.
	Node, Branch string
	Commit       string
	Subject      string
	// Time is the commit time: when the node last reported a change.
	Time     time.Time
	Trailers Trailers
	// Alive is the node's liveness ref, nil when it has none (an agent
	// without --alive-interval, or an older one).
	Alive *Alive
	// Files of the commit by path.
	Files map[string][]byte

	// signature and payload are the head commit's signature and what it
	// signs (VerifySignedBy).
	signature string
	payload   []byte
}

// ReadStatusBranches reads every status branch of a repository: the refs
// once, then each branch's commit, tree and blobs directly. Sorted by node.
func ReadStatusBranches(ctx context.Context, opts ReadOptions) ([]BranchStatus, error) {
	if opts.Prefix == "" {
		opts.Prefix = DefaultStatusPrefix
	}
	fail := func(err error) ([]BranchStatus, error) {
		return nil, fmt.Errorf("gitrepo: read status branches of %s: %w", redact(opts.URL), err)
	}
	refPrefix := "refs/heads/" + opts.Prefix
	if isLocal(opts.URL) {
		dir, err := localGitDir(opts.URL)
		if err != nil {
			return fail(err)
		}
		st, err := openReadOnly(dir)
		if err != nil {
			return fail(err)
		}
		defer st.Close()
		var refs []*plumbing.Reference
		iter, err := st.IterReferences()
		if err != nil {
			return fail(err)
		}
		err = iter.ForEach(func(r *plumbing.Reference) error {
			if r.Type() == plumbing.HashReference {
				refs = append(refs, r)
			}
			return nil
		})
		if err != nil {
			return fail(err)
		}
		out, err := readHeads(ctx, st, dir, nil, refs, opts)
		if err != nil {
			return fail(err)
		}
		return out, nil
	}
	creds := Credentials{SSHKeyFile: opts.SSHKeyFile, KnownHostsFile: opts.KnownHostsFile, TokenFile: opts.TokenFile, CAFile: opts.CAFile}
	ra, err := creds.access(opts.URL)
	if err != nil {
		return fail(err)
	}
	prefixes := []string{refPrefix, AliveRefPrefix}
	if opts.CacheDir == "" {
		mem := memory.NewStorage()
		refs, err := fetchHeads(ctx, opts.URL, ra, fetchInto{have: mem, mem: mem}, prefixes)
		if err != nil {
			return fail(fmt.Errorf("fetch: %w", err))
		}
		out, err := readHeads(ctx, mem, "", nil, refs, opts)
		if err != nil {
			return fail(err)
		}
		return out, nil
	}
	out, err := readCached(ctx, opts, ra, prefixes)
	if err != nil {
		return fail(err)
	}
	return out, nil
}

// readHeads reads the status branches among refs (and their nodes' alive
// refs) from s. dir, when not empty, is the repository s reads, which a
// few workers then read each through its own view, in front of which
// is mem (when not nil: what was just fetched).
func readHeads(ctx context.Context, s storer.EncodedObjectStorer, dir string, mem *memory.Storage, refs []*plumbing.Reference, opts ReadOptions) ([]BranchStatus, error) {
	refPrefix := "refs/heads/" + opts.Prefix
	var heads []*plumbing.Reference
	alive := map[string]plumbing.Hash{}
	for _, r := range refs {
		if strings.HasPrefix(r.Name().String(), refPrefix) {
			heads = append(heads, r)
		} else if node, ok := strings.CutPrefix(r.Name().String(), AliveRefPrefix); ok {
			alive[node] = r.Hash()
		}
	}
	out := make([]BranchStatus, len(heads))
	// A local repository (or the cache a fetch filled) is read by a few
	// workers, each through its own view of the repository (go-git's
	// storage is not shared between goroutines); one fetched into memory,
	// by this goroutine.
	workers := 1
	var open func() (storer.EncodedObjectStorer, error)
	if dir != "" && len(heads) > 64 {
		workers = min(runtime.GOMAXPROCS(0), 4)
		var mu sync.Mutex
		var opened []*filesystem.Storage
		defer func() {
			for _, st := range opened {
				_ = st.Close()
			}
		}()
		open = func() (storer.EncodedObjectStorer, error) {
			st, err := openReadOnly(dir)
			if err != nil {
				return nil, err
			}
			mu.Lock()
			opened = append(opened, st)
			mu.Unlock()
			if mem != nil {
				return layered{mem, st}, nil
			}
			return st, nil
		}
	} else {
		open = func() (storer.EncodedObjectStorer, error) { return s, nil }
	}
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := open()
			if err != nil {
				errs[w] = err
				return
			}
			for i := w; i < len(heads); i += workers {
				if err := ctx.Err(); err != nil {
					errs[w] = err
					return
				}
				if out[i], err = readBranch(st, heads[i], opts); err != nil {
					errs[w] = err
					return
				}
				if h, ok := alive[out[i].Node]; ok {
					// An unreadable alive ref leaves the node without one:
					// fleet calls it stale, which is what it should check.
					if c, err := object.GetCommit(st, h); err == nil {
						if a, err := readAlive(out[i].Node, c); err == nil {
							out[i].Alive = &a
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, nil
}

func readBranch(s storer.EncodedObjectStorer, r *plumbing.Reference, opts ReadOptions) (BranchStatus, error) {
	name := r.Name().Short()
	bs := BranchStatus{
		Branch: name,
		Node:   strings.TrimPrefix(name, opts.Prefix),
		Commit: r.Hash().String(),
		Files:  map[string][]byte{},
	}
	c, err := object.GetCommit(s, r.Hash())
	if err != nil {
		return bs, fmt.Errorf("%s: %w", name, err)
	}
	bs.Subject = subjectOf(c.Message)
	bs.Time = c.Committer.When
	bs.Trailers = CommitTrailers(c.Message)
	if c.PGPSignature != "" {
		msg := &plumbing.MemoryObject{}
		if err := c.EncodeWithoutSignature(msg); err != nil {
			return bs, fmt.Errorf("%s: %w", name, err)
		}
		if bs.payload, err = objectBytes(msg); err != nil {
			return bs, fmt.Errorf("%s: %w", name, err)
		}
		bs.signature = c.PGPSignature
	}
	tree, err := c.Tree()
	if err != nil {
		return bs, fmt.Errorf("%s: %w", name, err)
	}
	if len(opts.Files) == 0 {
		if bs.Files, err = readFiles(s, tree); err != nil {
			return bs, fmt.Errorf("%s: %w", name, err)
		}
		return bs, nil
	}
	for _, p := range opts.Files {
		f, err := tree.File(p)
		if err != nil {
			continue // absent in this branch
		}
		content, err := f.Contents()
		if err != nil {
			return bs, fmt.Errorf("%s: %s: %w", name, p, err)
		}
		bs.Files[p] = []byte(content)
	}
	return bs, nil
}

// openReadOnly opens a repository's storage for many reads: pack files stay
// open between objects, and paths are not re-resolved component by
// component (readFS).
func openReadOnly(dir string) (*filesystem.Storage, error) {
	if st, err := os.Stat(filepath.Join(dir, "objects")); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%s: %w", dir, git.ErrRepositoryNotExists)
	}
	fs := newReadFS(dir)
	return filesystem.NewStorageWithOptions(fs, cache.NewObjectLRUDefault(), filesystem.Options{KeepDescriptors: true}), nil
}
