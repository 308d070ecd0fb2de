package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
)

// siteFlags say where the site comes from: a repository or a directory.
type siteFlags struct {
	repo, site, ref    string
	path               string
	sshKey, knownHosts string
	tokenFile, caFile  string
	allowRewrite       bool
	maxTreeEntries     int
	maxTreeBytes       int64
	// verifier, anchorFile and trustAnchor are set by the agent
	// (safetyFlags.trust) before open: commits are verified before their
	// tree is written.
	verifier                *gitrepo.Verifier
	anchorFile, trustAnchor string
	// fetchSpread is the agent's --fetch-spread.
	fetchSpread time.Duration
	// opened is set by open.
	opened *reconcile.OpenedSource
}

func (f *siteFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.repo, "repo", "", "site repository: a local path, file://, ssh:// or https:// URL")
	fl.StringVar(&f.site, "site", "", "site directory (a CUE module), used as it is and watched for changes")
	fl.StringVar(&f.ref, "ref", "main", "branch of the repository to follow")
	fl.StringVar(&f.path, "path", "", "directory of the site (the one holding cue.mod/) within the --repo repository (default: its root)")
	fl.StringVar(&f.sshKey, "ssh-key", "", "private key file for ssh:// repositories")
	fl.StringVar(&f.knownHosts, "known-hosts", "", "known_hosts file for ssh:// repositories (host keys are always checked)")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding a token for https:// repositories")
	fl.StringVar(&f.caFile, "ca-file", "", "CA bundle for https:// repositories")
	fl.BoolVar(&f.allowRewrite, "allow-rewrite", false, "accept a non-fast-forward update (force-push) of the tracked branch")
	fl.IntVar(&f.maxTreeEntries, "max-tree-entries", gitrepo.DefaultMaxTreeEntries, "refuse a commit whose tree holds more files and directories")
	fl.Int64Var(&f.maxTreeBytes, "max-tree-bytes", gitrepo.DefaultMaxTreeBytes, "refuse a commit whose files add up to more bytes (each time the tree names them)")
}

func (f *siteFlags) check() error {
	switch {
	case f.repo == "" && f.site == "":
		return fmt.Errorf("say where the site is: --site DIR or --repo URL")
	case f.repo != "" && f.site != "":
		return fmt.Errorf("--site and --repo exclude each other")
	case f.path != "" && f.repo == "":
		return fmt.Errorf("--path goes with --repo: with --site, give the site's own directory")
	case f.maxTreeEntries < 0 || f.maxTreeBytes < 0:
		return fmt.Errorf("--max-tree-entries and --max-tree-bytes must be positive")
	}
	if f.site != "" {
		st, err := os.Stat(f.site)
		if err != nil {
			return fmt.Errorf("--site %s: %w", f.site, err)
		}
		if !st.IsDir() {
			return fmt.Errorf("--site %s is a file: give the site's directory, the one that holds cue.mod/", f.site)
		}
	}
	return nil
}

// sourceDir, in the state dir, holds the site repository's local copy.
const sourceDir = reconcile.SourceDir

// open returns the source. watch asks for fsnotify on a directory; stateDir
// holds the clone of a repository (a temporary one when empty). The
// opened source, with its history, is kept in f.opened (plan --observed
// reads the applied commits from it, the reporter the repository).
func (f *siteFlags) open(ctx context.Context, node, stateDir string, watch bool) (reconcile.Source, func(), error) {
	if err := f.check(); err != nil {
		return nil, nil, err
	}
	s, err := reconcile.OpenSource(ctx, reconcile.SourceConfig{Dir: f.site, Watch: watch, StateDir: stateDir, Git: gitrepo.Options{
		URL:            f.repo,
		Ref:            f.ref,
		Path:           f.path,
		Site:           true,
		SSHKeyFile:     f.sshKey,
		KnownHostsFile: f.knownHosts,
		TokenFile:      f.tokenFile,
		CAFile:         f.caFile,
		AllowRewrite:   f.allowRewrite,
		Node:           node,
		Tree:           gitrepo.TreeLimits{MaxEntries: f.maxTreeEntries, MaxBytes: f.maxTreeBytes},
		Verifier:       f.verifier,
		AnchorFile:     f.anchorFile,
		TrustAnchor:    f.trustAnchor,
		FetchSpread:    f.fetchSpread,
	}})
	if err != nil {
		return nil, nil, err
	}
	f.opened = s
	return s.Source, s.Close, nil
}

// defaultNode is the short hostname, the default of --node.
// nodeFlag registers --node, whose default is the short hostname of the
// machine it runs on. Help and the man pages say so in words: the value
// itself would be the hostname of whoever ran --help or built the package.
func nodeFlag(fl *pflag.FlagSet, p *string, usage string) {
	fl.StringVar(p, "node", defaultNode(), usage+" (default: the short hostname)")
	fl.Lookup("node").DefValue = ""
}

func defaultNode() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	h, _, _ = strings.Cut(h, ".")
	return h
}
