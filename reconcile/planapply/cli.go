package planapply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/internal/words"
	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/control"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// Planned is a plan and whose view of the node it was made against.
type Planned struct {
	Plan *plan.Plan
	// Agent is the agent that made the plan; nil when this process did.
	Agent *control.AgentInfo
}

// PlanOptions say what to plan and how to plan it without an agent.
type PlanOptions struct {
	Client       *control.Client
	Socket, Node string
	Commit       string
	Desired      *spec.Node
	// Local plans in this process, when no agent answers (its drivers
	// predict the in-process state as if nothing ran).
	Local  func(context.Context) (*plan.Plan, error)
	Logger *slog.Logger
}

// Plan plans o.Desired for the node: by the agent when one answers on the
// socket, else by o.Local. The plan's first note says which.
func Plan(ctx context.Context, o PlanOptions) (Planned, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r, found, err := Ask(ctx, o.Client, o.Socket, o.Node, o.Commit, o.Desired)
	if err != nil {
		return Planned{}, err
	}
	if found {
		if r.Warning != "" {
			log.Warn("some of the agent's drivers could not plan", "err", r.Warning)
		}
		r.Plan.Notes = append([]string{AgentNote(o.Socket, r.Agent)}, r.Plan.Notes...)
		return Planned{Plan: r.Plan, Agent: &r.Agent}, nil
	}
	p, err := o.Local(ctx)
	if p == nil {
		return Planned{}, err
	}
	if err != nil {
		// The plan still lists everything, the failing driver's part as
		// pending with the reason.
		log.Warn("some drivers could not plan", "err", err)
	}
	p.Notes = append([]string{NoAgentNote(o.Socket)}, p.Notes...)
	return Planned{Plan: p}, nil
}

// Save writes pl to path as a saved plan (plan.Saved), made now from src.
func Save(path string, pl Planned, src plan.Source, now time.Time) error {
	obs := plan.Observed{By: plan.ObservedHost}
	if a := pl.Agent; a != nil {
		obs = plan.Observed{By: plan.ObservedAgent, AgentPID: a.PID, AgentVersion: a.Version, Applied: a.Applied}
	}
	var b bytes.Buffer
	if err := plan.WriteSaved(&b, plan.NewSaved(pl.Plan, src, obs, now)); err != nil {
		return err
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("saving the plan: %w", err)
	}
	return nil
}

// LoadSaved reads a saved plan for node (any node when node is "").
func LoadSaved(path, node string) (*plan.Saved, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	s, err := plan.ReadSaved(fh, path)
	if err != nil {
		return nil, err
	}
	if node != "" && node != s.Node {
		return nil, fmt.Errorf("%s is a plan for node %s, not %s", path, s.Node, node)
	}
	return s, nil
}

// WriteSavedHeader introduces a saved plan before its text.
func WriteSavedHeader(w io.Writer, path string, s *plan.Saved) error {
	by := "this host, with no agent answering"
	if o := s.Observed; o.By == plan.ObservedAgent {
		by = fmt.Sprintf("the running agent (pid %d, running %s)", o.AgentPID, short(o.Applied))
	}
	_, err := fmt.Fprintf(w, "Saved plan %s, made %s against %s:\n\n", path, s.Created.Format(time.RFC3339), by)
	return err
}

// CheckHead refuses a saved plan made at another commit than the head of
// the site (described by source) a one-shot apply would apply.
func CheckHead(path string, s *plan.Saved, head, source string) error {
	if head == s.Commit {
		return nil
	}
	return fmt.Errorf("nothing applied: %s was planned at %s, and the site (%s) is now at %s: plan again",
		path, short(s.Commit), source, short(head))
}

// WriteAgentResult prints what the agent did with the plan; the error is
// the refusal (Refusal) when it applied nothing.
func WriteAgentResult(w io.Writer, r control.ApplyReply, commit string) error {
	if err := Refusal(r, commit); err != nil {
		return err
	}
	fmt.Fprintf(w, "applied by the agent (pid %d): %s\n", r.Agent.PID, r.Summary)
	for _, ch := range r.Remaining {
		fmt.Fprintf(w, "  still differs: %s %s %s\n", ch.Driver, ch.Kind, ch.ID)
	}
	_, err := fmt.Fprintln(w, "The agent keeps running it: gitgw status shows what it runs.")
	return err
}

// OneShotKinds is what a one-shot apply applies: the kinds asked for, or
// all it can keep.
func OneShotKinds(kinds map[string]bool) map[string]bool {
	if kinds != nil {
		return kinds
	}
	out := map[string]bool{}
	for _, k := range OneShot {
		out[k] = true
	}
	return out
}

// ErrOnceFailed is returned by WriteOnce for a pass that failed or was
// rejected (the summary is already printed).
var ErrOnceFailed = errors.New("the one-shot apply did not complete")

// WriteOnce prints a one-shot pass of p limited to only, and what it left
// to the agent.
func WriteOnce(w io.Writer, res reconcile.Result, p *plan.Plan, only map[string]bool) error {
	if errors.Is(res.Err, reconcile.ErrPlanMoved) {
		return fmt.Errorf("nothing applied: %w; plan again and review the new plan", res.Err)
	}
	fmt.Fprintf(w, "applied by this process (%s): %s\n", strings.Join(slices.Sorted(maps.Keys(only)), ", "), res.Summary())
	for _, ch := range res.Remaining {
		fmt.Fprintf(w, "  still differs: %s %s %s\n", ch.Driver, ch.Kind, ch.ID)
	}
	var left []string
	for _, ch := range p.Actionable() {
		if !only[ch.Driver] && !slices.Contains(left, ch.Driver) {
			left = append(left, ch.Driver)
		}
	}
	if n := len(p.Actionable()) - len(Only(p, only).Actionable()); n > 0 {
		fmt.Fprintf(w, "%s not applied (%s): VRRP and the proxy are left to the agent, which applies them when it runs.\n", words.Plural(n, "change"), strings.Join(left, ", "))
	}
	if res.Outcome == reconcile.Failed || res.Outcome == reconcile.Rejected {
		return ErrOnceFailed
	}
	return nil
}
