package loader

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"

	"github.com/gitgw/gitgw/cue/spec"
)

// PoliciesDir is the directory of a site repository that holds its site
// policies: CUE files of the site's package, unified with the site.
const PoliciesDir = "policies"

// Whole decodes the whole site, for the checks that look across nodes
// (`gitgw validate`). After a whole-site Load it reuses what the reference
// checks decoded (a full decode is seconds at 1,000 pairs); agents use their
// node's view.
func (s *Site) Whole() (*spec.Site, error) {
	if s.whole != nil || s.wholeErr != nil {
		return s.whole, s.wholeErr
	}
	if !s.root.Exists() {
		return nil, fmt.Errorf("loader: %s: the whole site was not decoded (a node's view was loaded)", s.Dir)
	}
	var out spec.Site
	fields := []struct {
		name string
		into any
	}{{"site", &out.Site}, {"nodes", &out.Nodes}, {"vrrp", &out.VRRP}, {"services", &out.Services}, {"units", &out.Units}}
	if s.refs != nil {
		out.VRRP, out.Services, out.Units = s.refs.VRRP, s.refs.Services, s.refs.Units
		fields = fields[:2]
	}
	for _, f := range fields {
		v := s.root.LookupPath(cue.ParsePath(f.name))
		if !v.Exists() {
			continue
		}
		if err := v.Decode(f.into); err != nil {
			return nil, convert(s.Dir, err)
		}
	}
	return &out, nil
}

// Locate positions errors that name a field path (found by Go checks over
// decoded values) in the site's files.
func (s *Site) Locate(errs Errors) Errors {
	if len(errs) == 0 {
		return nil
	}
	if !s.root.Exists() && s.positions != nil && s.locateFromIndex(errs) {
		out := slices.Clone(errs)
		for i := range out {
			if out[i].File == "" {
				s.positions.locateFrom(&out[i])
			}
			if out[i].Related != "" && out[i].RelatedAt == "" {
				r := Error{Path: out[i].Related}
				if s.positions.locateFrom(&r) {
					out[i].RelatedAt = r.File + ":" + strconv.Itoa(r.Line) + ":" + strconv.Itoa(r.Col)
				}
			}
		}
		return out.sorted()
	}
	if !s.root.Exists() && s.sandbox != nil {
		located, err := Locate(WithSandbox(context.Background(), s.sandbox), s.Dir, errs)
		if err != nil {
			return slices.Clone(errs).sorted()
		}
		return located
	}
	out := slices.Clone(errs)
	for i := range out {
		if out[i].File == "" {
			out[i].locate(s.Dir, s.root)
		}
	}
	return out.sorted()
}

// Locate positions errors by field path in the site in dir. It evaluates
// the site again, so callers use it only when there is something to report.
func Locate(ctx context.Context, dir string, errs Errors) (Errors, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return errs, fmt.Errorf("loader: locate: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return errs, err
	}
	if sb := sandboxFrom(ctx); sb != nil {
		resp, err := sb.run(ctx, request{Op: opLocate, Dir: abs, Errs: errs})
		if err != nil {
			return errs, err
		}
		return resp.Errs, resp.Err.err()
	}
	site, err := readSite(abs)
	if err != nil {
		return errs, err
	}
	inst, err := site.load(".", siteAgentFile(site.pkg))
	if err != nil {
		return errs, err
	}
	s := &Site{Dir: abs, root: cuecontext.New().BuildInstance(inst)}
	return s.Locate(errs), nil
}

// HasSitePolicies reports whether the site in dir has site policies.
func HasSitePolicies(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, PoliciesDir, "*.cue"))
	return len(m) > 0
}

// SitePolicies evaluates the site in dir together with its site policies
// (policies/*.cue, of the site's own package: CUE unifies a directory's
// files with those of its parents) and reports each violation at the
// site's value it is about, its message prefixed with the policy's name:
// the rule under #checks that failed, else the policy file's name. A site
// without policies/ has none.
//
// The policies see the site as written, without the schema: the schema has
// already validated it, and applying it again to the whole site cost 1.5 s
// of CPU per commit at 1,000 gateway pairs against 0.35 s without. So a
// field the site leaves to its default is absent here: a constraint
// (version: 3) then holds, and a rule that reads a field must test that it
// is there. A site opts into this evaluation by having policies.
func SitePolicies(ctx context.Context, dir string) (Errors, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("loader: site policies: %w", err)
	}
	if !HasSitePolicies(abs) {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if sb := sandboxFrom(ctx); sb != nil {
		resp, err := sb.run(ctx, request{Op: opPolicies, Dir: abs})
		if err != nil {
			return nil, err
		}
		return resp.Errs, resp.Err.err()
	}
	site, err := readSite(abs)
	if err != nil {
		return nil, err
	}
	var errs Errors
	for _, f := range site.policyFiles() {
		if p := packageClause(site.files[f]); p != site.pkg {
			e := Error{File: f, Line: 1, Col: 1,
				Msg: fmt.Sprintf("[%s] a site policy must be in the site's package %q, not %q", policyName(f), site.pkg, p)}
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		return errs, nil
	}
	inst, err := site.load("./"+PoliciesDir, "")
	if err != nil {
		return nil, err
	}
	v := cuecontext.New().BuildInstance(inst)
	var all []cueerrors.Error
	if err := v.Validate(cue.Concrete(true)); err != nil {
		all = append(all, cueerrors.Errors(err)...)
	}
	if c := v.LookupPath(cue.MakePath(cue.Def("#checks"))); c.Exists() {
		if err := c.Validate(cue.Concrete(true)); err != nil {
			all = append(all, cueerrors.Errors(err)...)
		}
	}
	for _, ce := range all {
		errs = append(errs, policyError(abs, v, ce))
	}
	return dedupe(errs).sorted(), nil
}

// policyError positions one violation at the site's own value when CUE
// names one (a conflict), else at the field its path names, else in the
// policy file; the name is the #checks rule or the policy file.
func policyError(abs string, root cue.Value, ce cueerrors.Error) Error {
	format, args := ce.Msg()
	path := ce.Path()
	e := Error{Path: strings.Join(path, ".")}
	name, policyPos := "", Error{}
	if len(path) > 1 && path[0] == "#checks" {
		name = strings.Trim(path[1], `"`)
		e.Path = ""
		// A rule's key may name the site field it is about, as a dotted
		// path: #checks: min_servers: "services.web": error(…).
		if len(path) > 2 {
			probe := Error{Path: strings.Trim(path[2], `"`)}
			probe.locateParent(abs, root)
			if probe.File != "" && !strings.HasPrefix(probe.File, "(schema)") && !strings.HasPrefix(probe.File, PoliciesDir+"/") {
				e = probe
			}
		}
	}
	for _, p := range cueerrors.Positions(ce) {
		probe := Error{}
		if !probe.setPos(abs, p) {
			continue
		}
		if strings.HasPrefix(probe.File, PoliciesDir+"/") {
			if policyPos.File == "" {
				policyPos = probe
			}
			continue
		}
		if e.File == "" {
			e.File, e.Line, e.Col = probe.File, probe.Line, probe.Col
		}
	}
	if name == "" && policyPos.File != "" {
		name = policyName(policyPos.File)
	}
	if name == "" {
		name = "site-policy"
	}
	if e.File == "" && e.Path != "" {
		e.locateParent(abs, root)
	}
	if e.File == "" || strings.HasPrefix(e.File, "(schema)") {
		e.File, e.Line, e.Col = policyPos.File, policyPos.Line, policyPos.Col
	}
	e.Msg = clip(fmt.Sprintf("[%s] %s", name, fmt.Sprintf(format, args...)))
	return e
}

func policyName(file string) string {
	return strings.TrimSuffix(filepath.Base(file), ".cue")
}

// NodeLabels reads every node's labels (for rollout waves) in one
// evaluation of the site's data: the schema gives labels no defaults, so
// the data alone says them.
func NodeLabels(ctx context.Context, dir string) (map[string]map[string]string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("loader: node labels: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if sb := sandboxFrom(ctx); sb != nil {
		resp, err := sb.run(ctx, request{Op: opLabels, Dir: abs})
		if err != nil {
			return nil, err
		}
		return resp.Labels, resp.Err.err()
	}
	site, err := readSite(abs)
	if err != nil {
		return nil, err
	}
	inst, err := site.load(".", "")
	if err != nil {
		return nil, err
	}
	return labelsOf(abs, cuecontext.New().BuildInstance(inst))
}

// NodeLabels is every node's labels in this evaluation of the site (for
// rollout waves), without evaluating it again. After an evaluation in a
// sandbox the child sent them along when the node's view has waves (the
// only reader); otherwise they are an error.
func (s *Site) NodeLabels() (map[string]map[string]string, error) {
	if s.labels != nil {
		return s.labels, nil
	}
	if !s.root.Exists() {
		return nil, fmt.Errorf("loader: %s: the nodes' labels were not kept from the evaluation", s.Dir)
	}
	return labelsOf(s.Dir, s.root)
}

// labelsOf reads every node's labels from an evaluated site: the schema
// gives labels no defaults, so the data alone says them.
func labelsOf(abs string, v cue.Value) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	var errs Errors
	eachField(v.LookupPath(cue.ParsePath("nodes")), func(name string, n cue.Value) {
		labels := map[string]string{}
		if l := n.LookupPath(cue.ParsePath("labels")); l.Exists() {
			if err := l.Decode(&labels); err != nil {
				errs = append(errs, convertList(abs, err)...)
			}
		}
		out[name] = labels
	})
	if err := v.Err(); err != nil && len(errs) == 0 {
		errs = convertList(abs, err)
	}
	if len(errs) > 0 {
		return nil, errs.sorted()
	}
	return out, nil
}

// locateFromIndex reports whether the view's position index places every
// error (each path lies in the node's view): only then is it used; an
// error about another part of the site makes Locate evaluate again.
func (s *Site) locateFromIndex(errs Errors) bool {
	for _, e := range errs {
		if e.File != "" {
			continue
		}
		probe := Error{Path: e.Path}
		if e.Path == "" || !s.positions.locateFrom(&probe) {
			return false
		}
	}
	return true
}
