package units

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Options tune a Manager. The zero value is usable.
type Options struct {
	Logger *slog.Logger
	// JobTimeout bounds the wait for one job result (default 90 s).
	JobTimeout time.Duration
	// RollTimeout bounds how long one instance may take, after its job, to
	// be active (and healthy); past it a roll halts (default 60 s).
	RollTimeout time.Duration
	// Settle is how long an instance must stay active after its job before
	// it counts as up: a job "done" does not mean the service stays up
	// (default 300 ms).
	Settle time.Duration
	// Healthy, when set, is polled after an instance is active during a
	// rolling restart until it returns nil (e.g. "healthy in the proxy
	// pool") or RollTimeout passes. restarted is when the restart job was
	// issued: a health result older than it is about the old process.
	Healthy func(ctx context.Context, unit string, restarted time.Time) error
	// Parallel bounds concurrent start/stop jobs (default 16).
	Parallel int
	// Poll is the interval of state polls (default 50 ms).
	Poll time.Duration
	// Progress, when set, is called on every state poll while Set waits
	// for instances, and every Poll while a job runs: a long rolling
	// restart or a slow stop is progress, not a stuck agent (the agent's
	// watchdog heartbeat).
	Progress func()
	// Quiet is how long after a Set resync signals (reloads, unit file
	// changes, likely gitgw's own) are not reported (default 1 s).
	Quiet time.Duration
}

// Event is drift seen through the subscription: an instance gitgw manages
// stopped or failed while no Set was running. Unit is empty when the
// change is not tied to one unit (a daemon-reload or unit files enabled,
// disabled or masked by someone else: a mask shows this way) or when
// signals were lost: resync everything.
type Event struct {
	Unit        string
	ActiveState string
	SubState    string
	LoadState   string
	// File, when set, is a unit file of the config (relative to the unit
	// directory) changed by hand, and Change says how: "edited",
	// "removed".
	File, Change string
}

// Manager reconciles template units and their instances.
type Manager struct {
	conn Conn
	opts Options
	log  *slog.Logger

	events   chan Event
	cancel   context.CancelFunc
	done     chan struct{}
	fw       fileWatch
	fileDone chan struct{}

	setMu sync.Mutex // one Set at a time

	mu      sync.Mutex
	watched map[string]bool
	busy    int
	// quietUntil: resync signals (reloads, unit file changes) caused by
	// gitgw's own Set may arrive just after it; they are not drift.
	quietUntil time.Time
}

// New returns a manager that talks to systemd through conn and watches, until
// ctx ends or Close, the instances of the last config given to Set or Plan.
// The caller keeps ownership of conn.
func New(ctx context.Context, conn Conn, opts Options) (*Manager, error) {
	if opts.JobTimeout == 0 {
		opts.JobTimeout = 90 * time.Second
	}
	if opts.RollTimeout == 0 {
		opts.RollTimeout = 60 * time.Second
	}
	if opts.Settle == 0 {
		opts.Settle = 300 * time.Millisecond
	}
	if opts.Parallel == 0 {
		opts.Parallel = 16
	}
	if opts.Poll == 0 {
		opts.Poll = 50 * time.Millisecond
	}
	if opts.Quiet == 0 {
		opts.Quiet = time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{
		conn:     conn,
		opts:     opts,
		log:      log.With("component", "units"),
		events:   make(chan Event, 64),
		done:     make(chan struct{}),
		fileDone: make(chan struct{}),
		watched:  map[string]bool{},
	}
	wctx, cancel := context.WithCancel(ctx)
	m.cancel = cancel
	changes, err := conn.Subscribe(wctx)
	if err != nil {
		cancel()
		return nil, err
	}
	if w, err := fsnotify.NewWatcher(); err != nil {
		m.log.Warn("unit files not watched: edits by hand are seen at the next resync", "err", err)
	} else {
		m.fw.w = w
	}
	go m.watchFiles(wctx)
	go m.watch(changes)
	return m, nil
}

// Close stops watching. It does not close the connection.
func (m *Manager) Close() error {
	m.cancel()
	<-m.done
	return nil
}

// Events delivers drift seen through the subscription. Events are kicks:
// when the reader is slow they are dropped (the next Observe sees the
// state anyway). The channel is closed after Close.
func (m *Manager) Events() <-chan Event { return m.events }

func (m *Manager) watch(changes <-chan UnitChange) {
	defer close(m.done)
	defer func() {
		<-m.fileDone // its sender stops with the same context
		close(m.events)
	}()
	for ch := range changes {
		m.mu.Lock()
		relevant := ch.Name == "" || m.watched[ch.Name]
		busy := m.busy > 0 || (ch.Name == "" && time.Now().Before(m.quietUntil))
		m.mu.Unlock()
		if !relevant || busy {
			continue
		}
		if ch.Name != "" {
			switch {
			case ch.ActiveState == "inactive", ch.ActiveState == "failed", ch.LoadState == "masked":
			default:
				continue
			}
		}
		ev := Event{Unit: ch.Name, ActiveState: ch.ActiveState, SubState: ch.SubState, LoadState: ch.LoadState}
		m.log.Warn("drift seen", "unit", ev.Unit, "active", ev.ActiveState, "sub", ev.SubState, "load", ev.LoadState)
		select {
		case m.events <- ev:
		default:
		}
	}
}

func (m *Manager) setWatched(cfg Config) {
	m.watchFilesOf(cfg)
	w := map[string]bool{}
	for _, t := range cfg.Templates {
		for _, u := range t.UnitNames() {
			w[u] = true
		}
	}
	m.mu.Lock()
	m.watched = w
	m.mu.Unlock()
}

func (m *Manager) progress() {
	if m.opts.Progress != nil {
		m.opts.Progress()
	}
}

// progressWhile calls Progress every Poll until the returned stop is
// called: a job is a wait bounded by JobTimeout (a slow stop is not a
// stuck agent).
func (m *Manager) progressWhile(ctx context.Context) (stop func()) {
	if m.opts.Progress == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(m.opts.Poll)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
				m.opts.Progress()
			}
		}
	}()
	return func() { cancel(); <-done }
}

func (m *Manager) setBusy(d int) {
	m.mu.Lock()
	m.busy += d
	if m.busy == 0 {
		m.quietUntil = time.Now().Add(m.opts.Quiet)
	}
	m.mu.Unlock()
}

// Observe reads the unit files and the state of every instance the config
// names or gitgw owns.
func (m *Manager) Observe(ctx context.Context, cfg Config) (Observed, error) {
	dir := cfg.unitDir()
	obs := Observed{Files: map[string]FileStatus{}, Units: map[string]UnitState{}}
	owned, err := ownedFiles(dir)
	if err != nil {
		return obs, err
	}
	names := map[string]bool{}
	for rel := range owned {
		names[rel] = true
	}
	for _, t := range cfg.Templates {
		names[t.FileName()] = true
	}
	for _, d := range cfg.DropIns {
		names[d.FileName()] = true
	}
	var templates []string
	for rel := range names {
		p := filepath.Join(dir, rel)
		b, err := readFile(p)
		if err != nil {
			return obs, err
		}
		fs := FileStatus{Content: b}
		if b != nil {
			fs.Own = ParseOwnership(b)
			if st, err := os.Stat(p); err == nil {
				fs.ModTime = st.ModTime()
			}
		}
		obs.Files[rel] = fs
		if strings.HasSuffix(rel, "@.service") && fs.Own.Owned {
			templates = append(templates, rel)
		}
	}
	slices.Sort(templates)

	// Units: the desired instances, and whatever systemd knows of
	// instances of owned templates (to find the ones to remove). Only
	// loaded units are asked about: loading a unit just to hear "inactive"
	// costs systemd ~0.5 ms of CPU each time (it is unloaded again at
	// once). A unit that is not loaded is inactive, not failed, and not
	// wanted by a loaded target.
	want := map[string]bool{}
	for _, t := range cfg.Templates {
		for _, u := range t.UnitNames() {
			want[u] = true
		}
	}
	listed := map[string]UnitState{}
	var patterns []string
	for _, t := range templates {
		patterns = append(patterns, strings.TrimSuffix(t, "@.service")+"@*.service")
	}
	for _, t := range cfg.Templates {
		if !slices.Contains(templates, t.FileName()) {
			patterns = append(patterns, t.Name+"@*.service")
		}
	}
	if len(patterns) > 0 {
		found, err := m.conn.List(ctx, patterns)
		if err != nil {
			return obs, err
		}
		for _, u := range found {
			if templateFile(u.Name) == "" || strings.Contains(u.Name, "@.") {
				continue
			}
			listed[u.Name] = u
			if slices.Contains(templates, templateFile(u.Name)) {
				want[u.Name] = true
			}
		}
	}
	var query []string
	for _, u := range slices.Sorted(maps.Keys(want)) {
		if l, ok := listed[u]; ok && l.LoadState != "" {
			query = append(query, u)
			continue
		}
		st := UnitState{Name: u, LoadState: "loaded", ActiveState: "inactive", SubState: "dead", UnitFileState: "disabled"}
		if l, ok := listed[u]; ok && strings.HasPrefix(l.UnitFileState, "masked") {
			st.LoadState, st.UnitFileState = "masked", l.UnitFileState
		}
		obs.Units[u] = st
	}
	states, err := m.conn.States(ctx, query)
	if err != nil {
		return obs, err
	}
	var wanted map[string]bool
	for _, st := range states {
		if st.UnitFileState == "" && (st.LoadState == "loaded" || st.LoadState == "masked") {
			if wanted == nil {
				if wanted, err = m.conn.Wanted(ctx, installTargets(cfg, obs.Files)); err != nil {
					return obs, err
				}
			}
			st.UnitFileState = "disabled"
			if st.LoadState == "masked" {
				st.UnitFileState = "masked"
			} else if wanted[st.Name] {
				st.UnitFileState = "enabled"
			}
		}
		obs.Units[st.Name] = st
		// A template cannot be queried itself: its instances say whether
		// systemd still runs on an older load of the file.
		if fs, ok := obs.Files[templateFile(st.Name)]; ok && st.NeedDaemonReload && st.LoadState == "loaded" {
			fs.NeedDaemonReload = true
			obs.Files[templateFile(st.Name)] = fs
		}
	}
	return obs, nil
}

// Plan observes the node and returns what Set would do, one Action per
// file and instance (no-ops included).
func (m *Manager) Plan(ctx context.Context, cfg Config) ([]Action, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m.setWatched(cfg)
	obs, err := m.Observe(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return Diff(cfg, obs), nil
}

// Set makes the node match cfg: template files written (only when their
// content changed) and daemon-reload; new instances enabled and started;
// instances stopped or failed by hand started again (drift mode correct);
// instances of a changed template restarted one at a time, each waited for
// until active (and Healthy), the roll halting at the first that is not;
// instances dropped from the site stopped and disabled; files dropped from
// the site removed. Files gitgw does not own are never touched. Idempotent;
// returns errors.Join of every failure.
func (m *Manager) Set(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	m.setMu.Lock()
	defer m.setMu.Unlock()
	m.setBusy(1)
	defer m.setBusy(-1)
	m.setWatched(cfg)
	defer m.watchFilesOf(cfg) // the directories Set created

	obs, err := m.Observe(ctx, cfg)
	if err != nil {
		return err
	}
	acts := Diff(cfg, obs)
	dir := cfg.unitDir()
	var errs []error
	reload := false
	templates := map[string]Template{}
	for _, t := range cfg.Templates {
		templates[t.FileName()] = t
	}
	dropins := map[string]DropIn{}
	for _, d := range cfg.DropIns {
		dropins[d.FileName()] = d
	}

	// 1. Files (add before delete), enable, one reload.
	badTemplate := map[string]bool{}
	var enable []string
	for _, a := range acts {
		switch {
		case a.Op == OpBlocked && a.Kind == KindFile:
			errs = append(errs, fmt.Errorf("units: %s: %w: left alone", filepath.Join(dir, a.ID), ErrNotOwned))
		case a.Op == OpBlocked:
			m.log.Warn("instance left alone", "unit", a.ID, "reason", a.Reason)
		case a.Kind == KindFile && a.Do == "write":
			var content []byte
			if t, ok := templates[a.ID]; ok {
				content = RenderUnit(t)
			} else {
				content = RenderDropIn(dropins[a.ID])
			}
			if err := writeAtomic(filepath.Join(dir, a.ID), content); err != nil {
				errs = append(errs, err)
				badTemplate[a.ID] = true
				continue
			}
			m.log.Info("unit file written", "file", a.ID, "reason", a.Reason)
			if a.Drift {
				keepAge(filepath.Join(dir, a.ID), a.ID, obs)
			} else {
				// A fine-grained mtime (the kernel's is coarse): instances
				// that started before it run older content (see stale).
				now := time.Now()
				_ = os.Chtimes(filepath.Join(dir, a.ID), now, now)
			}
			reload = true
		case a.Kind == KindFile && a.Do == "reload":
			reload = true
		case a.Kind == KindInstance && strings.Contains(a.Do, "enable") && !badTemplate[a.Template]:
			enable = append(enable, a.ID)
		}
	}
	if len(enable) > 0 {
		if err := m.conn.Enable(ctx, enable); err != nil {
			errs = append(errs, err)
		}
		reload = true
	}
	if reload {
		if err := m.conn.Reload(ctx); err != nil {
			return errors.Join(append(errs, err)...)
		}
	}

	// 2. Start what should run: new instances and drift, in parallel.
	var starts []Action
	rolls := map[string][]Action{}
	for _, a := range acts {
		if a.Kind != KindInstance || badTemplate[a.Template] {
			continue
		}
		switch {
		case strings.HasSuffix(a.Do, "start") && !strings.HasSuffix(a.Do, "restart"):
			starts = append(starts, a)
		case strings.HasSuffix(a.Do, "restart"):
			rolls[a.Template] = append(rolls[a.Template], a)
		}
	}
	errs = append(errs, m.startAll(ctx, starts)...)

	// 3. Rolling restarts, one template after another, in config order.
	for _, t := range cfg.Templates {
		if r := rolls[t.FileName()]; len(r) > 0 {
			if err := m.roll(ctx, t, r); err != nil {
				errs = append(errs, err)
			}
		}
	}

	// 4. Remove what the site dropped: instances, then files.
	var gone []string
	for _, a := range acts {
		if a.Kind == KindInstance && a.Op == OpDelete {
			gone = append(gone, a.ID)
		}
	}
	errs = append(errs, m.stopAll(ctx, gone)...)
	removed := false
	for _, a := range acts {
		if a.Kind == KindFile && a.Op == OpDelete {
			if err := removeOwned(filepath.Join(dir, a.ID)); err != nil {
				errs = append(errs, err)
				continue
			}
			m.log.Info("unit file removed", "file", a.ID)
			removed = true
		}
	}
	if removed || len(gone) > 0 {
		if err := m.conn.Reload(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// startAll queues the start jobs concurrently, then waits for every
// started instance to be up, polling all of them at once.
func (m *Manager) startAll(ctx context.Context, acts []Action) []error {
	errs := make([]error, len(acts))
	sem := make(chan struct{}, m.opts.Parallel)
	var wg sync.WaitGroup
	for i, a := range acts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if strings.Contains(a.Do, "reset-failed") {
				if err := m.conn.ResetFailed(ctx, a.ID); err != nil {
					errs[i] = err
					return
				}
			}
			errs[i] = m.job(ctx, Start, a.ID)
		}()
	}
	wg.Wait()
	var started []string
	for i, a := range acts {
		if errs[i] == nil {
			started = append(started, a.ID)
		}
	}
	up := m.waitAllUp(ctx, started)
	for i, a := range acts {
		if errs[i] != nil {
			continue
		}
		if err := up[a.ID]; err != nil {
			errs[i] = fmt.Errorf("units: start %s: %w", a.ID, err)
			continue
		}
		m.log.Info("instance started", "unit", a.ID, "reason", a.Reason)
	}
	return errs
}

// waitAllUp waits until each unit has been active for Settle, failing a
// unit at once when it fails or stops, or when RollTimeout passes.
func (m *Manager) waitAllUp(ctx context.Context, units []string) map[string]error {
	res := map[string]error{}
	if len(units) == 0 {
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, m.opts.RollTimeout)
	defer cancel()
	pending := slices.Clone(units)
	since := map[string]time.Time{}
	last := map[string]UnitState{}
	tick := time.NewTicker(m.opts.Poll)
	defer tick.Stop()
	for len(pending) > 0 {
		m.progress()
		if sts, err := m.conn.Brief(ctx, pending); err == nil {
			for _, st := range sts {
				last[st.Name] = st
				switch st.ActiveState {
				case "active":
					if since[st.Name].IsZero() {
						since[st.Name] = time.Now()
					}
					if time.Since(since[st.Name]) >= m.opts.Settle {
						res[st.Name] = nil
					}
				case "failed", "inactive":
					res[st.Name] = fmt.Errorf("%s/%s%s", st.ActiveState, st.SubState, resultNote(st))
				default:
					delete(since, st.Name)
				}
			}
			pending = slices.DeleteFunc(pending, func(u string) bool { _, done := res[u]; return done })
			if len(pending) == 0 {
				break
			}
		}
		select {
		case <-ctx.Done():
			for _, u := range pending {
				st := last[u]
				res[u] = fmt.Errorf("not active after %s (state %s/%s%s)", m.opts.RollTimeout, st.ActiveState, st.SubState, resultNote(st))
			}
			return res
		case <-tick.C:
		}
	}
	return res
}

// stopAll stops instances concurrently, then disables them.
func (m *Manager) stopAll(ctx context.Context, units []string) []error {
	if len(units) == 0 {
		return nil
	}
	errs := make([]error, len(units)+1)
	sem := make(chan struct{}, m.opts.Parallel)
	var wg sync.WaitGroup
	for i, u := range units {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = m.job(ctx, Stop, u)
			_ = m.conn.ResetFailed(ctx, u) // a stopped instance may be left "failed"; clear it
			if errs[i] == nil {
				m.log.Info("instance stopped", "unit", u, "reason", "no longer in site")
			}
		}()
	}
	wg.Wait()
	errs[len(units)] = m.conn.Disable(ctx, units)
	return errs
}

// roll restarts a template's instances one at a time. Before each restart
// every other instance of the template must be up, so that never more than
// one is down; an instance that is not back within RollTimeout halts it.
func (m *Manager) roll(ctx context.Context, t Template, acts []Action) error {
	for i, a := range acts {
		others := slices.DeleteFunc(t.UnitNames(), func(u string) bool { return u == a.ID })
		sts, err := m.conn.Brief(ctx, others)
		if err != nil {
			return fmt.Errorf("units: roll %s: %w", t.FileName(), err)
		}
		for _, st := range sts {
			if st.ActiveState != "active" && !st.Masked() {
				return fmt.Errorf("units: roll %s halted before %s: %s is %s/%s%s; not restarted: %s",
					t.FileName(), a.ID, st.Name, st.ActiveState, st.SubState, resultNote(st), names(acts[i:]))
			}
		}
		m.log.Info("rolling restart", "unit", a.ID, "step", i+1, "of", len(acts))
		restarted := time.Now()
		err = m.job(ctx, Restart, a.ID)
		if err == nil {
			err = m.waitUp(ctx, a.ID, restarted, t.RollTimeout)
		}
		if err != nil {
			rest := ""
			if i+1 < len(acts) {
				rest = "; not restarted: " + names(acts[i+1:])
			}
			return fmt.Errorf("units: roll %s halted at %s: %w%s", t.FileName(), a.ID, err, rest)
		}
	}
	return nil
}

func names(acts []Action) string {
	var s []string
	for _, a := range acts {
		s = append(s, a.ID)
	}
	return strings.Join(s, " ")
}

// job runs one job with the job timeout and turns a bad result into an
// error that says why.
func (m *Manager) job(ctx context.Context, op JobOp, unit string) error {
	jctx, cancel := context.WithTimeout(ctx, m.opts.JobTimeout)
	defer cancel()
	defer m.progressWhile(jctx)()
	res, err := m.conn.Job(jctx, op, unit)
	if err != nil {
		if strings.Contains(err.Error(), "UnitMasked") || strings.Contains(err.Error(), "is masked") {
			return fmt.Errorf("units: %s %s: unit is masked: %w", op, unit, err)
		}
		return err
	}
	if res == "done" {
		return nil
	}
	why := ""
	if sts, err := m.conn.Brief(ctx, []string{unit}); err == nil && len(sts) == 1 {
		why = resultNote(sts[0])
	}
	return fmt.Errorf("units: %s %s: job %s%s", op, unit, res, why)
}

func resultNote(st UnitState) string {
	switch st.Result {
	case "", "success":
		return ""
	case "start-limit-hit":
		return " (start-limit-hit: started too often in a short time; systemd refuses until reset-failed or the interval passes)"
	default:
		return " (result " + st.Result + ")"
	}
}

// waitUp waits until the unit has been active for Settle (and, in a roll,
// restarted at restarted (not zero), Healthy passes), failing at once when
// it fails or stops.
func (m *Manager) waitUp(ctx context.Context, unit string, restarted time.Time, timeout time.Duration) error {
	rolling := !restarted.IsZero()
	if timeout <= 0 {
		timeout = m.opts.RollTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var since time.Time
	var last UnitState
	var unhealthy error
	tick := time.NewTicker(m.opts.Poll)
	defer tick.Stop()
	for {
		m.progress()
		sts, err := m.conn.Brief(ctx, []string{unit})
		if err == nil && len(sts) == 1 {
			last = sts[0]
			switch last.ActiveState {
			case "active":
				if since.IsZero() {
					since = time.Now()
				}
				if time.Since(since) >= m.opts.Settle {
					if !rolling || m.opts.Healthy == nil {
						return nil
					}
					if unhealthy = m.opts.Healthy(ctx, unit, restarted); unhealthy == nil {
						return nil
					}
				}
			case "failed", "inactive":
				return fmt.Errorf("%s/%s%s", last.ActiveState, last.SubState, resultNote(last))
			default:
				since = time.Time{}
			}
		}
		select {
		case <-ctx.Done():
			if unhealthy != nil && last.ActiveState == "active" {
				return fmt.Errorf("active but not healthy after %s: %w", timeout, unhealthy)
			}
			return fmt.Errorf("not active after %s (state %s/%s%s)", timeout, last.ActiveState, last.SubState, resultNote(last))
		case <-tick.C:
		}
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// keepAge backdates a unit file restored after a hand edit to before its
// running instances started: they run the content gitgw wrote, and the
// restore must not read as a change that needs a rolling restart.
func keepAge(path, file string, obs Observed) {
	var oldest time.Time
	for name, st := range obs.Units {
		if templateFile(name) == file && st.ActiveState == "active" && !st.ActiveEnter.IsZero() &&
			(oldest.IsZero() || st.ActiveEnter.Before(oldest)) {
			oldest = st.ActiveEnter
		}
	}
	if !oldest.IsZero() {
		t := oldest.Add(-time.Second)
		_ = os.Chtimes(path, t, t)
	}
}

// installTargets are the targets templates are enabled into: the config's,
// and those of the owned template files on disk (for instances the site
// dropped).
func installTargets(cfg Config, files map[string]FileStatus) []string {
	var out []string
	for _, t := range cfg.Templates {
		out = append(out, t.Install.WantedBy...)
		out = append(out, t.Install.RequiredBy...)
	}
	for name, fs := range files {
		if !fs.Own.Owned || !strings.HasSuffix(name, "@.service") {
			continue
		}
		for line := range strings.SplitSeq(string(fs.Content), "\n") {
			for _, key := range []string{"WantedBy=", "RequiredBy="} {
				if v, ok := strings.CutPrefix(strings.TrimSpace(line), key); ok {
					out = append(out, strings.Fields(v)...)
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
