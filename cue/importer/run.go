package importer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/internal/words"
)

// Request is one `gitgw import`: the files as the command line names them,
// where to write the site, and what the command wires in.
type Request struct {
	// Keepalived and HAProxy are FILE or NODE=FILE arguments.
	Keepalived, HAProxy []string
	// Nodes name the unnamed keepalived files, in order; with haproxy
	// files alone, the nodes that run them.
	Nodes    []string
	Out      string
	SiteName string
	// Force overwrites the files the site would write.
	Force bool
	// FromHost is the node this host is, whose interfaces and addresses
	// are read with HostAddresses; FirstNode for the first node, "" for
	// none.
	FromHost      string
	HostAddresses func() (map[string][]netip.Prefix, error)
	// Check runs the guardrails of `gitgw validate` over the written site:
	// warnings written to warn, errors returned. Nil checks nothing.
	Check func(ctx context.Context, site *loader.Site, warn io.Writer) (loader.Errors, error)
}

// FirstNode as Request.FromHost means the first node (the first keepalived
// file's, as the import names it, else the first of Nodes).
const FirstNode = "*"

// ErrIncomplete is returned when the report printed says the import is not
// a working site: a syntax error (nothing written), a service refused, a
// fact missing, or a guardrail broken. The command exits 1 and prints
// nothing more.
var ErrIncomplete = errors.New("import: not a working site")

// Run reads the files, imports them, writes the site to req.Out, and loads
// and checks what it wrote. The files written go to stdout, one a line;
// warnings, refusals, missing facts, guardrail errors and the summary to
// stderr, each naming its file and line.
func Run(ctx context.Context, req Request, stdout, stderr io.Writer) error {
	opts, err := req.options()
	if err != nil {
		return err
	}
	res, err := Import(opts)
	var serr *SyntaxError
	if errors.As(err, &serr) {
		for _, e := range serr.Errs {
			fmt.Fprintln(stderr, "error:", e.String())
		}
		fmt.Fprintf(stderr, "import: %d syntax errors: nothing written\n", len(serr.Errs))
		return ErrIncomplete
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(req.Out, 0o755); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if err := WriteDir(req.Out, res.Files, req.Force); err != nil {
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
		fmt.Fprintln(stderr, kind, filepath.Join(req.Out, "site.cue")+":", m.String())
	}
	for _, file := range res.Files {
		fmt.Fprintln(stdout, filepath.Join(req.Out, filepath.FromSlash(file.Name)))
	}
	site, _, err := loader.Load(ctx, req.Out, "")
	if err != nil {
		if errs, ok := loader.AsErrors(err); ok {
			for _, e := range errs {
				fmt.Fprintln(stderr, filepath.Join(req.Out, e.Error()))
			}
			fmt.Fprintln(stderr, "import: the written site does not load (a bug in gitgw import: please report it with the files)")
			return ErrIncomplete
		}
		return err
	}
	// The guardrails of `gitgw validate`: what the sources leave open (a
	// node's address) can keep the site from passing them yet. Their
	// warnings are counted with the import's own.
	var policyWarnings bytes.Buffer
	var bad loader.Errors
	if req.Check != nil {
		if bad, err = req.Check(ctx, site, &policyWarnings); err != nil {
			return err
		}
	}
	_, _ = stderr.Write(policyWarnings.Bytes())
	warnings := len(res.Warnings) + strings.Count(policyWarnings.String(), "\n")
	for _, e := range bad {
		fmt.Fprintln(stderr, "guardrail: "+filepath.Join(req.Out, e.Error()))
	}
	summary := fmt.Sprintf("site written to %s: %s (%s), %s", req.Out, words.Plural(len(res.Nodes), "node"), strings.Join(res.Nodes, ", "), words.Plural(warnings, "warning"))
	var open []string
	if n := refusedServices(res.Refused); n > 0 {
		open = append(open, words.Plural(n, "service")+" refused (what they need is printed as refused:)")
	}
	if missing > 0 {
		open = append(open, fmt.Sprintf("%d facts missing (printed as missing:, TODO(import) in site.cue)", missing))
	}
	if len(bad) > 0 {
		open = append(open, fmt.Sprintf("%d guardrail errors remain", len(bad)))
	}
	if len(open) > 0 {
		fmt.Fprintf(stderr, "%s; it is NOT a working site yet: %s; complete it, then run gitgw validate --site %s\n",
			summary, strings.Join(open, ", "), req.Out)
		return ErrIncomplete
	}
	fmt.Fprintf(stderr, "%s; it passes gitgw validate\n", summary)
	return nil
}

// options reads the files the request names into the importer's options.
func (req Request) options() (Options, error) {
	if len(req.Keepalived) == 0 && len(req.HAProxy) == 0 {
		return Options{}, fmt.Errorf("import: give at least one --keepalived or --haproxy file")
	}
	opts := Options{SiteName: req.SiteName}
	names := req.Nodes
	read := func(arg string, isKA bool) (Input, error) {
		node, path := SplitNamed(arg)
		if node == "" && isKA && len(names) > 0 {
			node, names = names[0], names[1:]
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return Input{}, fmt.Errorf("import: %w", err)
		}
		in := Input{Node: node, Path: path, Data: b}
		if abs, err := filepath.Abs(path); err == nil {
			in.Dir = filepath.Dir(abs)
		}
		return in, nil
	}
	for _, a := range req.Keepalived {
		in, err := read(a, true)
		if err != nil {
			return Options{}, err
		}
		opts.Keepalived = append(opts.Keepalived, in)
	}
	if len(req.Keepalived) > 0 && len(names) > 0 {
		return Options{}, fmt.Errorf("import: more --node names (%s left over) than unnamed --keepalived files", strings.Join(names, ", "))
	}
	opts.Nodes = names // with an haproxy.cfg alone: the nodes that run it
	for _, a := range req.HAProxy {
		in, err := read(a, false)
		if err != nil {
			return Options{}, err
		}
		opts.HAProxy = append(opts.HAProxy, in)
	}
	if req.FromHost != "" {
		node := req.FromHost
		if node == FirstNode {
			node = firstNodeName(opts)
		}
		if req.HostAddresses == nil {
			return Options{}, errors.New("import: --from-host: no way to read this host's addresses")
		}
		ifs, err := req.HostAddresses()
		if err != nil {
			return Options{}, fmt.Errorf("import: --from-host: %w", err)
		}
		opts.Hosts = map[string]map[string][]netip.Prefix{node: ifs}
	}
	return opts, nil
}

// namedRE is the NODE= prefix of a NODE=FILE argument.
var namedRE = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9_.-]{0,62})=(.+)$`)

// SplitNamed splits a NODE=FILE argument; a FILE that exists as given is
// taken whole (a file may have '=' in its name).
func SplitNamed(arg string) (node, path string) {
	if m := namedRE.FindStringSubmatch(arg); m != nil {
		if _, err := os.Stat(arg); err != nil {
			return m[1], m[2]
		}
	}
	return "", arg
}

// refusedServices counts the services the refusals leave out.
func refusedServices(rs []Refusal) int {
	seen := map[string]bool{}
	for _, r := range rs {
		seen[r.Pos.File+"\x00"+r.What] = true
	}
	return len(seen)
}

// firstNodeName is the node FirstNode means: the first keepalived file's
// (as the import will name it), else the first of Nodes.
func firstNodeName(opts Options) string {
	res, err := Import(Options{Keepalived: opts.Keepalived, HAProxy: opts.HAProxy, Nodes: opts.Nodes})
	if err != nil || len(res.Nodes) == 0 {
		return ""
	}
	return res.Nodes[0]
}
