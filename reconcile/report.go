package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/gitgw/gitgw/reconcile/drift"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// StatusSink receives the node's status files and the commit message
// (*gitrepo.StatusWriter: commits only when the content changed, coalesces
// bursts, pushes in the background).
type StatusSink interface {
	Write(ctx context.Context, files map[string][]byte, msg gitrepo.Message) (bool, error)
}

// SiteRepo reads commits of the site and writes proposal branches
// (*gitrepo.Source).
type SiteRepo interface {
	ReadTree(ctx context.Context, commit string) (map[string][]byte, error)
	WriteBranch(ctx context.Context, branch, base string, files map[string][]byte, msg gitrepo.Message) (string, error)
}

// StatusSectioner is implemented by drivers that add their own
// observations to status.json (VRRP roles, proxy server health, unit
// states, softirq spread), under their Name(). The shapes the fleet view
// reads are drift.VRRPSection and drift.ProxySection.
type StatusSectioner interface {
	StatusSection(ctx context.Context) (any, error)
}

var (
	_ StatusSink = (*gitrepo.StatusWriter)(nil)
	_ SiteRepo   = (*gitrepo.Source)(nil)
)

// ReporterOptions configure a Reporter.
type ReporterOptions struct {
	Node         string
	AgentVersion string
	// Sink receives status.json and STATUS.md.
	Sink StatusSink
	// Site, when set, receives adopt proposals for drift left in place
	// (drift mode "report") on AdoptPrefix+Node.
	Site        SiteRepo
	AdoptPrefix string
	// Drivers that implement StatusSectioner fill the per-driver sections.
	Drivers []Driver
	// Runner, when set, names the site (from the last good state).
	Runner *Runner
	Logger *slog.Logger
	// Now is the clock for commit messages (default time.Now).
	Now func() time.Time
}

// Reporter turns pass results and driver events into status commits on the
// node's status branch and, for drift left in place, adopt proposals.
// Status content is deterministic (times only in commit messages), so a
// pass that changed nothing writes nothing.
type Reporter struct {
	o   ReporterOptions
	log *slog.Logger

	mu        sync.Mutex
	corrected int
	seq       int
	events    []drift.Event // the last MaxEvents, newest last
	fresh     []drift.Event // not yet in a commit
	last      *drift.Status

	proposals chan proposal
	propMu    sync.Mutex
	proposed  string // key of the proposal last written
}

type proposal struct {
	key, base string
	files     map[string][]byte
	msg       gitrepo.Message
}

// NewReporter returns a Reporter. Run writes adopt proposals in the
// background; without Run they are not written.
func NewReporter(o ReporterOptions) (*Reporter, error) {
	if o.Node == "" || o.Sink == nil {
		return nil, errors.New("reconcile: reporter: node and sink are required")
	}
	if o.AdoptPrefix == "" {
		o.AdoptPrefix = drift.AdoptPrefix
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Reporter{o: o, log: o.Logger.With("component", "report"), proposals: make(chan proposal, 1)}, nil
}

// Event records a driver event; it goes into the next status commit (the
// agent runs a pass for every event, whose Report writes it).
func (r *Reporter) Event(ev Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	e := drift.Event{Seq: r.seq, Driver: ev.Driver, Kind: ev.Kind, Message: ev.Message}
	r.events = append(r.events, e)
	if n := len(r.events) - drift.MaxEvents; n > 0 {
		r.events = slices.Delete(r.events, 0, n)
	}
	r.fresh = append(r.fresh, e)
}

// Report writes the status of a pass. It returns the sink's error (a
// *gitrepo.DivergedError when another node reports under the same name).
func (r *Reporter) Report(ctx context.Context, res Result) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.corrected += len(res.Drift)
	in := r.input(ctx, res)
	in.Adoptable = r.propose(ctx, res, in)
	st := drift.Build(in)
	r.last = &st
	js, err := drift.Marshal(st)
	if err != nil {
		return err
	}
	files := map[string][]byte{drift.StatusFile: js, drift.MarkdownFile: drift.Markdown(st)}
	m := drift.Compose(st, in, r.fresh, r.o.Now(), res.Duration)
	committed, err := r.o.Sink.Write(ctx, files, gitrepo.Message{
		Subject: m.Subject, Body: m.Body, Desired: m.Desired, Applied: m.Applied, Drift: m.Drift,
	})
	var diverged *gitrepo.DivergedError
	if err != nil && !errors.As(err, &diverged) {
		return fmt.Errorf("report: write status: %w", err)
	}
	// Committed, held for the coalesce window, or already there: the
	// events are in the status branch's content now.
	r.fresh = nil
	if committed {
		r.log.Debug("status committed", "subject", m.Subject)
	}
	if diverged != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// Last returns the status of the last reported pass (for the local status
// page and socket); false before the first pass.
func (r *Reporter) Last() (drift.Status, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		return drift.Status{}, false
	}
	return *r.last, true
}

func (r *Reporter) input(ctx context.Context, res Result) drift.Input {
	in := drift.Input{
		Node: r.o.Node, AgentVersion: r.o.AgentVersion,
		Commit: res.Commit, Subject: res.Subject, Outcome: string(res.Outcome), AppliedCommit: res.AppliedCommit,
		Applied: res.Applied, Drift: res.Drift, Reported: res.Reported, Remaining: res.Remaining,
		Corrected: r.corrected, Events: slices.Clone(r.events),
	}
	if res.Plan != nil {
		in.Plan = res.Plan.Changes
	}
	for _, e := range res.Errors {
		in.Errors = append(in.Errors, drift.Error{File: e.File, Line: e.Line, Col: e.Col, Path: e.Path, Msg: e.Msg})
	}
	if res.Err != nil {
		in.Err = res.Err.Error()
	}
	if r.o.Runner != nil {
		if lg := r.o.Runner.LastGood(); lg != nil && lg.Desired != nil {
			in.Site = lg.Desired.Site.Name
		}
	}
	for _, d := range r.o.Drivers {
		s, ok := d.(StatusSectioner)
		if !ok {
			continue
		}
		v, err := s.StatusSection(ctx)
		if err != nil {
			r.log.Warn("driver status section", "driver", d.Name(), "err", err)
			continue
		}
		if in.Sections == nil {
			in.Sections = map[string]any{}
		}
		in.Sections[d.Name()] = v
	}
	return in
}

var gitHash = regexp.MustCompile(`^[0-9a-f]{40}$`)

// propose prepares the adopt proposal for the drift left in place and
// queues it for Run; it returns which items the proposal edits into the
// site.
func (r *Reporter) propose(ctx context.Context, res Result, in drift.Input) map[string]bool {
	if r.o.Site == nil || len(res.Reported) == 0 || !gitHash.MatchString(res.AppliedCommit) {
		return nil
	}
	var items []drift.Item
	for _, c := range res.Reported {
		items = append(items, drift.Item{Driver: c.Driver, Kind: c.Kind, ID: c.ID, Mode: "report", Observed: plan.JSON(c.Before), Desired: plan.JSON(c.After)})
	}
	site, err := r.o.Site.ReadTree(ctx, res.AppliedCommit)
	if err != nil {
		r.log.Warn("adopt proposal: read the applied commit", "err", err)
		return nil
	}
	p := drift.Adopt(site, items)
	adoptable := map[string]bool{}
	for _, it := range p.Adopted {
		adoptable[it.Driver+" "+it.Kind+" "+it.ID] = true
	}
	m := drift.AdoptMessage(r.o.Node, res.AppliedCommit, p)
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", res.AppliedCommit, m.Body)
	for _, k := range slices.Sorted(maps.Keys(p.Files)) {
		fmt.Fprintf(h, "%s\x00%s\x00", k, p.Files[k])
	}
	prop := proposal{key: hex.EncodeToString(h.Sum(nil)), base: res.AppliedCommit, files: p.Files,
		msg: gitrepo.Message{Subject: m.Subject, Body: m.Body, Desired: m.Desired, Applied: m.Applied, Drift: m.Drift}}
	r.propMu.Lock()
	done := r.proposed == prop.key
	r.propMu.Unlock()
	if !done {
		select { // keep only the newest
		case <-r.proposals:
		default:
		}
		r.proposals <- prop
	}
	return adoptable
}

// Run writes queued adopt proposals until ctx ends, retrying a failed one
// when the next pass queues it again.
func (r *Reporter) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case p := <-r.proposals:
			r.writeProposal(ctx, p)
		}
	}
}

// FlushProposals writes a queued proposal now, if there is one.
func (r *Reporter) FlushProposals(ctx context.Context) {
	select {
	case p := <-r.proposals:
		r.writeProposal(ctx, p)
	default:
	}
}

func (r *Reporter) writeProposal(ctx context.Context, p proposal) {
	branch := r.o.AdoptPrefix + r.o.Node
	c, err := r.o.Site.WriteBranch(ctx, branch, p.base, p.files, p.msg)
	if err != nil {
		r.log.Warn("adopt proposal not written; retried on the next pass", "branch", branch, "err", err)
		return
	}
	r.propMu.Lock()
	r.proposed = p.key
	r.propMu.Unlock()
	r.log.Info("adopt proposal written", "branch", branch, "commit", drift.Short(c), "subject", p.msg.Subject)
}
