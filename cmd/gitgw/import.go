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
		Long: `import converts the configurations a gateway pair runs today into a gitgw
site: a CUE module written to --out (default: the current directory).

Give each node's keepalived.conf, named NODE=FILE or followed by --node NAME
(in order); one VRRP instance then carries every node's priority. Without a
name a node is called after the file's router_id. An haproxy.cfg becomes the
services of every node (NODE=FILE: of that node only).

Whatever has no equivalent in the site, or changes on the way, is printed as
a warning with its file and line. A service whose check or forwarding the
site cannot say yet (a check port, a TLS check, a check sequence, a status
range, a server by DNS name, IPVS forwarding, …) is refused: left out and
printed as "refused: FILE:LINE: …" with the directive and the reason, never
imported with a weakened check. A file that does not parse is an error and
nothing is written.

Node addresses the files do not state are left as TODO(import) comments and
printed as "missing: …"; run on a gateway, --from-host[=NODE] reads them from
its interfaces instead (NODE: which node this host is, by default the first).
The written site is loaded and checked with the guardrails of gitgw validate
before import returns. It exits 0 only when the site is complete (nothing
refused) and passes them, 1 otherwise. Existing files are not overwritten
without --force.`,
		Example: `  gitgw import --keepalived gw1=/etc/keepalived/keepalived.conf \
      --keepalived gw2=gw2-keepalived.conf --haproxy /etc/haproxy/haproxy.cfg --out site
  gitgw import --keepalived a.conf --node gw1 --keepalived b.conf --node gw2 --out site`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runImport(cmd, &f) },
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
