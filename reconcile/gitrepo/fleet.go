package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage"
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
	// CacheDir keeps fetched objects between calls (a bare repository);
	// empty fetches into memory. Its refs are not kept: each read takes
	// them from the remote's advertisement.
	CacheDir string
	// SSHKeyFile, KnownHostsFile, TokenFile, CAFile: see Credentials.
	SSHKeyFile, KnownHostsFile, TokenFile, CAFile string
	// Files limits which paths are read from each branch (default all).
	Files []string
	// Logger receives the refs of CacheDir found corrupt and moved aside
	// (default: discard).
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
	var repo *git.Repository
	var localDir string
	if isLocal(opts.URL) {
		dir, err := localGitDir(opts.URL)
		if err != nil {
			return fail(err)
		}
		localDir = dir
		st, err := openReadOnly(dir)
		if err != nil {
			return fail(err)
		}
		defer st.Close()
		if repo, err = git.Open(st, nil); err != nil {
			return fail(err)
		}
	} else {
		creds := Credentials{SSHKeyFile: opts.SSHKeyFile, KnownHostsFile: opts.KnownHostsFile, TokenFile: opts.TokenFile, CAFile: opts.CAFile}
		ra, err := creds.access(opts.URL)
		if err != nil {
			return fail(err)
		}
		// The fetch's refs are kept in memory, never in CacheDir: the
		// remote's advertisement is the truth each time, and go-git
		// writes one file per ref (10,000 nodes: 20,000 files, most of
		// a read's time). Only the objects are cached.
		var objects storer.EncodedObjectStorer = memory.NewStorage()
		if opts.CacheDir != "" {
			if _, err := RepairRefs(opts.CacheDir, opts.Logger); err != nil {
				return fail(err)
			}
			cache, err := openBare(opts.CacheDir)
			if err != nil {
				return fail(err)
			}
			objects = cache.Storer
			// Read in parallel once fetched, as a local repository.
			localDir = opts.CacheDir
		}
		var st storage.Storer = &fetchStorage{Storage: memory.NewStorage(), objects: objects}
		if pw, ok := objects.(storer.PackfileWriter); ok {
			st = packFetchStorage{st.(*fetchStorage), pw}
		}
		if repo, err = git.Init(st, nil); err != nil {
			return fail(err)
		}
		remote := git.NewRemote(st, &config.RemoteConfig{Name: "origin", URLs: []string{opts.URL}})
		spec := config.RefSpec("+" + refPrefix + "*:" + refPrefix + "*")
		alive := config.RefSpec("+" + AliveRefPrefix + "*:" + AliveRefPrefix + "*")
		// Depth 1: a reader wants each branch's head, not its history;
		// objects it has are not asked for again.
		err = fetchMoving(ctx, remote, &git.FetchOptions{
			RefSpecs: []config.RefSpec{spec, alive}, Auth: ra.auth, CABundle: ra.caBundle, Tags: git.NoTags, Depth: 1,
		})
		var noMatch git.NoMatchingRefSpecError
		if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) && !errors.As(err, &noMatch) {
			return fail(fmt.Errorf("fetch: %w", err))
		}
	}
	refs, err := repo.Storer.IterReferences()
	if err != nil {
		return fail(err)
	}
	var heads []*plumbing.Reference
	alive := map[string]plumbing.Hash{}
	err = refs.ForEach(func(r *plumbing.Reference) error {
		if r.Type() != plumbing.HashReference {
			return nil
		}
		if strings.HasPrefix(r.Name().String(), refPrefix) {
			heads = append(heads, r)
		} else if node, ok := strings.CutPrefix(r.Name().String(), AliveRefPrefix); ok {
			alive[node] = r.Hash()
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	out := make([]BranchStatus, len(heads))
	// A local repository (or the cache a fetch filled) is read by a few
	// workers, each through its own view of the repository (go-git's
	// storage is not shared between goroutines); one fetched into memory,
	// by this goroutine.
	workers := 1
	var open func() (storer.EncodedObjectStorer, error)
	if localDir != "" && len(heads) > 64 {
		workers = min(runtime.GOMAXPROCS(0), 4)
		var mu sync.Mutex
		var opened []*filesystem.Storage
		defer func() {
			for _, st := range opened {
				_ = st.Close()
			}
		}()
		open = func() (storer.EncodedObjectStorer, error) {
			st, err := openReadOnly(localDir)
			if err != nil {
				return nil, err
			}
			mu.Lock()
			opened = append(opened, st)
			mu.Unlock()
			return st, nil
		}
	} else {
		open = func() (storer.EncodedObjectStorer, error) { return repo.Storer, nil }
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
		return fail(err)
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

// fetchStorage is a fetch target whose refs (and shallow list) live in
// memory while its objects go to another store (a cache on disk, or
// memory): go-git stores pack files through PackfileWriter when the object
// store has one.
type fetchStorage struct {
	*memory.Storage
	objects storer.EncodedObjectStorer
}

func (s *fetchStorage) NewEncodedObject() plumbing.EncodedObject { return s.objects.NewEncodedObject() }
func (s *fetchStorage) SetEncodedObject(o plumbing.EncodedObject) (plumbing.Hash, error) {
	return s.objects.SetEncodedObject(o)
}

// EncodedObject of any type is loaded when first used: a fetch asks for
// every advertised head this way only to learn whether it is here (10,000
// inflated commits a read, a fifth of a warm read's time); the index says
// so without inflating anything.
func (s *fetchStorage) EncodedObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	if t != plumbing.AnyObject {
		return s.objects.EncodedObject(t, h)
	}
	if err := s.objects.HasEncodedObject(h); err != nil {
		return nil, err
	}
	return &lazyObject{s: s.objects, h: h}, nil
}

// lazyObject is a stored object read on first use.
type lazyObject struct {
	s   storer.EncodedObjectStorer
	h   plumbing.Hash
	o   plumbing.EncodedObject
	err error
}

func (l *lazyObject) load() plumbing.EncodedObject {
	if l.o == nil && l.err == nil {
		l.o, l.err = l.s.EncodedObject(plumbing.AnyObject, l.h)
		if l.err != nil {
			l.o = nil
		}
	}
	if l.o == nil {
		return &plumbing.MemoryObject{}
	}
	return l.o
}

func (l *lazyObject) Hash() plumbing.Hash           { return l.h }
func (l *lazyObject) Type() plumbing.ObjectType     { return l.load().Type() }
func (l *lazyObject) SetType(t plumbing.ObjectType) { l.load().SetType(t) }
func (l *lazyObject) Size() int64                   { return l.load().Size() }
func (l *lazyObject) SetSize(n int64)               { l.load().SetSize(n) }
func (l *lazyObject) Reader() (io.ReadCloser, error) {
	if o := l.load(); l.err == nil {
		return o.Reader()
	}
	return nil, l.err
}
func (l *lazyObject) Writer() (io.WriteCloser, error) {
	if o := l.load(); l.err == nil {
		return o.Writer()
	}
	return nil, l.err
}
func (s *fetchStorage) IterEncodedObjects(t plumbing.ObjectType) (storer.EncodedObjectIter, error) {
	return s.objects.IterEncodedObjects(t)
}
func (s *fetchStorage) HasEncodedObject(h plumbing.Hash) error { return s.objects.HasEncodedObject(h) }
func (s *fetchStorage) EncodedObjectSize(h plumbing.Hash) (int64, error) {
	return s.objects.EncodedObjectSize(h)
}
func (s *fetchStorage) AddAlternate(remote string) error { return s.objects.AddAlternate(remote) }

// packFetchStorage is a fetchStorage whose object store writes a fetched
// pack whole (a repository on disk): one pack file, not a loose file per
// object.
type packFetchStorage struct {
	*fetchStorage
	pw storer.PackfileWriter
}

func (s packFetchStorage) PackfileWriter() (io.WriteCloser, error) { return s.pw.PackfileWriter() }
