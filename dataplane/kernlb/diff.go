package kernlb

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
)

// Action is what a change does to a service.
type Action string

// The actions.
const (
	Add     Action = "add"
	Remove  Action = "remove"
	Change  Action = "change"
	Restore Action = "restore" // the tables differ from what gitgw wrote (drift)
)

// ChangeItem is one difference between the desired config and the tables,
// in words: a plan shows these, not rule dumps.
type ChangeItem struct {
	Service string // "" for the tables themselves
	Action  Action
	Text    string
}

func (c ChangeItem) String() string {
	if c.Service == "" {
		return fmt.Sprintf("%s: %s", c.Action, c.Text)
	}
	return fmt.Sprintf("%s service %s: %s", c.Action, c.Service, c.Text)
}

// Diff compares a validated, resolved config with observed tables. It is
// pure: what it reports is what Set would change. An empty result means
// Set does nothing.
func Diff(desired Config, observed Observed) ([]ChangeItem, error) {
	p, err := render(desired)
	if err != nil {
		return nil, err
	}
	return diffProgram(observedOf(p), desired, observed), nil
}

// diffProgram is Diff with the desired program already rendered.
func diffProgram(want Observed, desired Config, observed Observed) []ChangeItem {
	wantSvc := map[string]Service{}
	for _, s := range desired.Services {
		wantSvc[s.Name] = s
	}
	haveSvc := observed.Services()

	// Structural differences, attributed to the service that owns them.
	drift := map[string][]string{}
	for i := range want.Tables {
		structDiff(familyName(families[i]), want.Tables[i], observed.Tables[i], drift)
	}

	var out []ChangeItem
	names := map[string]bool{}
	for n := range wantSvc {
		names[n] = true
	}
	for n := range haveSvc {
		names[n] = true
	}
	// Drift of pieces that belong to no service either side describes is
	// the tables' own (a foreign chain or set in gitgw's table).
	for n, d := range drift {
		if n != "" && !names[n] {
			drift[""] = append(drift[""], d...)
			delete(drift, n)
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		w, inW := wantSvc[n]
		h, inH := haveSvc[n]
		switch {
		case inW && !inH:
			out = append(out, ChangeItem{n, Add, describeFull(w)})
		case !inW && inH:
			out = append(out, ChangeItem{n, Remove, h.Describe()})
		case inW && inH:
			words := serviceWords(w, h)
			if len(words) > 0 {
				out = append(out, ChangeItem{n, Change, strings.Join(words, "; ")})
			} else if d := drift[n]; len(d) > 0 {
				out = append(out, ChangeItem{n, Restore, strings.Join(d, "; ")})
			}
		}
	}
	if d := drift[""]; len(d) > 0 {
		out = append(out, ChangeItem{"", Restore, strings.Join(d, "; ")})
	}
	return out
}

func describeFull(s Service) string {
	var srv []string
	for _, x := range s.Servers {
		srv = append(srv, s.DescribeServer(x))
	}
	return s.Describe() + "; servers " + strings.Join(srv, ", ")
}

// serviceWords lists what changed between two descriptions of a service.
func serviceWords(w, h Service) []string {
	var out []string
	if a, b := h.Describe(), w.Describe(); a != b {
		out = append(out, a+" → "+b)
	}
	if h.TableSize != w.TableSize {
		out = append(out, fmt.Sprintf("table size %d → %d", h.tableSize(), w.tableSize()))
	}
	if h.Limits != w.Limits {
		out = append(out, fmt.Sprintf("limits %+v → %+v", h.Limits, w.Limits))
	}
	if !samePrefixes(h.Allow, w.Allow) {
		out = append(out, fmt.Sprintf("allow %v → %v", h.Allow, w.Allow))
	}
	if !samePrefixes(h.Deny, w.Deny) {
		out = append(out, fmt.Sprintf("deny %v → %v", h.Deny, w.Deny))
	}
	hs := map[string]Server{}
	for _, x := range h.Servers {
		hs[h.serverKey(x)] = x
	}
	ws := map[string]Server{}
	for _, x := range w.Servers {
		ws[w.serverKey(x)] = x
	}
	for _, x := range w.Servers {
		k := w.serverKey(x)
		old, ok := hs[k]
		switch {
		case !ok:
			out = append(out, "add server "+w.DescribeServer(x))
		case old.Weight != x.Weight || old.Backup != x.Backup || old.Down != x.Down:
			out = append(out, "server "+h.DescribeServer(old)+" → "+strings.TrimPrefix(w.DescribeServer(x), k+" "))
		}
	}
	for _, x := range h.Servers {
		if _, ok := ws[h.serverKey(x)]; !ok {
			out = append(out, "remove server "+h.serverKey(x))
		}
	}
	return out
}

func samePrefixes(a, b []netip.Prefix) bool {
	// Compare as merged ranges: 10.0.0.0/25 + 10.0.0.128/25 = 10.0.0.0/24.
	return elemsPrint(intervalElems(a)) == elemsPrint(intervalElems(b))
}

// owner is the service a chain or set name belongs to ("" for none).
func owner(name string, isChain bool) string {
	if isChain {
		if svc, ok := strings.CutPrefix(name, "svc-"); ok {
			return svc
		}
		return ""
	}
	if i := strings.LastIndex(name, "-"); i > 0 {
		return name[:i]
	}
	return ""
}

// structDiff records, per owning service, how table have differs from want.
func structDiff(fam string, want, have *TableState, drift map[string][]string) {
	if want == nil && have == nil {
		return
	}
	if want == nil {
		want = &TableState{}
	}
	if have == nil {
		if len(want.Chains) > 0 {
			drift[""] = append(drift[""], fmt.Sprintf("table %s %s missing", fam, TableName))
		}
		have = &TableState{}
	}
	for _, name := range unionKeys(want.Chains, have.Chains) {
		w, h := want.Chains[name], have.Chains[name]
		base := (w != nil && w.Hook != "") || (h != nil && h.Hook != "")
		if base {
			baseDiff(fam, name, w, h, drift)
			continue
		}
		svc := owner(name, true)
		switch {
		case w == nil:
			drift[svc] = append(drift[svc], fmt.Sprintf("chain %s %s not written by gitgw", fam, name))
		case h == nil:
			drift[svc] = append(drift[svc], fmt.Sprintf("chain %s %s missing", fam, name))
		default:
			if d := rulesDiff(w.Rules, h.Rules); d != "" {
				drift[svc] = append(drift[svc], fmt.Sprintf("chain %s %s: %s", fam, name, d))
			}
		}
	}
	for _, name := range unionKeys(want.Sets, have.Sets) {
		w, h := want.Sets[name], have.Sets[name]
		svc := owner(name, false)
		switch {
		case w == nil:
			drift[svc] = append(drift[svc], fmt.Sprintf("set %s %s not written by gitgw", fam, name))
		case h == nil:
			drift[svc] = append(drift[svc], fmt.Sprintf("set %s %s missing", fam, name))
		case w.Def != h.Def:
			drift[svc] = append(drift[svc], fmt.Sprintf("set %s %s: definition differs", fam, name))
		case !w.State && !sameElems(w, h):
			drift[svc] = append(drift[svc], fmt.Sprintf("set %s %s: elements differ", fam, name))
		}
	}
}

// baseDiff compares a base chain: its hook, then its dispatch rules, each
// attributed to its service by its comment (a service whose parameters
// changed has a new comment: that is said in words, not as drift).
func baseDiff(fam, name string, w, h *ChainState, drift map[string][]string) {
	if w == nil {
		owners := map[string]bool{}
		for _, r := range h.Rules {
			owners[dispatchOwner(r.Comment)] = true
		}
		for o := range owners {
			drift[o] = append(drift[o], fmt.Sprintf("base chain %s %s not needed", fam, name))
		}
		if len(owners) == 0 {
			drift[""] = append(drift[""], fmt.Sprintf("base chain %s %s not needed", fam, name))
		}
		return
	}
	if h == nil {
		drift[""] = append(drift[""], fmt.Sprintf("base chain %s %s missing", fam, name))
		h = &ChainState{}
	} else if w.Hook != h.Hook {
		drift[""] = append(drift[""], fmt.Sprintf("base chain %s %s: hook %s, want %s", fam, name, h.Hook, w.Hook))
	}
	if slices.Equal(w.Rules, h.Rules) {
		return
	}
	hs := map[string]RuleState{}
	for _, r := range h.Rules {
		hs[dispatchOwner(r.Comment)] = r
	}
	ws := map[string]bool{}
	var order []string
	for _, r := range w.Rules {
		svc := dispatchOwner(r.Comment)
		ws[svc] = true
		hr, ok := hs[svc]
		switch {
		case !ok:
			drift[svc] = append(drift[svc], fmt.Sprintf("dispatch rule in %s %s missing", fam, name))
		case hr != r:
			drift[svc] = append(drift[svc], fmt.Sprintf("dispatch rule in %s %s changed", fam, name))
		default:
			order = append(order, svc)
		}
	}
	for _, r := range h.Rules {
		if svc := dispatchOwner(r.Comment); !ws[svc] {
			drift[svc] = append(drift[svc], fmt.Sprintf("dispatch rule in %s %s not wanted", fam, name))
		}
	}
	if len(order) == len(w.Rules) && len(h.Rules) == len(w.Rules) {
		drift[""] = append(drift[""], fmt.Sprintf("rules of %s %s out of order", fam, name))
	}
}

// dispatchOwner is the service named by a dispatch rule's comment; a rule
// without gitgw's comment belongs to no service.
func dispatchOwner(comment string) string {
	f := strings.Fields(comment)
	if len(f) > 1 && f[0] == "gitgw" {
		return f[1]
	}
	return ""
}

// rulesDiff says how two rule lists differ, in a few words.
func rulesDiff(w, h []RuleState) string {
	if slices.Equal(w, h) {
		return ""
	}
	hs := map[RuleState]int{}
	for _, r := range h {
		hs[r]++
	}
	var missing, changed []string
	for _, r := range w {
		if hs[r] > 0 {
			hs[r]--
			continue
		}
		role := r.Comment[strings.LastIndex(r.Comment, ":")+1:]
		found := false
		for _, x := range h {
			if x.Comment == r.Comment {
				found = true
			}
		}
		if found {
			changed = append(changed, role)
		} else {
			missing = append(missing, role)
		}
	}
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, "rule "+strings.Join(missing, ", ")+" missing")
	}
	if len(changed) > 0 {
		parts = append(parts, "rule "+strings.Join(changed, ", ")+" changed")
	}
	if len(h) > len(w)-len(missing) && len(missing)+len(changed) == 0 || len(parts) == 0 {
		parts = append(parts, fmt.Sprintf("%d rules, want %d", len(h), len(w)))
	}
	return strings.Join(parts, ", ")
}

func unionKeys[V any](a, b map[string]V) []string {
	m := map[string]bool{}
	for k := range a {
		m[k] = true
	}
	for k := range b {
		m[k] = true
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
