package vrrp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/gitgw/gitgw/internal/statefile"
)

// A restart keeps mastership. The proxy hands its connections to the next
// agent across `systemctl restart` (systemd's fd store); if the master
// left with priority 0 as on a stop, the VIP would move to the peer and
// those connections would never be reached again. So an agent that knows
// it is being restarted (the caller asks systemd which job runs on the
// unit: units.PendingJob) stops with StopForRestart instead of Stop:
//
//   - every instance it is master of sends one last advert at its own
//     priority (the peer's Master_Down_Timer starts afresh from now), then
//     stops without priority 0, leaving its VIPs in place;
//   - it writes RestartFileName: the masters, their priority, advert
//     interval and the time, and until when the next agent may resume;
//   - vrrp-state.json keeps listing them, so that a release that finds the
//     restart record stale or void still hands them over.
//
// The guardian and `gitgw vrrp release` honour a fresh record (they
// release nothing it lists). The next engine reads the record in New and
// removes it: while it is fresh, it keeps advertising the recorded masters
// at once (a holder: the agent's first pass may come later than the peer's
// timer), and an instance that Set starts with the same identity resumes
// as master (one gratuitous ARP, VIPs kept) instead of starting as backup.
//
// The window is the peer's Master_Down_Interval from our last advert
// (at least 3 × the interval: the skew depends on the peer's priority,
// which we do not know) minus half an interval of margin. Failure modes:
//
//   - The next agent is slower than that (or never starts): the peer takes
//     over by its own timer, as for a crash without a guardian. The next
//     engine finds the record stale, starts as backup and removes the VIPs
//     it had left; a resumed instance that still hears a peer master
//     follows the normal rules (a higher priority wins), so there is no
//     lasting split brain.
//   - The next agent fails to start: systemd runs ExecStopPost= again, with
//     SERVICE_RESULT other than "success"; `gitgw vrrp release` then
//     ignores the record and hands over.
//   - The engine comes up but its first pass never configures a held
//     instance: the holder releases it (priority 0, VIPs removed) at the
//     first Set without it, or after Options.RestartHold.
//   - systemd is unreachable when the agent asks: the stop is treated as a
//     stop (priority 0 at once), as before; a restart then cuts.

// RestartFileName is the file, inside the state directory, that records a
// restart in progress.
const RestartFileName = "vrrp-restart.json"

// DefaultRestartHold bounds how long a new engine advertises, for the
// next agent, a mastership recorded by a restart before its first Set
// claims it.
const DefaultRestartHold = 30 * time.Second

// RestartRecord is what a restarting agent leaves for the next one.
type RestartRecord struct {
	// At is when the last adverts were sent; Until is when the peer may
	// take over by its own timer (the record is void from then on).
	At    time.Time      `json:"at"`
	Until time.Time      `json:"until"`
	PID   int            `json:"pid"`
	Held  []RestartEntry `json:"masters"`
}

// RestartEntry is one instance this node was master of at the restart.
type RestartEntry struct {
	StateEntry
	Priority uint8 `json:"priority"`
}

// Fresh says whether the next agent may still resume at now.
func (r *RestartRecord) Fresh(now time.Time) bool {
	return r != nil && len(r.Held) > 0 && now.Before(r.Until)
}

// restartWindow is how long after the last advert the next agent may
// resume: 3 × interval (the least Master_Down_Interval of a peer) minus
// half an interval.
func restartWindow(iv time.Duration) time.Duration { return 3*iv - iv/2 }

// ReadRestart returns the restart record in stateDir, nil when there is
// none. A corrupt record is moved aside and reported (wrapping
// statefile.ErrCorrupt): it is void.
func ReadRestart(stateDir string) (*RestartRecord, error) {
	var r RestartRecord
	found, err := statefile.Load(filepath.Join(stateDir, RestartFileName), func(b []byte) error {
		return json.Unmarshal(b, &r)
	})
	if err == nil && !found {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("vrrp: restart record: %w", err)
	}
	return &r, nil
}

func writeRestart(stateDir string, r RestartRecord) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := statefile.Write(filepath.Join(stateDir, RestartFileName), b, 0o600); err != nil {
		return fmt.Errorf("vrrp: write restart record: %w", err)
	}
	return nil
}

func removeRestart(stateDir string) {
	if err := os.Remove(filepath.Join(stateDir, RestartFileName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		_ = err // a leftover record expires by its own Until
	}
}

// StopForRestart is Stop for a restart: the instances this node is master
// of send one advert at their priority and stop without priority 0,
// keeping their VIPs; the restart record lets the next agent resume them.
// Other instances stop as in Stop. Without a state dir it is Stop.
func (e *Engine) StopForRestart(ctx context.Context) error {
	if e.opts.StateDir == "" {
		return e.Stop(ctx)
	}
	e.setMu.Lock()
	defer e.setMu.Unlock()
	if e.stopped {
		return nil
	}
	e.stopped = true
	now := e.opts.Now()
	rec := RestartRecord{At: now, PID: os.Getpid()}
	var window time.Duration
	for _, name := range slices.Sorted(maps.Keys(e.instances)) {
		in := e.instances[name]
		entry, held := in.holdForRestart(ctx)
		if !held {
			e.removeLocked(ctx, name, "engine stopped")
			continue
		}
		rec.Held = append(rec.Held, entry)
		if w := restartWindow(entry.Interval); window == 0 || w < window {
			window = w
		}
		e.regMu.Lock()
		delete(e.instances, name)
		e.regMu.Unlock()
		in.checks.stop()
		in.notify.close(ctx)
		if l := in.link; l.detach(in) == 0 {
			delete(e.links, l.key)
			l.close()
		}
		// A VMAC stays: it holds the VIPs.
	}
	// Holders never claimed go on to the next agent as they came, with
	// the window they had left.
	for _, h := range e.takeHolders() {
		h.stop()
		if h.until.After(now) {
			rec.Held = append(rec.Held, h.entry)
			if w := h.until.Sub(now); window == 0 || w < window {
				window = w
			}
		}
	}
	if len(rec.Held) == 0 {
		removeRestart(e.opts.StateDir)
		return nil
	}
	rec.Until = now.Add(window)
	if err := writeRestart(e.opts.StateDir, rec); err != nil {
		return err
	}
	for _, h := range rec.Held {
		e.log.Info("restart: mastership kept for the next agent", "instance", h.Name, "vrid", h.VRID, "priority", h.Priority, "until", rec.Until)
	}
	return nil
}

// holdForRestart stops the instance's goroutine; a master first sends one
// advert at its priority and keeps its VIPs and state entry. held reports
// whether it was master.
func (in *instance) holdForRestart(ctx context.Context) (entry RestartEntry, held bool) {
	done := make(chan struct{})
	in.do(func() {
		defer close(done)
		if in.m.State() != StateMaster {
			return
		}
		prio := in.m.Params().Priority
		in.send(prio)
		entry, held = RestartEntry{StateEntry: in.stateEntry(), Priority: prio}, true
		// run returns right after this function: nothing else (an advert,
		// a timer) is handled between the last advert and the record.
		in.hold = true
	})
	select {
	case <-done:
	case <-ctx.Done():
		return RestartEntry{}, false
	}
	if held {
		<-in.done
	}
	return entry, held
}

// Resume leaves Init for Master at once: the previous agent was master
// until a moment ago and kept the VIPs (StopForRestart).
func (m *Machine) Resume(now time.Time, reason string) []Output {
	if m.state != StateInit {
		return nil
	}
	m.started = now
	return m.becomeMaster(now, reason)
}

// begin leaves Init: as master for an instance claimed from a restart
// record (one gratuitous ARP, no repeats: the neighbours already point
// here), otherwise by Machine.Start. A resumed instance in fault starts as
// usual and drops the VIPs it was left.
func (in *instance) begin(now time.Time) {
	fault := len(in.faultReasons()) > 0
	if in.resume && !fault {
		in.exec(now, in.m.Resume(now, "resumed after a restart"))
		in.garpAt = nil
		return
	}
	if in.resume && in.e.opts.VIPs != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := in.e.opts.VIPs.Remove(ctx, in.vipIf(), in.allVIPs()); err != nil {
			in.e.log.Error("removing VIPs kept by the restart", "instance", in.cfg.Name, "err", err)
		}
		cancel()
		in.e.state.remove(in.cfg.Name)
	}
	in.exec(now, in.m.Start(now, fault))
}
