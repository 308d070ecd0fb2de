package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/policies"
)

// PolicyOptions configure PolicyCheck.
type PolicyOptions struct {
	Logger *slog.Logger
	// Now is the clock the maintenance windows are read against
	// (time.Now when nil).
	Now func() time.Time
}

// PolicyCheck is the CheckFunc that vets a revision before it is planned:
// the built-in guardrails on the node's new desired state, the change
// policies against the last applied one, and the site's own policies
// (policies/*.cue in the revision). Violations come back positioned in the
// revision's files with the policy's name, "[vrid-unique] …", and reject
// the revision; warnings (a password in clear) are logged and let through.
func PolicyCheck(o PolicyOptions) CheckFunc {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "policies")
	now := o.Now
	if now == nil {
		now = time.Now
	}
	// The site policies depend on the revision alone: remembered for the
	// last one, so that a resync over the same commit does not evaluate the
	// whole site again.
	var (
		mu       sync.Mutex
		memoRev  string
		memoErrs loader.Errors
		// warnedRev is the last revision whose warnings were logged.
		warnedRev string
	)
	sitePolicies := func(ctx context.Context, rev Revision) loader.Errors {
		mu.Lock()
		defer mu.Unlock()
		if rev.Commit != "" && rev.Commit == memoRev {
			return memoErrs
		}
		errs, err := loader.SitePolicies(ctx, rev.Dir)
		if err != nil {
			if le, ok := loader.AsErrors(err); ok {
				errs = le
			} else {
				// Not remembered: a transient failure is tried again.
				return loader.Errors{{Msg: "[site-policy] cannot evaluate the site policies: " + err.Error()}}
			}
		}
		memoRev, memoErrs = rev.Commit, errs
		return errs
	}
	// Positioning violations evaluates the site unless the Runner hands
	// the check its evaluation; remembered for the last commit, so that a
	// rejected commit tried again is not evaluated again.
	var (
		locMu   sync.Mutex
		locKey  string
		located loader.Errors
	)
	locate := func(ctx context.Context, rev Revision, errs loader.Errors) loader.Errors {
		key := rev.Commit + "\x00" + errs.Error()
		locMu.Lock()
		defer locMu.Unlock()
		if rev.Commit != "" && key == locKey {
			return located
		}
		var out loader.Errors
		if site := siteFrom(ctx); site != nil {
			out = site.Locate(errs)
		} else {
			var err error
			if out, err = loader.Locate(ctx, rev.Dir, errs); err != nil {
				log.Warn("cannot position policy violations", "commit", rev.Commit, "err", err)
				return out
			}
		}
		locKey, located = key, out
		return out
	}
	return func(ctx context.Context, rev Revision, prev, next *spec.Node) loader.Errors {
		vs := policies.Check(policies.FromNode(next))
		if prev != nil {
			vs = policies.PointAtChange(vs, policies.FromNode(prev), policies.FromNode(next))
		}
		vs = append(vs, policies.CheckChange(policies.Change{Prev: prev, Next: next, Trailers: rev.Trailers, Now: now()})...)
		bad, warns := policies.Split(vs)
		mu.Lock()
		// Once per revision, not on every resync.
		if len(warns) > 0 && (rev.Commit == "" || rev.Commit != warnedRev) {
			warnedRev = rev.Commit
			for _, w := range warns {
				log.Warn("policy warning", "commit", rev.Commit, "policy", w.Policy, "path", w.Path, "reason", w.Msg)
			}
		}
		mu.Unlock()
		errs := PolicyErrors(bad)
		if loader.HasSitePolicies(rev.Dir) {
			errs = append(errs, sitePolicies(ctx, rev)...)
		}
		if len(errs) == 0 {
			return nil
		}
		return locate(ctx, rev, errs)
	}
}

// PolicyErrors turns violations into loader errors, not yet positioned,
// whose message starts with the policy's name in brackets; the loader
// positions them by their field path.
func PolicyErrors(vs []policies.Violation) loader.Errors {
	var out loader.Errors
	for _, v := range vs {
		out = append(out, loader.Error{Path: v.Path, Related: v.Related, Msg: fmt.Sprintf("[%s] %s", v.Policy, v.Msg)})
	}
	return out
}
