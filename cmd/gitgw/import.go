package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/gitgw/gitgw/cue/importer"
	"github.com/gitgw/gitgw/dataplane/vip"
	"github.com/gitgw/gitgw/reconcile"
)

type importFlags struct {
	keepalived, haproxy, nodes []string
	out, siteName              string
	force                      bool
	fromHost                   string // the node this host is; importer.FirstNode for the first
}

func newImportCmd() *cobra.Command {
	var f importFlags
	cmd := &cobra.Command{
		Use:   "import --keepalived [NODE=]FILE [--haproxy [NODE=]FILE] [--node NAME] [--out DIR]",
		Short: "Write a site from existing keepalived.conf and haproxy.cfg files",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runImport(cmd, &f) },
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.keepalived, "keepalived", nil, "a node's keepalived.conf, as FILE or NODE=FILE (repeatable)")
	fl.StringArrayVar(&f.haproxy, "haproxy", nil, "an haproxy.cfg, as FILE (every node) or NODE=FILE (repeatable)")
	fl.StringArrayVar(&f.nodes, "node", nil, "name of the node of each unnamed --keepalived FILE, in order (repeatable)")
	fl.StringVar(&f.out, "out", ".", "directory to write the site (a CUE module) to")
	fl.StringVar(&f.siteName, "site-name", "", "the site's name (site.name)")
	fl.BoolVar(&f.force, "force", false, "overwrite files the site would write that exist already")
	fl.StringVar(&f.fromHost, "from-host", "", "read this host's interfaces and addresses for node `NODE` (default: the first node)")
	fl.Lookup("from-host").NoOptDefVal = importer.FirstNode
	return cmd
}

func runImport(cmd *cobra.Command, f *importFlags) error {
	err := importer.Run(cmd.Context(), importer.Request{
		Keepalived: f.keepalived, HAProxy: f.haproxy, Nodes: f.nodes, Out: f.out, SiteName: f.siteName, Force: f.force,
		FromHost: f.fromHost, HostAddresses: vip.ReadHostAddresses, Check: reconcile.CheckSite,
	}, cmd.OutOrStdout(), cmd.ErrOrStderr())
	if errors.Is(err, importer.ErrIncomplete) {
		return exitError{1}
	}
	return err
}
