package planapply

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/internal/logs"
	"github.com/gitgw/gitgw/reconcile"
	"github.com/gitgw/gitgw/reconcile/control"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
	"github.com/gitgw/gitgw/reconcile/plan"
	"github.com/gitgw/gitgw/reconcile/siteplan"
)

// Command is what gitgw plan and gitgw apply are told: one node's plan,
// made by the running agent when one answers on Socket, by this process
// otherwise, or against the node's status branch (Observed).
type Command struct {
	Source   reconcile.SourceConfig
	Node     string
	StateDir string // "" for none (one-shot commands)
	Scope    loader.Scope
	// Socket is the agent's control socket ("" never asks it); Timeout
	// bounds the wait for its plan, or for its pass to apply the plan.
	Socket  string
	Timeout time.Duration
	// Drivers are this process's when it plans or applies itself
	// (UnitDir, SystemdSocket, Inherited; StateDir and Logger are set).
	Drivers  reconcile.DriverConfig
	Observed Observed
	Text     plan.TextOptions
	// JSON prints the plan as JSON; Out also saves it for apply FILE.
	JSON bool
	Out  string
	// AutoApprove applies without asking; Kinds limits a one-shot apply
	// (nil: every kind a one-shot process can keep).
	AutoApprove bool
	Kinds       map[string]bool
	Logger      *slog.Logger
	Stdin       io.Reader
	Stdout      io.Writer
	Stderr      io.Writer
}

// Observed selects a node's status branch to plan against, instead of
// the live host (Source "status").
type Observed struct {
	Source, Repo, Prefix string
}

// ErrSiteInvalid: the site did not evaluate; its errors, one a line, are
// printed on Stderr already.
var ErrSiteInvalid = errors.New("the site has errors")

// ErrCancelled: the operator did not approve the plan.
var ErrCancelled = errors.New("apply cancelled")

// made is a plan and what it was made from.
type made struct {
	p       *plan.Plan
	rev     reconcile.Revision
	desired *spec.Node
	// agent answered on the socket and made the plan; nil: this process
	// planned (or Observed did).
	agent *control.AgentInfo
	cl    *control.Client
}

// open opens the site for node.
func (c *Command) open(ctx context.Context, node string) (*reconcile.OpenedSource, error) {
	if err := c.Source.Check(); err != nil {
		return nil, err
	}
	cfg := c.Source
	cfg.StateDir, cfg.Git.Node = c.StateDir, node
	return reconcile.OpenSource(ctx, cfg)
}

// makePlan evaluates the site once and plans it for the node: by the
// running agent when one answers on the socket (its drivers see what it
// runs), otherwise by this process's drivers, or against the node's
// status branch.
func (c *Command) makePlan(ctx context.Context) (*made, func(), error) {
	if c.Node == "" {
		return nil, nil, fmt.Errorf("--node is empty and the hostname is unknown")
	}
	src, err := c.open(ctx, c.Node)
	if err != nil {
		return nil, nil, err
	}
	pl, err := c.planWith(ctx, src)
	if err != nil {
		src.Close()
		return nil, nil, err
	}
	return pl, src.Close, nil
}

func (c *Command) planWith(ctx context.Context, src *reconcile.OpenedSource) (*made, error) {
	log := c.Logger
	rev, err := src.Sync(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.Scope.Check(); err != nil {
		return nil, err
	}
	// Evaluation needs no driver: the drivers are built only if this
	// process plans itself.
	evalRunner, err := reconcile.NewRunner(reconcile.RunnerOptions{Node: c.Node, StateDir: c.StateDir, Logger: log, Scope: c.Scope,
		Check: reconcile.PolicyCheck(reconcile.PolicyOptions{Logger: log})})
	if err != nil {
		return nil, err
	}
	desired, perrs, err := evalRunner.Evaluate(ctx, rev)
	if len(perrs) > 0 {
		printErrors(c.Stderr, perrs)
		return nil, ErrSiteInvalid
	}
	if err != nil {
		return nil, err
	}
	pl := &made{rev: rev, desired: desired, cl: control.NewClient(c.Socket)}
	if c.Observed.Source != "" {
		if pl.p, err = c.planObserved(ctx, src, evalRunner, rev, desired); err != nil {
			return nil, err
		}
	} else {
		actx, cancel := context.WithTimeout(ctx, c.Timeout)
		defer cancel()
		r, err := Plan(actx, PlanOptions{Client: pl.cl, Socket: c.Socket, Node: c.Node, Commit: rev.Commit, Desired: desired, Logger: log,
			Local: func(ctx context.Context) (*plan.Plan, error) {
				drv := reconcile.BuildDrivers(c.driverConfig())
				defer drv.Close(context.Background())
				runner, err := reconcile.NewRunner(reconcile.RunnerOptions{Node: c.Node, Drivers: drv.List, Logger: log})
				if err != nil {
					return nil, err
				}
				return runner.PlanFor(ctx, desired, rev.Commit)
			}})
		if err != nil {
			return nil, err
		}
		pl.p, pl.agent = r.Plan, r.Agent
	}
	pl.p.Notes = append(pl.p.Notes, evalRunner.RolloutNotes(ctx, rev, desired)...)
	return pl, nil
}

// driverConfig builds the drivers as for a plan: no VRRP guardian.
func (c *Command) driverConfig() reconcile.DriverConfig {
	d := c.Drivers
	d.StateDir, d.Logger = c.StateDir, c.Logger
	return d
}

// WritePlan is gitgw plan for one node: the plan, as text or JSON, saved
// to Out when set. changes says whether applying it would change anything.
func (c *Command) WritePlan(ctx context.Context) (changes bool, err error) {
	out := c.Stdout
	if c.Out != "" && c.Observed.Source != "" {
		return false, fmt.Errorf("--out saves a plan for gitgw apply, which applies on the node: plan against the node (without --observed)")
	}
	pl, cleanup, err := c.makePlan(ctx)
	if err != nil {
		return false, err
	}
	defer cleanup()
	if c.JSON {
		err = plan.WriteJSON(out, pl.p)
	} else {
		err = plan.WriteText(out, pl.p, c.Text)
	}
	if err != nil {
		return false, err
	}
	if c.Out != "" {
		src := plan.Source{Repo: c.Source.Git.URL, Site: c.Source.Dir, Path: c.Source.Git.Path}
		if src.Repo != "" {
			src.Ref = c.Source.Git.Ref
		}
		if err := Save(c.Out, Planned{Plan: pl.p, Agent: pl.agent}, src, time.Now()); err != nil {
			return false, err
		}
		if !c.JSON {
			fmt.Fprintf(out, "\nSaved the plan to %s. To apply exactly this plan: gitgw apply %s\n", c.Out, c.Out)
		}
	}
	return pl.p.HasChanges(), nil
}

// Apply is gitgw apply: it plans, asks (unless AutoApprove), and applies
// through the agent or once in this process.
func (c *Command) Apply(ctx context.Context) error {
	out := c.Stdout
	pl, cleanup, err := c.makePlan(ctx)
	if err != nil {
		return err
	}
	defer cleanup()
	if err := plan.WriteText(out, pl.p, c.Text); err != nil {
		return err
	}
	if pl.agent == nil {
		if err := CheckOneShot(pl.p, c.Kinds, c.Socket); err != nil {
			return err
		}
	} else if c.Kinds != nil {
		return fmt.Errorf("--kinds limits a one-shot apply: the agent answers on %s and applies the whole plan", c.Socket)
	}
	if pl.agent == nil && !Only(pl.p, OneShotKinds(c.Kinds)).HasChanges() || !pl.p.HasChanges() {
		return nil
	}
	if !c.AutoApprove && !Confirm(c.Stdin, out) {
		fmt.Fprintln(out, "Apply cancelled.")
		return ErrCancelled
	}
	if pl.agent != nil {
		actx, cancel := context.WithTimeout(ctx, c.Timeout)
		defer cancel()
		r, err := pl.cl.Apply(actx, pl.rev.Commit, pl.p)
		if err != nil {
			return fmt.Errorf("handing the plan to the agent on %s: %w", c.Socket, err)
		}
		return WriteAgentResult(out, r, pl.rev.Commit)
	}
	return c.applyOnce(ctx, pl.rev, pl.p)
}

// applyOnce applies, in this process, the part of p a one-shot process can
// keep: only those drivers are built, so that nothing of VRRP or the proxy
// is brought up, or torn down as it exits. ErrOnceFailed when the pass
// failed or was rejected.
func (c *Command) applyOnce(ctx context.Context, rev reconcile.Revision, p *plan.Plan) error {
	log := c.Logger
	if err := c.Scope.Check(); err != nil {
		return err
	}
	only := OneShotKinds(c.Kinds)
	// Built as for a plan (no VRRP guardian), and only the kinds this
	// process can keep are handed to the runner.
	drv := reconcile.BuildDrivers(c.driverConfig())
	defer drv.Close(context.Background())
	drivers := slices.DeleteFunc(slices.Clone(drv.List), func(d reconcile.Driver) bool { return !only[d.Name()] })
	runner, err := reconcile.NewRunner(reconcile.RunnerOptions{Node: c.Node, StateDir: c.StateDir, Drivers: drivers, Logger: log, Scope: c.Scope,
		Check: reconcile.PolicyCheck(reconcile.PolicyOptions{Logger: log})})
	if err != nil {
		return err
	}
	res := runner.Pass(ctx, rev, reconcile.PassOptions{Expect: Only(p, only)})
	return WriteOnce(c.Stdout, res, p, only)
}

// ApplySaved is gitgw apply FILE: it applies a plan saved by gitgw plan
// -out FILE, exactly: the agent (or this process) applies it only if it
// would make the same changes now, at the same commit. nodeGiven says
// that c.Node was given (it must then be the plan's).
func (c *Command) ApplySaved(ctx context.Context, file string, nodeGiven bool) error {
	out := c.Stdout
	node := ""
	if nodeGiven {
		node = c.Node
	}
	s, err := LoadSaved(file, node)
	if err != nil {
		return err
	}
	c.Node = s.Node
	p := s.Planned()
	if err := WriteSavedHeader(out, file, s); err != nil {
		return err
	}
	if err := plan.WriteText(out, p, c.Text); err != nil {
		return err
	}
	if c.Socket != "" {
		actx, cancel := context.WithTimeout(ctx, c.Timeout)
		defer cancel()
		cl := control.NewClient(c.Socket)
		var err error
		if c.Kinds != nil {
			// Only to know whether an agent runs: it applies the whole plan.
			if _, err = cl.Status(actx); err == nil {
				return fmt.Errorf("--kinds limits a one-shot apply: the agent answers on %s and applies the whole plan", c.Socket)
			}
		} else {
			var r control.ApplyReply
			if r, err = cl.Apply(actx, s.Commit, p); err == nil {
				return WriteAgentResult(out, r, s.Commit)
			}
		}
		if !NoAgent(err) {
			return fmt.Errorf("the agent on %s: %w", c.Socket, err)
		}
	}
	// No agent: this process applies what it can keep, at the commit the
	// plan was made at and nowhere else.
	if err := CheckOneShot(p, c.Kinds, c.Socket); err != nil {
		return err
	}
	if c.Source.Git.URL == "" && c.Source.Dir == "" {
		c.Source.Git.URL, c.Source.Git.Ref, c.Source.Git.Path, c.Source.Dir = s.Source.Repo, s.Source.Ref, s.Source.Path, s.Source.Site
	}
	src, err := c.open(ctx, c.Node)
	if err != nil {
		return err
	}
	defer src.Close()
	rev, err := src.Sync(ctx)
	if err != nil {
		return err
	}
	if err := CheckHead(file, s, rev.Commit, src.Describe()); err != nil {
		return err
	}
	return c.applyOnce(ctx, rev, p)
}

// Confirm asks on out whether to apply, and reads the answer from in:
// only "yes" applies. Input that is not a terminal is never asked.
func Confirm(in io.Reader, out io.Writer) bool {
	if f, ok := in.(*os.File); ok && !logs.IsTerminal(f) {
		fmt.Fprintln(out, "Not a terminal: use --auto-approve to apply without asking.")
		return false
	}
	fmt.Fprint(out, "\nApply these changes? Only 'yes' is accepted: ")
	line, _ := bufio.NewReader(in).ReadString('\n')
	return strings.TrimSpace(line) == "yes"
}

func printErrors(w io.Writer, errs loader.Errors) {
	for _, e := range errs {
		fmt.Fprintln(w, e.Error())
	}
}

// planObserved plans desired (revision rev) for the node against the
// status it last reported (siteplan.Node); no driver and no host is
// consulted. The applied commit comes from the opened source's history.
func (c *Command) planObserved(ctx context.Context, src *reconcile.OpenedSource, runner *reconcile.Runner, rev reconcile.Revision,
	desired *spec.Node) (*plan.Plan, error) {
	if c.Observed.Source != "status" {
		return nil, fmt.Errorf("--observed %q: the only observed source is \"status\"", c.Observed.Source)
	}
	reps, err := siteplan.ReadReports(ctx, c.readOptions(), c.Node)
	if err != nil {
		return nil, err
	}
	rep, ok := reps[c.Node]
	if !ok {
		hint := "has the node ever reported?"
		if c.Observed.Repo == "" && c.Source.Git.URL == "" {
			hint = "in a clone, give the repository with --status-repo URL, or fetch the status branches as branches"
		}
		return nil, fmt.Errorf("no status branch %s%s in %s: %s", c.Observed.Prefix, c.Node, c.statusURL(), hint)
	}
	return siteplan.Node(ctx, c.Node, rev.Commit, desired, rep, siteplan.NodeOptions{Checkout: src.History.Checkout, Evaluate: runner.Evaluate})
}

// statusURL is the repository holding the status branches.
func (c *Command) statusURL() string {
	switch {
	case c.Observed.Repo != "":
		return c.Observed.Repo
	case c.Source.Git.URL != "":
		return c.Source.Git.URL
	}
	return c.Source.Dir
}

func (c *Command) readOptions() gitrepo.ReadOptions {
	g := c.Source.Git
	return gitrepo.ReadOptions{URL: c.statusURL(), Prefix: c.Observed.Prefix,
		SSHKeyFile: g.SSHKeyFile, KnownHostsFile: g.KnownHostsFile, TokenFile: g.TokenFile, CAFile: g.CAFile}
}

// ParseFormat checks --format; --json is its older spelling.
func ParseFormat(format string, json bool) (string, error) {
	switch format {
	case "text", "json", "markdown":
	default:
		return "", fmt.Errorf("--format %q: want text, json or markdown", format)
	}
	if json {
		if format != "text" && format != "json" {
			return "", fmt.Errorf("--json and --format %s: give one of them", format)
		}
		return "json", nil
	}
	return format, nil
}

// WritePlanAll is gitgw plan --all-nodes: every node's plan against its
// status branch, from one evaluation of the site (siteplan), as text, json
// or markdown (leaving out the plans beyond markdownMax bytes).
func (c *Command) WritePlanAll(ctx context.Context, format string, markdownMax int, nodeGiven bool) (changes bool, err error) {
	out, log := c.Stdout, c.Logger
	if c.Observed.Source != "status" {
		// Without it every node would be planned against this host, or
		// against nothing: neither says what a merge would do.
		return false, fmt.Errorf("--all-nodes plans against the nodes' status branches: add --observed status (a node's live state is only on that node)")
	}
	if nodeGiven {
		return false, fmt.Errorf("--node and --all-nodes: give one of them")
	}
	if err := c.Scope.Check(); err != nil {
		return false, err
	}
	src, err := c.open(ctx, "")
	if err != nil {
		return false, err
	}
	defer src.Close()
	rev, err := src.Sync(ctx)
	if err != nil {
		return false, err
	}
	reports, err := siteplan.ReadReports(ctx, c.readOptions(), "")
	if err != nil {
		return false, err
	}
	if len(reports) == 0 && c.Observed.Repo == "" && c.Source.Git.URL == "" {
		return false, fmt.Errorf("no status branch %s* in %s: in a clone, give the repository with --status-repo URL, or fetch the status branches as branches", c.Observed.Prefix, c.statusURL())
	}
	site, perrs, err := siteplan.Site(ctx, rev, siteplan.Options{
		Reports: reports, Checkout: src.History.Checkout, Logger: log,
		Check: reconcile.PolicyCheck(reconcile.PolicyOptions{Logger: log}),
	})
	if len(perrs) > 0 {
		printErrors(c.Stderr, perrs)
		return false, ErrSiteInvalid
	}
	if err != nil {
		return false, err
	}
	switch format {
	case "json":
		err = plan.WriteSiteJSON(out, site)
	case "markdown":
		err = plan.WriteSiteMarkdown(out, site, plan.MarkdownOptions{MaxBytes: markdownMax})
	default:
		err = plan.WriteSiteText(out, site, c.Text)
	}
	return site.HasChanges(), err
}
