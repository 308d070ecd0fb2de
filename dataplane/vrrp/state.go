package vrrp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/gitgw/gitgw/dataplane/vip"
	"github.com/gitgw/gitgw/internal/statefile"
	"github.com/vishvananda/netlink"
)

// StateFileName is the file, inside the state directory, that lists the
// instances this node is master of.
const StateFileName = "vrrp-state.json"

// StateEntry is everything Release needs to hand one instance over.
type StateEntry struct {
	Name                string        `json:"name"`
	Interface           string        `json:"interface"`
	Version             uint8         `json:"version"`
	VRID                uint8         `json:"vrid"`
	Interval            time.Duration `json:"interval"`
	Src                 netip.Addr    `json:"src"`
	Dsts                []netip.Addr  `json:"dsts"`
	Advertised          []netip.Addr  `json:"advertised"`
	AuthPass            string        `json:"auth_pass,omitempty"`
	ChecksumMessageOnly bool          `json:"checksum_message_only,omitempty"`
	VIPs                []VIP         `json:"vips"`
	// VIPInterface holds the VIPs when it is not Interface (a VMAC).
	VIPInterface string `json:"vip_interface,omitempty"`
}

type stateDoc struct {
	Masters []StateEntry `json:"masters"`
}

// stateFile keeps the state file in step with mastership, writing it
// atomically and durably (statefile.Write) on every change.
type stateFile struct {
	dir     string
	mu      sync.Mutex
	entries map[string]StateEntry
}

func (in *instance) stateEntry() StateEntry {
	c := in.cfg
	return StateEntry{
		Name: c.Name, Interface: c.Interface, Version: c.Version, VRID: c.VRID, Interval: c.Interval,
		Src: in.primary, Dsts: in.destinations(), Advertised: in.advertised(), AuthPass: c.AuthPass,
		ChecksumMessageOnly: c.ChecksumMessageOnly, VIPs: append(slices.Clone(c.VIPs), c.ExcludedVIPs...),
		VIPInterface: in.vmac,
	}
}

func (s *stateFile) set(e StateEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries[e.Name] = e
	s.writeLocked()
}

func (s *stateFile) remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.entries[name]; !ok {
		return
	}
	delete(s.entries, name)
	s.writeLocked()
}

func (s *stateFile) writeLocked() {
	if s.dir == "" {
		return
	}
	doc := stateDoc{Masters: []StateEntry{}}
	for _, k := range slices.Sorted(maps.Keys(s.entries)) {
		doc.Masters = append(doc.Masters, s.entries[k])
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	_ = statefile.Write(filepath.Join(s.dir, StateFileName), b, 0o600)
}

// openStateFile starts the engine's state file. What a previous run
// recorded is not read back (this run starts every instance from Init and
// rewrites the file on its first transition), but a corrupt file is moved
// aside now, loudly, rather than left for a release to trip over.
func openStateFile(dir string, log *slog.Logger) *stateFile {
	if dir != "" {
		if _, err := ReadState(dir); errors.Is(err, statefile.ErrCorrupt) {
			log.Error("state file corrupt; moved aside, the engine starts every instance as backup", "file", StateFileName, "err", err)
		}
	}
	return &stateFile{dir: dir, entries: map[string]StateEntry{}}
}

// ReadState returns the instances recorded as master in stateDir. A file
// that is empty, truncated or does not decode is moved aside and reported
// with an error wrapping statefile.ErrCorrupt.
func ReadState(stateDir string) ([]StateEntry, error) {
	var doc stateDoc
	_, err := statefile.Load(filepath.Join(stateDir, StateFileName), func(b []byte) error {
		if err := json.Unmarshal(b, &doc); err != nil {
			return err
		}
		if doc.Masters == nil {
			return errors.New("no masters list")
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("vrrp: state: %w", err)
	}
	return doc.Masters, nil
}

// ReleaseOptions are the seams of Release; zero fields get the kernel.
type ReleaseOptions struct {
	Listen func(ifname string, v6 bool) (Conn, error)
	VIPs   VIPSet
	// IgnoreRestart releases even what a fresh restart record keeps for
	// the next agent: the agent that wrote it did not exit cleanly, or the
	// next one failed to start (ExecStopPost= with SERVICE_RESULT other
	// than "success").
	IgnoreRestart bool
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Release is the crash handover (`gitgw vrrp release`): for every instance
// the state file in stateDir records as master, it sends a priority-0
// advert, so that the backup takes over within Skew_Time instead of the
// Master_Down_Interval, then removes the instance's VIPs and clears the
// file. Run after the agent has exited (ExecStopPost=); after a clean stop
// the file is already empty and Release does nothing.
func Release(ctx context.Context, stateDir string, logger *slog.Logger) error {
	return ReleaseWith(ctx, stateDir, logger, ReleaseOptions{})
}

// ReleaseWith is Release with injected seams.
func ReleaseWith(ctx context.Context, stateDir string, logger *slog.Logger, o ReleaseOptions) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	log := logger.With("component", "vrrp-release")
	entries, err := ReadState(stateDir)
	if errors.Is(err, statefile.ErrCorrupt) {
		// What this node was master of is unknown: the backups take over
		// by their own timers (Master_Down_Interval) instead of at once.
		log.Error("state file corrupt; moved aside, nothing to release", "file", StateFileName, "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	// A restart in progress keeps what its record lists (restart.go):
	// the next agent resumes it, or the peer takes over by its own timer
	// once the record is void.
	var kept []StateEntry
	if !o.IgnoreRestart {
		if o.Now == nil {
			o.Now = time.Now
		}
		rec, err := ReadRestart(stateDir)
		if err != nil {
			log.Error("restart record unreadable; releasing everything", "err", err)
		} else if rec.Fresh(o.Now()) {
			entries = slices.DeleteFunc(entries, func(e StateEntry) bool {
				if slices.ContainsFunc(rec.Held, func(h RestartEntry) bool { return h.Name == e.Name }) {
					kept = append(kept, e)
					log.Info("restart in progress: mastership kept for the next agent", "instance", e.Name, "vrid", e.VRID, "until", rec.Until)
					return true
				}
				return false
			})
		}
	}
	if len(entries) == 0 {
		return nil
	}
	if o.Listen == nil {
		o.Listen = func(ifname string, v6 bool) (Conn, error) { return Listen(ifname, v6) }
	}
	var errs []error
	conns := map[linkKey]Conn{}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// Adverts first, for every instance: the backups start their skew
	// timers while we clean up.
	for _, e := range entries {
		v6 := e.Src.Is6()
		k := linkKey{e.Interface, v6}
		c, ok := conns[k]
		if !ok {
			if c, err = o.Listen(e.Interface, v6); err != nil {
				errs = append(errs, fmt.Errorf("vrrp: release %s: %w", e.Name, err))
				continue
			}
			conns[k] = c
		}
		p := &Packet{Version: e.Version, VRID: e.VRID, Priority: 0, Interval: e.Interval, Addrs: e.Advertised}
		if e.Version == 2 {
			p.SetPassword(e.AuthPass)
		}
		form := ChecksumPseudo
		if e.ChecksumMessageOnly {
			form = ChecksumMessage
		}
		for _, dst := range e.Dsts {
			b, err := p.Marshal(e.Src, dst, form)
			if err == nil {
				err = c.Write(b, e.Src, dst)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("vrrp: release %s: priority 0 to %v: %w", e.Name, dst, err))
			}
		}
		log.Info("released mastership", "instance", e.Name, "vrid", e.VRID, "interface", e.Interface)
	}
	// Then the VIPs (the netlink handle is opened only now: the adverts
	// are what the backups wait for).
	if o.VIPs == nil {
		h, err := netlink.NewHandle()
		if err != nil {
			return errors.Join(append(errs, fmt.Errorf("vrrp: release: netlink: %w", err))...)
		}
		defer h.Close()
		o.VIPs = vip.New(h, logger)
	}
	for _, e := range entries {
		var addrs []vip.Address
		for _, v := range e.VIPs {
			addrs = append(addrs, vip.Address{Prefix: v.Prefix, Label: v.Label, Scope: v.Scope})
		}
		ifname := e.Interface
		if e.VIPInterface != "" {
			ifname = e.VIPInterface
		}
		if v, ok := o.VIPs.(interface{ SetVMACUp(string, bool) error }); ok && e.VIPInterface != "" && e.Src.Is6() {
			// An IPv6 VMAC is down on a non-master (vip.EnsureVMAC): down
			// first, so that the VIPs go without an MLD leave with the
			// virtual MAC, and the new master's adverts reach nobody here.
			if err := v.SetVMACUp(e.VIPInterface, false); err != nil {
				errs = append(errs, fmt.Errorf("vrrp: release %s: %w", e.Name, err))
			}
		}
		if err := o.VIPs.Remove(ctx, ifname, addrs); err != nil {
			errs = append(errs, fmt.Errorf("vrrp: release %s: %w", e.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(stateDoc{Masters: append([]StateEntry{}, kept...)}, "", "  ")
	if err := statefile.Write(filepath.Join(stateDir, StateFileName), b, 0o600); err != nil {
		return fmt.Errorf("vrrp: release: clear state: %w", err)
	}
	return nil
}
