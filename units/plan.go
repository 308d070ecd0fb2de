package units

import (
	"bytes"
	"path"
	"slices"
	"strings"
	"time"
)

// Op is what Set would do to one resource.
type Op string

// The operations of a plan.
const (
	OpCreate Op = "create"
	OpUpdate Op = "update"
	OpDelete Op = "delete"
	OpNoOp   Op = "no-op"
	// OpBlocked: gitgw cannot or will not act (a file it does not own, a
	// masked instance). Reported, never forced.
	OpBlocked Op = "blocked"
)

// Kinds of resources in a plan.
const (
	KindFile     = "unit_file"
	KindInstance = "unit_instance"
)

// Action is one planned change. Set carries out exactly the actions whose
// Op is create, update or delete.
type Action struct {
	Kind string // KindFile or KindInstance
	// ID is the file name relative to the unit directory, or the unit name.
	ID string
	Op Op
	// Do says precisely what Set does: "write", "reload", "enable+start",
	// "start", "enable", "restart", "stop+disable", "remove".
	Do     string
	Before any
	After  any
	Reason string
	// Diff is the unified diff of a unit file (Before → After).
	Diff []string
	// Drift: the difference was made by hand (stopped, failed, edited).
	Drift bool
	// Template is the template file an instance belongs to.
	Template string
}

// FileStatus is one observed unit file gitgw owns or would write.
type FileStatus struct {
	Content []byte // nil: absent
	ModTime time.Time
	Own     Ownership
	// NeedDaemonReload is systemd's view of the file (templates only).
	NeedDaemonReload bool
}

// InstanceStatus is the summary of an instance shown in plans.
type InstanceStatus struct {
	Enabled   bool   `json:"enabled"`
	Active    string `json:"active"`
	Sub       string `json:"sub,omitempty"`
	Load      string `json:"load,omitempty"`
	NRestarts uint32 `json:"nrestarts,omitempty"`
	Result    string `json:"result,omitempty"`
}

// FileSummary is the summary of a unit file shown in plans.
type FileSummary struct {
	SHA256 string `json:"sha256"`
	Owned  bool   `json:"owned"`
}

// Observed is what the manager found on the node.
type Observed struct {
	// Files by path relative to the unit directory: every file the config
	// names and every file gitgw owns there.
	Files map[string]FileStatus
	// Units by name: the config's instances and every instance of an
	// owned template systemd knows.
	Units map[string]UnitState
}

// Diff compares the config with what Observe found: one Action per unit
// file and instance the config names or gitgw owns, no-ops included, in
// the order Set carries them out (templates with their instances, drop-ins,
// then what goes). Drift follows the config's drift modes: in report mode a
// change made by hand is an OpNoOp marked Drift. It is pure.
func Diff(cfg Config, obs Observed) []Action {
	var acts []Action
	report := cfg.drift() == DriftReport
	driftFor := func(report bool) func(Action) Action {
		return func(a Action) Action {
			a.Drift = true
			if report {
				a.Op = OpNoOp
				a.Reason += " (drift mode report: left as is)"
				a.Do = ""
			}
			return a
		}
	}
	drift := driftFor(report) // drop-ins follow the config's mode
	desiredFiles := map[string]bool{}
	desiredUnits := map[string]bool{}

	for _, t := range cfg.Templates {
		drift := driftFor(t.drift(cfg) == DriftReport)
		file := t.FileName()
		desiredFiles[file] = true
		want := RenderUnit(t)
		have := obs.Files[file]
		a := Action{Kind: KindFile, ID: file, After: FileSummary{SHA256: contentHash(want), Owned: true}}
		changed := false
		blocked := false
		switch {
		case have.Content == nil:
			a.Op, a.Do, a.Reason = OpCreate, "write", "new in site"
			a.Diff = UnifiedDiff(file, nil, want)
			changed = true
		case !have.Own.Owned:
			a.Op, a.Reason, a.Before = OpBlocked, "exists and is not owned by gitgw: left alone", FileSummary{SHA256: sha(have.Content)}
			blocked = true
		case bytes.Equal(have.Content, want) && have.NeedDaemonReload:
			a = drift(Action{Kind: KindFile, ID: file, Op: OpUpdate, Do: "reload", Before: a.After, After: a.After,
				Reason: "systemd has not loaded the file (NeedDaemonReload)"})
		case bytes.Equal(have.Content, want):
			a.Op, a.Before = OpNoOp, a.After
		case have.Own.Written == contentHash(want):
			a.Op, a.Do, a.Reason = OpUpdate, "write", "edited by hand"
			a.Before = FileSummary{SHA256: sha(have.Content), Owned: true}
			a.Diff = UnifiedDiff(file, have.Content, want)
			a = drift(a)
		default:
			a.Op, a.Do, a.Reason = OpUpdate, "write", "template changed in site"
			a.Before = FileSummary{SHA256: have.Own.Written, Owned: true}
			a.Diff = UnifiedDiff(file, have.Content, want)
			changed = true
		}
		acts = append(acts, a)

		for _, u := range t.UnitNames() {
			desiredUnits[u] = true
			acts = append(acts, planInstance(t, u, obs, have, changed, blocked, drift))
		}
	}
	for _, d := range cfg.DropIns {
		file := d.FileName()
		desiredFiles[file] = true
		want := RenderDropIn(d)
		have := obs.Files[file]
		a := Action{Kind: KindFile, ID: file, After: FileSummary{SHA256: contentHash(want), Owned: true}}
		switch {
		case have.Content == nil:
			a.Op, a.Do, a.Reason, a.Diff = OpCreate, "write", "new in site", UnifiedDiff(file, nil, want)
		case !have.Own.Owned:
			a.Op, a.Reason = OpBlocked, "exists and is not owned by gitgw: left alone"
		case bytes.Equal(have.Content, want):
			a.Op, a.Before = OpNoOp, a.After
		case have.Own.Written == contentHash(want):
			a.Op, a.Do, a.Reason, a.Diff = OpUpdate, "write", "edited by hand", UnifiedDiff(file, have.Content, want)
			a = drift(a)
		default:
			a.Op, a.Do, a.Reason, a.Diff = OpUpdate, "write", "drop-in changed in site", UnifiedDiff(file, have.Content, want)
		}
		acts = append(acts, a)
	}

	// Instances of owned templates that the site no longer lists.
	var gone []string
	for name, st := range obs.Units {
		if desiredUnits[name] {
			continue
		}
		tmpl := templateFile(name)
		if tmpl == "" || !obs.Files[tmpl].Own.Owned {
			continue // not an instance of a template gitgw owns
		}
		if st.Masked() || (!st.Running() && !st.Enabled() && st.ActiveState != "failed") {
			continue
		}
		gone = append(gone, name)
	}
	slices.Sort(gone)
	for _, name := range gone {
		st := obs.Units[name]
		acts = append(acts, Action{Kind: KindInstance, ID: name, Op: OpDelete, Do: "stop+disable",
			Before: summary(st), Reason: "no longer in site", Template: templateFile(name)})
	}
	// Owned files the site no longer names.
	var stale []string
	for file, fs := range obs.Files {
		if !desiredFiles[file] && fs.Own.Owned {
			stale = append(stale, file)
		}
	}
	slices.Sort(stale)
	for _, file := range stale {
		fs := obs.Files[file]
		acts = append(acts, Action{Kind: KindFile, ID: file, Op: OpDelete, Do: "remove", Reason: "no longer in site",
			Before: FileSummary{SHA256: fs.Own.Written, Owned: true}, Diff: UnifiedDiff(file, fs.Content, nil)})
	}
	return acts
}

func planInstance(t Template, u string, obs Observed, file FileStatus, changed, blocked bool, drift func(Action) Action) Action {
	st, seen := obs.Units[u]
	a := Action{Kind: KindInstance, ID: u, Template: t.FileName(), Before: summary(st),
		After: InstanceStatus{Enabled: true, Active: "active"}}
	if !seen {
		a.Before = nil
	}
	switch {
	case blocked:
		a.Op, a.Reason = OpBlocked, "template "+t.FileName()+" is not owned by gitgw"
	case st.Masked():
		a.Op, a.Reason, a.Drift = OpBlocked, "masked by hand: left masked (unmask it to hand it back to gitgw)", true
	case !st.Enabled() && !st.Running():
		a.Op, a.Do, a.Reason = OpCreate, "enable+start", "new in site"
		if st.ActiveState == "failed" {
			a.Do = "reset-failed+enable+start"
		}
	case !st.Running():
		why := "stopped by hand"
		if st.ActiveState == "failed" {
			why = "failed (" + cmpOr(st.Result, "unknown result") + ")"
		}
		a = drift(Action{Kind: a.Kind, ID: u, Template: a.Template, Before: a.Before, After: a.After,
			Op: OpUpdate, Do: "start", Reason: why})
		if st.ActiveState == "failed" && a.Do != "" {
			a.Do = "reset-failed+start"
		}
	case changed || stale(st, file):
		a.Op, a.Do, a.Reason = OpUpdate, "restart", "template changed: rolling restart"
		if !st.Enabled() {
			a.Do = "enable+restart"
		}
	case !st.Enabled():
		a = drift(Action{Kind: a.Kind, ID: u, Template: a.Template, Before: a.Before, After: a.After,
			Op: OpUpdate, Do: "enable", Reason: "disabled by hand"})
	default:
		a.Op = OpNoOp
	}
	return a
}

// stale: the instance runs on a template file gitgw wrote after it started
// (a roll that halted earlier). A file restored after a hand edit is
// backdated (keepAge) and a file being edited by hand does not count.
func stale(st UnitState, file FileStatus) bool {
	return st.ActiveState == "active" && !st.ActiveEnter.IsZero() && file.Own.Owned && !file.Own.Edited &&
		!file.ModTime.IsZero() && st.ActiveEnter.Before(file.ModTime)
}

func summary(st UnitState) InstanceStatus {
	return InstanceStatus{Enabled: st.Enabled(), Active: st.ActiveState, Sub: st.SubState, Load: st.LoadState,
		NRestarts: st.NRestarts, Result: st.Result}
}

// templateFile is "app@.service" for "app@8080.service", "" for a unit that
// is not a template instance.
func templateFile(unit string) string {
	at := strings.IndexByte(unit, '@')
	ext := path.Ext(unit)
	if at <= 0 || ext == "" || at+1 >= len(unit)-len(ext) {
		return ""
	}
	return unit[:at+1] + ext
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
