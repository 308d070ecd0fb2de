package drift

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/gitgw/gitgw/reconcile/plan"
)

// SchemaVersion is the version of status.json. Bump it on any change that
// is not a pure addition.
const SchemaVersion = 1

// File names on a status branch.
const (
	StatusFile   = "status.json"
	MarkdownFile = "STATUS.md"
)

// Outcomes as status.json records them. A pass that applied changes and one
// that found nothing to do both leave the node "converged", so that the
// next quiet pass does not make a commit of its own; but a node is
// converged only when every resource is as the site says (or left alone
// on purpose: drift modes report and ignore). Anything else is an outcome
// of its own, so that no reader takes a suspended node, a held change or
// a unit that never started for a node in its desired state.
const (
	Converged = "converged"
	Rejected  = "rejected"
	Failed    = "failed"
	// Held: a valid commit waits for its turn (pair-aware rollout).
	Held = "held"
	// RolledBack: a commit failed its health gate; the node runs the last
	// good commit again and the bad one is pinned.
	RolledBack = "rolled-back"
	// Suspended: the operator suspended applying (`gitgw suspend`): the
	// pass planned, and what it planned waits for `gitgw resume`.
	Suspended = "suspended"
	// Incomplete ("pending"): the revision was applied as far as this node
	// can, but resources are not as the site says: pending ones (no
	// driver, or an action gitgw will not force) or ones that still differ
	// after apply.
	Incomplete = "pending"
)

// Resource states.
const (
	InSync  = "in-sync"
	Differs = "differs" // still differs after apply (did not converge)
	Open    = "drift"   // changed outside gitgw and left in place (report mode)
	Ignored = "ignored" // changed outside gitgw, drift mode ignore
	Pending = "pending" // no driver for it on this node
)

// Status is the content of status.json: what one node runs and found, as
// of its last pass. It holds no timestamps (those are in the commit), so
// that an unchanged node writes byte-identical files.
type Status struct {
	SchemaVersion int    `json:"schema_version"`
	Node          string `json:"node"`
	Site          string `json:"site,omitempty"`
	AgentVersion  string `json:"agent_version"`
	// Desired is the revision the node was last asked to run; Applied the
	// one it runs (they differ while a revision is rejected or failing).
	Desired Revision `json:"desired"`
	Applied string   `json:"applied_commit"`
	// LastPass is the result of the last pass.
	LastPass Pass `json:"last_pass"`
	// Counts tallies Resources by state.
	Counts map[string]int `json:"counts"`
	// Resources is every resource of the plan, with what was observed.
	Resources []Resource `json:"resources"`
	// Drift lists the open drift items: changes made outside gitgw that
	// are still there (report mode, or not corrected).
	Drift []Item `json:"drift"`
	// Corrected counts drift corrected since the agent started.
	Corrected int `json:"drift_corrected"`
	// Events are the last driver events (failover, health), newest last.
	Events []Event `json:"events,omitempty"`
	// Sections are per-driver observations ("vrrp", "proxy", "units",
	// "tuning"), as the drivers provide them; see VRRPSection and
	// ProxySection for the shapes the fleet view reads.
	Sections map[string]any `json:"sections,omitempty"`
}

// Revision is a commit of the site.
type Revision struct {
	Commit  string `json:"commit"`
	Subject string `json:"subject,omitempty"`
}

// Pass is the result of one pass.
type Pass struct {
	Outcome string `json:"outcome"`
	// Errors are the revision's positioned errors (CUE and policies).
	Errors []Error `json:"errors,omitempty"`
	// Error is any other failure (driver errors, I/O).
	Error string `json:"error,omitempty"`
}

// Error is a positioned error in the site.
type Error struct {
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
	Col  int    `json:"col,omitempty"`
	Path string `json:"path,omitempty"`
	Msg  string `json:"msg"`
}

// String renders "file:line:col: path: message", as `gitgw validate` does.
func (e Error) String() string {
	var b strings.Builder
	if e.File != "" {
		fmt.Fprintf(&b, "%s:%d:%d: ", e.File, e.Line, e.Col)
	}
	if e.Path != "" && !strings.HasPrefix(e.Msg, e.Path+":") {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Resource is one managed resource as the node last saw it.
type Resource struct {
	Driver   string          `json:"driver"`
	Kind     string          `json:"kind"`
	ID       string          `json:"id"`
	State    string          `json:"state"`
	Observed json.RawMessage `json:"observed,omitempty"`
	// Desired is omitted when it equals Observed (in sync).
	Desired json.RawMessage `json:"desired,omitempty"`
	Reason  string          `json:"reason,omitempty"`
}

// Key names the resource across passes.
func (r Resource) Key() string { return r.Driver + " " + r.Kind + " " + r.ID }

// Item is one open drift item.
type Item struct {
	Driver   string          `json:"driver"`
	Kind     string          `json:"kind"`
	ID       string          `json:"id"`
	Mode     string          `json:"mode"`
	Observed json.RawMessage `json:"observed,omitempty"`
	Desired  json.RawMessage `json:"desired,omitempty"`
	// Adopt says how the site could be changed to match: "proposed" when
	// the adopt branch edits the site, "manual" when it only lists it.
	Adopt string `json:"adopt,omitempty"`
}

// Event is something a driver noticed on its own.
type Event struct {
	Seq     int    `json:"seq"`
	Driver  string `json:"driver"`
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// MaxEvents is how many events status.json keeps.
const MaxEvents = 10

// Input is what a pass produced, as the Reporter hands it over.
type Input struct {
	Node, Site, AgentVersion string
	// Commit and Subject: the revision the pass was for.
	Commit, Subject string
	// Outcome is the runner's: "applied", "unchanged", "rejected", "failed",
	// "held", "rolled-back", "suspended".
	Outcome string
	// AppliedCommit runs on the node after the pass.
	AppliedCommit string
	// Plan is every change planned; Applied, Drift (corrected), Reported
	// (left in place) and Remaining as the runner sorted them.
	Plan                                []plan.Change
	Applied, Drift, Reported, Remaining []plan.Change
	Errors                              []Error
	Err                                 string
	// Corrected is the running count of drift corrected, this pass's
	// included; Events the recent driver events.
	Corrected int
	Events    []Event
	Sections  map[string]any
	// Adoptable says, by Resource.Key, which reported drift items the
	// adopt proposal edits into the site.
	Adoptable map[string]bool
}

// Build composes the status of a node from a pass.
func Build(in Input) Status {
	st := Status{
		SchemaVersion: SchemaVersion,
		Node:          in.Node,
		Site:          in.Site,
		AgentVersion:  in.AgentVersion,
		Desired:       Revision{Commit: in.Commit, Subject: in.Subject},
		Applied:       in.AppliedCommit,
		LastPass:      Pass{Errors: in.Errors, Error: in.Err},
		Counts:        map[string]int{},
		Resources:     []Resource{},
		Drift:         []Item{},
		Corrected:     in.Corrected,
		Events:        in.Events,
	}
	// Sections are kept as their JSON form (maps, keys sorted), so that a
	// status reads back to the very same bytes.
	for name, v := range in.Sections {
		if v == nil {
			continue
		}
		if st.Sections == nil {
			st.Sections = map[string]any{}
		}
		st.Sections[name] = normalize(v)
	}
	key := func(c plan.Change) string { return c.Driver + " " + c.Kind + " " + c.ID }
	index := func(cs []plan.Change) map[string]plan.Change {
		m := make(map[string]plan.Change, len(cs))
		for _, c := range cs {
			m[key(c)] = c
		}
		return m
	}
	applied, reported, remaining, corrected := index(in.Applied), index(in.Reported), index(in.Remaining), index(in.Drift)
	for _, c := range in.Plan {
		r := Resource{Driver: c.Driver, Kind: c.Kind, ID: c.ID, Desired: plan.JSON(c.After)}
		k := key(c)
		switch {
		case c.Action == plan.Pending:
			r.State, r.Reason = Pending, c.Reason
		case c.Action == plan.NoOp:
			r.State, r.Observed = InSync, plan.JSON(firstNonNil(c.Before, c.After))
		case hasKey(remaining, k):
			rc := remaining[k]
			r.State, r.Observed, r.Reason = Differs, plan.JSON(rc.Before), firstString(rc.Reason, c.Reason)
		case hasKey(reported, k):
			r.State, r.Observed, r.Reason = Open, plan.JSON(c.Before), c.Reason
		case hasKey(applied, k):
			r.State, r.Observed = InSync, plan.JSON(c.After)
		case in.Outcome == "failed" || in.Outcome == "dry-run" || in.Outcome == "held" || in.Outcome == "suspended":
			// Planned but not carried out.
			r.State, r.Observed, r.Reason = Differs, plan.JSON(c.Before), c.Reason
		default:
			// Planned, changed outside gitgw, and left alone: drift mode
			// ignore.
			r.State, r.Observed, r.Reason = Ignored, plan.JSON(c.Before), c.Reason
		}
		if c.Action == plan.Delete || (r.State == InSync && bytes.Equal(r.Observed, r.Desired)) {
			// Nothing desired, or exactly what was observed: not repeated.
			r.Desired = nil
		}
		st.Resources = append(st.Resources, r)
		st.Counts[r.State]++
		if r.State == Open || (r.State == Differs && hasKey(corrected, k)) {
			it := Item{Driver: c.Driver, Kind: c.Kind, ID: c.ID, Mode: "report", Observed: r.Observed, Desired: r.Desired}
			if r.State == Differs {
				it.Mode = "correct"
			}
			if r.State == Open {
				it.Adopt = "manual"
				if in.Adoptable[k] {
					it.Adopt = "proposed"
				}
			}
			st.Drift = append(st.Drift, it)
		}
	}
	st.LastPass.Outcome = outcome(in.Outcome, st.Counts)
	slices.SortStableFunc(st.Resources, func(a, b Resource) int {
		return cmp.Or(cmp.Compare(plan.DriverRank(a.Driver), plan.DriverRank(b.Driver)),
			cmp.Compare(a.Driver, b.Driver), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID))
	})
	return st
}

func firstString(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func hasKey(m map[string]plan.Change, k string) bool { _, ok := m[k]; return ok }

func firstNonNil(vs ...any) any {
	for _, v := range vs {
		if v != nil {
			return v
		}
	}
	return nil
}

// NodeOutcome is the node's outcome as status.json records it, from the
// runner's pass outcome and how many resources are pending (the plan's
// pending changes) or still differ: what the agent's own status page and
// metrics show too, so that every view says the same.
func NodeOutcome(pass string, pending, differs int) string {
	return outcome(pass, map[string]int{Pending: pending, Differs: differs})
}

// Outcomes lists every node outcome (for metrics with one series each).
var Outcomes = []string{Converged, Incomplete, Suspended, Held, Failed, Rejected, RolledBack}

// outcome is the node's outcome from the runner's and the resources'
// states: an applied or unchanged pass is "converged" only when nothing is
// pending and nothing still differs.
func outcome(o string, counts map[string]int) string {
	switch o {
	case "rejected":
		return Rejected
	case "failed":
		return Failed
	case "held":
		return Held
	case "rolled-back":
		return RolledBack
	case "suspended":
		return Suspended
	}
	if counts[Pending] > 0 || counts[Differs] > 0 {
		return Incomplete
	}
	return Converged
}

// Marshal renders status.json: indented, keys in a fixed order (maps sorted
// by encoding/json), newline-terminated.
func Marshal(st Status) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(st); err != nil {
		return nil, fmt.Errorf("drift: encode status: %w", err)
	}
	return b.Bytes(), nil
}

// Parse reads status.json, refusing a newer major schema.
func Parse(b []byte) (Status, error) {
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("drift: parse status: %w", err)
	}
	if st.SchemaVersion > SchemaVersion {
		return st, fmt.Errorf("drift: status schema %d is newer than this gitgw understands (%d)", st.SchemaVersion, SchemaVersion)
	}
	return st, nil
}

// Short abbreviates a commit for people: 7 hex digits, or a directory
// revision ("dir:…") to 7 digits after the prefix.
func Short(c string) string {
	if rest, ok := strings.CutPrefix(c, "dir:"); ok {
		return "dir:" + Short(rest)
	}
	if len(c) > 7 {
		return c[:7]
	}
	return c
}

// Value renders a raw JSON value on one line: strings unquoted.
func Value(r json.RawMessage) string {
	if len(r) == 0 {
		return "(none)"
	}
	var s string
	if err := json.Unmarshal(r, &s); err == nil {
		if s == "" {
			return `""`
		}
		return s
	}
	var c bytes.Buffer
	if err := json.Compact(&c, r); err == nil {
		return c.String()
	}
	return string(r)
}
