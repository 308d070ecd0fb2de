package main

import (
	"errors"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
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

// rollout is the pair-aware rollout the flags describe: the status
// branches it reads (--status-repo, else the site's repository) and how
// long it waits.
func (f *safetyFlags) rollout(node, stateDir string, sf *siteFlags, st *statusFlags, log *slog.Logger) (*reconcile.Rollout, error) {
	mode, err := gitrepo.ParseVerifyMode(f.verify)
	if err != nil {
		return nil, err
	}
	url := st.repo
	if url == "" {
		url = sf.repo
	}
	var peers reconcile.PeerStatusFunc
	if url != "" && !st.off {
		peers = reconcile.StatusBranchPeers(gitrepo.ReadOptions{URL: url, Prefix: st.prefix, CacheDir: filepath.Join(stateDir, "peers.git"),
			SSHKeyFile: sf.sshKey, KnownHostsFile: sf.knownHosts, TokenFile: sf.tokenFile, CAFile: sf.caFile, Logger: log})
	} else {
		log.Warn("pair-aware rollout off: no status branches to read (a --site directory without --status-repo, or --no-status)", "component", "safety")
	}
	return reconcile.NewRollout(reconcile.RolloutOptions{Node: node, Peers: peers, Timeout: f.rolloutTimeout, Logger: log,
		RequireSigned: mode != gitrepo.VerifyOff}), nil
}

// health is the health gate the flags describe; probes are the drivers
// themselves (the Runner may hold wrappers).
func (f *safetyFlags) health(probes []reconcile.Driver) *reconcile.HealthGateOptions {
	return &reconcile.HealthGateOptions{Drivers: probes, Window: f.bake}
}

