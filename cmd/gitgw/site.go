package main

import (
	"context"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
)

// siteFlags say where the site comes from: a repository or a directory.
// The flags fill the source's configuration itself.
type siteFlags struct {
	reconcile.SourceConfig
	// opened is set by open.
	opened *reconcile.OpenedSource
}

func (f *siteFlags) register(cmd *cobra.Command) {
	fl, g := cmd.Flags(), &f.Git
	fl.StringVar(&g.URL, "repo", "", "site repository: a local path, file://, ssh:// or https:// URL")
	fl.StringVar(&f.Dir, "site", "", "site directory (a CUE module), used as it is and watched for changes")
	fl.StringVar(&g.Ref, "ref", "main", "branch of the repository to follow")
	fl.StringVar(&g.Path, "path", "", "directory of the site (the one holding cue.mod/) within the --repo repository (default: its root)")
	fl.StringVar(&g.SSHKeyFile, "ssh-key", "", "private key file for ssh:// repositories")
	fl.StringVar(&g.KnownHostsFile, "known-hosts", "", "known_hosts file for ssh:// repositories (host keys are always checked)")
	fl.StringVar(&g.TokenFile, "token-file", "", "file holding a token for https:// repositories")
	fl.StringVar(&g.CAFile, "ca-file", "", "CA bundle for https:// repositories")
	fl.BoolVar(&g.AllowRewrite, "allow-rewrite", false, "accept a non-fast-forward update (force-push) of the tracked branch")
	fl.IntVar(&g.Tree.MaxEntries, "max-tree-entries", gitrepo.DefaultMaxTreeEntries, "refuse a commit whose tree holds more files and directories")
	fl.Int64Var(&g.Tree.MaxBytes, "max-tree-bytes", gitrepo.DefaultMaxTreeBytes, "refuse a commit whose files add up to more bytes (each time the tree names them)")
	g.Site = true
}

// open returns the source, read once; stateDir holds the clone of a
// repository (a temporary one when empty). The opened source, with its
// history, is kept in f.opened (plan --observed reads the applied commits
// from it).
func (f *siteFlags) open(ctx context.Context, node, stateDir string) (reconcile.Source, func(), error) {
	if err := f.Check(); err != nil {
		return nil, nil, err
	}
	cfg := f.SourceConfig
	cfg.StateDir, cfg.Git.Node = stateDir, node
	s, err := reconcile.OpenSource(ctx, cfg)
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
