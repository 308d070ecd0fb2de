package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
)

// ReportingOptions configure an agent's status reporting.
type ReportingOptions struct {
	// Status configures the status writer (Node, URL, Dir, credentials,
	// coalescing, history, liveness, OnPush).
	Status       gitrepo.StatusOptions
	AgentVersion string
	// Source, when it is a *GitSource, receives adopt proposals.
	Source  Source
	Runner  *Runner
	Drivers []Driver
	Logger  *slog.Logger
}

// Reporting is an agent's status reporting while it runs: the status
// writer (commits, pushes, the alive ref) and the Reporter (status.json,
// adopt proposals), with their background work. A nil *Reporting reports
// nothing.
type Reporting struct {
	rep    *Reporter
	writer *gitrepo.StatusWriter
	runner *Runner
	log    *slog.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	lastErr string
	keyWarn string
}

// StartReporting opens the status writer and the reporter and starts their
// background work (pushes, alive refreshes, adopt proposals).
func StartReporting(ctx context.Context, o ReportingOptions) (*Reporting, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o.Status.Logger, o.Status.AgentVersion = log, o.AgentVersion
	w, err := gitrepo.NewStatusWriter(ctx, o.Status)
	if err != nil {
		return nil, err
	}
	opts := ReporterOptions{Node: o.Status.Node, AgentVersion: o.AgentVersion, Sink: w, Drivers: o.Drivers, Runner: o.Runner, Logger: log}
	if g, ok := o.Source.(*GitSource); ok {
		opts.Site = g.Repo()
	}
	rep, err := NewReporter(opts)
	if err != nil {
		_ = w.Close()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Reporting{rep: rep, writer: w, runner: o.Runner, log: log.With("component", "status"), cancel: cancel}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); _ = w.Run(runCtx) }()
	go func() { defer s.wg.Done(); _ = rep.Run(runCtx) }()
	log.Info("reporting status", "branch", w.Branch(), "repo", o.Status.URL)
	return s, nil
}

// Report writes a pass's status. Errors are logged once while they last;
// a status branch that another node writes is logged as the clash it is.
func (s *Reporting) Report(ctx context.Context, res Result) {
	if s == nil {
		return
	}
	err := s.rep.Report(ctx, res)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runner != nil {
		if lg := s.runner.LastGood(); lg != nil && lg.Desired != nil {
			if p := StatusKeyProblem(lg.Desired, s.writer); p != s.keyWarn {
				s.keyWarn = p
				if p != "" {
					s.log.Warn("peers will not trust this node's status branch: "+p, "node", lg.Desired.Name)
				}
			}
		}
	}
	switch {
	case err == nil:
		s.lastErr = ""
	case err.Error() != s.lastErr:
		s.lastErr = err.Error()
		if errors.Is(err, gitrepo.ErrDiverged) {
			s.log.Error("STATUS BRANCH CLASH: another node reports under this node's name; not force-pushing", "err", err)
		} else {
			s.log.Warn("status report", "err", err)
		}
	}
}

// Events passes driver events on to the agent, recording each in the
// status first.
func (s *Reporting) Events(ctx context.Context, in []<-chan Event) []<-chan Event {
	if s == nil {
		return in
	}
	out := make([]<-chan Event, 0, len(in))
	for _, ch := range in {
		fwd := make(chan Event, 16)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer close(fwd)
			for {
				select {
				case <-ctx.Done():
					return
				case ev, ok := <-ch:
					if !ok {
						return
					}
					s.rep.Event(ev)
					select {
					case fwd <- ev:
					case <-ctx.Done():
						return
					}
				}
			}
		}()
		out = append(out, fwd)
	}
	return out
}

// Stop pushes what is pending and stops, all within timeout: a stop is
// not held by Git. The background pushes are stopped first, so that one
// in flight gives way to the final push. A push that does not finish in
// time (a remote that is slow or does not answer; go-git's ssh handshake
// heeds no context at all) is given up, and said so: the status is
// committed locally, and the next agent pushes it. What is still stuck
// then ends with the process.
func (s *Reporting) Stop(timeout time.Duration) {
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s.cancel()
	var flushErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.rep.FlushProposals(ctx)
		flushErr = s.writer.Flush(ctx)
		s.wg.Wait()
		_ = s.writer.Close()
	}()
	select {
	case <-done:
		switch {
		case flushErr == nil:
		case ctx.Err() != nil:
			s.gaveUp(timeout)
		default:
			s.log.Warn("status not pushed before stopping; pushed by the next run", "err", flushErr)
		}
	case <-ctx.Done():
		s.gaveUp(timeout)
	}
}

func (s *Reporting) gaveUp(timeout time.Duration) {
	s.log.Warn("status push given up at stop: the remote did not answer in time; pushed by the next run", "timeout", timeout)
}

// StatusKeyProblem says why the peers that wait for this node would not
// trust its status branch ("" when they would, or when the site lists no
// status keys): the site's status_key for it and its signing key differ.
func StatusKeyProblem(desired *spec.Node, w *gitrepo.StatusWriter) string {
	if len(desired.StatusKeys) == 0 {
		return ""
	}
	key := desired.StatusKeys[desired.Name]
	switch {
	case key == "":
		return "the site lists status keys, but no status_key for this node"
	case !w.Signs():
		return "the site lists a status_key for this node, and --status-signing-key is not set"
	case !w.SignsAs(key):
		return "the site's status_key for this node is not the public half of --status-signing-key"
	}
	return ""
}
