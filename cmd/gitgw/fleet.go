package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/drift"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
)

// This file holds everything the CLI does with status branches: the fleet
// view, and the agent's status reporting (flags and wiring).

type fleetFlags struct {
	site   siteFlags
	prefix string
	json   bool
}

func newFleetCmd() *cobra.Command {
	var f fleetFlags
	cmd := &cobra.Command{
		Use:   "fleet (--repo URL | --site DIR) [--json]",
		Short: "Show every node's reported status: applied commit, VRRP roles (split brain flagged), proxy health, drift",
		Example: `  gitgw fleet --repo ssh://git@git.example.net/site.git --ssh-key ~/.ssh/id_ed25519
  gitgw fleet --site /srv/git/site.git --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runFleet(cmd, &f) },
	}
	f.site.register(cmd)
	fl := cmd.Flags()
	fl.Lookup("site").Usage = "a local copy of the site repository (bare, or a clone with the status branches fetched as branches)"
	fl.Lookup("ref").Usage = "tracked branch: its head is what the applied commits are compared with"
	_ = fl.MarkHidden("allow-rewrite")
	cmd.Flags().StringVar(&f.prefix, "status-branch-prefix", gitrepo.DefaultStatusPrefix, "prefix of the nodes' status branches")
	cmd.Flags().BoolVar(&f.json, "json", false, "print the fleet view as versioned JSON")
	return cmd
}

func runFleet(cmd *cobra.Command, f *fleetFlags) error {
	if err := f.site.check(); err != nil {
		return err
	}
	url := f.site.repo
	if url == "" {
		url = f.site.site // a local clone (or the bare repository itself)
	}
	fl, err := readFleet(cmd.Context(), url, f.prefix, f.site, func(err error) {
		fmt.Fprintln(cmd.ErrOrStderr(), "gitgw: warning:", err)
	})
	if err != nil {
		return err
	}
	if f.json {
		return drift.WriteFleetJSON(cmd.OutOrStdout(), fl)
	}
	if len(fl.Nodes) == 0 {
		fmt.Fprintf(cmd.OutOrStdout(), "No status branches (%s*) in %s.\n", f.prefix, url)
		if f.site.site != "" {
			// A clone keeps other branches as remote-tracking refs, which
			// are not read here.
			fmt.Fprintf(cmd.OutOrStdout(), "In a clone, fetch them as branches first:\n  git -C %s fetch origin '+refs/heads/%s*:refs/heads/%s*'\nor read the repository itself with --repo URL.\n",
				f.site.site, f.prefix, f.prefix)
		}
		return nil
	}
	return drift.WriteFleetText(cmd.OutOrStdout(), fl, time.Now())
}

// readFleet reads every status branch of url and the tracked branch's head.
func readFleet(ctx context.Context, url, prefix string, sf siteFlags, warn func(error)) (drift.Fleet, error) {
	// The tracked head is asked for meanwhile: with thousands of refs
	// its ref advertisement is a good part of the command's time.
	var head string
	var headErr error
	headDone := make(chan struct{})
	go func() {
		defer close(headDone)
		head, headErr = trackedHead(ctx, url, sf)
	}()
	branches, err := gitrepo.ReadStatusBranches(ctx, gitrepo.ReadOptions{
		URL: url, Prefix: prefix, Files: []string{drift.StatusFile},
		SSHKeyFile: sf.sshKey, KnownHostsFile: sf.knownHosts, TokenFile: sf.tokenFile, CAFile: sf.caFile,
	})
	<-headDone
	if err != nil {
		return drift.Fleet{}, err
	}
	if headErr != nil {
		warn(fmt.Errorf("head of %s unknown: %w", sf.ref, headErr))
	}
	reports := make([]drift.NodeReport, 0, len(branches))
	now := time.Now()
	for _, b := range branches {
		r := drift.NodeReport{Node: b.Node, Commit: b.Commit, Subject: b.Subject, Time: b.Time}
		if a := b.Alive; a != nil {
			r.Alive, r.AliveBound, r.Stale = a.Time, a.Bound, a.Stale(now)
		}
		if js, ok := b.Files[drift.StatusFile]; !ok {
			r.Err = drift.StatusFile + " missing"
		} else if st, err := drift.Parse(js); err != nil {
			r.Err = err.Error()
		} else {
			r.Status = &st
		}
		reports = append(reports, r)
	}
	return drift.BuildFleet(head, reports), nil
}

// trackedHead asks the repository where the tracked branch points.
func trackedHead(ctx context.Context, url string, sf siteFlags) (string, error) {
	tmp, err := os.MkdirTemp("", "gitgw-fleet-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	src, err := gitrepo.Open(ctx, gitrepo.Options{URL: url, Ref: sf.ref, Dir: tmp,
		SSHKeyFile: sf.sshKey, KnownHostsFile: sf.knownHosts, TokenFile: sf.tokenFile, CAFile: sf.caFile})
	if err != nil {
		return "", err
	}
	return src.RemoteHead(ctx)
}

// statusFlags configure the agent's status reporting.
type statusFlags struct {
	repo           string
	prefix         string
	coalesce       time.Duration
	off            bool
	sign           string
	historyCommits int
	historyAge     time.Duration
	alive          time.Duration
}

func (f *statusFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.repo, "status-repo", "", "repository receiving the status branch (default: the site's --repo)")
	fl.StringVar(&f.prefix, "status-branch-prefix", gitrepo.DefaultStatusPrefix, "prefix of this node's status branch")
	fl.DurationVar(&f.coalesce, "status-coalesce", 5*time.Second, "changes within this window after a status commit go into one commit (a flapping link makes one commit per window)")
	fl.BoolVar(&f.off, "no-status", false, "do not report status to Git")
	fl.IntVar(&f.historyCommits, "status-history-commits", gitrepo.DefaultHistoryCommits, "keep this many commits on the status branch; older ones are folded into one commit (the branch is force-pushed, with a lease); -1 keeps all")
	fl.DurationVar(&f.historyAge, "status-history-age", gitrepo.DefaultHistoryAge, "also fold status commits older than this (-1s: no age bound)")
	fl.DurationVar(&f.alive, "alive-interval", time.Minute, "refresh the ref refs/gitgw/alive/NODE this often (jittered), so that `gitgw fleet` tells a stopped agent from a quiet one; it promises a refresh within 3 intervals; 0: off")
	fl.StringVar(&f.sign, "status-signing-key", "", "unencrypted OpenSSH private key that signs this node's status commits; the site lists its public key as the node's status_key, so that peers trust the branch to gate their rollout")
}

// statusRun is the agent's status reporting while it runs; a nil
// *statusRun reports nothing.
type statusRun struct {
	rep    *reconcile.Reporter
	writer *gitrepo.StatusWriter
	log    *slog.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup

	runner *reconcile.Runner

	mu      sync.Mutex
	lastErr string
	keyWarn string
}

// startStatus opens the status writer and the reporter, and starts their
// background work (pushes, adopt proposals).
func (f *statusFlags) start(ctx context.Context, node, stateDir string, sf *siteFlags, src reconcile.Source,
	runner *reconcile.Runner, drivers []reconcile.Driver, log *slog.Logger) (*statusRun, error) {
	if f.off {
		return nil, nil
	}
	url := f.repo
	if url == "" {
		url = sf.repo
	}
	if url == "" {
		log.Warn("status reporting off: a --site directory has no repository; give --status-repo")
		return nil, nil
	}
	w, err := gitrepo.NewStatusWriter(ctx, gitrepo.StatusOptions{
		Node: node, URL: url, Prefix: f.prefix, Dir: filepath.Join(stateDir, "status.git"),
		SSHKeyFile: sf.sshKey, KnownHostsFile: sf.knownHosts, TokenFile: sf.tokenFile, CAFile: sf.caFile,
		Coalesce: f.coalesce, SigningKeyFile: f.sign, Logger: log,
		HistoryCommits: f.historyCommits, HistoryAge: f.historyAge, AliveInterval: f.alive, AgentVersion: version,
	})
	if err != nil {
		return nil, err
	}
	opts := reconcile.ReporterOptions{Node: node, AgentVersion: version, Sink: w, Drivers: drivers, Runner: runner, Logger: log}
	if sf.opened != nil && sf.opened.Repo != nil {
		opts.Site = sf.opened.Repo
	}
	rep, err := reconcile.NewReporter(opts)
	if err != nil {
		_ = w.Close()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &statusRun{rep: rep, writer: w, log: log.With("component", "status"), cancel: cancel, runner: runner}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); _ = w.Run(runCtx) }()
	go func() { defer s.wg.Done(); _ = rep.Run(runCtx) }()
	log.Info("reporting status", "branch", w.Branch(), "repo", url)
	return s, nil
}

// report writes a pass's status; errors are logged (once while they last).
func (s *statusRun) report(ctx context.Context, res reconcile.Result) {
	if s == nil {
		return
	}
	err := s.rep.Report(ctx, res)
	s.mu.Lock()
	defer s.mu.Unlock()
	if lg := s.runner.LastGood(); lg != nil && lg.Desired != nil {
		if p := statusKeyProblem(lg.Desired, s.writer); p != s.keyWarn {
			s.keyWarn = p
			if p != "" {
				s.log.Warn("peers will not trust this node's status branch: "+p, "node", lg.Desired.Name)
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
			s.log.Error("status report", "err", err)
		}
	}
}

// events passes driver events on to the agent, recording each in the
// status first.
func (s *statusRun) events(ctx context.Context, in []<-chan reconcile.Event) []<-chan reconcile.Event {
	if s == nil {
		return in
	}
	out := make([]<-chan reconcile.Event, 0, len(in))
	for _, ch := range in {
		fwd := make(chan reconcile.Event, 16)
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

// stop pushes what is pending (bounded by timeout) and stops.
func (s *statusRun) stop(timeout time.Duration) {
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s.rep.FlushProposals(ctx)
	if err := s.writer.Flush(ctx); err != nil {
		s.log.Warn("status not pushed before stopping; pushed by the next run", "err", err)
	}
	s.cancel()
	s.wg.Wait()
	_ = s.writer.Close()
}

// statusKeyProblem says why the peers that wait for this node would not
// trust its status branch ("" when they would, or when the site lists no
// status keys): the site's status_key for it and its signing key differ.
func statusKeyProblem(desired *spec.Node, w *gitrepo.StatusWriter) string {
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
