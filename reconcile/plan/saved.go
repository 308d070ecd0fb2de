package plan

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// SavedKind and SavedVersion identify a saved plan file (`gitgw plan -out
// FILE`, read back by `gitgw apply FILE`). Bump SavedVersion on any change
// that is not a pure addition: an older gitgw refuses a newer file rather
// than apply half of what it says.
const (
	SavedKind    = "gitgw-saved-plan"
	SavedVersion = 1
)

// ErrSavedPlan is wrapped by every error about a saved plan file itself
// (not a gitgw plan, a newer version, edited since it was saved).
var ErrSavedPlan = errors.New("saved plan")

// Saved is a plan kept for a later apply, as Terraform's `plan -out` does:
// the changes the operator reviewed, and what they were planned from — the
// site commit, the node, and who observed the node — so that apply can
// refuse it once either has moved. The format is FORMAT.md's "saved plan".
type Saved struct {
	Kind          string `json:"kind"`
	FormatVersion int    `json:"format_version"`
	// Node and Commit are what the plan is for: the site's head when it
	// was made (a Git hash, or dir:HASH for a plain directory).
	Node   string `json:"node"`
	Commit string `json:"commit"`
	// Source is where the site was read. A one-shot apply reads it
	// again from there (unless told otherwise) and checks its head.
	Source Source `json:"source"`
	// Created is when the plan was made (UTC).
	Created time.Time `json:"created"`
	// Observed says whose view of the node the plan was made against.
	Observed Observed `json:"observed"`
	// Fingerprint is Fingerprint(plan): apply refuses a file whose
	// changes were edited after it was saved.
	Fingerprint string `json:"fingerprint"`
	// Plan is the plan as `gitgw plan --json` prints it.
	Plan Document `json:"plan"`
}

// Source is where a saved plan's site was read: a repository (--repo,
// --ref, --path) or a directory (--site).
type Source struct {
	Repo string `json:"repo,omitempty"`
	Ref  string `json:"ref,omitempty"`
	Path string `json:"path,omitempty"`
	Site string `json:"site,omitempty"`
}

// Observed is who observed the node for a plan.
type Observed struct {
	// By is ObservedAgent (the running agent's own drivers, over the
	// control socket) or ObservedHost (a one-shot process: the in-process
	// VRRP engine and proxy predicted as if nothing ran).
	By string `json:"by"`
	// AgentPID, AgentVersion and Applied identify the agent and the
	// commit it ran when it planned (By = agent).
	AgentPID     int    `json:"agent_pid,omitempty"`
	AgentVersion string `json:"agent_version,omitempty"`
	Applied      string `json:"applied_commit,omitempty"`
	// State is a fingerprint of every resource as observed (driver, kind,
	// id and observed value, no-ops included): two plans with the same
	// State were made against the same node. Apply decides on the
	// changes themselves (SameChanges); State is for people and tools
	// comparing plans.
	State string `json:"state"`
}

// Who observed the node.
const (
	ObservedAgent = "agent"
	ObservedHost  = "host"
)

// NewSaved wraps p for a file. now is the creation time.
func NewSaved(p *Plan, source Source, obs Observed, now time.Time) *Saved {
	obs.State = StateFingerprint(p)
	return &Saved{
		Kind: SavedKind, FormatVersion: SavedVersion,
		Node: p.Node, Commit: p.Commit, Source: source,
		Created: now.UTC().Truncate(time.Second), Observed: obs,
		Fingerprint: Fingerprint(p), Plan: document(p),
	}
}

// WriteSaved writes s as indented JSON.
func WriteSaved(w io.Writer, s *Saved) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("saved plan: encode: %w", err)
	}
	return nil
}

// ReadSaved reads a saved plan, refusing a file that is not one, that a
// newer gitgw wrote, or whose changes no longer match its fingerprint.
// name is used in the errors (the file's path).
func ReadSaved(r io.Reader, name string) (*Saved, error) {
	b, err := io.ReadAll(io.LimitReader(r, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var head struct {
		Kind          string `json:"kind"`
		FormatVersion int    `json:"format_version"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, fmt.Errorf("%s: %w: not JSON: %v", name, ErrSavedPlan, err)
	}
	if head.Kind != SavedKind {
		return nil, fmt.Errorf("%s: %w: not a gitgw saved plan (kind %q, want %q): make one with gitgw plan -out FILE", name, ErrSavedPlan, head.Kind, SavedKind)
	}
	if head.FormatVersion < 1 || head.FormatVersion > SavedVersion {
		return nil, fmt.Errorf("%s: %w: format_version %d, this gitgw reads up to %d: apply it with the gitgw that made it, or plan again",
			name, ErrSavedPlan, head.FormatVersion, SavedVersion)
	}
	var s Saved
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, ErrSavedPlan, err)
	}
	p := s.Planned()
	switch {
	case s.Node == "" || s.Plan.Node != s.Node:
		return nil, fmt.Errorf("%s: %w: node %q, plan.node %q: the file was edited", name, ErrSavedPlan, s.Node, s.Plan.Node)
	case s.Plan.Commit != s.Commit:
		return nil, fmt.Errorf("%s: %w: commit %q, plan.commit %q: the file was edited", name, ErrSavedPlan, s.Commit, s.Plan.Commit)
	case Fingerprint(p) != s.Fingerprint:
		return nil, fmt.Errorf("%s: %w: its changes do not match its fingerprint (edited after it was saved?): plan again", name, ErrSavedPlan)
	}
	return &s, nil
}

// Planned returns the plan the file holds.
func (s *Saved) Planned() *Plan {
	return &Plan{Node: s.Plan.Node, Commit: s.Plan.Commit, Changes: s.Plan.Changes, Notes: s.Plan.Notes}
}

// Fingerprint is a hash of what applying p would do: its node, its commit
// and its actionable changes (driver, kind, id, action, before, after),
// values compared as JSON with sorted keys, so that a plan read back from
// a file has the fingerprint it was saved with.
func Fingerprint(p *Plan) string {
	type key struct {
		Driver, Kind, ID string
		Action           Action
		Before, After    json.RawMessage
	}
	var ks []key
	for _, ch := range p.Actionable() {
		ks = append(ks, key{ch.Driver, ch.Kind, ch.ID, ch.Action, json.RawMessage(canonical(ch.Before)), json.RawMessage(canonical(ch.After))})
	}
	return hash(struct {
		Node, Commit string
		Changes      []key
	}{p.Node, p.Commit, ks})
}

// StateFingerprint is a hash of every resource of p as observed: driver,
// kind, id and observed value (Before), no-ops included.
func StateFingerprint(p *Plan) string {
	type key struct {
		Driver, Kind, ID string
		Before           json.RawMessage
	}
	ks := []key{}
	for _, ch := range p.Changes {
		ks = append(ks, key{ch.Driver, ch.Kind, ch.ID, json.RawMessage(canonical(ch.Before))})
	}
	return hash(ks)
}

func hash(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Every value in a plan comes from JSON or marshals to it (see
		// Change); a value that does not is hashed as its text.
		b = fmt.Appendf(nil, "%#v", v)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
