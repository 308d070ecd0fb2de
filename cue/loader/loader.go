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
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"

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
	// Scope is how much of the site the schema was applied to.
	Scope Scope
	root  cue.Value
	// refs are the vrrp, services and units that checkReferences decoded
	// (whole-site loads only), reused by Whole.
	refs *spec.Node
	// After an evaluation in a sandbox, root is absent: whole is the
	// whole site as the child decoded it (whole-site loads only), and
	// sandbox evaluates again to locate errors.
	whole    *spec.Site
	wholeErr error
	sandbox  *Sandbox
	// labels are every node's labels as the child read them (NodeLabels).
	labels map[string]map[string]string
	// positions index the node's view as the child found it (Locate).
	positions positions
}

// Scope says how much of a site the schema is applied to when one node's
// view is wanted.
type Scope string

// The scopes.
const (
	// ScopeSite applies the schema and the checks to the whole site: a
	// commit with an error anywhere is rejected by every node.
	ScopeSite Scope = "site"
	// ScopeNode applies the schema to this node's part of the site only
	// (its own settings, its VRRP instances, services and unit templates);
	// the rest is evaluated as plain data. At 1,000 gateway pairs this is
	// about 3× cheaper than ScopeSite. The whole site is then validated
	// once in CI (`gitgw validate`), as reference/cue-anchors.md advises
	// for large fleets.
	ScopeNode Scope = "node"
	// ScopeAuto is ScopeSite up to AutoScopeNodes nodes, ScopeNode above.
	ScopeAuto Scope = "auto"
)

// Check refuses a scope that is none of the three; the error names the
// commands' --scope flag.
func (s Scope) Check() error {
	switch s {
	case ScopeAuto, ScopeSite, ScopeNode:
		return nil
	}
	return fmt.Errorf("--scope %q: want auto, site or node", string(s))
}

// AutoScopeNodes is the site size (in nodes) up to which ScopeAuto validates
// the whole site on every node: about 0.3 s of CPU per commit there.
const AutoScopeNodes = 200

// Options tune a load.
type Options struct {
	Scope Scope
}

// Load evaluates the site in dir and validates it. With node set, it also
// decodes that node's view; node must exist in the site. The scope is auto.
func Load(ctx context.Context, dir, node string) (*Site, *spec.Node, error) {
	return LoadWith(ctx, dir, node, Options{})
}

// LoadWith is Load with options.
func LoadWith(ctx context.Context, dir, node string, o Options) (*Site, *spec.Node, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("loader: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if sb := sandboxFrom(ctx); sb != nil {
		return sb.load(ctx, abs, node, o)
	}
	site, err := readSite(abs)
	if err != nil {
		return nil, nil, err
	}
	scope := o.Scope
	if scope == "" {
		scope = ScopeAuto
	}
	if node == "" {
		scope = ScopeSite
	}
	if scope != ScopeSite {
		if s, view, err, ok := loadNodeScoped(site, node, scope); ok {
			return s, view, err
		}
	}
	inst, err := site.load(".", siteAgentFile(site.pkg))
	if err != nil {
		return nil, nil, err
	}
	v, errs := evaluate(abs, inst)
	s := &Site{Dir: abs, root: v, Scope: ScopeSite}
	if len(errs) == 0 {
		s.Nodes, err = fieldNames(v.LookupPath(cue.ParsePath("nodes")))
		if err != nil {
			errs = append(errs, convertList(abs, err)...)
		}
	}
	if len(errs) == 0 && node != "" && !slices.Contains(s.Nodes, node) {
		return nil, nil, &UnknownNodeError{Node: node, Nodes: s.Nodes}
	}
	var view *spec.Node
	if len(errs) == 0 && node != "" {
		sel := selectFor(v, node)
		view, errs = decodeView(abs, v, node, s.Nodes, sel, func(p cue.Path) cue.Value { return v.LookupPath(p) })
	}
	if len(errs) == 0 && node == "" {
		var rerrs Errors
		s.refs, rerrs = checkReferences(abs, v, s.Nodes)
		errs = append(errs, rerrs...)
	}
	if len(errs) > 0 {
		return nil, nil, errs.sorted()
	}
	return s, view, nil
}

// loadNodeScoped evaluates the site as plain data (no schema: cheap), finds
// this node's part, and unifies only that part with the schema's
// definitions, in Go, on the same evaluation. ok is false when the full
// evaluation must run instead: auto decided so, or the data alone does not
// evaluate (the full evaluation then reports every error with its position).
func loadNodeScoped(sfs *siteFS, node string, scope Scope) (*Site, *spec.Node, error, bool) {
	abs := sfs.abs
	// The schema's definitions come in through the agent file, so that
	// they live in the same evaluation as the site's data.
	src := fmt.Sprintf("package %s\n\nimport s %q\n\n#gitgw: {site: s.#SiteSettings, nodes: s.#Node, vrrp: s.#VRRPInstance, services: s.#Service, units: s.#UnitTemplate}\n", sfs.pkg, schema.ImportPath)
	inst, err := sfs.load(".", src)
	if err != nil {
		return nil, nil, nil, false
	}
	v := cuecontext.New().BuildInstance(inst)
	if v.Err() != nil {
		return nil, nil, nil, false
	}
	nodes, err := fieldNames(v.LookupPath(cue.ParsePath("nodes")))
	if err != nil || !slices.Contains(nodes, node) || (scope == ScopeAuto && len(nodes) <= AutoScopeNodes) {
		return nil, nil, nil, false
	}
	errs := checkTopLevel(abs, v)
	if err := v.Validate(); err != nil {
		errs = append(errs, convertList(abs, err)...)
	}
	def := v.LookupPath(cue.MakePath(cue.Def("#gitgw")))
	sel := selectFor(v, node)
	unified := map[string]cue.Value{}
	// Data first, so that error paths read as the site's own paths.
	scoped := func(kind, name string) {
		p := cue.MakePath(cue.Str(kind), cue.Str(name))
		u := v.LookupPath(p).Unify(def.LookupPath(cue.MakePath(cue.Str(kind))))
		unified[p.String()] = u
		if err := u.Validate(cue.Concrete(true)); err != nil {
			errs = append(errs, convertList(abs, err)...)
			errs = append(errs, findIncomplete(abs, v, u, []string{kind, spec.Label(name)})...)
		}
	}
	site := def.LookupPath(cue.ParsePath("site"))
	if data := v.LookupPath(cue.ParsePath("site")); data.Exists() {
		site = data.Unify(site)
	}
	unified["site"] = site
	if err := site.Validate(cue.Concrete(true)); err != nil {
		errs = append(errs, convertList(abs, err)...)
	}
	scoped("nodes", node)
	for _, k := range sel.vrrp {
		scoped("vrrp", k)
	}
	for _, k := range sel.services {
		scoped("services", k)
	}
	for _, k := range sel.units {
		scoped("units", k)
	}
	for i := range errs {
		if errs[i].File == "" || strings.HasPrefix(errs[i].File, "(schema)") {
			errs[i].locateParent(abs, v)
		}
	}
	suggest(errs, func(path []string) cue.Value {
		if len(path) >= 2 {
			if u, ok := unified[cue.MakePath(cue.Str(path[0]), cue.Str(path[1])).String()]; ok {
				return u.LookupPath(selectorPath(path[2:]))
			}
		}
		if len(path) == 1 && path[0] == "site" {
			return unified["site"]
		}
		return v.LookupPath(selectorPath(path))
	})
	if errs = dedupe(errs.sorted()); len(errs) > 0 {
		return nil, nil, errs, true
	}
	view, errs := decodeView(abs, v, node, nodes, sel, func(p cue.Path) cue.Value {
		if u, ok := unified[p.String()]; ok {
			return u
		}
		return v.LookupPath(p)
	})
	if len(errs) > 0 {
		return nil, nil, errs.sorted(), true
	}
	return &Site{Dir: abs, root: v, Scope: ScopeNode, Nodes: nodes}, view, nil, true
}

// evaluate loads and builds the site with the given overlay and collects
// every error: top-level names, conflicts, and values left open.
func evaluate(abs string, inst *build.Instance) (cue.Value, Errors) {
	v := cuecontext.New().BuildInstance(inst)
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
	suggest(errs, func(path []string) cue.Value { return v.LookupPath(selectorPath(path)) })
	return v, dedupe(errs.sorted())
}

// siteAgentFile applies the schema to the whole site, field by field (so
// that nested structs are closed: embedding #Site at the root would not
// reject a misspelt field inside a node).
func siteAgentFile(pkg string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "package %s\n\nimport gitgwschema %q\n\n", pkg, schema.ImportPath)
	for _, f := range topLevel {
		fmt.Fprintf(&b, "%s: gitgwschema.#Site.%s\n", f, f)
	}
	return b.String()
}

// selection names what one node runs.
type selection struct {
	vrrp, services, units []string
}

// selectFor finds the VRRP instances that give node a priority, and the
// services and unit templates whose node lists name it (or name no node).
func selectFor(v cue.Value, node string) selection {
	var s selection
	eachField(v.LookupPath(cue.ParsePath("vrrp")), func(name string, in cue.Value) {
		if in.LookupPath(cue.MakePath(cue.Str("nodes"), cue.Str(node))).Exists() {
			s.vrrp = append(s.vrrp, name)
		}
	})
	eachField(v.LookupPath(cue.ParsePath("services")), func(name string, sv cue.Value) {
		if appliesTo(sv.LookupPath(cue.ParsePath("nodes")), node) {
			s.services = append(s.services, name)
		}
	})
	eachField(v.LookupPath(cue.ParsePath("units")), func(name string, uv cue.Value) {
		it, err := uv.LookupPath(cue.ParsePath("instances")).List()
		if err != nil {
			return
		}
		for it.Next() {
			if appliesTo(it.Value().LookupPath(cue.ParsePath("nodes")), node) {
				s.units = append(s.units, name)
				return
			}
		}
	})
	return s
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

// decodeView selects and decodes what one node runs: its own settings, the
// VRRP instances that give it a priority, the services and unit instance
// sets that name it (or name no node). Selecting in Go over the evaluated
// site costs tens of milliseconds at 1,000 gateway pairs; the same selection
// written as comprehensions inside the evaluation cost several hundred.
func decodeView(abs string, v cue.Value, node string, nodes []string, sel selection, lookup func(cue.Path) cue.Value) (*spec.Node, Errors) {
	n := &spec.Node{Name: node, VRRP: map[string]spec.VRRPInstance{}, Services: map[string]spec.Service{}, Units: map[string]spec.UnitTemplate{}}
	var errs Errors
	decode := func(val cue.Value, into any) {
		if err := val.Decode(into); err != nil {
			errs = append(errs, convertList(abs, err)...)
		}
	}
	decode(lookup(cue.ParsePath("site")), &n.Site)
	decode(lookup(cue.MakePath(cue.Str("nodes"), cue.Str(node))), &n.Node)
	for _, k := range sel.vrrp {
		var x spec.VRRPInstance
		decode(lookup(cue.MakePath(cue.Str("vrrp"), cue.Str(k))), &x)
		x.PeerAddresses = map[string][]netip.Prefix{}
		for peer := range x.Nodes {
			var addrs []netip.Prefix
			p := cue.MakePath(cue.Str("nodes"), cue.Str(peer), cue.Str("interfaces"), cue.Str(x.Interface), cue.Str("addresses"))
			if a := v.LookupPath(p); a.Exists() && a.Decode(&addrs) == nil {
				x.PeerAddresses[peer] = addrs
			}
		}
		n.VRRP[k] = x
	}
	for _, k := range sel.services {
		var x spec.Service
		decode(lookup(cue.MakePath(cue.Str("services"), cue.Str(k))), &x)
		n.Services[k] = x
	}
	for _, k := range sel.units {
		var x spec.UnitTemplate
		decode(lookup(cue.MakePath(cue.Str("units"), cue.Str(k))), &x)
		n.Units[k] = x
	}
	n.StatusKeys = statusKeys(v)
	n.RealServer = spec.RealServerRoles(n.Node, drServices(v))
	if len(errs) > 0 {
		return nil, errs
	}
	errs = checkView(n, nodes)
	for i := range errs {
		errs[i].locate(abs, v)
	}
	return n, errs
}

// drServices decodes the site's dr services, only what makes a real
// server's role (spec.RealServerRoles): every node's view needs them, not
// only the views of the nodes the services run on. A service that does
// not decode is left out here: its own view reports it.
func drServices(v cue.Value) map[string]spec.Service {
	out := map[string]spec.Service{}
	// Paths made once: parsing one per service cost as much as the lookup.
	mode, binds, servers := cue.MakePath(cue.Str("mode")), cue.MakePath(cue.Str("binds")), cue.MakePath(cue.Str("servers"))
	eachField(v.LookupPath(cue.MakePath(cue.Str("services"))), func(name string, sv cue.Value) {
		if m, err := sv.LookupPath(mode).String(); err != nil || m != string(spec.ModeDR) {
			return
		}
		s := spec.Service{Mode: spec.ModeDR}
		if sv.LookupPath(binds).Decode(&s.Binds) != nil || sv.LookupPath(servers).Decode(&s.Servers) != nil {
			return
		}
		out[name] = s
	})
	return out
}

// eachField calls fn for every regular field of a struct value.
func eachField(v cue.Value, fn func(name string, v cue.Value)) {
	it, err := v.Fields()
	if err != nil {
		return
	}
	for it.Next() {
		fn(it.Selector().Unquoted(), it.Value())
	}
}

// appliesTo reports whether an optional node list names node; an absent or
// empty list applies to every node.
func appliesTo(list cue.Value, node string) bool {
	if !list.Exists() {
		return true
	}
	it, err := list.List()
	if err != nil {
		return false
	}
	empty := true
	for it.Next() {
		empty = false
		if s, err := it.Value().String(); err == nil && s == node {
			return true
		}
	}
	return empty
}

// checkReferences runs the cross-reference checks over every node's part of
// the site, for `validate` without a node.
func checkReferences(abs string, v cue.Value, nodes []string) (*spec.Node, Errors) {
	var all spec.Node
	for _, f := range []struct {
		name string
		into any
	}{{"vrrp", &all.VRRP}, {"services", &all.Services}, {"units", &all.Units}} {
		if err := v.LookupPath(cue.ParsePath(f.name)).Decode(f.into); err != nil {
			return nil, convertList(abs, err)
		}
	}
	if ul := v.LookupPath(cue.ParsePath("site.userlists")); ul.Exists() {
		if err := ul.Decode(&all.Site.Userlists); err != nil {
			return nil, convertList(abs, err)
		}
	}
	errs := checkView(&all, nodes)
	for i := range errs {
		errs[i].locate(abs, v)
	}
	return &all, errs
}

// convertList turns a CUE error into positioned errors (nil for nil).
func convertList(abs string, err error) Errors {
	if err == nil {
		return nil
	}
	var out Errors
	for _, e := range cueerrors.Errors(err) {
		format, args := e.Msg()
		le := Error{Path: strings.Join(e.Path(), "."), Msg: clip(fmt.Sprintf(format, args...))}
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

// textBound is how CUE prints the schema's #Text constraint.
const textBound = `(out of bound =~"^[^\\x00-\\x08\\x0a-\\x1f\\x7f]*$")`

// dedupe keeps one error per position and path (CUE reports a conflict
// with a disjunction once per arm) and drops CUE's "N errors in empty
// disjunction" summaries, whose arms are reported on their own.
func dedupe(errs Errors) Errors {
	seen := map[string]int{}
	var out Errors
	for _, e := range errs {
		e.Msg = clip(e.Msg)
		if rest, ok := strings.CutPrefix(e.Msg, "incomplete value "); ok {
			e.Msg = "missing value: the site must set this field (" + rest + ")"
		}
		// The schema's #Text bound, said in words.
		e.Msg = strings.Replace(e.Msg, textBound, "(a control character: a string written into a unit file may hold none but tab)", 1)
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

// ErrUnknownNode matches an *UnknownNodeError with errors.Is.
var ErrUnknownNode = errors.New("node not declared in the site")

// UnknownNodeError says that the node asked for is not in the site: an
// agent started with such a name can never apply anything, so it is told
// apart from an invalid site.
type UnknownNodeError struct {
	Node  string
	Nodes []string // the site's nodes
}

func (e *UnknownNodeError) Error() string {
	return fmt.Sprintf("loader: node %q is not declared in the site (nodes: %s)", e.Node, strings.Join(e.Nodes, ", "))
}

// Is makes errors.Is(err, ErrUnknownNode) true.
func (e *UnknownNodeError) Is(target error) bool { return target == ErrUnknownNode }
