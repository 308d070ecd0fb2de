// Package loader turns a site directory (a CUE module) into the validated
// desired state of one node. It is the only importer of cuelang.org/go.
//
// It follows the recipe measured in reference/cue-anchors.md: the site is
// loaded as ONE instance with the embedded schema mounted as an importable
// package through an overlay, the schema applied field by field (so nested
// structs are closed and a misspelt field is an error), the node view
// computed inside the same evaluation, the whole site validated concretely,
// and only the node view decoded. Every error carries the file, line and
// column in the site and the field path; all errors are reported at once.
package loader

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/load"

	"github.com/gitgw/gitgw/cue/schema"
	"github.com/gitgw/gitgw/cue/spec"
)

// topLevel are the names a site may define at its root.
var topLevel = []string{"site", "nodes", "vrrp", "services", "units"}

// agentFile is the generated file added to the site's package. Its name
// sorts last so that site files keep their line numbers in messages.
const agentFile = "zz_gitgw_agent.cue"

// Site is an evaluated, valid site.
type Site struct {
	Dir   string
	Nodes []string // every node the site declares, sorted
	root  cue.Value
}

// Load evaluates the site in dir and validates it whole. With node set, it
// also computes that node's view (see View); node must exist in the site.
func Load(ctx context.Context, dir, node string) (*Site, *spec.Node, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("loader: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	overlay, pkg, err := buildOverlay(abs, node)
	if err != nil {
		return nil, nil, err
	}
	insts := load.Instances([]string{"."}, &load.Config{
		Dir:     abs,
		Overlay: overlay,
		Package: pkg,
		Env:     []string{"CUE_REGISTRY=none"}, // never reach a registry from a gateway
	})
	if len(insts) != 1 {
		return nil, nil, fmt.Errorf("loader: %s: expected one CUE package, found %d", dir, len(insts))
	}
	if err := insts[0].Err; err != nil {
		return nil, nil, convert(abs, err)
	}
	cctx := cuecontext.New()
	v := cctx.BuildInstance(insts[0])
	// Validate reports every error at once (v.Err() stops at the first).
	var errs Errors
	errs = append(errs, checkTopLevel(abs, v)...)
	if err := v.Validate(cue.Concrete(true)); err != nil {
		errs = append(errs, convertList(abs, err)...)
		// CUE reports missing values only when nothing else is wrong; an
		// operator wants every problem at once, so look for them directly.
		errs = append(errs, findIncomplete(abs, v, v, nil)...)
	}
	for i := range errs {
		if errs[i].File == "" || strings.HasPrefix(errs[i].File, "(schema)") {
			errs[i].locateParent(abs, v)
		}
	}
	errs = dedupe(errs.sorted())
	s := &Site{Dir: abs, root: v}
	if len(errs) == 0 {
		s.Nodes, err = fieldNames(v.LookupPath(cue.ParsePath("nodes")))
		if err != nil {
			errs = append(errs, convertList(abs, err)...)
		}
	}
	if len(errs) == 0 && node != "" && !slices.Contains(s.Nodes, node) {
		return nil, nil, fmt.Errorf("loader: node %q is not declared in the site (nodes: %s)", node, strings.Join(s.Nodes, ", "))
	}
	var view *spec.Node
	if len(errs) == 0 && node != "" {
		view, errs = decodeView(abs, v, s.Nodes)
	}
	if len(errs) == 0 && node == "" {
		errs = append(errs, checkReferences(abs, v, s.Nodes)...)
	}
	if len(errs) > 0 {
		return nil, nil, errs.sorted()
	}
	return s, view, nil
}

// buildOverlay mounts the schema under cue.mod/pkg and adds the agent file
// that applies it to the site's package.
func buildOverlay(abs, node string) (map[string]load.Source, string, error) {
	if _, err := os.Stat(filepath.Join(abs, "cue.mod", "module.cue")); err != nil {
		return nil, "", fmt.Errorf("loader: %s is not a CUE module (cue.mod/module.cue missing): %w", abs, err)
	}
	pkg, err := sitePackage(abs)
	if err != nil {
		return nil, "", err
	}
	ov := map[string]load.Source{}
	err = fs.WalkDir(schema.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(schema.Files, p)
		if err != nil {
			return err
		}
		ov[filepath.Join(abs, "cue.mod", "pkg", schema.ImportPath, p)] = load.FromBytes(b)
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("loader: read embedded schema: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "package %s\n\nimport gitgwschema %q\n\n", pkg, schema.ImportPath)
	for _, f := range topLevel {
		fmt.Fprintf(&b, "%s: gitgwschema.#Site.%s\n", f, f)
	}
	if node != "" {
		for _, f := range topLevel {
			fmt.Fprintf(&b, "let gitgw_%s = %s\n", f, f)
		}
		fmt.Fprintf(&b, "#gitgwView: gitgwschema.#NodeView & {#node: %s, #site: {", strconv.Quote(node))
		for i, f := range topLevel {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s: gitgw_%s", f, f)
		}
		b.WriteString("}}\n")
	}
	ov[filepath.Join(abs, agentFile)] = load.FromString(b.String())
	return ov, pkg, nil
}

// sitePackage finds the package name of the site's root files (all must
// share it; `cue` itself enforces that when loading).
func sitePackage(abs string) (string, error) {
	ents, err := os.ReadDir(abs)
	if err != nil {
		return "", fmt.Errorf("loader: %w", err)
	}
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".cue") || e.Name() == agentFile {
			continue
		}
		b, err := os.ReadFile(filepath.Join(abs, e.Name()))
		if err != nil {
			return "", fmt.Errorf("loader: %w", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "package" {
				return f[1], nil
			}
		}
	}
	return "", fmt.Errorf("loader: %s: no .cue file with a package clause at the site's root", abs)
}

func fieldNames(v cue.Value) ([]string, error) {
	it, err := v.Fields()
	if err != nil {
		return nil, err
	}
	var out []string
	for it.Next() {
		out = append(out, it.Selector().Unquoted())
	}
	slices.Sort(out)
	return out, nil
}

// checkTopLevel rejects unknown names at the root: the root of a package
// stays open even with the schema applied.
func checkTopLevel(abs string, v cue.Value) Errors {
	it, err := v.Fields()
	if err != nil {
		return convertList(abs, err)
	}
	var errs Errors
	for it.Next() {
		name := it.Selector().String()
		if slices.Contains(topLevel, name) {
			continue
		}
		e := Error{Path: name, Msg: fmt.Sprintf("field not allowed (a site defines only %s)", strings.Join(topLevel, ", "))}
		e.setPos(abs, it.Value().Pos())
		errs = append(errs, e)
	}
	return errs
}

func decodeView(abs string, v cue.Value, nodes []string) (*spec.Node, Errors) {
	view := v.LookupPath(cue.MakePath(cue.Def("gitgwView")))
	if err := view.Validate(cue.Concrete(true)); err != nil {
		return nil, convertList(abs, err)
	}
	var n spec.Node
	if err := view.Decode(&n); err != nil {
		return nil, convertList(abs, err)
	}
	errs := checkView(&n, nodes)
	for i := range errs {
		errs[i].locate(abs, v)
	}
	return &n, errs
}

// checkReferences runs the cross-reference checks over every node's part of
// the site, for `validate` without a node.
func checkReferences(abs string, v cue.Value, nodes []string) Errors {
	var all spec.Node
	for _, f := range []struct {
		name string
		into any
	}{{"vrrp", &all.VRRP}, {"services", &all.Services}, {"units", &all.Units}} {
		if err := v.LookupPath(cue.ParsePath(f.name)).Decode(f.into); err != nil {
			return convertList(abs, err)
		}
	}
	errs := checkView(&all, nodes)
	for i := range errs {
		errs[i].locate(abs, v)
	}
	return errs
}

// convertList turns a CUE error into positioned errors (nil for nil).
func convertList(abs string, err error) Errors {
	if err == nil {
		return nil
	}
	var out Errors
	for _, e := range cueerrors.Errors(err) {
		format, args := e.Msg()
		le := Error{Path: strings.Join(e.Path(), "."), Msg: fmt.Sprintf(format, args...)}
		for _, p := range cueerrors.Positions(e) {
			if le.setPos(abs, p) {
				break
			}
		}
		out = append(out, le)
	}
	return dedupe(out)
}

func convert(abs string, err error) error {
	if errs := convertList(abs, err); len(errs) > 0 {
		return errs.sorted()
	}
	return err
}

// dedupe keeps one error per position and path (CUE reports a conflict
// with a disjunction once per arm) and drops CUE's "N errors in empty
// disjunction" summaries, whose arms are reported on their own.
func dedupe(errs Errors) Errors {
	seen := map[string]int{}
	var out Errors
	for _, e := range errs {
		if rest, ok := strings.CutPrefix(e.Msg, "incomplete value "); ok {
			e.Msg = "missing value: the site must set this field (" + rest + ")"
		}
		if strings.Contains(e.Msg, "errors in empty disjunction") {
			continue
		}
		k := fmt.Sprintf("%s:%d:%d:%s", e.File, e.Line, e.Col, e.Path)
		if e.File == "" {
			k += e.Msg
		}
		if i, dup := seen[k]; dup {
			// Of a disjunction's arms, the one whose type matches says more.
			if strings.Contains(out[i].Msg, "mismatched types") && !strings.Contains(e.Msg, "mismatched types") {
				out[i] = e
			}
			continue
		}
		seen[k] = len(out)
		out = append(out, e)
	}
	return out
}

// findIncomplete walks the site for values left open (a field the schema
// requires that the site did not give). It runs only when validation has
// already failed, so its cost does not matter on the good path.
func findIncomplete(abs string, root, v cue.Value, path []string) Errors {
	switch k := v.IncompleteKind(); {
	case k == cue.StructKind || k == cue.BottomKind:
		// A struct holding an error somewhere reports itself as bottom.
		it, err := v.Fields()
		if err != nil {
			return nil
		}
		var errs Errors
		for it.Next() {
			errs = append(errs, findIncomplete(abs, root, it.Value(), append(path, it.Selector().String()))...)
		}
		return errs
	case k == cue.ListKind:
		it, err := v.List()
		if err != nil {
			return nil
		}
		var errs Errors
		for i := 0; it.Next(); i++ {
			errs = append(errs, findIncomplete(abs, root, it.Value(), append(path, strconv.Itoa(i)))...)
		}
		return errs
	}
	if v.IsConcrete() || v.Err() != nil {
		return nil
	}
	if d, ok := v.Default(); ok && d.IsConcrete() {
		return nil
	}
	e := Error{Path: strings.Join(path, "."), Msg: fmt.Sprintf("missing value: the site must set this field (%v)", v)}
	e.locateParent(abs, root)
	return Errors{e}
}

// AsErrors returns the positioned errors inside err, if any.
func AsErrors(err error) (Errors, bool) {
	var errs Errors
	if errors.As(err, &errs) {
		return errs, true
	}
	return nil, false
}
