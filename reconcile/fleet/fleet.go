// Package fleet reads every node's status branch and liveness ref from the
// site repository into the fleet view (drift.Fleet): what `gitgw fleet`
// shows, and what Page serves as a web page, JSON and metrics
// (`gitgw fleet --serve`). Reading and serving are here, the view itself
// (sync, stale, split brain per virtual router) is drift.BuildFleet, so
// that all are tested without the command.
package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/gitgw/gitgw/reconcile/drift"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
)

// Options say where to read the fleet from.
type Options struct {
	// URL of the repository (a local path reads it in place).
	URL string
	// Prefix of the status branches (default gitrepo.DefaultStatusPrefix).
	Prefix string
	// Ref is the tracked branch: the applied commits are compared with its
	// head.
	Ref string
	// SSHKeyFile, KnownHostsFile, TokenFile, CAFile: see gitrepo.Credentials.
	SSHKeyFile, KnownHostsFile, TokenFile, CAFile string
	// CacheDir keeps the objects of a remote's status branches between
	// reads (gitrepo.ReadOptions.CacheDir; made when missing), so that a
	// re-read fetches only the heads that moved
	// (BenchmarkReadStatusBranches10000). Command defaults it to
	// DefaultCacheDir.
	CacheDir string
	// Logger receives what happens to CacheDir (default: discard).
	Logger *slog.Logger
	// Now is the clock liveness is judged by (default time.Now).
	Now func() time.Time
	// Warn receives what does not stop the read (the head unknown).
	Warn func(error)
}

// Read reads every status branch and the tracked branch's head.
func Read(ctx context.Context, o Options) (drift.Fleet, error) {
	head, reports, err := readReports(ctx, o)
	if err != nil {
		return drift.Fleet{}, err
	}
	return drift.BuildFleet(head, reports), nil
}

// readReports is Read before the view is built: the page also shows what
// the view folds away (when each node last reported).
func readReports(ctx context.Context, o Options) (string, []drift.NodeReport, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Warn == nil {
		o.Warn = func(error) {}
	}
	// The tracked head is asked for meanwhile: with thousands of refs its
	// ref advertisement is a good part of the read's time.
	var head string
	var headErr error
	headDone := make(chan struct{})
	go func() {
		defer close(headDone)
		head, headErr = trackedHead(ctx, o)
	}()
	branches, err := gitrepo.ReadStatusBranches(ctx, gitrepo.ReadOptions{
		URL: o.URL, Prefix: o.Prefix, Files: []string{drift.StatusFile}, CacheDir: o.CacheDir, Logger: o.Logger,
		SSHKeyFile: o.SSHKeyFile, KnownHostsFile: o.KnownHostsFile, TokenFile: o.TokenFile, CAFile: o.CAFile,
	})
	<-headDone
	if err != nil {
		return "", nil, err
	}
	if headErr != nil {
		o.Warn(fmt.Errorf("head of %s unknown: %w", o.Ref, headErr))
	}
	return head, Reports(branches, o.Now()), nil
}

// Reports turns status branches into the fleet's node reports: the parsed
// status.json (or why it is unreadable) and the liveness judged at now.
func Reports(branches []gitrepo.BranchStatus, now time.Time) []drift.NodeReport {
	reports := make([]drift.NodeReport, 0, len(branches))
	for _, b := range branches {
		r := drift.NodeReport{Node: b.Node, Commit: b.Commit, Subject: b.Subject, Time: b.Time}
		if a := b.Alive; a != nil {
			r.Alive, r.AliveBound, r.Stale = a.Time, a.Bound, a.Stale(now)
			if a.Agent != nil {
				r.Agent = a.Agent.Describe()
			}
		}
		if js, ok := b.Files[drift.StatusFile]; !ok {
			r.Err = drift.StatusFile + " missing"
		} else if st, err := drift.Parse(js); err != nil {
			r.Err = err.Error()
		} else {
			r.Status = &st
		}
		reports = append(reports, r)
	}
	return reports
}

// trackedHead asks the repository where the tracked branch points.
func trackedHead(ctx context.Context, o Options) (string, error) {
	tmp, err := os.MkdirTemp("", "gitgw-fleet-")
	if err != nil {
		return "", fmt.Errorf("fleet: %w", err)
	}
	defer os.RemoveAll(tmp)
	src, err := gitrepo.Open(ctx, gitrepo.Options{URL: o.URL, Ref: o.Ref, Dir: tmp,
		SSHKeyFile: o.SSHKeyFile, KnownHostsFile: o.KnownHostsFile, TokenFile: o.TokenFile, CAFile: o.CAFile})
	if err != nil {
		return "", err
	}
	return src.RemoteHead(ctx)
}

// DefaultCacheDir is where `gitgw fleet` keeps the objects of the status
// branches of the repository at rawURL between runs, so that a run fetches
// only the heads that moved since the last: $XDG_CACHE_HOME/gitgw (or
// ~/.cache/gitgw) /fleet-HASH.git, HASH of the URL without its
// credentials (a new token reads the same cache).
func DefaultCacheDir(rawURL string) (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("fleet cache: %w", err)
	}
	key := rawURL
	if u, err := url.Parse(rawURL); err == nil && u.User != nil {
		u.User = nil
		key = u.String()
	}
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(base, "gitgw", "fleet-"+hex.EncodeToString(sum[:8])+".git"), nil
}
