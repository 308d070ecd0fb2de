package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"time"
)

// AgentOptions configure the long-running loop.
type AgentOptions struct {
	Source Source
	Runner *Runner
	// Poll is how often a source that cannot be watched is polled
	// (jittered ±10 %). Default 30 s.
	Poll time.Duration
	// Resync is how often a full pass runs even when nothing was signalled:
	// sysfs and sysctls cannot be watched, so drift there is found by
	// looking. Default 60 s.
	Resync time.Duration
	// Debounce coalesces bursts of triggers (a push touches many files).
	// Default 50 ms.
	Debounce time.Duration
	// Kick requests a pass now (SIGHUP, `gitgw reconcile`).
	Kick <-chan struct{}
	// Requests ask for one pass now with options and a reply (gitgw
	// apply); nil: none. Each is served in the loop like a kick.
	Requests <-chan PassRequest
	// Notify receives sd_notify-style state lines ("READY=1", "STATUS=…",
	// "WATCHDOG=1"); nil when not under systemd.
	Notify func(state string)
	// Watchdog is the interval at which WATCHDOG=1 is sent (half of
	// systemd's WatchdogSec); 0 disables it. It is sent only when the loop
	// beat Heartbeat within the last interval: a stuck pass stops the
	// pings and systemd restarts the agent.
	Watchdog time.Duration
	// Heartbeat records the loop's progress (default: a new one). Given,
	// it may also be beaten by drivers whose long waits are progress.
	Heartbeat *Heartbeat
	// Bake runs after a pass that applied a new commit (the health gate);
	// prev is the last good state before the pass. It returns the pass's
	// final result (RolledBack on a regression). Default: Runner.Bake,
	// the gate of RunnerOptions.Health.
	Bake func(ctx context.Context, prev *LastGood, res Result) Result
	// HoldRetry is how soon a held revision is tried again (its turn may
	// have come). Default 2 s.
	HoldRetry time.Duration
	// OnResult is called after every pass (status reporting).
	OnResult func(Result)
	// OnSync is called after every fetch of the source, with its error (nil
	// when the source answered, also for a commit it then refused): the
	// operator alerts on a source that cannot be reached.
	OnSync func(at time.Time, err error)
	// Events are driver events that ask for a pass.
	Events []<-chan Event
	Logger *slog.Logger
}

// PassRequest asks the agent's loop for one pass now (gitgw apply).
type PassRequest struct {
	// Commit, when set, is the revision the caller planned: if the
	// source's head after a sync is another commit, no pass runs and the
	// reply's Err wraps ErrHeadMoved (Outcome Rejected).
	Commit  string
	Options PassOptions
	// Reply receives the pass's result (after the bake, as OnResult sees
	// it); the agent never blocks on it (make it buffered, 1).
	Reply chan<- Result
}

// ErrHeadMoved matches the reply to a PassRequest whose commit is no
// longer the source's head.
var ErrHeadMoved = errors.New("the agent's source is at another commit")

// reply sends res to the request's caller, if it still listens.
func (q *PassRequest) reply(res Result) {
	if q == nil || q.Reply == nil {
		return
	}
	select {
	case q.Reply <- res:
	default:
	}
}

// Agent runs passes on every trigger until its context ends.
type Agent struct {
	o   AgentOptions
	log *slog.Logger
}

// NewAgent returns an agent; Run starts it.
func NewAgent(o AgentOptions) *Agent {
	if o.Poll <= 0 {
		o.Poll = 30 * time.Second
	}
	if o.Resync <= 0 {
		o.Resync = 60 * time.Second
	}
	if o.Debounce <= 0 {
		o.Debounce = 50 * time.Millisecond
	}
	if o.HoldRetry <= 0 {
		o.HoldRetry = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Heartbeat == nil {
		o.Heartbeat = NewHeartbeat(nil)
	}
	return &Agent{o: o, log: o.Logger.With("component", "agent")}
}

// trigger says why a pass runs.
type trigger int

const (
	trigSource trigger = iota // the source may have moved: skip if it did not
	trigForce                 // resync, kick, driver event: always pass
)

// Run loops until ctx ends. The first pass runs at once; READY=1 is sent
// after it, whatever its outcome, so that systemd does not hold the boot on
// an invalid site.
func (a *Agent) Run(ctx context.Context) error {
	notify := func(s string) {
		if a.o.Notify != nil {
			a.o.Notify(s)
		}
	}
	pending := make(chan trigger, 1)
	want := func(t trigger) {
		for {
			select {
			case pending <- t:
				return
			default:
			}
			// Keep the stronger of the queued and the new trigger.
			select {
			case old := <-pending:
				if old > t {
					t = old
				}
			default:
			}
		}
	}
	want(trigForce)

	go a.watchTriggers(ctx, want)
	hb := a.o.Heartbeat
	hb.Beat()
	// idle beats while the loop waits for a trigger: waiting is progress.
	var idle <-chan time.Time
	if a.o.Watchdog > 0 {
		tk := time.NewTicker(a.o.Watchdog / 2)
		defer tk.Stop()
		idle = tk.C
		go a.pingWatchdog(ctx, notify)
	}

	var (
		lastCommit string
		ready      bool
		backoff    time.Duration
		retry      <-chan time.Time
	)
	for {
		hb.Beat()
		var (
			t   trigger
			req *PassRequest
		)
		select {
		case <-ctx.Done():
			notify("STOPPING=1")
			return nil
		case <-idle:
			continue
		case t = <-pending:
		case <-retry:
			t, retry = trigForce, nil
		case q := <-a.o.Requests:
			t, req = trigForce, &q
		}
		// Debounce: let a burst settle, keeping the strongest trigger.
		timer := time.NewTimer(a.o.Debounce)
	settle:
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return nil
			case t2 := <-pending:
				t = max(t, t2)
			case <-timer.C:
				break settle
			}
		}
		// A fetch is bounded by its transport's timeouts; a slow one is
		// not a stuck loop.
		stopBeat := a.beatWhile(ctx)
		if ra, ok := a.o.Source.(RunningAware); ok {
			ra.Running(a.o.Runner.LastGood().desired())
		}
		rev, err := a.o.Source.Sync(ctx)
		stopBeat()
		if a.o.OnSync != nil && ctx.Err() == nil {
			if rev.Refused != nil {
				a.o.OnSync(time.Now(), nil)
			} else {
				a.o.OnSync(time.Now(), err)
			}
		}
		if err != nil && rev.Refused == nil {
			if ctx.Err() != nil {
				return nil
			}
			a.log.Warn("sync failed", "source", a.o.Source.Describe(), "err", err)
			notify("STATUS=sync failed: " + err.Error())
			req.reply(Result{Commit: rev.Commit, Outcome: Failed, Err: fmt.Errorf("sync %s: %w", a.o.Source.Describe(), err)})
			backoff = nextBackoff(backoff)
			retry = time.After(backoff)
			if !ready {
				ready = true
				notify("READY=1")
			}
			continue
		}
		if req != nil && req.Commit != "" && req.Commit != rev.Commit {
			// The caller planned another commit: its request is refused,
			// and the new head is passed as any new commit is.
			a.log.Warn("pass request for a commit that is not the head; not applied", "planned", shortCommit(req.Commit), "head", shortCommit(rev.Commit))
			req.reply(Result{Commit: rev.Commit, Subject: rev.Subject, Outcome: Rejected, Started: time.Now(),
				Err: fmt.Errorf("%w: planned %s, the head is %s", ErrHeadMoved, shortCommit(req.Commit), shortCommit(rev.Commit))})
			t, req = trigSource, nil
		}
		if t == trigSource && rev.Commit == lastCommit {
			continue
		}
		var opts PassOptions
		if req != nil {
			opts = req.Options
		}
		if opts.DryRun {
			// A dry run changes nothing: it is not the node's status, and
			// the commit it looked at is still to be passed.
			req.reply(a.o.Runner.Pass(ctx, rev, opts))
			continue
		}
		passed := lastCommit
		lastCommit = rev.Commit
		prev := a.o.Runner.LastGood()
		hb.Beat()
		res := a.o.Runner.Pass(ctx, rev, opts)
		hb.Beat()
		if res.Outcome == Applied && (prev == nil || prev.Commit != res.AppliedCommit) {
			// The bake is a bounded wait (the bake window) that is
			// progress: beat through it.
			bake := a.o.Runner.Bake
			if a.o.Bake != nil {
				bake = a.o.Bake
			}
			stop := a.beatWhile(ctx)
			res = bake(ctx, prev, res)
			stop()
		}
		if errors.Is(res.Err, context.Canceled) && ctx.Err() != nil {
			req.reply(res)
			return nil
		}
		if errors.Is(res.Err, ErrPlanMoved) {
			// The approved plan was not applied, nor anything else: the
			// commit is still to be passed as usual.
			lastCommit = passed
		}
		notify("STATUS=" + res.Summary())
		if !ready {
			ready = true
			notify("READY=1")
		}
		if a.o.OnResult != nil {
			a.o.OnResult(res)
		}
		// After OnResult: `gitgw apply && gitgw status` shows the pass.
		req.reply(res)
		switch res.Outcome {
		case Failed:
			backoff = nextBackoff(backoff)
			retry = time.After(backoff)
		case Held:
			backoff = 0
			retry = time.After(a.o.HoldRetry)
		default:
			backoff = 0
		}
	}
}

// pingWatchdog sends WATCHDOG=1 every Watchdog interval while the loop
// beat within the last one, and says once when it stops for a stuck loop.
func (a *Agent) pingWatchdog(ctx context.Context, notify func(string)) {
	tk := time.NewTicker(a.o.Watchdog)
	defer tk.Stop()
	stuck := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		fresh := a.o.Heartbeat.Fresh(a.o.Watchdog)
		switch {
		case fresh:
			notify("WATCHDOG=1")
		case !stuck:
			a.log.Error("agent loop made no progress: watchdog pings stopped", "timeout", a.o.Watchdog)
		default:
			a.log.Debug("watchdog ping skipped: no progress")
		}
		stuck = !fresh
	}
}

// beatWhile beats the heartbeat every half Watchdog interval until the
// returned stop is called.
func (a *Agent) beatWhile(ctx context.Context) (stop func()) {
	if a.o.Watchdog <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tk := time.NewTicker(a.o.Watchdog / 2)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case <-tk.C:
				a.o.Heartbeat.Beat()
			}
		}
	}()
	return func() { close(done); <-finished }
}

func (a *Agent) watchTriggers(ctx context.Context, want func(trigger)) {
	poll := time.NewTimer(Jitter(a.o.Poll, rand.Int64N))
	resync := time.NewTicker(a.o.Resync)
	defer poll.Stop()
	defer resync.Stop()
	cases := []reflect.SelectCase{
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(poll.C)},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(resync.C)},
	}
	const fixed = 3
	src := a.o.Source.Changes()
	kinds := []trigger{0, trigSource, trigForce}
	if src != nil {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(src)})
		kinds = append(kinds, trigSource)
	}
	if a.o.Kick != nil {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(a.o.Kick)})
		kinds = append(kinds, trigForce)
	}
	for _, ev := range a.o.Events {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ev)})
		kinds = append(kinds, trigForce)
	}
	for {
		i, v, ok := reflect.Select(cases)
		switch {
		case i == 0:
			return
		case i == 1:
			poll.Reset(Jitter(a.o.Poll, rand.Int64N))
		case !ok && i >= fixed:
			// A closed channel: stop listening to it.
			cases[i].Chan = reflect.ValueOf((<-chan struct{})(nil))
			continue
		}
		if ev, isEv := v.Interface().(Event); isEv && ok {
			a.log.Info("driver event", "driver", ev.Driver, "kind", ev.Kind, "detail", ev.Message)
		}
		want(kinds[i])
	}
}

// DriverEvents are the event channels of the drivers that notice changes
// on their own (EventSource), for AgentOptions.Events.
func DriverEvents(drivers []Driver) []<-chan Event {
	var out []<-chan Event
	for _, d := range drivers {
		if es, ok := d.(EventSource); ok {
			out = append(out, es.Events())
		}
	}
	return out
}

// CloseDrivers releases what the drivers hold (Closer), logging each
// failure: the agent is stopping.
func CloseDrivers(ctx context.Context, drivers []Driver, log *slog.Logger) {
	for _, d := range drivers {
		if c, ok := d.(Closer); ok {
			if err := c.Close(ctx); err != nil {
				log.Error("driver stop", "driver", d.Name(), "err", err)
			}
		}
	}
}

func nextBackoff(d time.Duration) time.Duration {
	switch {
	case d <= 0:
		return time.Second
	case d >= 64*time.Second:
		return 64 * time.Second
	}
	return 2 * d
}
