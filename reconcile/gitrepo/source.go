package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// Options configure a Source.
type Options struct {
	// URL of the site repository: a local path, file://, ssh:// or https://.
	URL string
	// Ref is the tracked branch (default "main").
	Ref string
	// Dir is the Source's own directory inside the state dir: the local
	// copy of the repository (Dir/repo.git) and the exported trees
	// (Dir/trees/COMMIT).
	Dir string
	// SSHKeyFile, KnownHostsFile: for ssh:// (see Credentials).
	SSHKeyFile, KnownHostsFile string
	// TokenFile, CAFile: for https:// (see Credentials).
	TokenFile, CAFile string
	// AllowRewrite accepts a tracked branch that no longer contains the
	// last synced commit (a force-push); without it Sync refuses with a
	// *RewriteError.
	AllowRewrite bool
	// Path is the site's directory within the repository (--path),
	// slash-separated and relative to its root; "" is the root. Revision.Dir
	// is that directory of the exported tree, and ReadTree holds the files
	// beneath it only (still keyed by their path in the repository).
	Path string
	// Site says the tree holds a CUE site at Path: a commit with no
	// cue.mod/module.cue there is refused (a *TreeError that names the
	// path in the repository and where a site is, if anywhere), instead of
	// failing later on the path of the local copy.
	Site bool
	// Node names the author of commits the Source writes (WriteBranch).
	Node string
	// KeepTrees is how many exported trees to keep (default 3).
	KeepTrees int
	// Tree bounds each exported tree (entries, bytes); zero fields take
	// the defaults.
	Tree TreeLimits
	// Verifier, when its mode is head or strict, decides on the object
	// store whether a fetched commit may be used at all: a refused commit
	// is never checked out and the synced commit stays where it was (Sync
	// returns a *RefusedError).
	Verifier *Verifier
	// AnchorFile keeps strict mode's trust anchor, the last commit whose
	// history was verified, apart from the rest of the agent's state. It
	// is required in strict mode.
	AnchorFile string
	// TrustAnchor is a commit the operator vouches for (--trust-anchor):
	// strict mode's anchor when AnchorFile holds none (a new node, or its
	// state lost). Strict mode without either refuses to open.
	TrustAnchor string
	// FetchSpread delays the fetch of a new commit by an offset in
	// [0, FetchSpread) fixed for (Node, commit), so that a fleet does not
	// fetch it all at once (spread.go); Sync returns the commit it has
	// until then. Zero fetches at once. It is the spread until the first
	// SetFetchSpread (the agent's --fetch-spread; the site's setting, once
	// the node runs a commit, comes through SetFetchSpread).
	FetchSpread time.Duration
	// Logger receives what the Source does (default: discard).
	Logger *slog.Logger
}

// Revision is a commit of the tracked branch, checked out.
type Revision struct {
	// Commit is the full hash.
	Commit string
	// Dir holds the commit's files. It is never modified once created;
	// each commit gets its own directory.
	Dir string
	// Subject is the first line of the message, Message all of it.
	Subject, Message string
	// Author is "Name <email>"; Time the author date.
	Author string
	Time   time.Time
	// Trailers of the commit message.
	Trailers Trailers
}

// Short is the commit's abbreviated hash.
func (r Revision) Short() string {
	if len(r.Commit) > 7 {
		return r.Commit[:7]
	}
	return r.Commit
}

// ErrRewrite matches a *RewriteError with errors.Is.
var ErrRewrite = errors.New("tracked branch rewritten")

// ErrRefNotFound is returned by Sync when the remote has no such branch.
var ErrRefNotFound = errors.New("branch not found on the remote")

// ErrRefused matches a *RefusedError with errors.Is.
var ErrRefused = errors.New("commit refused")

// refNotFound names the branch and the flag that chooses another.
func refNotFound(ref string) error {
	return fmt.Errorf("%w: %q (choose the branch with --ref)", ErrRefNotFound, ref)
}

// RefusedError is Sync's answer for a commit it will not check out: its
// signature or its trust is refused (a *SignatureError), or its tree (a
// *TreeError). Nothing of the commit was written and the synced commit did
// not move, so the next acceptable commit on top of the last synced one
// is a fast-forward.
type RefusedError struct {
	// Revision describes the refused commit; its Dir is empty.
	Revision Revision
	Err      error
}

func (e *RefusedError) Error() string {
	var se *SignatureError
	if errors.As(e.Err, &se) && se.Commit == e.Revision.Commit {
		return se.Error() // names the commit already
	}
	return fmt.Sprintf("gitrepo: refusing %s: %v", e.Revision.Short(), e.Err)
}

// Unwrap returns the reason.
func (e *RefusedError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// RewriteError reports that the tracked branch moved to a commit that does
// not descend from the last synced one.
type RewriteError struct {
	Ref      string
	Old, New string
	Reason   string
}

func (e *RewriteError) Error() string {
	return fmt.Sprintf("gitrepo: refusing non-fast-forward update of %s from %s to %s: %s (allow with --allow-rewrite)",
		e.Ref, short(e.Old), short(e.New), e.Reason)
}

// Is makes errors.Is(err, ErrRewrite) true.
func (e *RewriteError) Is(target error) bool { return target == ErrRewrite }

func short(h string) string {
	if len(h) > 7 {
		return h[:7]
	}
	return h
}

// syncedRef records, in the local copy, the last commit Sync returned.
const syncedRef = plumbing.ReferenceName("refs/gitgw/synced")

// Source follows one branch of a site repository.
type Source struct {
	opts   Options
	log    *slog.Logger
	creds  Credentials
	repo   *git.Repository
	remote *git.Remote
	track  plumbing.ReferenceName // refs/heads/REF on the remote
	local  plumbing.ReferenceName // refs/remotes/origin/REF here

	mu         sync.Mutex
	refused    plumbing.Hash // last tip refused as a rewrite, logged once
	anchor     plumbing.Hash // strict mode's trust anchor
	verified   plumbing.Hash // last tip the verifier admitted
	denied     *RefusedError // last tip refused (verifier or tree), logged once
	transfers  int           // fetches that moved the branch
	spreadTip  plumbing.Hash // the new commit a spread fetch waits for
	spreadSeen time.Time     // when it was first seen
	spread     atomic.Int64  // the fetch spread (time.Duration), SetFetchSpread
	repackAt   int           // repack every so many transfers (repackEvery)
}

// Open prepares a Source; it does not contact the remote (Sync does), so an
// agent starts, and keeps its last good state, while the remote is down.
func Open(ctx context.Context, opts Options) (*Source, error) {
	if opts.URL == "" {
		return nil, errors.New("gitrepo: open: no repository URL")
	}
	if opts.Dir == "" {
		return nil, errors.New("gitrepo: open: no directory")
	}
	if opts.Ref == "" {
		opts.Ref = "main"
	}
	opts.Ref = strings.TrimPrefix(opts.Ref, "refs/heads/")
	p, err := CleanSitePath(opts.Path)
	if err != nil {
		return nil, fmt.Errorf("gitrepo: open: %w", err)
	}
	opts.Path = p
	if opts.KeepTrees <= 0 {
		opts.KeepTrees = 3
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if isLocal(opts.URL) {
		p, err := filepath.Abs(strings.TrimPrefix(opts.URL, "file://"))
		if err != nil {
			return nil, fmt.Errorf("gitrepo: open %s: %w", opts.URL, err)
		}
		if strings.HasPrefix(opts.URL, "file://") {
			opts.URL = "file://" + p
		} else {
			opts.URL = p
		}
	}
	s := &Source{
		opts:     opts,
		log:      opts.Logger.With("component", "gitrepo", "repo", redact(opts.URL), "ref", opts.Ref),
		creds:    Credentials{SSHKeyFile: opts.SSHKeyFile, KnownHostsFile: opts.KnownHostsFile, TokenFile: opts.TokenFile, CAFile: opts.CAFile},
		track:    plumbing.NewBranchReferenceName(opts.Ref),
		repackAt: repackEvery,
		local:    plumbing.NewRemoteReferenceName("origin", opts.Ref),
	}
	repo, err := openBare(filepath.Join(opts.Dir, "repo.git"))
	if err != nil {
		return nil, fmt.Errorf("gitrepo: open %s: %w", opts.Dir, err)
	}
	s.repo = repo
	s.spread.Store(int64(opts.FetchSpread))
	s.remote = git.NewRemote(repo.Storer, &config.RemoteConfig{Name: "origin", URLs: []string{opts.URL}})
	if err := s.checkOrigin(); err != nil {
		return nil, fmt.Errorf("gitrepo: open %s: %w", opts.Dir, err)
	}
	// The credentials are files on this machine: one missing or unusable
	// (no --ssh-key, no known_hosts, an unreadable --token-file) fails
	// every fetch until the operator acts, so Open says so now, before
	// an agent starts retrying what cannot succeed.
	if _, err := s.creds.access(opts.URL); err != nil {
		return nil, fmt.Errorf("gitrepo: open %s: %w", redact(opts.URL), err)
	}
	if err := s.loadAnchor(); err != nil {
		return nil, err
	}
	return s, nil
}

// openBare opens the bare repository at dir, creating it if needed.
func openBare(dir string) (*git.Repository, error) {
	repo, err := git.PlainOpen(dir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return nil, err
		}
		return git.PlainInit(dir, true)
	}
	return repo, err
}

// checkOrigin forgets the synced commit when the directory was last used
// for another repository or branch: the fast-forward guard compares
// histories of one branch only.
func (s *Source) checkOrigin() error {
	file := filepath.Join(s.opts.Dir, "origin")
	want := s.opts.URL + " " + s.opts.Ref + "\n"
	got, err := os.ReadFile(file)
	if err == nil && string(got) == want {
		return nil
	}
	if err == nil {
		s.log.Info("repository or branch changed since the last run; starting a new history",
			"previous", redact(strings.TrimSpace(string(got))))
	}
	if err := s.repo.Storer.RemoveReference(syncedRef); err != nil && !errors.Is(err, plumbing.ErrReferenceNotFound) {
		return err
	}
	return os.WriteFile(file, []byte(want), 0o644)
}

// Synced is the commit Sync returned last ("" before the first Sync).
func (s *Source) Synced() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncedLocked()
}

// RemoteHead asks the remote where the tracked branch points, without
// fetching anything (git ls-remote).
func (s *Source) RemoteHead(ctx context.Context) (string, error) {
	h, err := s.remoteHead(ctx)
	if err != nil {
		return "", err
	}
	return h.String(), nil
}

func (s *Source) remoteHead(ctx context.Context) (plumbing.Hash, error) {
	ra, err := s.creds.access(s.opts.URL)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("gitrepo: ls-remote %s: %w", redact(s.opts.URL), err)
	}
	refs, err := s.remote.ListContext(ctx, &git.ListOptions{Auth: ra.auth, CABundle: ra.caBundle})
	if errors.Is(err, transport.ErrEmptyRemoteRepository) {
		err, refs = nil, nil
	}
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("gitrepo: ls-remote %s: %w", redact(s.opts.URL), explain(err))
	}
	for _, r := range refs {
		if r.Name() == s.track && r.Type() == plumbing.HashReference {
			return r.Hash(), nil
		}
	}
	return plumbing.ZeroHash, fmt.Errorf("gitrepo: ls-remote %s: %w", redact(s.opts.URL), refNotFound(s.opts.Ref))
}

// Sync brings the tracked branch's newest commit in and checks it out. It
// compares the remote's ref with what it has first (the ref advertisement
// of one fetch, ls-remote style) and transfers objects only when the branch
// moved; it refuses a commit that does not descend from the last synced
// one (a rewritten history) unless AllowRewrite is set.
func (s *Source) Sync(ctx context.Context) (Revision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	synced := plumbing.ZeroHash
	if ref, err := s.repo.Storer.Reference(syncedRef); err == nil {
		synced = ref.Hash()
	}
	start := time.Now()
	var tip plumbing.Hash
	var moved bool
	wait, err := s.spreadWait(ctx)
	if err != nil {
		return Revision{}, err
	}
	if wait {
		ref, err := s.repo.Storer.Reference(s.local)
		if err != nil {
			return Revision{}, err
		}
		tip = ref.Hash()
	} else if tip, moved, err = s.fetch(ctx); err != nil {
		return Revision{}, err
	}
	if moved {
		s.log.Debug("fetched", "commit", short(tip.String()), "duration", time.Since(start))
		if s.transfers%s.repackAt == 0 {
			s.repackLocked()
		}
	}
	if !synced.IsZero() && synced != tip {
		if err := s.checkFastForward(synced, tip); err != nil {
			var rw *RewriteError
			if !errors.As(err, &rw) || !s.opts.AllowRewrite {
				if s.refused != tip {
					s.refused = tip
					s.log.Error("refusing update of the tracked branch", "err", err)
				}
				return Revision{}, err
			}
			s.log.Warn("tracked branch rewritten; following it (allow-rewrite)", "from", short(rw.Old), "to", short(rw.New), "reason", rw.Reason)
		}
	}
	// Trust is decided on the object store: nothing of a refused commit
	// is written, and the synced commit (the fast-forward guard's base)
	// does not move to it.
	if err := s.admit(ctx, tip); err != nil {
		if ctx.Err() != nil {
			return Revision{}, err
		}
		return Revision{}, s.refuse(tip, err)
	}
	rev, err := s.checkout(tip)
	if te := (*TreeError)(nil); errors.As(err, &te) {
		return Revision{}, s.refuse(tip, te)
	}
	if err != nil {
		return Revision{}, err
	}
	s.denied = nil
	if synced != tip {
		if err := s.repo.Storer.SetReference(plumbing.NewHashReference(syncedRef, tip)); err != nil {
			return Revision{}, fmt.Errorf("gitrepo: record synced commit: %w", err)
		}
		s.log.Info("synced", "commit", rev.Short(), "subject", rev.Subject)
		s.prune(tip.String())
	}
	s.advanceAnchor(tip)
	return rev, nil
}

// refuse wraps why tip is refused into a *RefusedError, logged once per
// tip.
func (s *Source) refuse(tip plumbing.Hash, why error) error {
	if s.denied != nil && s.denied.Revision.Commit == tip.String() && s.denied.Err.Error() == why.Error() {
		return s.denied
	}
	rev := Revision{Commit: tip.String()}
	if c, err := s.repo.CommitObject(tip); err == nil {
		rev = revisionOf(c, "")
	}
	s.denied = &RefusedError{Revision: rev, Err: why}
	s.log.Error("commit refused; nothing of it is written and the synced commit stays", "commit", rev.Short(),
		"synced", short(s.syncedLocked()), "err", why)
	return s.denied
}

func (s *Source) syncedLocked() string {
	ref, err := s.repo.Storer.Reference(syncedRef)
	if err != nil {
		return ""
	}
	return ref.Hash().String()
}

// repackLocked merges the packs that fetches left into one and reopens the
// local copy (go-git caches the list of packs).
func (s *Source) repackLocked() {
	dir := filepath.Join(s.opts.Dir, "repo.git")
	if err := repack(dir); err != nil {
		s.log.Warn("repack", "err", err)
	}
	repo, err := git.PlainOpen(dir)
	if err != nil {
		s.log.Error("reopen after repack", "err", err)
		return
	}
	s.repo = repo
	s.remote = git.NewRemote(repo.Storer, &config.RemoteConfig{Name: "origin", URLs: []string{s.opts.URL}})
}

// fetch updates the tracking ref from the remote and returns where it
// points; moved is false when the remote's ref was already known (nothing
// transferred).
func (s *Source) fetch(ctx context.Context) (tip plumbing.Hash, moved bool, err error) {
	fail := func(err error) (plumbing.Hash, bool, error) {
		return plumbing.ZeroHash, false, fmt.Errorf("gitrepo: fetch %s %s: %w", redact(s.opts.URL), s.opts.Ref, explain(err))
	}
	ra, err := s.creds.access(s.opts.URL)
	if err != nil {
		return fail(err)
	}
	spec := config.RefSpec("+" + s.track.String() + ":" + s.local.String())
	err = s.remote.FetchContext(ctx, &git.FetchOptions{
		RefSpecs: []config.RefSpec{spec},
		Auth:     ra.auth,
		CABundle: ra.caBundle,
		Tags:     git.NoTags,
	})
	var noMatch git.NoMatchingRefSpecError
	switch {
	case errors.Is(err, git.NoErrAlreadyUpToDate):
	case errors.As(err, &noMatch), errors.Is(err, transport.ErrEmptyRemoteRepository):
		return fail(refNotFound(s.opts.Ref))
	case err != nil:
		return fail(err)
	default:
		moved = true
		s.transfers++
	}
	ref, err := s.repo.Storer.Reference(s.local)
	if err != nil {
		return fail(err)
	}
	return ref.Hash(), moved, nil
}

// checkFastForward returns a *RewriteError unless next descends from prev.
func (s *Source) checkFastForward(prev, next plumbing.Hash) error {
	rw := &RewriteError{Ref: s.opts.Ref, Old: prev.String(), New: next.String()}
	oldC, err := s.repo.CommitObject(prev)
	if err != nil {
		rw.Reason = "the last synced commit is unknown here: " + err.Error()
		return rw
	}
	newC, err := s.repo.CommitObject(next)
	if err != nil {
		return fmt.Errorf("gitrepo: read commit %s: %w", short(next.String()), err)
	}
	ok, err := oldC.IsAncestor(newC)
	if err != nil {
		return fmt.Errorf("gitrepo: ancestry of %s: %w", short(next.String()), err)
	}
	if ok {
		return nil
	}
	if newOld, err := newC.IsAncestor(oldC); err == nil && newOld {
		rw.Reason = "the branch moved back to an older commit"
	} else {
		rw.Reason = "the new commit does not contain the last synced one (history rewritten)"
	}
	return rw
}

// Checkout exports any commit present in the local copy (the synced one,
// an older one for a rollback) and describes it.
func (s *Source) Checkout(ctx context.Context, commit string) (Revision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return Revision{}, err
	}
	return s.checkout(plumbing.NewHash(commit))
}

func (s *Source) checkout(h plumbing.Hash) (Revision, error) {
	c, err := s.repo.CommitObject(h)
	if err != nil {
		return Revision{}, fmt.Errorf("gitrepo: checkout %s: %w", short(h.String()), err)
	}
	dir := filepath.Join(s.opts.Dir, "trees", h.String())
	if _, err := os.Stat(dir); err != nil {
		tree, err := c.Tree()
		if err != nil {
			return Revision{}, fmt.Errorf("gitrepo: checkout %s: %w", short(h.String()), err)
		}
		if err := exportTree(s.repo.Storer, tree, dir, s.opts.Tree); err != nil {
			return Revision{}, fmt.Errorf("gitrepo: checkout %s: %w", short(h.String()), err)
		}
	} else {
		now := time.Now()
		_ = os.Chtimes(dir, now, now) // most recently used: kept by prune
	}
	if s.opts.Site {
		site, err := siteDir(dir, s.opts.Path)
		if err != nil {
			return Revision{}, fmt.Errorf("gitrepo: checkout %s: %w", short(h.String()), err)
		}
		dir = site
	} else if s.opts.Path != "" {
		dir = filepath.Join(dir, filepath.FromSlash(s.opts.Path))
	}
	return revisionOf(c, dir), nil
}

func revisionOf(c *object.Commit, dir string) Revision {
	return Revision{
		Commit:   c.Hash.String(),
		Dir:      dir,
		Subject:  subjectOf(c.Message),
		Message:  c.Message,
		Author:   fmt.Sprintf("%s <%s>", c.Author.Name, c.Author.Email),
		Time:     c.Author.When,
		Trailers: CommitTrailers(c.Message),
	}
}

// prune removes exported trees beyond KeepTrees, least recently used
// first, never keep.
func (s *Source) prune(keep string) {
	root := filepath.Join(s.opts.Dir, "trees")
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	type dirAge struct {
		name string
		mod  time.Time
	}
	var dirs []dirAge
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !e.IsDir() {
			continue
		}
		if strings.HasPrefix(e.Name(), ".export-") {
			_ = os.RemoveAll(filepath.Join(root, e.Name())) // left by a crash
			continue
		}
		dirs = append(dirs, dirAge{e.Name(), info.ModTime()})
	}
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].mod.After(dirs[j].mod) })
	kept := 0
	for _, d := range dirs {
		if d.name == keep || kept < s.opts.KeepTrees-1 {
			if d.name != keep {
				kept++
			}
			continue
		}
		if err := os.RemoveAll(filepath.Join(root, d.name)); err != nil {
			s.log.Warn("prune exported tree", "dir", d.name, "err", err)
		}
	}
}

// ReadTree returns every file of a commit in the local copy by path.
func (s *Source) ReadTree(ctx context.Context, commit string) (map[string][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := s.repo.CommitObject(plumbing.NewHash(commit))
	if err != nil {
		return nil, fmt.Errorf("gitrepo: read tree of %s: %w", short(commit), err)
	}
	tree, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("gitrepo: read tree of %s: %w", short(commit), err)
	}
	files, err := readFiles(s.repo.Storer, tree)
	if err != nil {
		return nil, fmt.Errorf("gitrepo: read tree of %s: %w", short(commit), err)
	}
	if s.opts.Path != "" {
		for name := range files {
			if !strings.HasPrefix(name, s.opts.Path+"/") {
				delete(files, name)
			}
		}
	}
	return files, nil
}

// CommitTrailers returns the trailers of a commit in the local copy.
func (s *Source) CommitTrailers(ctx context.Context, commit string) (Trailers, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := s.repo.CommitObject(plumbing.NewHash(commit))
	if err != nil {
		return nil, fmt.Errorf("gitrepo: trailers of %s: %w", short(commit), err)
	}
	return CommitTrailers(c.Message), nil
}

// identity is the author of the commits gitgw writes for node.
func identity(node string, when time.Time) object.Signature {
	if node == "" {
		node = "localhost"
	}
	return object.Signature{Name: "gitgw", Email: "gitgw@" + node, When: when}
}

// WriteBranch proposes a change to the site: a commit on top of base (a
// commit of the tracked branch, e.g. the applied one) whose tree is base's
// with files replaced (a nil content deletes the path), pushed to branch
// (e.g. "gitgw/adopt/NODE") of the same repository. An earlier proposal on
// that branch is replaced, but only if the remote still holds what was
// seen just before (force with lease). Writing the same proposal again on
// the same base pushes nothing. It returns the proposal's commit.
func (s *Source) WriteBranch(ctx context.Context, branch, base string, files map[string][]byte, msg Message) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("gitrepo: write branch %s: %w", branch, err)
	}
	branch = strings.TrimPrefix(branch, "refs/heads/")
	if branch == "" || branch == s.opts.Ref {
		return fail(errors.New("refusing to write the tracked branch"))
	}
	baseC, err := s.repo.CommitObject(plumbing.NewHash(base))
	if err != nil {
		return fail(fmt.Errorf("base %s: %w", short(base), err))
	}
	baseTree, err := baseC.Tree()
	if err != nil {
		return fail(err)
	}
	baseFiles, err := flatten(baseTree)
	if err != nil {
		return fail(err)
	}
	treeHash, err := treeFromFiles(s.repo.Storer, baseFiles, files)
	if err != nil {
		return fail(err)
	}
	ref := plumbing.NewBranchReferenceName(branch)
	if prev, err := s.repo.Storer.Reference(ref); err == nil {
		if pc, err := s.repo.CommitObject(prev.Hash()); err == nil &&
			pc.TreeHash == treeHash && len(pc.ParentHashes) == 1 && pc.ParentHashes[0] == baseC.Hash {
			if remoteHash, err := s.lsRemote(ctx, ref); err == nil && remoteHash == prev.Hash() {
				return prev.Hash().String(), nil
			}
		}
	}
	sig := identity(s.opts.Node, time.Now())
	commit := &object.Commit{
		Author:       sig,
		Committer:    sig,
		Message:      msg.format(s.opts.Node),
		TreeHash:     treeHash,
		ParentHashes: []plumbing.Hash{baseC.Hash},
	}
	obj := s.repo.Storer.NewEncodedObject()
	if err := commit.Encode(obj); err != nil {
		return fail(err)
	}
	h, err := s.repo.Storer.SetEncodedObject(obj)
	if err != nil {
		return fail(err)
	}
	if err := s.repo.Storer.SetReference(plumbing.NewHashReference(ref, h)); err != nil {
		return fail(err)
	}
	ra, err := s.creds.access(s.opts.URL)
	if err != nil {
		return fail(err)
	}
	// The proposal branch belongs to this node: a new proposal replaces
	// the previous one (from the value the remote advertised, not blindly).
	spec := pushSpec{ref: ref, head: h, replace: true, known: []plumbing.Hash{baseC.Hash}}
	if _, err := pushRef(ctx, s.repo.Storer, s.opts.URL, ra, spec); err != nil {
		return fail(fmt.Errorf("push: %w", err))
	}
	s.log.Info("proposal pushed", "branch", branch, "commit", short(h.String()), "base", short(base))
	return h.String(), nil
}

// lsRemote returns where ref points on the remote.
func (s *Source) lsRemote(ctx context.Context, ref plumbing.ReferenceName) (plumbing.Hash, error) {
	ra, err := s.creds.access(s.opts.URL)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	refs, err := s.remote.ListContext(ctx, &git.ListOptions{Auth: ra.auth, CABundle: ra.caBundle})
	if errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return plumbing.ZeroHash, plumbing.ErrReferenceNotFound
	}
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("ls-remote: %w", err)
	}
	for _, r := range refs {
		if r.Name() == ref {
			return r.Hash(), nil
		}
	}
	return plumbing.ZeroHash, plumbing.ErrReferenceNotFound
}
