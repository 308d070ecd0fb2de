package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gitgw/gitgw/cue/importer"
	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/dataplane/vip"
)

type importFlags struct {
	keepalived, haproxy, nodes []string
	out, siteName              string
	force                      bool
	fromHost                   string // the node this host is; firstNode for the first
}

// firstNode is --from-host without a node name: the first node.
const firstNode = "*"

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
	fl.Lookup("from-host").NoOptDefVal = firstNode
	return cmd
}

// namedRE is the NODE= prefix of a NODE=FILE argument.
var namedRE = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9_.-]{0,62})=(.+)$`)

func splitNamed(arg string) (node, path string) {
	if m := namedRE.FindStringSubmatch(arg); m != nil {
		if _, err := os.Stat(arg); err != nil { // a file may have '=' in its name
			return m[1], m[2]
		}
	}
	return "", arg
}

func runImport(cmd *cobra.Command, f *importFlags) error {
	if len(f.keepalived) == 0 && len(f.haproxy) == 0 {
		return fmt.Errorf("import: give at least one --keepalived or --haproxy file")
	}
	var opts importer.Options
	opts.SiteName = f.siteName
	names := f.nodes
	read := func(arg string, isKA bool) (importer.Input, error) {
		node, path := splitNamed(arg)
		if node == "" && isKA && len(names) > 0 {
			node, names = names[0], names[1:]
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return importer.Input{}, fmt.Errorf("import: %w", err)
		}
		return importer.Input{Node: node, Path: path, Data: b}, nil
	}
	for _, a := range f.keepalived {
		in, err := read(a, true)
		if err != nil {
			return err
		}
		opts.Keepalived = append(opts.Keepalived, in)
	}
	if len(f.keepalived) > 0 && len(names) > 0 {
		return fmt.Errorf("import: more --node names (%s left over) than unnamed --keepalived files", strings.Join(names, ", "))
	}
	opts.Nodes = names // with an haproxy.cfg alone: the nodes that run it
	for _, a := range f.haproxy {
		in, err := read(a, false)
		if err != nil {
			return err
		}
		opts.HAProxy = append(opts.HAProxy, in)
	}
	if f.fromHost != "" {
		node := f.fromHost
		if node == firstNode {
			node = firstNodeName(opts)
		}
		ifs, err := vip.ReadHostAddresses()
		if err != nil {
			return fmt.Errorf("import: --from-host: %w", err)
		}
		opts.Hosts = map[string]map[string][]netip.Prefix{node: ifs}
	}
	stderr := cmd.ErrOrStderr()
	res, err := importer.Import(opts)
	var serr *importer.SyntaxError
	if errors.As(err, &serr) {
		for _, e := range serr.Errs {
			fmt.Fprintln(stderr, "error:", e.String())
		}
		fmt.Fprintf(stderr, "import: %d syntax errors: nothing written\n", len(serr.Errs))
		return exitError{1}
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if err := importer.WriteDir(f.out, res.Files, f.force); err != nil {
		return err
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(stderr, "warning:", w.String())
	}
	for _, r := range res.Refused {
		fmt.Fprintln(stderr, "refused:", r.String())
	}
	missing := 0
	for _, m := range res.Missing {
		kind := "guessed:"
		if !m.Guess {
			kind = "missing:"
			missing++
		}
		fmt.Fprintln(stderr, kind, filepath.Join(f.out, "site.cue")+":", m.String())
	}
	for _, file := range res.Files {
		fmt.Fprintln(cmd.OutOrStdout(), filepath.Join(f.out, filepath.FromSlash(file.Name)))
	}
	site, _, err := loader.Load(cmd.Context(), f.out, "")
	if err != nil {
		if errs, ok := loader.AsErrors(err); ok {
			for _, e := range errs {
				fmt.Fprintln(stderr, filepath.Join(f.out, e.Error()))
			}
			fmt.Fprintln(stderr, "import: the written site does not load (a bug in gitgw import: please report it with the files)")
			return exitError{1}
		}
		return err
	}
	// The guardrails of `gitgw validate`: what the sources leave open (a
	// node's address) can keep the site from passing them yet. Their
	// warnings are counted with the import's own.
	var policyWarnings bytes.Buffer
	bad, err := checkPolicies(cmd.Context(), site, &policyWarnings)
	if err != nil {
		return err
	}
	stderr.Write(policyWarnings.Bytes())
	warnings := len(res.Warnings) + strings.Count(policyWarnings.String(), "\n")
	for _, e := range bad {
		fmt.Fprintln(stderr, "guardrail: "+filepath.Join(f.out, e.Error()))
	}
	summary := fmt.Sprintf("site written to %s: %d nodes (%s), %d warnings", f.out, len(res.Nodes), strings.Join(res.Nodes, ", "), warnings)
	var open []string
	if n := refusedServices(res.Refused); n > 0 {
		open = append(open, fmt.Sprintf("%d services refused (what they need is printed as refused:)", n))
	}
	if missing > 0 {
		open = append(open, fmt.Sprintf("%d facts missing (printed as missing:, TODO(import) in site.cue)", missing))
	}
	if len(bad) > 0 {
		open = append(open, fmt.Sprintf("%d guardrail errors remain", len(bad)))
	}
	if len(open) > 0 {
		fmt.Fprintf(stderr, "%s; it is NOT a working site yet: %s; complete it, then run gitgw validate --site %s\n",
			summary, strings.Join(open, ", "), f.out)
		return exitError{1}
	}
	fmt.Fprintf(stderr, "%s; it passes gitgw validate\n", summary)
	return nil
}

// refusedServices counts the services the refusals leave out.
func refusedServices(rs []importer.Refusal) int {
	seen := map[string]bool{}
	for _, r := range rs {
		seen[r.Pos.File+"\x00"+r.What] = true
	}
	return len(seen)
}

// firstNodeName is the node --from-host means without a name: the first
// keepalived file's (as the import will name it), else the first --node.
func firstNodeName(opts importer.Options) string {
	res, err := importer.Import(importer.Options{Keepalived: opts.Keepalived, HAProxy: opts.HAProxy, Nodes: opts.Nodes})
	if err != nil || len(res.Nodes) == 0 {
		return ""
	}
	return res.Nodes[0]
}
