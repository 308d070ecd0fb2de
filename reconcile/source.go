package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/gitgw/gitgw/reconcile/gitrepo"
)

// Source yields revisions of the site.
type Source interface {
	// Sync returns the current revision, fetching it if needed. A
	// revision the source refuses to check out (signature, trust, tree)
	// comes back described, with Refused set, an empty Dir, and Refused
	// as the error too.
	Sync(ctx context.Context) (Revision, error)
	// Changes signals (coalesced) that the source may have a new revision;
	// nil when the source can only be polled.
	Changes() <-chan struct{}
	// Describe names the source for logs.
	Describe() string
}

// DirSource serves a plain directory (--site DIR), watched with fsnotify;
// its revision id is a hash of the .cue files' names and contents, so an
// unchanged tree is recognized and skipped.
type DirSource struct {
	dir     string
	changes chan struct{}
}

// NewDirSource watches dir until ctx ends.
func NewDirSource(ctx context.Context, dir string) (*DirSource, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("site dir: %w", err)
	}
	s := &DirSource{dir: abs, changes: make(chan struct{}, 1)}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("site dir: watch: %w", err)
	}
	err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && p != abs {
				return filepath.SkipDir
			}
			return w.Add(p)
		}
		return nil
	})
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("site dir: watch %s: %w", abs, err)
	}
	go func() {
		defer w.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if ev.Op&fsnotify.Create != 0 {
					if st, err := os.Stat(ev.Name); err == nil && st.IsDir() {
						_ = w.Add(ev.Name)
					}
				}
				select {
				case s.changes <- struct{}{}:
				default:
				}
			case <-w.Errors:
			}
		}
	}()
	return s, nil
}

// StaticDir serves a directory without watching it (one-shot commands).
func StaticDir(dir string) (*DirSource, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("site dir: %w", err)
	}
	return &DirSource{dir: abs}, nil
}

// Describe names the directory.
func (s *DirSource) Describe() string { return "dir " + s.dir }

// Changes signals file changes.
func (s *DirSource) Changes() <-chan struct{} { return s.changes }

// Sync hashes the tree's CUE files into a revision id.
func (s *DirSource) Sync(context.Context) (Revision, error) {
	h := sha256.New()
	var files []string
	err := filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && p != s.dir {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".cue") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return Revision{}, fmt.Errorf("site dir: %w", err)
	}
	sort.Strings(files)
	for _, f := range files {
		rel, _ := filepath.Rel(s.dir, f)
		fmt.Fprintf(h, "%s\x00", rel)
		fh, err := os.Open(f)
		if err != nil {
			return Revision{}, fmt.Errorf("site dir: %w", err)
		}
		_, err = io.Copy(h, fh)
		fh.Close()
		if err != nil {
			return Revision{}, fmt.Errorf("site dir: %w", err)
		}
	}
	return Revision{Commit: "dir:" + hex.EncodeToString(h.Sum(nil))[:12], Dir: s.dir}, nil
}

// GitSource serves the tracked branch of a repository through gitrepo.
type GitSource struct {
	src     *gitrepo.Source
	url     string
	changes <-chan struct{}
}

// NewGitSource opens the repository (clone or reuse in opts.Dir) and, for a
// local repository, watches it so that a push is seen at once.
func NewGitSource(ctx context.Context, opts gitrepo.Options) (*GitSource, error) {
	src, err := gitrepo.Open(ctx, opts)
	if err != nil {
		return nil, err
	}
	g := &GitSource{src: src, url: opts.URL}
	if src.CanWatch() {
		ch, err := src.Watch(ctx)
		if err != nil {
			return nil, err
		}
		g.changes = ch
	}
	return g, nil
}

// Repo exposes the underlying gitrepo.Source (status writer, rollbacks).
func (g *GitSource) Repo() *gitrepo.Source { return g.src }

// Describe names the repository.
func (g *GitSource) Describe() string { return "git " + g.url }

// Changes signals pushes to a local repository; nil for remote ones.
func (g *GitSource) Changes() <-chan struct{} { return g.changes }

// Sync fetches the tracked branch if it moved and checks out its head. A
// head the repository refuses (signature, trust, tree) comes back as a
// revision with Refused set and nothing on disk, and the same error, so
// that the agent's pass reports it like any rejected revision while the
// last good state keeps running, and a one-shot command fails.
func (g *GitSource) Sync(ctx context.Context) (Revision, error) {
	r, err := g.src.Sync(ctx)
	var refused *gitrepo.RefusedError
	if errors.As(err, &refused) {
		rev := fromGit(refused.Revision)
		rev.Dir, rev.Refused = "", refused
		return rev, refused
	}
	if err != nil {
		return Revision{}, err
	}
	return fromGit(r), nil
}

func fromGit(r gitrepo.Revision) Revision {
	tr := map[string]string{}
	for k := range r.Trailers {
		tr[k] = r.Trailers.Get(k)
	}
	return Revision{Commit: r.Commit, Dir: r.Dir, Subject: r.Subject, Trailers: tr}
}

// Jitter spreads d by up to ±10 %, so that a fleet polling one server does
// not poll in lock-step.
func Jitter(d time.Duration, rnd func(int64) int64) time.Duration {
	if d <= 0 {
		return d
	}
	span := int64(d) / 5
	if span == 0 {
		return d
	}
	return d - time.Duration(span/2) + time.Duration(rnd(span))
}
