package units

import (
	"context"
	"time"
)

// Conn is what the manager needs from systemd: the seam that the real D-Bus
// client (Dial) and the tests' recording fake implement.
type Conn interface {
	// Reload is daemon-reload.
	Reload(ctx context.Context) error
	// Job queues a start, stop or restart job (mode "replace") and waits
	// for its result: "done", "failed", "canceled", "timeout",
	// "dependency", "skipped". err is set when the job could not be queued
	// (a masked or unknown unit) or ctx ended first.
	Job(ctx context.Context, op JobOp, unit string) (result string, err error)
	// Enable and Disable change the [Install] symlinks of unit files
	// (instances included). They take effect for UnitFileState after Reload.
	Enable(ctx context.Context, units []string) error
	Disable(ctx context.Context, units []string) error
	// ResetFailed clears a unit's failed state and its start rate counter.
	ResetFailed(ctx context.Context, unit string) error
	// States returns the state of each named unit (a unit that was never
	// started is loaded/inactive, an unknown one not-found), in the order
	// given. UnitFileState may be left empty (asking it is costly on
	// systemd's side; Observe derives "enabled" from Wanted), and so may
	// NeedDaemonReload and ActiveEnter of an inactive unit.
	States(ctx context.Context, units []string) ([]UnitState, error)
	// Brief is States limited to LoadState, ActiveState, SubState (and
	// Result when failed): cheap enough to poll.
	Brief(ctx context.Context, units []string) ([]UnitState, error)
	// Wanted returns the set of units the targets want or require: an
	// inactive instance is enabled when its template's WantedBy or
	// RequiredBy target wants it.
	Wanted(ctx context.Context, targets []string) (map[string]bool, error)
	// List returns the units matching the glob patterns that systemd has
	// loaded, in any state (LoadState, ActiveState, SubState set), and the
	// unit files matching them that are not loaded (LoadState empty,
	// UnitFileState set, e.g. "masked"). Cheap: asking about a unit that is
	// not loaded makes systemd load it, which List avoids.
	List(ctx context.Context, patterns []string) ([]UnitState, error)
	// Subscribe streams unit changes until ctx ends, then closes the
	// channel. A change with an empty Name means "changes were lost:
	// resync everything". Implementations must call systemd's Subscribe():
	// on the system bus, signals need it.
	Subscribe(ctx context.Context) (<-chan UnitChange, error)
}

// JobOp is a job type.
type JobOp string

// The job types the manager uses.
const (
	Start   JobOp = "start"
	Stop    JobOp = "stop"
	Restart JobOp = "restart"
)

// UnitState is what systemd reports about one unit.
type UnitState struct {
	Name        string
	LoadState   string // loaded, not-found, masked, error
	ActiveState string // active, inactive, failed, activating, deactivating, reloading
	SubState    string // running, dead, exited, auto-restart, …
	// UnitFileState: enabled, disabled, static, masked, indirect, "" …
	UnitFileState    string
	FragmentPath     string
	NeedDaemonReload bool
	// NRestarts counts automatic restarts (Restart=); a crash shows only
	// here (and as a new MainPID).
	NRestarts uint32
	// Result is the service's last result: success, exit-code, signal,
	// timeout, start-limit-hit, …
	Result string
	// ActiveEnter is when the unit last entered "active" (zero for an
	// inactive unit: States does not ask).
	ActiveEnter time.Time
}

// Running reports whether the unit is up or on its way up.
func (s UnitState) Running() bool {
	switch s.ActiveState {
	case "active", "activating", "reloading":
		return true
	}
	return false
}

// Enabled reports whether the unit file is enabled (persistently or at runtime).
func (s UnitState) Enabled() bool {
	switch s.UnitFileState {
	case "enabled", "enabled-runtime", "linked", "linked-runtime", "alias":
		return true
	}
	return false
}

// Masked reports whether the unit is masked.
func (s UnitState) Masked() bool {
	return s.LoadState == "masked" || s.UnitFileState == "masked" || s.UnitFileState == "masked-runtime"
}

// UnitChange is one change signalled by systemd. Empty fields did not
// change (or were not part of the signal).
type UnitChange struct {
	Name        string
	ActiveState string
	SubState    string
	LoadState   string
}
