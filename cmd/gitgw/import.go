package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gitgw/gitgw/cue/importer"
	"github.com/gitgw/gitgw/cue/loader"
)

type importFlags struct {
	keepalived, haproxy, nodes []string
	out, siteName              string
	force                      bool
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
a warning with its file and line; node addresses the files do not state are
left as TODO(import) comments. The written site is loaded and checked with
the guardrails of gitgw validate before import returns; what keeps it from
passing them (typically a node address to fill in) is listed. Existing files
are not overwritten without --force.`,
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
	res, err := importer.Import(opts)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if err := importer.WriteDir(f.out, res.Files, f.force); err != nil {
		return err
	}
	stderr := cmd.ErrOrStderr()
	for _, w := range res.Warnings {
		fmt.Fprintln(stderr, "warning:", w.String())
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
	summary := fmt.Sprintf("site written to %s: %d nodes (%s), %d warnings",
		f.out, len(res.Nodes), strings.Join(res.Nodes, ", "), len(res.Warnings))
	// The guardrails of `gitgw validate`: what the sources leave open (a
	// node's address) can keep the site from passing them yet.
	bad, err := checkPolicies(cmd.Context(), site, stderr)
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		for _, e := range bad {
			fmt.Fprintln(stderr, "guardrail: "+filepath.Join(f.out, e.Error()))
		}
		fmt.Fprintf(stderr, "%s; it loads, but %d guardrail errors remain: complete the TODO(import) items, then run gitgw validate --site %s\n",
			summary, len(bad), f.out)
		return nil
	}
	fmt.Fprintf(stderr, "%s; it passes gitgw validate\n", summary)
	return nil
}
