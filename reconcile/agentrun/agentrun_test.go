package agentrun

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
)

// TestSafetyTrust: signature settings that cannot work together are
// refused before the source is opened, and without verification the
// source is left as it is.
func TestSafetyTrust(t *testing.T) {
	repo := reconcile.SourceConfig{Git: gitrepo.Options{URL: "file:///site.git"}}
	dir := reconcile.SourceConfig{Dir: "/srv/site"}
	for _, tc := range []struct {
		s    Safety
		src  reconcile.SourceConfig
		want string
	}{
		{Safety{}, repo, ""},
		{Safety{Verify: "sometimes"}, repo, "sometimes"},
		{Safety{TrustedKeys: "k.asc"}, repo, "--trusted-keys and --allowed-signers need --verify-signatures"},
		{Safety{Verify: "head", TrustAnchor: "abc"}, repo, "--trust-anchor needs --verify-signatures strict"},
		{Safety{Verify: "head", TrustedKeys: "k.asc"}, dir, "needs a repository (--repo), not a directory"},
	} {
		src := tc.src
		err := tc.s.trust("/var/lib/gitgw", &src)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.s, err, tc.want)
		}
		if src.Git.Verifier != nil || src.Git.AnchorFile != "" {
			t.Errorf("%+v: the source got a verifier", tc.s)
		}
	}
}

// TestStatusURL: the node reports to --status-repo, else to the site's
// repository, and to nowhere with --no-status or from a directory.
func TestStatusURL(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{Source: reconcile.SourceConfig{Git: gitrepo.Options{URL: "site.git"}}}, "site.git"},
		{Config{Source: reconcile.SourceConfig{Git: gitrepo.Options{URL: "site.git"}}, Status: Status{Repo: "status.git"}}, "status.git"},
		{Config{Source: reconcile.SourceConfig{Git: gitrepo.Options{URL: "site.git"}}, Status: Status{Off: true, Repo: "status.git"}}, ""},
		{Config{Source: reconcile.SourceConfig{Dir: "/srv/site"}}, ""},
	} {
		if got := tc.c.statusURL(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.c.Status, got, tc.want)
		}
	}
}

// TestRunRefuses: an agent with no node name, no site, or a bad scope
// stops before it touches the node.
func TestRunRefuses(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{StateDir: t.TempDir(), Logger: log}, "--node is empty and the hostname is unknown"},
		{Config{Node: "gw1", StateDir: t.TempDir(), Logger: log}, "say where the site is: --site DIR or --repo URL"},
		{Config{Node: "gw1", StateDir: t.TempDir(), Logger: log, Safety: Safety{Verify: "head"},
			Source: reconcile.SourceConfig{Dir: t.TempDir()}}, "--verify-signatures needs a repository"},
	} {
		if err := Run(context.Background(), tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("node %q, source %+v: %v, want %q", tc.cfg.Node, tc.cfg.Source, err, tc.want)
		}
	}
}
