package reconcile

// Pair-aware rollout. Both gateways of a pair following the same branch
// would apply a bad commit within the same poll interval, and the pair
// would fail together. Instead the backup applies first; the master (which
// carries the traffic) applies only once the backup's status branch shows
// the commit applied and healthy, or, after a timeout, as the site's
// policy says. Larger fleets add waves by node label: wave N+1 waits for
// wave N. Everything a node needs to decide is in its own view (the
// priorities of its peers) and in the status branches; no node talks to
// another.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile/drift"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// Wait is one node this node waits for before it applies a commit.
type Wait struct {
	Node string
	// Why in words: "backup of VI_1 (priority 100 < 150)", "wave 1".
	Why string
}

// Waits says whom node n waits for: each peer of a shared VRRP instance
// that goes first (see goesFirst), and, with waves, every node of the
// wave before n's. labels maps every node of the site to its labels; it is
// only read when the site has waves (nil otherwise).
func Waits(n *spec.Node, labels map[string]map[string]string) []Wait {
	if n == nil {
		return nil
	}
	why := map[string][]string{}
	if n.Site.Rollout.Pairs {
		for _, peer := range peersOf(n) {
			if first, reason := goesFirst(n, peer); first {
				why[peer] = append(why[peer], reason)
			}
		}
	}
	if waves := n.Site.Rollout.Waves; len(waves) > 0 && labels != nil {
		mine := waveOf(waves, labels[n.Name])
		// The wave just before n's that has nodes.
		for w := mine - 1; w >= 0; w-- {
			var in []string
			for node, l := range labels {
				if node != n.Name && waveOf(waves, l) == w {
					in = append(in, node)
				}
			}
			if len(in) == 0 {
				continue
			}
			for _, node := range in {
				why[node] = append(why[node], fmt.Sprintf("wave %d (%s) before wave %d", w, selector(waves[w].Labels), mine))
			}
			break
		}
	}
	out := make([]Wait, 0, len(why))
	for _, node := range slices.Sorted(maps.Keys(why)) {
		out = append(out, Wait{Node: node, Why: strings.Join(why[node], "; ")})
	}
	return out
}

// peersOf lists the other nodes of n's VRRP instances.
func peersOf(n *spec.Node) []string {
	set := map[string]bool{}
	for _, in := range n.VRRP {
		if _, member := in.Nodes[n.Name]; !member {
			continue
		}
		for node := range in.Nodes {
			if node != n.Name {
				set[node] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// goesFirst says whether peer applies before n. Over the instances they
// share, the node that would be master of fewer goes first (the backup of
// an active-passive pair); a tie goes by name. Both nodes compute the same
// answer from their own views, so exactly one of them waits.
func goesFirst(n *spec.Node, peer string) (bool, string) {
	mine, theirs := 0, 0
	var where []string
	for _, name := range slices.Sorted(maps.Keys(n.VRRP)) {
		in := n.VRRP[name]
		a, okA := in.Nodes[n.Name]
		b, okB := in.Nodes[peer]
		if !okA || !okB {
			continue
		}
		switch {
		case a.Priority > b.Priority:
			mine++
			where = append(where, fmt.Sprintf("backup of %s (priority %d < %d)", name, b.Priority, a.Priority))
		case b.Priority > a.Priority:
			theirs++
		}
	}
	switch {
	case theirs < mine:
		return true, strings.Join(where, ", ")
	case theirs == mine && peer < n.Name:
		return true, "peer of a balanced pair (by name)"
	}
	return false, ""
}

// waveOf is the index of the first wave whose labels all match, or
// len(waves) for a node in none.
func waveOf(waves []spec.WaveSpec, labels map[string]string) int {
	for i, w := range waves {
		match := true
		for k, v := range w.Labels {
			if labels[k] != v {
				match = false
				break
			}
		}
		if match {
			return i
		}
	}
	return len(waves)
}

func selector(l map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	if len(parts) == 0 {
		return "every node"
	}
	return strings.Join(parts, ",")
}

// RolloutNotes are the plan's lines saying whom this node waits for.
func RolloutNotes(n *spec.Node, labels map[string]map[string]string) []string {
	ws := Waits(n, labels)
	if n == nil {
		return nil
	}
	if len(ws) == 0 {
		if len(peersOf(n)) > 0 || len(n.Site.Rollout.Waves) > 0 {
			return []string{fmt.Sprintf("rollout: %s applies a new commit without waiting", n.Name)}
		}
		return nil
	}
	var out []string
	for _, w := range ws {
		out = append(out, fmt.Sprintf("rollout: %s waits for %s to report a new commit applied and healthy (%s)", n.Name, w.Node, w.Why))
	}
	return out
}

// NodeLabels loads every node's labels from a site directory (for waves),
// in one evaluation of the site. self is kept for the callers' sake.
func NodeLabels(ctx context.Context, dir, self string) (map[string]map[string]string, error) {
	labels, err := loader.NodeLabels(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("rollout: load the site's node labels: %w", err)
	}
	if _, ok := labels[self]; !ok {
		return nil, fmt.Errorf("rollout: node %q is not declared in the site", self)
	}
	return labels, nil
}

// PeerStatus is one node's last reported status, as read from the head
// commit of its status branch.
type PeerStatus struct {
	Status drift.Status
	// SignedBy checks that the head commit is signed by key, an SSH public
	// key in authorized_keys format (the site's status_key for the node);
	// nil when the reader cannot tell (then no key is satisfied).
	SignedBy func(key string) error
}

// PeerStatusFunc reads the nodes' last reported status, by node (the
// status branches).
type PeerStatusFunc func(ctx context.Context) (map[string]PeerStatus, error)

// StatusBranchPeers reads every node's status.json from the status
// branches o names (o.Files is set to it), each with what checks the
// signature of its branch's head commit. A branch whose status does not
// parse is left out: that node has not reported.
func StatusBranchPeers(o gitrepo.ReadOptions) PeerStatusFunc {
	o.Files = []string{drift.StatusFile}
	return func(ctx context.Context) (map[string]PeerStatus, error) {
		bs, err := gitrepo.ReadStatusBranches(ctx, o)
		if err != nil {
			return nil, err
		}
		out := map[string]PeerStatus{}
		for _, b := range bs {
			raw, ok := b.Files[drift.StatusFile]
			if !ok {
				continue
			}
			st, err := drift.Parse(raw)
			if err != nil {
				continue
			}
			out[b.Node] = PeerStatus{Status: st, SignedBy: func(key string) error {
				_, err := b.VerifySignedBy(key)
				return err
			}}
		}
		return out, nil
	}
}

// RolloutOptions configure a Rollout.
type RolloutOptions struct {
	Node string
	// Peers reads the status branches.
	Peers PeerStatusFunc
	// Labels, when set, gives every node's labels at a revision (waves);
	// nil reads them with NodeLabels.
	Labels func(ctx context.Context, rev Revision) (map[string]map[string]string, error)
	// Timeout is how long to wait when the site sets no peer_timeout
	// (default 5 minutes).
	Timeout time.Duration
	// RequireSigned is set when the agent verifies the site's signatures:
	// a status branch can then be written by anyone with push access, who
	// must not be able to release a master by forging a peer's status. A
	// peer's status counts only when signed by its status_key, even when
	// the site lists none (then every gated commit waits out the timeout,
	// and the log says to list the keys).
	RequireSigned bool
	Logger        *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Rollout decides, before a pass applies a new commit, whether this node's
// turn has come (the hold step of a Runner given RunnerOptions.Rollout).
// It never blocks the pass: a revision whose turn has not come is held
// (the pass ends Held, with a message that stays the same while nothing
// changes, so the status branch gets one commit) and the agent tries
// again shortly (AgentOptions.HoldRetry).
type Rollout struct {
	o   RolloutOptions
	log *slog.Logger

	mu sync.Mutex
	// commit is the revision being waited on, since when.
	commit    string
	since     time.Time
	warnedFor string
	labelsOf  string
	labelsAt  map[string]map[string]string
	// distrusted is the last reason logged, by peer, for not trusting its
	// status (logged again only when it changes).
	distrusted map[string]string
}

// ErrHeld matches the error of a held revision.
var ErrHeld = errors.New("rollout: held")

// HoldError says whom a revision waits for.
type HoldError struct {
	Commit  string
	Waiting []Wait
	Timeout time.Duration
	// TimedOut: the timeout passed and the site says hold.
	TimedOut bool
	// RolledBack: these peers applied the commit and their health gate
	// rolled it back; it is held whatever the timeout policy says.
	RolledBack []Wait
	// Untrusted says, by peer waited for, why its status branch was not
	// believed (not signed by the key the site lists for it): it counts as
	// not reported.
	Untrusted map[string]string
}

func (e *HoldError) Error() string {
	if len(e.RolledBack) > 0 {
		return fmt.Sprintf("rollout: holding %s: %s rolled it back (health gate); not applied here",
			shortCommit(e.Commit), names(e.RolledBack))
	}
	var waiting []string
	for _, w := range e.Waiting {
		waiting = append(waiting, w.Node+" ("+w.Why+")")
	}
	var untrusted string
	for _, node := range slices.Sorted(maps.Keys(e.Untrusted)) {
		untrusted += fmt.Sprintf("; status of %s not trusted: %s", node, e.Untrusted[node])
	}
	if e.TimedOut {
		return fmt.Sprintf("rollout: holding %s: %s did not report it applied and healthy within %s; the site says hold (on_timeout)%s",
			shortCommit(e.Commit), strings.Join(waiting, ", "), e.Timeout, untrusted)
	}
	return fmt.Sprintf("rollout: %s waits for %s to report it applied and healthy (timeout %s)%s",
		shortCommit(e.Commit), strings.Join(waiting, ", "), e.Timeout, untrusted)
}

// Is makes errors.Is(err, ErrHeld) true.
func (e *HoldError) Is(target error) bool { return target == ErrHeld }

// NewRollout returns a Rollout.
func NewRollout(o RolloutOptions) *Rollout {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Rollout{o: o, log: o.Logger.With("component", "rollout")}
}

// Hold returns nil when every node this one waits for reports rev applied
// and healthy, and a *HoldError otherwise; once the timeout has passed
// since rev was first held, it returns nil (on_timeout proceed) or keeps
// holding (hold). A first apply (no last good state) and a re-apply of the
// last good commit never wait: there is nothing running to protect, or
// nothing new.
func (r *Rollout) Hold(ctx context.Context, rev Revision, prev *LastGood, desired *spec.Node, _ *plan.Plan) error {
	_, err := r.hold(ctx, rev, prev, desired, func() (map[string]map[string]string, error) { return r.labels(ctx, rev) })
	return err
}

// hold is Hold with every node's labels from the caller (the Runner reads
// them from the revision's one evaluation). asked says whether the peers'
// status was read: the node was not looked at in the meantime.
func (r *Rollout) hold(ctx context.Context, rev Revision, prev *LastGood, desired *spec.Node,
	nodeLabels func() (map[string]map[string]string, error)) (asked bool, err error) {
	if prev == nil || prev.Commit == rev.Commit || desired == nil || r.o.Peers == nil {
		return false, nil
	}
	var labels map[string]map[string]string
	if len(desired.Site.Rollout.Waves) > 0 {
		if labels, err = nodeLabels(); err != nil {
			return false, err
		}
	}
	waits := Waits(desired, labels)
	if len(waits) == 0 {
		return false, nil
	}
	timeout := r.o.Timeout
	if d := desired.Site.Rollout.PeerTimeout.D(); d > 0 {
		timeout = d
	}
	now := r.o.Now()
	r.mu.Lock()
	first := r.commit != rev.Commit
	if first {
		r.commit, r.since = rev.Commit, now
	}
	since := r.since
	r.mu.Unlock()

	pending, bad, untrusted, err := r.pending(ctx, waits, rev.Commit, desired.StatusKeys)
	if err != nil {
		r.log.Warn("cannot read the peers' status branches", "err", err)
		pending = waits
	}
	if len(bad) > 0 {
		if !r.warned(rev.Commit) {
			r.log.Warn("a peer rolled the commit back; holding it", "commit", shortCommit(rev.Commit), "peers", names(bad))
		}
		return true, &HoldError{Commit: rev.Commit, Waiting: pending, Timeout: timeout, RolledBack: bad, Untrusted: untrusted}
	}
	if len(pending) == 0 {
		r.log.Info("peers applied the commit; applying", "commit", shortCommit(rev.Commit), "waited_for", names(waits),
			"waited", now.Sub(since).Round(time.Millisecond))
		return true, nil
	}
	if first {
		r.log.Info("waiting for peers before applying", "commit", shortCommit(rev.Commit), "waiting_for", names(pending),
			"timeout", timeout, "on_timeout", desired.Site.Rollout.OnTimeout)
	}
	if now.Sub(since) < timeout {
		return true, &HoldError{Commit: rev.Commit, Waiting: pending, Timeout: timeout, Untrusted: untrusted}
	}
	if desired.Site.Rollout.OnTimeout != "hold" {
		r.log.Warn("peers did not report the commit in time; proceeding (on_timeout: proceed)",
			"commit", shortCommit(rev.Commit), "waiting_for", names(pending), "waited", now.Sub(since).Round(time.Second))
		return true, nil
	}
	return true, &HoldError{Commit: rev.Commit, Waiting: pending, Timeout: timeout, TimedOut: true, Untrusted: untrusted}
}

// labels returns every node's labels at rev, loaded once per commit (a
// held revision is looked at again every few seconds).
func (r *Rollout) labels(ctx context.Context, rev Revision) (map[string]map[string]string, error) {
	r.mu.Lock()
	if r.labelsOf == rev.Commit {
		l := r.labelsAt
		r.mu.Unlock()
		return l, nil
	}
	r.mu.Unlock()
	var l map[string]map[string]string
	var err error
	if r.o.Labels != nil {
		l, err = r.o.Labels(ctx, rev)
	} else {
		l, err = NodeLabels(ctx, rev.Dir, r.o.Node)
	}
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.labelsOf, r.labelsAt = rev.Commit, l
	r.mu.Unlock()
	return l, nil
}

// warned records that the rollback of commit by a peer was logged.
func (r *Rollout) warned(commit string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.warnedFor == commit {
		return true
	}
	r.warnedFor = commit
	return false
}

// pending returns the waits whose node has not reported commit applied
// and healthy, among them those that rolled it back, and, by peer, why a
// status was not trusted.
//
// Without status keys in the site (keys empty), a status branch is taken
// as it reads, and a node without one has never run gitgw (it is not
// deployed yet): nobody waits for it. Once any node lists a status_key,
// (or when the agent verifies signatures: RolloutOptions.RequireSigned)
// every status that gates the rollout must be signed by its node's key;
// one that is unsigned, signed by another key, or whose node lists no key
// is treated as not reported (the wait goes on, then on_timeout applies),
// and so is a missing branch: deleting a peer's branch must not release
// a master either.
func (r *Rollout) pending(ctx context.Context, waits []Wait, commit string, keys map[string]string) (pending, rolledBack []Wait, untrusted map[string]string, err error) {
	st, err := r.o.Peers(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, w := range waits {
		ps, ok := st[w.Node]
		if len(keys) > 0 || r.o.RequireSigned {
			if why := distrust(w.Node, ps, ok, keys); why != "" {
				r.logDistrust(w.Node, commit, why)
				if untrusted == nil {
					untrusted = map[string]string{}
				}
				untrusted[w.Node] = why
				pending = append(pending, w)
				continue
			}
			r.logDistrust(w.Node, commit, "")
		} else if !ok {
			r.log.Debug("peer has no status branch; not waiting for it", "peer", w.Node)
			continue
		}
		if !Settled(ps.Status, commit) {
			pending = append(pending, w)
		}
		if RolledBackBy(ps.Status, commit) {
			rolledBack = append(rolledBack, w)
		}
	}
	return pending, rolledBack, untrusted, nil
}

// distrust says why node's status cannot be believed ("" when it is
// signed by the key the site lists for the node).
func distrust(node string, ps PeerStatus, found bool, keys map[string]string) string {
	key := keys[node]
	switch {
	case key == "":
		return "the site lists no status_key for " + node
	case !found:
		return "no status branch"
	case ps.SignedBy == nil:
		return "its signature cannot be checked"
	}
	if err := ps.SignedBy(key); err != nil {
		return err.Error()
	}
	return ""
}

// logDistrust logs, once per reason, that a peer's status is not trusted,
// and when it is trusted again.
func (r *Rollout) logDistrust(node, commit, why string) {
	r.mu.Lock()
	last, seen := r.distrusted[node]
	if r.distrusted == nil {
		r.distrusted = map[string]string{}
	}
	r.distrusted[node] = why
	r.mu.Unlock()
	switch {
	case why != "" && why != last:
		r.log.Warn("peer's status branch is not signed by its status_key; treating it as not reported",
			"peer", node, "commit", shortCommit(commit), "reason", why)
	case why == "" && seen && last != "":
		r.log.Info("peer's status branch is signed by its status_key again", "peer", node)
	}
}

// RolledBackBy says whether a node's status shows that its health gate
// rolled commit back: the pass that did it, or a later one refusing the
// pinned commit.
func RolledBackBy(st drift.Status, commit string) bool {
	if st.Desired.Commit != commit {
		return false
	}
	switch st.LastPass.Outcome {
	case drift.RolledBack:
		return true
	case drift.Rejected:
		return strings.Contains(st.LastPass.Error, ErrPinned.Error())
	}
	return false
}

// Settled says whether a node's status shows commit applied and healthy:
// it runs commit, its last pass converged (applied, or found nothing to
// do; a node reports after its health gate), and nothing still differs.
// Resources pending on it (no driver there, an action gitgw will not
// force) make its outcome "pending", not "converged", but no wait would
// change them: they do not hold the peer back.
func Settled(st drift.Status, commit string) bool {
	done := st.LastPass.Outcome == drift.Converged || st.LastPass.Outcome == drift.Incomplete
	return st.Applied == commit && done && st.Counts[drift.Differs] == 0
}

func names(ws []Wait) string {
	var out []string
	for _, w := range ws {
		out = append(out, w.Node)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}
