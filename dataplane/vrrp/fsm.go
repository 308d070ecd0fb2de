package vrrp

import (
	"net/netip"
	"time"
)

// State is an instance's protocol state (RFC 5798 §6.4).
type State uint8

// The protocol states. Fault is keepalived's: a tracked interface or check
// says this node must not be master.
const (
	StateInit State = iota
	StateBackup
	StateMaster
	StateFault
)

// States is every state, in order: the metrics list them so.
var States = []State{StateInit, StateBackup, StateMaster, StateFault}

func (s State) String() string {
	switch s {
	case StateBackup:
		return "BACKUP"
	case StateMaster:
		return "MASTER"
	case StateFault:
		return "FAULT"
	}
	return "INIT"
}

// MarshalText makes states readable in JSON status.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses what MarshalText wrote.
func (s *State) UnmarshalText(b []byte) error {
	for _, c := range States {
		if c.String() == string(b) {
			*s = c
			return nil
		}
	}
	*s = StateInit
	return nil
}

// Params are the inputs of one instance's state machine that may change
// while it runs.
type Params struct {
	Version uint8
	// Priority is the effective priority (base ± tracking weights), 1..255.
	Priority uint8
	// Interval is our own advertisement interval.
	Interval     time.Duration
	Preempt      bool
	PreemptDelay time.Duration
	// Primary is our advert source: it breaks ties between equal
	// priorities.
	Primary netip.Addr
	// Epoch, when set, puts a master's adverts on the grid Epoch + k ×
	// Interval: the engine gives every instance the same epoch, so that
	// instances with one interval fire together (one wake-up for all of
	// them instead of one each). The first interval after becoming master
	// is then shorter than Interval, never longer.
	Epoch time.Time
}

// nextAdvert returns the next advert time after now.
func (m *Machine) nextAdvert(now time.Time) time.Time {
	iv := m.p.Interval
	if m.p.Epoch.IsZero() || now.Before(m.p.Epoch) {
		return now.Add(iv)
	}
	k := now.Sub(m.p.Epoch)/iv + 1
	return m.p.Epoch.Add(k * iv)
}

// OutputKind says what the engine must do for one Output.
type OutputKind uint8

// The kinds of output.
const (
	// OutSend: send an advertisement with Output.Priority.
	OutSend OutputKind = iota + 1
	// OutTransition: the state changed from Output.From to Output.To. On
	// entering Master install the VIPs and announce them; on leaving it
	// remove them.
	OutTransition
	// OutAnnounce: re-announce the VIPs (gratuitous ARP / NA) while
	// remaining master: a lower-priority router believed it was master.
	OutAnnounce
)

// Output is one action the machine asks of the engine, in order.
type Output struct {
	Kind     OutputKind
	Priority uint8
	From, To State
	Reason   string
}

// Machine is the pure VRRP state machine of one instance. It never reads a
// clock or touches a socket: every call takes the current time and returns
// the actions to perform; Deadline says when Tick must be called next.
type Machine struct {
	p       Params
	state   State
	mai     time.Duration // Master_Adver_Interval
	downAt  time.Time     // Master_Down_Timer expiry (Backup)
	adverAt time.Time     // Adver_Timer expiry (Master)
	started time.Time
	// lowerSince is when a Backup with preempt_delay first heard a
	// lower-priority master; it preempts only once the delay has passed.
	lowerSince time.Time
	master     netip.Addr
	masterPrio uint8
}

// NewMachine returns a machine in Init.
func NewMachine(p Params) *Machine { return &Machine{p: p, mai: p.Interval} }

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Params returns the current parameters.
func (m *Machine) Params() Params { return m.p }

// Master returns the address and priority of the router believed to be
// master (our own primary address while we are master).
func (m *Machine) Master() (netip.Addr, uint8) { return m.master, m.masterPrio }

// MasterAdverInterval is the interval learned from the master (v3) or our
// own (v2).
func (m *Machine) MasterAdverInterval() time.Duration { return m.mai }

// SkewTime is ((256 − Priority) × Master_Adver_Interval) / 256, in
// nanoseconds, never rounded to centiseconds.
func SkewTime(prio uint8, mai time.Duration) time.Duration {
	return time.Duration(256-int64(prio)) * mai / 256
}

// MasterDownInterval is 3 × Master_Adver_Interval + Skew_Time.
func MasterDownInterval(prio uint8, mai time.Duration) time.Duration {
	return 3*mai + SkewTime(prio, mai)
}

// Deadline is when Tick must next be called; zero when no timer runs.
func (m *Machine) Deadline() time.Time {
	switch m.state {
	case StateMaster:
		return m.adverAt
	case StateBackup:
		return m.downAt
	}
	return time.Time{}
}

// Start leaves Init: to Fault if fault, to Master at once for the address
// owner (priority 255), otherwise to Backup with the Master_Down_Timer
// running.
func (m *Machine) Start(now time.Time, fault bool) []Output {
	if m.state != StateInit {
		return nil
	}
	m.started = now
	if fault {
		return m.to(StateFault, "tracking reports a fault at start")
	}
	if m.p.Priority == 255 {
		return m.becomeMaster(now, "address owner (priority 255)")
	}
	return m.becomeBackup(now, m.p.Interval, "start")
}

// Tick fires expired timers.
func (m *Machine) Tick(now time.Time) []Output {
	switch m.state {
	case StateMaster:
		if now.Before(m.adverAt) {
			return nil
		}
		// Keep a fixed schedule; after a stall, restart it from now.
		m.adverAt = m.adverAt.Add(m.p.Interval)
		if !m.adverAt.After(now) {
			m.adverAt = m.nextAdvert(now)
		}
		return []Output{{Kind: OutSend, Priority: m.p.Priority}}
	case StateBackup:
		if now.Before(m.downAt) {
			return nil
		}
		return m.becomeMaster(now, "master down timer expired")
	}
	return nil
}

// Advert handles an advertisement that passed every receive check.
// interval is the advertised interval (v3: adopted by a Backup).
func (m *Machine) Advert(now time.Time, from netip.Addr, prio uint8, interval time.Duration) []Output {
	switch m.state {
	case StateBackup:
		if prio == 0 {
			m.downAt = now.Add(SkewTime(m.p.Priority, m.mai))
			m.master, m.masterPrio = from, 0
			return nil
		}
		if m.p.Preempt && prio < m.p.Priority {
			if m.p.PreemptDelay > 0 {
				if m.lowerSince.IsZero() {
					m.lowerSince = now
				}
				if now.Before(m.lowerSince.Add(m.p.PreemptDelay)) || now.Before(m.started.Add(m.p.PreemptDelay)) {
					m.accept(now, from, prio, interval)
					return nil
				}
			}
			// Discard: the Master_Down_Timer will fire and we take over.
			return nil
		}
		m.lowerSince = time.Time{}
		m.accept(now, from, prio, interval)
		return nil
	case StateMaster:
		if prio == 0 {
			m.adverAt = m.nextAdvert(now)
			return []Output{{Kind: OutSend, Priority: m.p.Priority}}
		}
		if prio > m.p.Priority || (prio == m.p.Priority && addrGreater(from, m.p.Primary)) {
			// One last advert before yielding (keepalived's
			// higher_prio_send_advert, on by default here): after a
			// partition heals it tells the winner that another router
			// had been master, so the winner re-announces the VIPs and
			// every neighbour cache moves back to it.
			out := []Output{{Kind: OutSend, Priority: m.p.Priority}}
			out = append(out, m.becomeBackup(now, m.adopt(interval), "higher priority master "+from.String())...)
			m.master, m.masterPrio = from, prio
			return out
		}
		// A lower-priority router believes it is master (split brain, a
		// healed partition): re-assert at once and re-announce the VIPs.
		m.adverAt = m.nextAdvert(now)
		return []Output{{Kind: OutSend, Priority: m.p.Priority}, {Kind: OutAnnounce, Reason: "lower priority advert from " + from.String()}}
	}
	return nil
}

func (m *Machine) accept(now time.Time, from netip.Addr, prio uint8, interval time.Duration) {
	m.mai = m.adopt(interval)
	m.downAt = now.Add(MasterDownInterval(m.p.Priority, m.mai))
	m.master, m.masterPrio = from, prio
}

// adopt returns the Master_Adver_Interval to use after hearing interval:
// v3 learns the master's, v2 keeps its own (mismatches are dropped before).
func (m *Machine) adopt(interval time.Duration) time.Duration {
	if m.p.Version == 3 && interval > 0 {
		return interval
	}
	return m.p.Interval
}

// SetFault enters or leaves Fault. A master leaving for Fault sends
// priority 0 first so that the backup takes over within Skew_Time.
func (m *Machine) SetFault(now time.Time, fault bool, reason string) []Output {
	switch {
	case fault && (m.state == StateMaster):
		return append([]Output{{Kind: OutSend, Priority: 0}}, m.to(StateFault, reason)...)
	case fault && m.state == StateBackup:
		return m.to(StateFault, reason)
	case !fault && m.state == StateFault:
		if m.p.Priority == 255 {
			return m.becomeMaster(now, reason)
		}
		return m.becomeBackup(now, m.p.Interval, reason)
	}
	return nil
}

// Update applies new parameters without a transition: a new priority is
// carried by the next advert, a new interval takes effect at the next timer
// at the latest.
func (m *Machine) Update(now time.Time, p Params) []Output {
	old := m.p
	m.p = p
	if m.p.Version == 2 || m.state != StateBackup {
		m.mai = p.Interval
	}
	if m.state == StateMaster && p.Interval != old.Interval {
		if next := m.nextAdvert(now); next.Before(m.adverAt) {
			m.adverAt = next
		}
	}
	if m.state == StateMaster {
		m.masterPrio = p.Priority
		m.master = p.Primary
	}
	return nil
}

// Shutdown leaves the protocol: a master sends priority 0 and gives up its
// VIPs, anyone else just stops.
func (m *Machine) Shutdown(reason string) []Output {
	var out []Output
	if m.state == StateMaster {
		out = append(out, Output{Kind: OutSend, Priority: 0})
	}
	return append(out, m.to(StateInit, reason)...)
}

// Force moves a Backup to Master or a Master to Backup (sync groups: the
// group follows its members). Other states are left alone.
func (m *Machine) Force(now time.Time, s State, reason string) []Output {
	switch {
	case s == StateMaster && m.state == StateBackup:
		return m.becomeMaster(now, reason)
	case s == StateBackup && m.state == StateMaster:
		return m.becomeBackup(now, m.p.Interval, reason)
	}
	return nil
}

func (m *Machine) becomeMaster(now time.Time, reason string) []Output {
	m.adverAt = m.nextAdvert(now)
	m.master, m.masterPrio = m.p.Primary, m.p.Priority
	return append([]Output{{Kind: OutSend, Priority: m.p.Priority}}, m.to(StateMaster, reason)...)
}

func (m *Machine) becomeBackup(now time.Time, mai time.Duration, reason string) []Output {
	m.mai = mai
	m.downAt = now.Add(MasterDownInterval(m.p.Priority, mai))
	m.master, m.masterPrio = netip.Addr{}, 0
	m.lowerSince = time.Time{}
	return m.to(StateBackup, reason)
}

func (m *Machine) to(s State, reason string) []Output {
	from := m.state
	m.state = s
	if s != StateBackup {
		m.downAt = time.Time{}
	}
	if s != StateMaster {
		m.adverAt = time.Time{}
	}
	if s == StateFault || s == StateInit {
		m.master, m.masterPrio = netip.Addr{}, 0
	}
	if from == s {
		return nil
	}
	return []Output{{Kind: OutTransition, From: from, To: s, Reason: reason}}
}

// addrGreater compares addresses as unsigned integers in network byte
// order (RFC 5798 §6.4.3).
func addrGreater(a, b netip.Addr) bool { return a.Compare(b) > 0 }
