package gitrepo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"golang.org/x/crypto/ssh"
)

// DefaultStatusPrefix is where status branches live: gitgw/status/NODE.
const DefaultStatusPrefix = "gitgw/status/"

// StatusOptions configure a StatusWriter.
type StatusOptions struct {
	// Node is this node's name; the branch is Prefix+Node.
	Node string
	// URL of the repository that receives the status branch (usually the
	// site repository).
	URL string
	// Prefix of status branches (default DefaultStatusPrefix).
	Prefix string
	// Dir is the writer's local bare repository inside the state dir.
	// Commits wait there until they are pushed, across restarts too.
	Dir string
	// SSHKeyFile, KnownHostsFile, TokenFile, CAFile: see Credentials.
	SSHKeyFile, KnownHostsFile, TokenFile, CAFile string
	// SigningKeyFile, when set, is an unencrypted OpenSSH private key every
	// status commit is signed with (an SSH signature, as git makes them);
	// the site lists its public half as the node's status_key, so that
	// peers trust this branch to gate their rollout.
	SigningKeyFile string
	// Coalesce: a Write less than Coalesce after the previous commit is
	// held back and folded, with any others that follow, into one commit
	// when the window ends (the last content, every subject listed); the
	// first change after a quiet period is committed at once. A burst that
	// ends where it started (a flap) commits nothing. A held change lives
	// in memory until its window ends (Close and Flush commit it): a crash
	// loses at most that, and the next pass reports the state again. Zero
	// commits every change.
	Coalesce time.Duration
	// HistoryCommits and HistoryAge bound the branch's history: past the
	// last HistoryCommits commits, or past those younger than HistoryAge,
	// older commits are folded into one (fold.go). Zero takes the defaults
	// (DefaultHistoryCommits, DefaultHistoryAge); a negative HistoryCommits
	// keeps every commit, a negative HistoryAge bounds by count only.
	HistoryCommits int
	HistoryAge     time.Duration
	// AliveInterval, when positive, makes Run refresh the node's alive
	// ref (refs/gitgw/alive/NODE, alive.go) that often, jittered; the ref
	// promises a refresh within 3 intervals. AgentVersion goes into it.
	AliveInterval time.Duration
	AgentVersion  string
	// Agent identifies this agent process in the alive ref (AgentID), so
	// that another agent started under the same node name refuses to
	// start while this one lives. Zero: not written.
	Agent AgentID
	// RetryMin and RetryMax bound the exponential backoff between failed
	// pushes (defaults 500 ms and 1 min).
	RetryMin, RetryMax time.Duration
	// PushTimeout bounds one push (default 1 min).
	PushTimeout time.Duration
	// Logger receives what the writer does (default: discard).
	Logger *slog.Logger
	// OnPush, when set, is told the result of every push of the status
	// branch (nil: pushed), so that a reporting failure shows in the
	// agent's status and metrics, not only in one log line: the node keeps
	// running while its Git view goes stale. Called from the pusher, never
	// with a lock of the writer held.
	OnPush func(at time.Time, err error)
}

// ErrDiverged matches a *DivergedError with errors.Is.
var ErrDiverged = errors.New("status branch diverged")

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("gitrepo: status writer closed")

// DivergedError means the remote's status branch holds commits this node
// never wrote: most likely another node reports under the same name. The
// writer never force-pushes; it keeps committing locally and retries
// slowly, so it recovers once the operator has resolved the clash (renamed
// a node, deleted the remote branch).
type DivergedError struct {
	Node, Branch  string
	Local, Remote string
}

func (e *DivergedError) Error() string {
	return fmt.Sprintf("gitrepo: push of %s rejected: the remote holds %s, which node %q never wrote; "+
		"is another node reporting under the same name? (not force-pushing; local commits kept, head %s)",
		e.Branch, short(e.Remote), e.Node, short(e.Local))
}

// Is makes errors.Is(err, ErrDiverged) true.
func (e *DivergedError) Is(target error) bool { return target == ErrDiverged }

// freshMarker, present in the writer's directory, says the local branch was
// started without the remote's: on first contact the local commits are
// replayed on top of the remote branch (a restart with a lost state dir).
const freshMarker = "gitgw-fresh"

// StatusWriter keeps one node's status branch. Write commits locally (only
// when the content changed) and returns; Run pushes in the background,
// retrying with backoff, so commits pile up locally while the remote is
// unreachable and all reach it, in order, when it is back.
type StatusWriter struct {
	opts   StatusOptions
	log    *slog.Logger
	creds  Credentials
	branch plumbing.ReferenceName
	signer *commitSigner // nil: commits are not signed
	bound  historyBound
	hist   history          // guarded by mu
	now    func() time.Time // the fold's clock (nil: time.Now; tests)

	// mu guards the local repository's branch and the staged state. When
	// both are needed, pushMu is taken first.
	mu         sync.Mutex
	repo       *git.Repository
	closed     bool
	lastCommit time.Time
	staged     *staged
	timer      *time.Timer

	// The pusher reads through its own view of the same directory, so a
	// slow push never blocks Write.
	pushRepo   *git.Repository
	pushRemote *git.Remote
	pushMu     sync.Mutex // one push at a time

	stateMu  sync.Mutex
	head     plumbing.Hash // local branch head, for State
	pushed   plumbing.Hash
	lastErr  error
	diverged *DivergedError

	kick chan struct{}
	done chan struct{}

	// commits counts commits made since the last repack (guarded by mu);
	// repackAt is the threshold (repackEvery; smaller in tests).
	commits, repackAt int
}

type staged struct {
	files map[string][]byte
	msgs  []Message
}

// NewStatusWriter opens (or creates) the local repository in opts.Dir. It
// does not contact the remote; call Run to push.
func NewStatusWriter(ctx context.Context, opts StatusOptions) (*StatusWriter, error) {
	if opts.Node == "" || opts.URL == "" || opts.Dir == "" {
		return nil, errors.New("gitrepo: status writer: node, URL and directory are required")
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultStatusPrefix
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = 500 * time.Millisecond
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = max(time.Minute, opts.RetryMin)
	}
	if opts.PushTimeout <= 0 {
		opts.PushTimeout = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if isLocal(opts.URL) {
		if p, err := filepath.Abs(strings.TrimPrefix(opts.URL, "file://")); err == nil && !strings.HasPrefix(opts.URL, "file://") {
			opts.URL = p
		}
	}
	bound := historyBound{commits: opts.HistoryCommits, age: opts.HistoryAge}
	switch {
	case bound.commits == 0:
		bound.commits = DefaultHistoryCommits
	case bound.commits < 0:
		bound.commits = 0
	}
	switch {
	case bound.age == 0:
		bound.age = DefaultHistoryAge
	case bound.age < 0:
		bound.age = 0
	}
	branch := opts.Prefix + opts.Node
	if err := checkPath(branch); err != nil {
		return nil, fmt.Errorf("gitrepo: status writer: branch %q: %w", branch, err)
	}
	w := &StatusWriter{
		opts:     opts,
		log:      opts.Logger.With("component", "gitrepo", "branch", branch),
		creds:    Credentials{SSHKeyFile: opts.SSHKeyFile, KnownHostsFile: opts.KnownHostsFile, TokenFile: opts.TokenFile, CAFile: opts.CAFile},
		branch:   plumbing.NewBranchReferenceName(branch),
		bound:    bound,
		kick:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		repackAt: repackEvery,
	}
	if opts.SigningKeyFile != "" {
		signer, err := loadSigningKey(opts.SigningKeyFile)
		if err != nil {
			return nil, err
		}
		w.signer = signer
		w.log.Info("status commits are signed", "fingerprint", ssh.FingerprintSHA256(signer.key.PublicKey()))
	}
	if _, err := RepairRefs(opts.Dir, w.log); err != nil {
		return nil, fmt.Errorf("gitrepo: status writer: %w", err)
	}
	repo, err := openBare(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("gitrepo: status writer: open %s: %w", opts.Dir, err)
	}
	w.repo = repo
	ref, err := repo.Storer.Reference(w.branch)
	if err == nil {
		if _, cerr := repo.CommitObject(ref.Hash()); cerr != nil {
			// The branch names a commit this repository does not hold (a
			// ref written, its objects lost): start afresh, and continue
			// the remote's branch on the first push (adoptRemote).
			aside, merr := moveRefAside(opts.Dir, w.branch.String())
			if merr != nil {
				return nil, fmt.Errorf("gitrepo: status writer: head %s unreadable (%v) and not moved aside: %w", short(ref.Hash().String()), cerr, merr)
			}
			w.log.Error("state file corrupt; moved aside, the status branch continues from the remote's", "file", filepath.Join(opts.Dir, w.branch.String()),
				"reason", fmt.Sprintf("head %s: %v", short(ref.Hash().String()), cerr), "moved_to", aside)
			err = plumbing.ErrReferenceNotFound
		} else {
			w.head = ref.Hash()
		}
	}
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		if err := os.WriteFile(filepath.Join(opts.Dir, freshMarker), nil, 0o644); err != nil {
			return nil, fmt.Errorf("gitrepo: status writer: %w", err)
		}
	}
	if w.pushRepo, err = git.PlainOpen(opts.Dir); err != nil {
		return nil, fmt.Errorf("gitrepo: status writer: open %s: %w", opts.Dir, err)
	}
	w.pushRemote = git.NewRemote(w.pushRepo.Storer, &config.RemoteConfig{Name: "origin", URLs: []string{opts.URL}})
	return w, nil
}

// Branch is the status branch's name (gitgw/status/NODE).
func (w *StatusWriter) Branch() string { return w.branch.Short() }

// Write records files (path → content, the whole status tree) as the
// node's status. It commits, locally, only when the content differs from
// the branch's last commit, and returns whether it committed now: false
// also when the change was held for the coalesce window (see Pending). The
// error is a *DivergedError while the remote branch has diverged (the
// commit is still made locally).
func (w *StatusWriter) Write(ctx context.Context, files map[string][]byte, msg Message) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return false, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if w.opts.Coalesce > 0 && (w.staged != nil || time.Since(w.lastCommit) < w.opts.Coalesce) {
		if w.staged == nil {
			w.staged = &staged{}
			wait := w.opts.Coalesce - time.Since(w.lastCommit)
			w.timer = time.AfterFunc(wait, w.flushStaged)
		}
		// Held past the call: keep a copy, the caller may reuse its map.
		w.staged.files = make(map[string][]byte, len(files))
		for p, b := range files {
			w.staged.files[p] = bytes.Clone(b)
		}
		w.staged.msgs = append(w.staged.msgs, msg)
		return false, w.divergedErr()
	}
	committed, err := w.commitLocked(files, []Message{msg})
	if err != nil {
		return false, err
	}
	return committed, w.divergedErr()
}

// Pending reports whether a change is held for the coalesce window.
func (w *StatusWriter) Pending() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.staged != nil
}

func (w *StatusWriter) divergedErr() error {
	w.stateMu.Lock()
	defer w.stateMu.Unlock()
	if w.diverged != nil {
		return w.diverged
	}
	return nil
}

// flushStaged commits what the coalesce window collected.
func (w *StatusWriter) flushStaged() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.commitStagedLocked(); err != nil {
		w.log.Error("commit coalesced status", "err", err)
	}
}

func (w *StatusWriter) commitStagedLocked() error {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	st := w.staged
	w.staged = nil
	if st == nil {
		return nil
	}
	_, err := w.commitLocked(st.files, st.msgs)
	return err
}

// commitLocked commits files on the local branch unless nothing changed.
func (w *StatusWriter) commitLocked(files map[string][]byte, msgs []Message) (bool, error) {
	s := w.repo.Storer
	treeHash, err := treeFromFiles(s, nil, files)
	if err != nil {
		return false, fmt.Errorf("gitrepo: status commit: %w", err)
	}
	var parents []plumbing.Hash
	if ref, err := s.Reference(w.branch); err == nil {
		head, err := w.repo.CommitObject(ref.Hash())
		if err != nil {
			return false, fmt.Errorf("gitrepo: status commit: read head: %w", err)
		}
		if head.TreeHash == treeHash {
			return false, nil
		}
		parents = []plumbing.Hash{head.Hash}
	} else if !errors.Is(err, plumbing.ErrReferenceNotFound) {
		return false, fmt.Errorf("gitrepo: status commit: %w", err)
	}
	now := time.Now()
	sig := identity(w.opts.Node, now)
	commit := &object.Commit{
		Author:       sig,
		Committer:    sig,
		Message:      coalesced(msgs).format(w.opts.Node),
		TreeHash:     treeHash,
		ParentHashes: parents,
	}
	if w.signer != nil {
		if err := w.signer.signCommit(commit); err != nil {
			return false, fmt.Errorf("gitrepo: status commit: %w", err)
		}
	}
	obj := s.NewEncodedObject()
	if err := commit.Encode(obj); err != nil {
		return false, fmt.Errorf("gitrepo: status commit: %w", err)
	}
	h, err := s.SetEncodedObject(obj)
	if err != nil {
		return false, fmt.Errorf("gitrepo: status commit: %w", err)
	}
	if err := s.SetReference(plumbing.NewHashReference(w.branch, h)); err != nil {
		return false, fmt.Errorf("gitrepo: status commit: %w", err)
	}
	w.lastCommit = now
	w.commits++
	w.hist.committed(now)
	w.setHead(h)
	w.log.Debug("status committed", "commit", short(h.String()), "subject", subjectOf(commit.Message))
	select {
	case w.kick <- struct{}{}:
	default:
	}
	return true, nil
}

// coalesced folds several messages into one: the trailers of the last (the
// state the commit holds), the subject of the most important (a drift
// corrected in a burst must not hide behind a routine status line), and
// every subject listed in the body.
func coalesced(msgs []Message) Message {
	if len(msgs) == 1 {
		return msgs[0]
	}
	last := msgs[len(msgs)-1]
	headline := last.Subject
	for _, m := range msgs {
		if subjectRank(m.Subject) < subjectRank(headline) {
			headline = m.Subject
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d changes in this commit:\n", len(msgs))
	for _, m := range msgs {
		b.WriteString("- ")
		b.WriteString(strings.TrimSpace(m.Subject))
		b.WriteString("\n")
	}
	if body := strings.TrimSpace(last.Body); body != "" {
		b.WriteString("\n")
		b.WriteString(body)
	}
	last.Subject = fmt.Sprintf("%s (+%d more)", strings.TrimSpace(headline), len(msgs)-1)
	last.Body = b.String()
	return last
}

// subjectTags rank a status subject's tag ("drift(gw1): …"): the lower, the
// more an operator needs to see it first.
var subjectTags = []string{"error", "rollback", "failover", "drift", "apply", "held"}

func subjectRank(subject string) int {
	tag, _, ok := strings.Cut(subject, "(")
	if !ok {
		return len(subjectTags)
	}
	for i, t := range subjectTags {
		if tag == t {
			return i
		}
	}
	return len(subjectTags)
}

// Run pushes the local branch whenever it moves, retrying failures with
// exponential backoff (RetryMin doubling up to RetryMax, jittered), until
// ctx ends or Close is called. Commits not yet pushed stay in the local
// repository and are pushed by the next Run, also after a restart.
func (w *StatusWriter) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var alive sync.WaitGroup
	alive.Add(1)
	go func() { defer alive.Done(); w.runAlive(ctx) }()
	defer alive.Wait()
	defer cancel()
	var backoff time.Duration
	retry := time.NewTimer(0) // push what a previous run left at once
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.done:
			return nil
		case <-w.kick:
		case <-retry.C:
		}
		err := w.push(ctx)
		if err == nil {
			backoff = 0
			w.maintain(ctx)
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case errors.Is(err, ErrDiverged):
			backoff = w.opts.RetryMax
		case backoff == 0:
			backoff = w.opts.RetryMin
		default:
			backoff = min(2*backoff, w.opts.RetryMax)
		}
		if !retry.Stop() {
			select {
			case <-retry.C:
			default:
			}
		}
		retry.Reset(Jitter(backoff, 0.2))
	}
}

// maintain folds the branch past its history bound (and pushes the fold),
// and repacks the local repository after a fold or once enough commits
// piled up; only after a push (nothing to lose if it fails). It reports
// whether it folded.
func (w *StatusWriter) maintain(ctx context.Context) bool {
	// Lock order: pushMu, then mu (as push does).
	w.pushMu.Lock()
	defer w.pushMu.Unlock()
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return false
	}
	now := time.Now
	if w.now != nil {
		now = w.now
	}
	plan, err := w.planFoldLocked(now())
	w.mu.Unlock()
	if err != nil {
		w.log.Error("fold status history", "err", err)
	}
	folded := plan != nil && w.pushFold(ctx, plan)
	w.mu.Lock()
	defer w.mu.Unlock()
	if !folded && w.commits < w.repackAt {
		return false
	}
	w.commits = 0
	if err := repack(w.opts.Dir); err != nil {
		w.log.Warn("repack", "err", err)
	}
	// Reopen both views: go-git caches the list of packs.
	repo, err := git.PlainOpen(w.opts.Dir)
	if err != nil {
		w.log.Error("reopen after repack", "err", err)
		return folded
	}
	pushRepo, err := git.PlainOpen(w.opts.Dir)
	if err != nil {
		w.log.Error("reopen after repack", "err", err)
		return folded
	}
	w.repo, w.pushRepo = repo, pushRepo
	w.pushRemote = git.NewRemote(pushRepo.Storer, &config.RemoteConfig{Name: "origin", URLs: []string{w.opts.URL}})
	w.log.Debug("local status repository repacked")
	return folded
}

// Flush commits a change held for the coalesce window, then pushes once,
// now, returning the push's error.
func (w *StatusWriter) Flush(ctx context.Context) error {
	w.mu.Lock()
	err := w.commitStagedLocked()
	w.mu.Unlock()
	if err != nil {
		return err
	}
	return w.push(ctx)
}

// Close commits a change held for the coalesce window (locally) and stops
// Run. It does not push: what is not pushed yet is pushed by the next run.
func (w *StatusWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	close(w.done)
	return w.commitStagedLocked()
}

// WriterState is the push state of a status writer.
type WriterState struct {
	// Head is the local branch's commit, Pushed the last one the remote
	// accepted (or was found to hold).
	Head, Pushed string
	// LastError is the last push failure, nil after a success.
	LastError error
	// Diverged is set while the remote branch holds foreign commits.
	Diverged bool
}

// State reports how far pushing has got.
func (w *StatusWriter) State() WriterState {
	var st WriterState
	w.stateMu.Lock()
	defer w.stateMu.Unlock()
	if !w.head.IsZero() {
		st.Head = w.head.String()
	}
	if !w.pushed.IsZero() {
		st.Pushed = w.pushed.String()
	}
	st.LastError = w.lastErr
	st.Diverged = w.diverged != nil
	return st
}

func (w *StatusWriter) setHead(h plumbing.Hash) {
	w.stateMu.Lock()
	defer w.stateMu.Unlock()
	w.head = h
}

func (w *StatusWriter) setPushResult(pushed plumbing.Hash, err error) {
	if w.opts.OnPush != nil {
		defer w.opts.OnPush(time.Now(), err)
	}
	w.stateMu.Lock()
	defer w.stateMu.Unlock()
	if err == nil {
		w.pushed = pushed
		w.diverged = nil
	}
	var d *DivergedError
	if errors.As(err, &d) {
		if w.diverged == nil || w.diverged.Remote != d.Remote {
			w.log.Error("status branch diverged: another node with the same name?", "err", err)
		}
		w.diverged = d
	}
	w.lastErr = err
}

// push sends the local branch to the remote, never forced.
func (w *StatusWriter) push(ctx context.Context) error {
	w.pushMu.Lock()
	defer w.pushMu.Unlock()
	ref, err := w.pushRepo.Storer.Reference(w.branch)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return nil // nothing written yet
	}
	if err != nil {
		return fmt.Errorf("gitrepo: push %s to %s: %w", w.branch.Short(), redact(w.opts.URL), err)
	}
	head := ref.Hash()
	w.stateMu.Lock()
	done := w.pushed == head
	w.stateMu.Unlock()
	if done {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, w.opts.PushTimeout)
	defer cancel()
	ra, err := w.creds.access(w.opts.URL)
	if err != nil {
		err = fmt.Errorf("gitrepo: push %s to %s: %w", w.branch.Short(), redact(w.opts.URL), err)
		w.setPushResult(plumbing.ZeroHash, err)
		return err
	}
	if _, err := os.Stat(filepath.Join(w.opts.Dir, freshMarker)); err == nil {
		if head, err = w.adoptRemote(ctx, ra); err != nil {
			w.setPushResult(plumbing.ZeroHash, err)
			return err
		}
	}
	start := time.Now()
	remote, err := pushRef(ctx, w.pushRepo.Storer, w.opts.URL, ra, pushSpec{ref: w.branch, head: head})
	if err != nil {
		if errors.Is(err, errNotFastForward) {
			err = &DivergedError{Node: w.opts.Node, Branch: w.branch.Short(), Local: head.String(), Remote: remote.String()}
		} else {
			w.log.Warn("status push failed; will retry", "err", err)
			err = fmt.Errorf("gitrepo: push %s to %s: %w", w.branch.Short(), redact(w.opts.URL), err)
		}
		w.setPushResult(plumbing.ZeroHash, err)
		return err
	}
	w.setPushResult(head, nil)
	w.log.Debug("status pushed", "commit", short(head.String()), "duration", time.Since(start))
	return nil
}

func (w *StatusWriter) lsRemote(ctx context.Context, ra remoteAccess) (plumbing.Hash, error) {
	refs, err := w.pushRemote.ListContext(ctx, &git.ListOptions{Auth: ra.auth, CABundle: ra.caBundle})
	if errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return plumbing.ZeroHash, plumbing.ErrReferenceNotFound
	}
	if err != nil {
		return plumbing.ZeroHash, err
	}
	for _, r := range refs {
		if r.Name() == w.branch {
			return r.Hash(), nil
		}
	}
	return plumbing.ZeroHash, plumbing.ErrReferenceNotFound
}

// adoptRemote runs once for a local branch started from nothing: when the
// remote already has the node's branch (the state dir was lost), the local
// commits are replayed on top of it, so the history continues instead of
// clashing with the node's own past. It returns the new local head.
func (w *StatusWriter) adoptRemote(ctx context.Context, ra remoteAccess) (plumbing.Hash, error) {
	fail := func(err error) (plumbing.Hash, error) {
		return plumbing.ZeroHash, fmt.Errorf("gitrepo: push %s to %s: adopt the remote branch: %w", w.branch.Short(), redact(w.opts.URL), err)
	}
	remote, err := w.lsRemote(ctx, ra)
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.repo.Storer
	headRef, herr := s.Reference(w.branch)
	if herr != nil {
		return fail(herr)
	}
	switch {
	case errors.Is(err, plumbing.ErrReferenceNotFound):
		// The branch is new on the remote: nothing to adopt.
	case err != nil:
		return fail(err)
	default:
		tracking := plumbing.NewRemoteReferenceName("origin", w.branch.Short())
		fetchRemote := git.NewRemote(s, &config.RemoteConfig{Name: "origin", URLs: []string{w.opts.URL}})
		ferr := fetchRemote.FetchContext(ctx, &git.FetchOptions{
			RefSpecs: []config.RefSpec{config.RefSpec("+" + w.branch.String() + ":" + tracking.String())},
			Auth:     ra.auth, CABundle: ra.caBundle, Tags: git.NoTags,
		})
		if ferr != nil && !errors.Is(ferr, git.NoErrAlreadyUpToDate) {
			return fail(ferr)
		}
		newHead, err := w.replayLocked(headRef.Hash(), remote)
		if err != nil {
			return fail(err)
		}
		if err := s.SetReference(plumbing.NewHashReference(w.branch, newHead)); err != nil {
			return fail(err)
		}
		w.hist = history{} // the remote's history below: walk it again
		last := time.Time{}
		if c, err := w.repo.CommitObject(remote); err == nil {
			last = c.Committer.When
		}
		// Expected after a lost state dir; a recent tip may also mean a
		// second node with this name (whose next push will then fail).
		w.log.Warn("state dir had no status history: continuing the branch found on the remote",
			"remote", short(remote.String()), "remote_last_commit", last, "head", short(newHead.String()))
		headRef = plumbing.NewHashReference(w.branch, newHead)
		w.setHead(newHead)
	}
	if err := os.Remove(filepath.Join(w.opts.Dir, freshMarker)); err != nil && !os.IsNotExist(err) {
		return fail(err)
	}
	return headRef.Hash(), nil
}

// replayLocked re-creates the commits of head's history (a fresh local
// branch, all ours) on top of onto, oldest first, keeping trees and
// messages.
func (w *StatusWriter) replayLocked(head, onto plumbing.Hash) (plumbing.Hash, error) {
	var chain []*object.Commit
	for h := head; !h.IsZero(); {
		if h == onto {
			return head, nil // already contains the remote branch
		}
		c, err := w.repo.CommitObject(h)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		chain = append(chain, c)
		h = plumbing.ZeroHash
		if len(c.ParentHashes) > 0 {
			h = c.ParentHashes[0]
		}
	}
	parent := onto
	for i := len(chain) - 1; i >= 0; i-- {
		c := chain[i]
		nc := &object.Commit{
			Author: c.Author, Committer: c.Committer, Message: c.Message,
			TreeHash: c.TreeHash, ParentHashes: []plumbing.Hash{parent},
		}
		if w.signer != nil {
			if err := w.signer.signCommit(nc); err != nil {
				return plumbing.ZeroHash, err
			}
		}
		obj := w.repo.Storer.NewEncodedObject()
		if err := nc.Encode(obj); err != nil {
			return plumbing.ZeroHash, err
		}
		h, err := w.repo.Storer.SetEncodedObject(obj)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		parent = h
	}
	return parent, nil
}
