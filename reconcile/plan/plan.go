// Package plan is the model of what a reconcile pass would do — one Change
// per resource — and its two renderings: the human text of `gitgw plan`
// (Terraform-like +/~/- lines and a summary) and a versioned JSON document
// that CI and other tools consume. Both are deterministic so that they can be
// golden-tested and diffed.
package plan

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
)

// SchemaVersion is the version of the JSON document. Bump it on any change
// that is not a pure addition.
const SchemaVersion = 1

// Action says what happens to one resource.
type Action string

// The actions a change can carry.
const (
	Create Action = "create"
	Update Action = "update"
	Delete Action = "delete"
	// NoOp lists a resource that is already as desired (shown with -v and in
	// JSON, so that a plan names everything the node manages).
	NoOp Action = "no-op"
	// Pending marks a resource whose driver is not available in this build or
	// on this host: listed plainly, never silently dropped.
	Pending Action = "pending"
)

// Change is one resource's planned transition.
type Change struct {
	// Driver is the resource family (a Family, kept a string so that a
	// driver added later needs no change here; see Change.Family).
	Driver string `json:"driver"`
	// Kind is the resource type inside the family (the Kind constants),
	// e.g. "sysctl", "rps_cpus", "vrrp_instance", "vip", "proxy_server".
	Kind string `json:"kind"`
	// ID names the resource uniquely within its kind, e.g. "eth0/rx-0",
	// "net.ipv4.ip_forward", "VI_1", "app@8080.service".
	ID     string `json:"id"`
	Action Action `json:"action"`
	// Before and After are the observed and desired values; nil on create
	// and delete respectively. They must marshal to JSON deterministically.
	Before any `json:"before"`
	After  any `json:"after"`
	// Reason is a short human explanation ("changed by hand", "new in site").
	Reason string `json:"reason,omitempty"`
	// Details are extra lines shown under the change: a unified diff of a
	// unit file, "weight 100 → 50", which node will be master.
	Details []string `json:"details,omitempty"`
	// Drift is set when the difference was made outside gitgw (the node
	// moved away from a state gitgw had applied).
	Drift bool `json:"drift,omitempty"`
}

// Family returns the change's resource family.
func (c Change) Family() Family { return Family(c.Driver) }

// Plan is every change of one pass for one node.
type Plan struct {
	Node    string   `json:"node"`
	Commit  string   `json:"commit,omitempty"`
	Changes []Change `json:"changes"`
	// Notes are plan-wide remarks: who will be master, who waits for whom.
	Notes []string `json:"notes,omitempty"`
}

// DriverRank returns the position of a driver (its family) in the apply
// order, Families; unknown drivers sort last.
func DriverRank[S ~string](driver S) int {
	for i, f := range Families {
		if string(f) == string(driver) {
			return i
		}
	}
	return len(Families)
}

// Sort orders changes by driver (apply order), then kind, then id, so that
// renderings are stable whatever order the drivers produced them in.
func (p *Plan) Sort() {
	slices.SortStableFunc(p.Changes, func(a, b Change) int {
		return cmp.Or(
			cmp.Compare(DriverRank(a.Driver), DriverRank(b.Driver)),
			cmp.Compare(a.Driver, b.Driver),
			cmp.Compare(a.Kind, b.Kind),
			cmp.Compare(a.ID, b.ID),
		)
	})
}

// Counts is how many changes a plan carries per action.
type Counts struct {
	Create, Update, Delete, NoOp, Pending int
}

// Count tallies the plan's changes.
func (p *Plan) Count() Counts {
	var c Counts
	for _, ch := range p.Changes {
		switch ch.Action {
		case Create:
			c.Create++
		case Update:
			c.Update++
		case Delete:
			c.Delete++
		case NoOp:
			c.NoOp++
		case Pending:
			c.Pending++
		}
	}
	return c
}

// HasChanges reports whether applying the plan would change the node.
func (p *Plan) HasChanges() bool {
	c := p.Count()
	return c.Create+c.Update+c.Delete > 0
}

// Actionable returns the changes that apply would carry out.
func (p *Plan) Actionable() []Change {
	var out []Change
	for _, ch := range p.Changes {
		switch ch.Action {
		case Create, Update, Delete:
			out = append(out, ch)
		}
	}
	return out
}

// JSON is a change's Before or After as JSON, for the reports that carry
// them (status.json, the status page, adopt proposals): nil stays nil, and
// a value that does not marshal is kept as its text.
func JSON(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(fmt.Sprint(v))
	}
	return b
}
