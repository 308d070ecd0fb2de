package drift

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/gitgw/gitgw/internal/words"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// AdoptPrefix is where adopt proposals live: gitgw/adopt/NODE.
const AdoptPrefix = "gitgw/adopt/"

// Proposal is an adopt proposal: the site's files edited so that they ask
// for what was found on the node, for an operator to merge instead of
// reverting a manual change.
type Proposal struct {
	// Files are the edited files (path → new content).
	Files map[string][]byte
	// Adopted are the items the edit covers; Listed those it could not
	// express (listed in the commit message for a person to handle).
	Adopted, Listed []Item
}

// Adopt edits site (path → content, the files of the applied commit) to
// match the open drift items. It edits only what it can locate without
// doubt: a sysctl's value, rps_sock_flow_entries, a proxy server's weight.
func Adopt(site map[string][]byte, items []Item) Proposal {
	p := Proposal{Files: map[string][]byte{}}
	work := map[string][]string{}
	var paths []string
	for path, b := range site {
		if strings.HasSuffix(path, ".cue") && !strings.HasPrefix(path, "cue.mod/") {
			paths = append(paths, path)
			work[path] = strings.Split(string(b), "\n")
		}
	}
	slices.Sort(paths)
	for _, it := range items {
		if adoptOne(work, paths, it) {
			p.Adopted = append(p.Adopted, it)
		} else {
			p.Listed = append(p.Listed, it)
		}
	}
	for _, path := range paths {
		if s := strings.Join(work[path], "\n"); s != string(site[path]) {
			p.Files[path] = []byte(s)
		}
	}
	return p
}

// CanAdopt reports whether Adopt knows how to edit the site for it.
func CanAdopt(it Item) bool {
	switch it.Kind {
	case plan.KindSysctl, plan.KindRPSSockFlowEntries:
		return scalar(it.Observed) != ""
	case plan.KindProxyServer:
		_, ok := weightOf(it.Observed)
		return ok && onlyWeightDiffers(it.Observed, it.Desired)
	}
	return false
}

// onlyWeightDiffers reports whether two server views differ in their weight
// alone (a drained or re-addressed server is not a weight edit).
func onlyWeightDiffers(a, b json.RawMessage) bool {
	var ma, mb map[string]any
	if json.Unmarshal(a, &ma) != nil {
		return false
	}
	if len(b) == 0 {
		return true
	}
	if json.Unmarshal(b, &mb) != nil {
		return false
	}
	delete(ma, "weight")
	delete(mb, "weight")
	return reflect.DeepEqual(ma, mb)
}

func adoptOne(work map[string][]string, paths []string, it Item) bool {
	if !CanAdopt(it) {
		return false
	}
	switch it.Kind {
	case plan.KindSysctl:
		return replaceValue(work, paths, regexp.QuoteMeta(strconv.Quote(it.ID)), scalar(it.Observed))
	case plan.KindRPSSockFlowEntries:
		return replaceValue(work, paths, `rps_sock_flow_entries`, scalar(it.Observed))
	case plan.KindProxyServer:
		w, _ := weightOf(it.Observed)
		return setWeight(work, paths, it.ID, w)
	}
	return false
}

// replaceValue replaces the value of the one field `key: value` (key a
// regexp) found in the site; more or fewer than one match is no edit.
func replaceValue(work map[string][]string, paths []string, key, value string) bool {
	re := regexp.MustCompile(`^(\s*(?:[\w.-]+:\s*)*` + key + `:\s*)("[^"]*"|[-\w.]+)(.*)$`)
	var hitPath string
	hitLine := -1
	for _, path := range paths {
		for i, l := range work[path] {
			if re.MatchString(l) {
				if hitLine >= 0 {
					return false // ambiguous
				}
				hitPath, hitLine = path, i
			}
		}
	}
	if hitLine < 0 {
		return false
	}
	m := re.FindStringSubmatch(work[hitPath][hitLine])
	nv := value
	if strings.HasPrefix(m[2], `"`) || !isNumber(value) {
		nv = strconv.Quote(value)
	}
	work[hitPath][hitLine] = m[1] + nv + m[3]
	return true
}

// setWeight sets a server's weight: it edits `weight: N` inside the
// server's block, or adds `NAME: weight: N` next to its declaration.
func setWeight(work map[string][]string, paths []string, id string, weight int) bool {
	svc, srv, ok := strings.Cut(id, "/")
	if !ok {
		return false
	}
	svcRe := regexp.MustCompile(`(^|[\s{])` + regexp.QuoteMeta(svc) + `:`)
	srvRe := regexp.MustCompile(`^(\s*)` + regexp.QuoteMeta(srv) + `:(.*)$`)
	weightRe := regexp.MustCompile(`(\bweight:\s*)(\d+)`)
	var found [][2]int // path index, line
	for pi, path := range paths {
		inSvc := false
		for i, l := range work[path] {
			if svcRe.MatchString(l) {
				inSvc = true
			}
			if inSvc && srvRe.MatchString(l) {
				found = append(found, [2]int{pi, i})
			}
		}
	}
	if len(found) != 1 {
		return false
	}
	path, i := paths[found[0][0]], found[0][1]
	lines := work[path]
	// Look for a weight inside the server's own block.
	depth := 0
	for j := i; j < len(lines); j++ {
		l := lines[j]
		if j > i && depth <= 0 {
			break
		}
		if weightRe.MatchString(l) {
			lines[j] = weightRe.ReplaceAllString(l, "${1}"+strconv.Itoa(weight))
			return true
		}
		depth += strings.Count(l, "{") - strings.Count(l, "}")
	}
	m := srvRe.FindStringSubmatch(lines[i])
	add := fmt.Sprintf("%s%s: weight: %d // adopted from the node", m[1], srv, weight)
	work[path] = slices.Insert(lines, i+1, add)
	return true
}

func weightOf(r json.RawMessage) (int, bool) {
	var v struct {
		Weight *int `json:"weight"`
	}
	if json.Unmarshal(r, &v) != nil || v.Weight == nil {
		return 0, false
	}
	return *v.Weight, true
}

// scalar is a raw JSON string or number as text ("" otherwise).
func scalar(r json.RawMessage) string {
	var s string
	if json.Unmarshal(r, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(r, &n) == nil {
		return n.String()
	}
	return ""
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// AdoptMessage is the proposal's commit message.
func AdoptMessage(node, base string, p Proposal) Message {
	var b strings.Builder
	fmt.Fprintf(&b, "Changes made on %s outside gitgw, left in place (drift mode \"report\").\n", node)
	b.WriteString("Merge this to make the site ask for what the node runs, instead of\nreverting the change on the node.\n")
	if len(p.Adopted) > 0 {
		b.WriteString("\nAdopted into the site:\n")
		for _, it := range p.Adopted {
			fmt.Fprintf(&b, "  %s %s %s: %s (site said %s)\n", it.Driver, it.Kind, it.ID, Value(it.Observed), Value(it.Desired))
		}
	}
	if len(p.Listed) > 0 {
		b.WriteString("\nNot expressible as an edit here; change the site by hand:\n")
		for _, it := range p.Listed {
			fmt.Fprintf(&b, "  %s %s %s: found %s, site says %s\n", it.Driver, it.Kind, it.ID, Value(it.Observed), Value(it.Desired))
		}
	}
	return Message{
		Subject: fmt.Sprintf("adopt(%s): %s found on the node", node, words.Plural(len(p.Adopted)+len(p.Listed), "change")),
		Body:    b.String(),
		Desired: base,
		Applied: base,
		Drift:   fmt.Sprintf("%d open", len(p.Adopted)+len(p.Listed)),
	}
}
