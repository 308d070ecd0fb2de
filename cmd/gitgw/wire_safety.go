package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/drift"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// safetyFlags configure what guards an apply beyond the site's own
// checks: signatures, the pair-aware rollout and the health gate.
type safetyFlags struct {
	verify         string
	trustedKeys    string
	allowedSigners string
	trustAnchor    string
	rolloutTimeout time.Duration
	rolloutPoll    time.Duration
	bake           time.Duration
}

func (f *safetyFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.verify, "verify-signatures", "", "refuse commits not signed by a trusted key, before anything of them is written: head (the commit applied) or strict (every commit since the trust anchor)")
	fl.StringVar(&f.trustedKeys, "trusted-keys", "", "armored OpenPGP keyring of trusted signers")
	fl.StringVar(&f.allowedSigners, "allowed-signers", "", "trusted SSH signers, in ssh-keygen's allowed_signers format")
	fl.StringVar(&f.trustAnchor, "trust-anchor", "", "strict mode: the last commit you trust (full hash), used when the state dir holds no trust anchor (a new node, or its state lost)")
	fl.DurationVar(&f.rolloutTimeout, "rollout-timeout", 5*time.Minute, "how long a master waits for its peers (and a wave for the one before) when the site sets no rollout.peer_timeout")
	fl.DurationVar(&f.rolloutPoll, "rollout-poll", 2*time.Second, "how often a held commit is tried again: a waiting node reads its peers' status branches")
	fl.DurationVar(&f.bake, "bake", 0, "health gate window after a new commit is applied, when the site sets no bake.window (0: off)")
}

// anchorFile is where strict verification keeps its trust anchor in the
// state dir, apart from last-applied.json.
const anchorFile = "trust-anchor.json"

// trust reads the verification flags into sf, so that the source decides
// each commit's signature before it writes anything of it.
func (f *safetyFlags) trust(stateDir string, sf *siteFlags) error {
	mode, err := gitrepo.ParseVerifyMode(f.verify)
	if err != nil {
		return err
	}
	if mode == gitrepo.VerifyOff && (f.trustedKeys != "" || f.allowedSigners != "") {
		return errors.New("--trusted-keys and --allowed-signers need --verify-signatures head or strict")
	}
	if mode != gitrepo.VerifyStrict && f.trustAnchor != "" {
		return errors.New("--trust-anchor needs --verify-signatures strict")
	}
	if mode == gitrepo.VerifyOff {
		return nil
	}
	if sf.repo == "" {
		return errors.New("--verify-signatures needs a repository (--repo), not a directory")
	}
	v, err := gitrepo.VerifierFromFiles(mode, f.trustedKeys, f.allowedSigners)
	if err != nil {
		return err
	}
	sf.verifier, sf.anchorFile, sf.trustAnchor = v, filepath.Join(stateDir, anchorFile), f.trustAnchor
	return nil
}

// safety holds the hooks wired into the Runner and the Agent.
type safety struct {
	log     *slog.Logger
	rollout *reconcile.Rollout
	gate    *reconcile.HealthGate
}

// build prepares the rollout; the gate needs the Runner (attach).
func (f *safetyFlags) build(node, stateDir string, sf *siteFlags, st *statusFlags, log *slog.Logger) (*safety, error) {
	s := &safety{log: log.With("component", "safety")}
	url := st.repo
	if url == "" {
		url = sf.repo
	}
	var peers reconcile.PeerStatusFunc
	if url != "" && !st.off {
		opts := gitrepo.ReadOptions{URL: url, Prefix: st.prefix, CacheDir: filepath.Join(stateDir, "peers.git"),
			SSHKeyFile: sf.sshKey, KnownHostsFile: sf.knownHosts, TokenFile: sf.tokenFile, CAFile: sf.caFile,
			Files: []string{drift.StatusFile}}
		opts.Logger = log
		peers = func(ctx context.Context) (map[string]reconcile.PeerStatus, error) { return readPeers(ctx, opts) }
	} else {
		s.log.Warn("pair-aware rollout off: no status branches to read (a --site directory without --status-repo, or --no-status)")
	}
	mode, err := gitrepo.ParseVerifyMode(f.verify)
	if err != nil {
		return nil, err
	}
	s.rollout = reconcile.NewRollout(reconcile.RolloutOptions{Node: node, Peers: peers, Timeout: f.rolloutTimeout, Logger: log,
		RequireSigned: mode != gitrepo.VerifyOff})
	return s, nil
}

// readPeers reads every node's status.json from the status branches, with
// what checks the signature of each branch's head commit.
func readPeers(ctx context.Context, opts gitrepo.ReadOptions) (map[string]reconcile.PeerStatus, error) {
	bs, err := gitrepo.ReadStatusBranches(ctx, opts)
	if err != nil {
		return nil, err
	}
	out := map[string]reconcile.PeerStatus{}
	for _, b := range bs {
		raw, ok := b.Files[drift.StatusFile]
		if !ok {
			continue
		}
		st, err := drift.Parse(raw)
		if err != nil {
			continue
		}
		out[b.Node] = reconcile.PeerStatus{Status: st, SignedBy: func(key string) error {
			_, err := b.VerifySignedBy(key)
			return err
		}}
	}
	return out, nil
}

// attach creates the health gate for runner; probes are the drivers
// themselves (the Runner may hold wrappers).
func (s *safety) attach(runner *reconcile.Runner, probes []reconcile.Driver, stateDir string, window time.Duration) error {
	g, err := reconcile.NewHealthGate(reconcile.HealthGateOptions{Runner: runner, Drivers: probes, StateDir: stateDir, Window: window, Logger: s.log})
	if err != nil {
		return err
	}
	if p := g.Pinned(); p != nil {
		s.log.Warn("a commit is pinned (rolled back by the health gate); it is not applied again", "commit", p.Commit, "reason", p.Reason)
	}
	s.gate = g
	return nil
}

// admit refuses a pinned commit. Signatures were decided by the source,
// before the commit's tree was written (Revision.Refused).
func (s *safety) admit(ctx context.Context, rev reconcile.Revision, prev *reconcile.LastGood) error {
	if s.gate != nil {
		return s.gate.Admit(ctx, rev, prev)
	}
	return nil
}

// hold waits for the node's turn, then records the health before the apply.
func (s *safety) hold(ctx context.Context, rev reconcile.Revision, prev *reconcile.LastGood, desired *spec.Node, p *plan.Plan) error {
	if err := s.rollout.Hold(ctx, rev, prev, desired, p); err != nil {
		return err
	}
	if s.gate != nil {
		s.gate.Before(ctx, prev)
	}
	return nil
}

// bake is the Agent's post-apply hook.
func (s *safety) bake(ctx context.Context, prev *reconcile.LastGood, res reconcile.Result) reconcile.Result {
	if s.gate == nil {
		return res
	}
	return s.gate.Bake(ctx, prev, res)
}

// rolloutNotes are the plan's "who waits for whom" lines.
func rolloutNotes(ctx context.Context, node string, rev reconcile.Revision, desired *spec.Node, log *slog.Logger) []string {
	var labels map[string]map[string]string
	if desired != nil && len(desired.Site.Rollout.Waves) > 0 {
		l, err := reconcile.NodeLabels(ctx, rev.Dir, node)
		if err != nil {
			log.Warn("rollout waves: cannot read the nodes' labels", "err", err)
			return []string{fmt.Sprintf("rollout: waves unknown: %v", err)}
		}
		labels = l
	}
	return reconcile.RolloutNotes(desired, labels)
}
