package reconcile

import (
	"context"
	"errors"
	"sync"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/cue/spec"
)

// LoadFunc evaluates the site in dir for node: cue/loader's LoadWith, or a
// stand-in that counts evaluations in tests.
type LoadFunc func(ctx context.Context, dir, node string, o loader.Options) (*loader.Site, *spec.Node, error)

// evaluated is one revision of the site as this node sees it: the result
// of its one evaluation, which every step and every later pass over the
// same commit reads (a resync, a held or a rejected revision tried again,
// the rollout's labels, plan notes).
type evaluated struct {
	commit, dir string
	site        *loader.Site
	desired     *spec.Node
	// errs are the site's positioned errors; err any other reason the
	// node has no view (a node the site does not declare).
	errs loader.Errors
	err  error

	labelsOnce sync.Once
	labels     map[string]map[string]string
	labelsErr  error
}

// nodeLabels are every node's labels, read from the same evaluation.
func (e *evaluated) nodeLabels() (map[string]map[string]string, error) {
	e.labelsOnce.Do(func() {
		if e.site == nil {
			e.labelsErr = errors.New("rollout: the site did not load")
			return
		}
		e.labels, e.labelsErr = e.site.NodeLabels()
	})
	return e.labels, e.labelsErr
}

// evalCacheSize is how many commits a Runner keeps evaluated: the one
// running, the one held or rejected, and a few a plan may ask about.
const evalCacheSize = 4

// evalCache keeps the last few evaluations, by commit and directory.
type evalCache struct {
	mu      sync.Mutex
	entries []*evaluated // least recently used first
}

func (c *evalCache) get(commit, dir string) *evaluated {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, e := range c.entries {
		if e.commit == commit && e.dir == dir {
			c.entries = append(append(c.entries[:i:i], c.entries[i+1:]...), e)
			return e
		}
	}
	return nil
}

func (c *evalCache) put(e *evaluated) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = append(c.entries, e)
	if len(c.entries) > evalCacheSize {
		c.entries = c.entries[len(c.entries)-evalCacheSize:]
	}
}

// evaluate returns rev's evaluation for this node, evaluating the site
// only the first time a commit is seen. Only an outcome the commit decides
// is kept (a view, positioned errors, an unknown node); a failure of the
// evaluation itself (a budget, a cancelled context) is tried again.
func (r *Runner) evaluate(ctx context.Context, rev Revision) *evaluated {
	if rev.Commit != "" {
		if e := r.evals.get(rev.Commit, rev.Dir); e != nil {
			return e
		}
	}
	site, desired, err := r.opts.Load(ctx, rev.Dir, r.opts.Node, loader.Options{Scope: r.opts.Scope})
	e := &evaluated{commit: rev.Commit, dir: rev.Dir, site: site, desired: desired}
	keep := true
	switch errs, positioned := loader.AsErrors(err); {
	case err == nil:
		r.log.Debug("site evaluated", "commit", rev.Commit, "scope", site.Scope, "nodes", len(site.Nodes))
	case positioned:
		e.errs = errs
	default:
		e.err = err
		keep = errors.Is(err, loader.ErrUnknownNode)
	}
	if keep && rev.Commit != "" {
		r.evals.put(e)
	}
	return e
}

// Evaluate loads and vets a revision for this node (policies against the
// last good state), from the commit's one evaluation.
func (r *Runner) Evaluate(ctx context.Context, rev Revision) (*spec.Node, loader.Errors, error) {
	var prev *spec.Node
	if lg := r.LastGood(); lg != nil {
		prev = lg.Desired
	}
	e := r.evaluate(ctx, rev)
	if e.errs != nil || e.err != nil {
		return nil, e.errs, e.err
	}
	if errs := r.check(ctx, rev, e, prev); len(errs) > 0 {
		return nil, errs, nil
	}
	return e.desired, nil, nil
}

// check runs the policies on an evaluated revision. The check positions
// what it finds in the same evaluation (see PolicyCheck).
func (r *Runner) check(ctx context.Context, rev Revision, e *evaluated, prev *spec.Node) loader.Errors {
	if r.opts.Check == nil {
		return nil
	}
	return r.opts.Check(withSite(ctx, e.site), rev, prev, e.desired)
}

// RolloutNotes are the plan's "who waits for whom" lines for rev, with
// every node's labels from the commit's one evaluation.
func (r *Runner) RolloutNotes(ctx context.Context, rev Revision, desired *spec.Node) []string {
	var labels map[string]map[string]string
	if desired != nil && len(desired.Site.Rollout.Waves) > 0 {
		l, err := r.evaluate(ctx, rev).nodeLabels()
		if err != nil {
			r.log.Warn("rollout waves: cannot read the nodes' labels", "err", err)
			return []string{"rollout: waves unknown: " + err.Error()}
		}
		labels = l
	}
	return RolloutNotes(desired, labels)
}

type siteKey struct{}

// withSite hands a check the evaluation of the revision it vets, so that
// it positions its findings there instead of evaluating the site again.
func withSite(ctx context.Context, s *loader.Site) context.Context {
	if s == nil {
		return ctx
	}
	return context.WithValue(ctx, siteKey{}, s)
}

func siteFrom(ctx context.Context) *loader.Site {
	s, _ := ctx.Value(siteKey{}).(*loader.Site)
	return s
}

// HandOn wraps load so that an evaluation is handed on once to the next
// identical call (same directory, node and options): the agent's start-up
// check evaluates the head, and the first pass gets that evaluation
// instead of making its own. Only successful evaluations are handed on;
// each is handed on at most once, so nothing is kept past the first pass.
func HandOn(load LoadFunc) LoadFunc {
	type key struct {
		dir, node string
		o         loader.Options
	}
	type result struct {
		site    *loader.Site
		desired *spec.Node
	}
	var mu sync.Mutex
	kept := map[key]result{}
	return func(ctx context.Context, dir, node string, o loader.Options) (*loader.Site, *spec.Node, error) {
		k := key{dir, node, o}
		mu.Lock()
		r, ok := kept[k]
		delete(kept, k)
		mu.Unlock()
		if ok {
			return r.site, r.desired, nil
		}
		site, desired, err := load(ctx, dir, node, o)
		if err == nil {
			mu.Lock()
			kept[k] = result{site, desired}
			mu.Unlock()
		}
		return site, desired, err
	}
}
