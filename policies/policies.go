package policies

import (
	"fmt"
	"slices"
	"sort"
	"strconv"

	"github.com/gitgw/gitgw/cue/spec"
)

// Severity says whether a violation rejects the revision.
type Severity string

// The severities.
const (
	// Error rejects the revision: nothing of it is applied.
	Error Severity = "error"
	// Warning is reported (plan output, agent log) and applied anyway.
	Warning Severity = "warning"
)

// Violation is one finding of one policy.
type Violation struct {
	Policy   string
	Severity Severity
	// Path is the site field the finding is about, in the loader's dotted
	// form (vrrp.VI_1.vrid, services.web.servers.s1); the loader positions it.
	Path string
	Msg  string
	// Related is the other field of a finding between two (a port taken
	// twice); PointAtChange moves the finding onto the one a change made.
	Related string
}

// String renders "path: [policy] message".
func (v Violation) String() string {
	s := fmt.Sprintf("[%s] %s", v.Policy, v.Msg)
	if v.Path != "" {
		s = v.Path + ": " + s
	}
	if v.Related != "" {
		s += " (the other: " + v.Related + ")"
	}
	if v.Severity == Warning {
		s = "warning: " + s
	}
	return s
}

// Split separates errors from warnings.
func Split(vs []Violation) (errs, warns []Violation) {
	for _, v := range vs {
		if v.Severity == Warning {
			warns = append(warns, v)
		} else {
			errs = append(errs, v)
		}
	}
	return errs, warns
}

// Input is what the guardrails look at: the whole site, or one node's view
// of it (its own settings, and everything it runs, peers' priorities
// included). Rules that need other nodes' settings check what is there.
type Input struct {
	Settings spec.SiteSettings
	Nodes    map[string]spec.NodeSettings
	VRRP     map[string]spec.VRRPInstance
	Services map[string]spec.Service
	Units    map[string]spec.UnitTemplate
	// RealServers are the nodes' roles as DR real servers, by node
	// (spec.RealServerRoles over the whole site: a node's view carries
	// its own even for services it does not run).
	RealServers map[string][]spec.RealServerRole
	// Whole: Nodes holds every node of the site (FromSite), not one
	// node's view: checks that need all of a service's gateways run only
	// then.
	Whole bool
}

// FromNode is the input of one node's view.
func FromNode(n *spec.Node) Input {
	return Input{Settings: n.Site, Nodes: map[string]spec.NodeSettings{n.Name: n.Node}, VRRP: n.VRRP, Services: n.Services, Units: n.Units,
		RealServers: map[string][]spec.RealServerRole{n.Name: n.RealServer}}
}

// FromSite is the input of a whole site.
func FromSite(s *spec.Site) Input {
	rs := map[string][]spec.RealServerRole{}
	for name, ns := range s.Nodes {
		rs[name] = spec.RealServerRoles(ns, s.Services)
	}
	return Input{Settings: s.Site, Nodes: s.Nodes, VRRP: s.VRRP, Services: s.Services, Units: s.Units, RealServers: rs, Whole: true}
}

// Policy is one named rule.
type Policy struct {
	Name string
	// Doc says what the rule protects against, in one sentence.
	Doc string
}

// Names lists every built-in guardrail and change policy, the names that
// site: policies: disable accepts.
func Names() []Policy {
	var out []Policy
	for _, g := range guardrails() {
		out = append(out, g.Policy)
	}
	out = append(out, changePolicies...)
	return out
}

// report collects the violations of one rule.
type report struct {
	policy   string
	severity Severity
	out      *[]Violation
}

func (r report) add(path, format string, args ...any) {
	*r.out = append(*r.out, Violation{Policy: r.policy, Severity: r.severity, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// addRelated reports a finding between two fields: path, where it is
// placed unless a change says otherwise (PointAtChange), and related.
func (r report) addRelated(path, related, format string, args ...any) {
	*r.out = append(*r.out, Violation{Policy: r.policy, Severity: r.severity, Path: path, Related: related, Msg: fmt.Sprintf(format, args...)})
}

// Check runs every built-in guardrail that the site does not disable, in
// a fixed order; findings of one rule are sorted by path.
func Check(in Input) []Violation {
	var out []Violation
	disabled := disabledSet(in.Settings.Policies, &out)
	for _, g := range guardrails() {
		if disabled[g.Name] {
			continue
		}
		var vs []Violation
		g.check(&in, report{policy: g.Name, severity: g.severity, out: &vs})
		sort.SliceStable(vs, func(i, j int) bool { return vs[i].Path < vs[j].Path })
		out = append(out, vs...)
	}
	return out
}

// disabledSet reads site: policies: disable, reporting unknown names (a
// typo would otherwise leave the rule on while the author thinks it off).
func disabledSet(p spec.Policies, out *[]Violation) map[string]bool {
	known := map[string]bool{}
	for _, n := range Names() {
		known[n.Name] = true
	}
	set := map[string]bool{}
	for i, name := range p.Disable {
		if !known[name] {
			*out = append(*out, Violation{Policy: "policies", Severity: Error, Path: "site.policies.disable." + strconv.Itoa(i),
				Msg: fmt.Sprintf("no policy is named %q (known: %s)", name, knownList())})
		}
		set[name] = true
	}
	return set
}

func knownList() string {
	var names []string
	for _, n := range Names() {
		names = append(names, n.Name)
	}
	slices.Sort(names)
	s := ""
	for i, n := range names {
		if i > 0 {
			s += ", "
		}
		s += n
	}
	return s
}
