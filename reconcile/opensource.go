package reconcile

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/gitgw/gitgw/reconcile/gitrepo"
)

// SourceConfig says where the site comes from: a repository (Git.URL) or a
// plain directory (Dir), as the command line gives them.
type SourceConfig struct {
	// Dir is a site directory, used as it is; Watch watches it for
	// changes (the agent), otherwise it is read once.
	Dir   string
	Watch bool
	// Git is the repository; its Dir is set here: SourceDir in StateDir,
	// or a temporary directory removed by Close when StateDir is empty.
	Git      gitrepo.Options
	StateDir string
}

// Check refuses a configuration that names no site, or two, before
// anything is opened; its errors name the flags of gitgw's commands.
func (c SourceConfig) Check() error {
	g := c.Git
	switch {
	case g.URL == "" && c.Dir == "":
		return fmt.Errorf("say where the site is: --site DIR or --repo URL")
	case g.URL != "" && c.Dir != "":
		return fmt.Errorf("--site and --repo exclude each other")
	case g.Path != "" && g.URL == "":
		return fmt.Errorf("--path goes with --repo: with --site, give the site's own directory")
	case g.Tree.MaxEntries < 0 || g.Tree.MaxBytes < 0:
		return fmt.Errorf("--max-tree-entries and --max-tree-bytes must be positive")
	}
	if c.Dir != "" {
		st, err := os.Stat(c.Dir)
		if err != nil {
			return fmt.Errorf("--site %s: %w", c.Dir, err)
		}
		if !st.IsDir() {
			return fmt.Errorf("--site %s is a file: give the site's directory, the one that holds cue.mod/", c.Dir)
		}
	}
	return nil
}

// SourceDir, in the agent's state dir, holds the site repository's local
// copy.
const SourceDir = "source"

// OpenedSource is a site source and the history behind it.
type OpenedSource struct {
	Source
	// History checks out past commits of the site (those the nodes report
	// as applied): given here so that nobody digs the repository out of
	// the Source.
	History *History
	// Repo is the repository's local copy; nil for a site directory.
	Repo    *gitrepo.Source
	cleanup func()
}

// Close removes what opening made (a temporary clone, a checkout of the
// history).
func (o *OpenedSource) Close() {
	o.History.close()
	if o.cleanup != nil {
		o.cleanup()
	}
}

// OpenSource opens the site source cfg describes.
func OpenSource(ctx context.Context, cfg SourceConfig) (*OpenedSource, error) {
	if cfg.Dir != "" {
		var s *DirSource
		var err error
		if cfg.Watch {
			s, err = NewDirSource(ctx, cfg.Dir)
		} else {
			s, err = StaticDir(cfg.Dir)
		}
		if err != nil {
			return nil, err
		}
		// A --site directory: its own repository holds the history.
		return &OpenedSource{Source: s, History: &History{open: gitrepo.Options{URL: cfg.Dir, Ref: cfg.Git.Ref}}}, nil
	}
	o := &OpenedSource{}
	opts := cfg.Git
	opts.Dir = filepath.Join(cfg.StateDir, SourceDir)
	if cfg.StateDir == "" {
		tmp, err := os.MkdirTemp("", "gitgw-src-")
		if err != nil {
			return nil, err
		}
		opts.Dir, o.cleanup = tmp, func() { os.RemoveAll(tmp) }
	}
	g, err := NewGitSource(ctx, opts)
	if err != nil {
		o.Close()
		return nil, err
	}
	o.Source, o.Repo, o.History = g, g.Repo(), &History{repo: g.Repo()}
	return o, nil
}

// History checks out past commits of the site: from the repository's own
// copy, or from a site directory's repository, opened on first use in a
// temporary directory.
type History struct {
	open gitrepo.Options

	mu   sync.Mutex
	repo *gitrepo.Source
	tmp  string
}

// Checkout writes the tree of commit and returns it as a revision (the
// signature of siteplan.Options.Checkout: there is nothing to clean up
// per commit; Close removes the history's copy).
func (h *History) Checkout(ctx context.Context, commit string) (Revision, func(), error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.repo == nil {
		dir, err := os.MkdirTemp("", "gitgw-observed-")
		if err != nil {
			return Revision{}, nil, err
		}
		opts := h.open
		opts.Dir = dir
		r, err := gitrepo.Open(ctx, opts)
		if err == nil {
			_, err = r.Sync(ctx)
		}
		if err != nil {
			os.RemoveAll(dir)
			return Revision{}, nil, err
		}
		h.repo, h.tmp = r, dir
	}
	r, err := h.repo.Checkout(ctx, commit)
	if err != nil {
		return Revision{}, nil, err
	}
	return Revision{Commit: r.Commit, Dir: r.Dir, Subject: r.Subject}, nil, nil
}

func (h *History) close() {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tmp != "" {
		os.RemoveAll(h.tmp)
		h.repo, h.tmp = nil, ""
	}
}
