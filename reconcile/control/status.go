package control

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gitgw/gitgw/dataplane/l4proxy"
	"github.com/gitgw/gitgw/dataplane/vrrp"
	"github.com/gitgw/gitgw/reconcile/drift"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// StatusVersion is the version of the Status JSON (`gitgw status --json`).
const StatusVersion = 1

// Status is what `gitgw status` shows: the node as the running agent sees
// it now.
type Status struct {
	Version      int        `json:"version"`
	Node         string     `json:"node"`
	AgentVersion string     `json:"agent_version"`
	Time         time.Time  `json:"time"`
	Suspended    bool       `json:"suspended"`
	Overrides    []Override `json:"overrides"`
	// Desired is the commit the last pass was for; Applied the one
	// running (they differ while a commit is rejected, held or suspended).
	Desired string `json:"desired_commit,omitempty"`
	Subject string `json:"subject,omitempty"`
	Applied string `json:"applied_commit,omitempty"`
	// Outcome is the node's outcome as its status branch records it
	// (drift.NodeOutcome): "converged" only when nothing is pending,
	// suspended, held or failing.
	Outcome  string `json:"outcome,omitempty"`
	LastPass *Pass  `json:"last_pass,omitempty"`
	Passes   uint64 `json:"passes"`
	// DriftCorrected counts drift corrected since the agent started.
	DriftCorrected int            `json:"drift_corrected"`
	VRRP           []VRRPInstance `json:"vrrp"`
	Services       []Service      `json:"services"`
	Units          []Resource     `json:"units"`
	Tuning         []Resource     `json:"tuning"`
	// RealServer is the node's setup as a DR real server (its VIPs on lo,
	// the ARP knobs); absent on a node that is none.
	RealServer []Resource `json:"real_server,omitempty"`
	// Drift lists what the last pass found changed outside gitgw: corrected
	// ones and those left in place (drift mode report).
	Drift []Resource `json:"drift"`
	// Pending lists what the last pass left undone: the plan's pending
	// changes (no driver, an action gitgw will not force) and what still
	// differs after apply (not converged, or waiting while suspended).
	Pending []Resource `json:"pending"`
	// Fetches says whether the site repository can be reached.
	Fetches Fetches `json:"fetches"`
	// Reporting says whether the status branch reaches the repository.
	Reporting Reporting `json:"reporting"`
}

// nodeOutcomes are the values of Status.Outcome.
var nodeOutcomes = drift.Outcomes

// Pass is the last pass.
type Pass struct {
	Outcome  string        `json:"outcome"`
	Summary  string        `json:"summary"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
	Errors   []string      `json:"errors,omitempty"`
	Error    string        `json:"error,omitempty"`
}

// VRRPInstance is one VRRP instance as the engine runs it.
type VRRPInstance struct {
	Name         string `json:"name"`
	Interface    string `json:"interface"`
	VRID         uint8  `json:"vrid"`
	Version      uint8  `json:"version"`
	State        string `json:"state"`
	BasePriority uint8  `json:"base_priority"`
	Priority     uint8  `json:"priority"`
	// Arithmetic spells out the priority: "base 150, tracking -50 = 100".
	Arithmetic     string       `json:"arithmetic"`
	Master         string       `json:"master,omitempty"`
	MasterPriority uint8        `json:"master_priority,omitempty"`
	VIPs           []string     `json:"vips"`
	Faults         []string     `json:"faults,omitempty"`
	LastTransition time.Time    `json:"last_transition,omitzero"`
	Counters       VRRPCounters `json:"counters"`
}

// VRRPCounters are an instance's statistics as status shows them.
type VRRPCounters struct {
	AdvertsIn   uint64            `json:"adverts_in"`
	AdvertsOut  uint64            `json:"adverts_out"`
	Transitions uint64            `json:"transitions"`
	Drops       map[string]uint64 `json:"drops,omitempty"`
	Conflicts   uint64            `json:"conflicts"`
	Drift       uint64            `json:"drift"`
	Errors      uint64            `json:"errors"`
}

func vrrpInstance(in vrrp.InstanceStatus) VRRPInstance {
	v := VRRPInstance{Name: in.Name, Interface: in.Interface, VRID: in.VRID, Version: in.Version, State: in.State.String(),
		BasePriority: in.BasePriority, Priority: in.Priority, Arithmetic: arithmetic(in), MasterPriority: in.MasterPriority,
		VIPs: []string{}, Faults: in.Faults, LastTransition: in.LastTransition,
		Counters: VRRPCounters{AdvertsIn: in.Counters.AdvertsIn, AdvertsOut: in.Counters.AdvertsOut, Transitions: in.Counters.Transitions,
			Conflicts: in.Counters.Conflicts, Drift: in.Counters.Drift, Errors: in.Counters.Errors}}
	for r, n := range in.Counters.Drops {
		if v.Counters.Drops == nil {
			v.Counters.Drops = map[string]uint64{}
		}
		v.Counters.Drops[string(r)] = n
	}
	if in.MasterAddr.IsValid() {
		v.Master = in.MasterAddr.String()
	}
	for _, p := range in.VIPs {
		v.VIPs = append(v.VIPs, p.String())
	}
	return v
}

// Service is a proxy service with its servers' health.
type Service struct {
	Name string `json:"name"`
	// Mode is "nat" or "dr" for a service the kernel forwards (its
	// counters then stay zero: no process sees its connections); empty
	// for the proxy's.
	Mode    string   `json:"mode,omitempty"`
	Binds   []string `json:"binds"`
	Balance string   `json:"balance"`
	Status  string   `json:"status"` // UP when a server can take traffic
	// Unchecked: the service runs without a health check (unchecked: true
	// in the site); its servers are NOCHECK, and UncheckedRisk applies.
	Unchecked bool  `json:"unchecked,omitempty"`
	Current   int64 `json:"current"`
	Total     int64 `json:"total"`
	BytesIn   int64 `json:"bytes_in"`
	BytesOut  int64 `json:"bytes_out"`
	Queue     int64 `json:"queue"` // waiting for a server slot, all queues
	// QueueTimeouts counts connections that gave up waiting (HAProxy's sQ).
	QueueTimeouts int64 `json:"queue_timeouts"`
	Errors        int64 `json:"errors"`
	// Denied counts connections refused by the service's source rules,
	// by reason (l4proxy.DenyReasons: deny_list, not_allowed, conn_limit,
	// rate_limit).
	Denied  map[string]int64 `json:"denied"`
	Servers []Server         `json:"servers"`
}

// UncheckedRisk is what running a service without a health check means:
// the plan, `gitgw status` and the status page say it in these words.
const UncheckedRisk = "no health check: traffic keeps going to a dead server"

// Server is one backend as the pool sees it.
type Server struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
	// Host is the DNS name of a server given by name; Addr is then the
	// address in use (empty until the name first resolves).
	Host string `json:"host,omitempty"`
	// Resolve is "" (resolved), "unresolved" (never answered: DOWN) or
	// "stale" (no longer answers: the last address is kept).
	Resolve      string    `json:"resolve,omitempty"`
	ResolvedAt   time.Time `json:"resolved_at,omitzero"`
	StaleSince   time.Time `json:"stale_since,omitzero"`
	ResolveError string    `json:"resolve_error,omitempty"`
	Weight       int       `json:"weight"`
	Backup       bool      `json:"backup,omitempty"`
	Admin        string    `json:"admin"`
	Status       string    `json:"status"` // UP, DOWN, NOCHECK, DRAIN, MAINT
	Current      int64     `json:"current"`
	Queue        int64     `json:"queue"` // waiting for this very server (source hash, persistence)
	Total        int64     `json:"total"`
	BytesIn      int64     `json:"bytes_in"`
	BytesOut     int64     `json:"bytes_out"`
	FailedChecks int64     `json:"failed_checks"`
	Check        string    `json:"check,omitempty"`
	LastChange   time.Time `json:"last_change,omitzero"`
	// Downtime is how long the server has been DOWN in all since the
	// agent started; CheckDuration how long its last check took, as
	// HAProxy's stats page shows them.
	Downtime      time.Duration `json:"downtime_ns,omitempty"`
	CheckDuration time.Duration `json:"check_duration_ns,omitempty"`
	LastCheck     time.Time     `json:"last_check,omitzero"`
}

// Address is the server's address as the status text and page show it:
// the address, or for a server given by name, the name with what it
// resolves to and since when ("db.example → 198.51.100.12:5432 resolved
// at 05:04:03", "db.example unresolved", "… stale since 05:04:03").
func (s Server) Address() string {
	if s.Host == "" {
		return s.Addr
	}
	at := func(t time.Time) string { return t.UTC().Format(time.TimeOnly) }
	switch s.Resolve {
	case "unresolved":
		return s.Host + " unresolved"
	case "stale":
		return s.Host + " → " + s.Addr + " stale since " + at(s.StaleSince)
	}
	return s.Host + " → " + s.Addr + " resolved at " + at(s.ResolvedAt)
}

func service(s l4proxy.ServiceStats) Service {
	out := Service{Name: s.Name, Binds: s.Binds, Balance: string(s.Balance), Status: string(s.Status), Unchecked: s.Unchecked, Current: s.Current, Total: s.Total,
		BytesIn: s.BytesIn, BytesOut: s.BytesOut, Queue: s.Queue, QueueTimeouts: s.QueueTimeouts, Errors: s.Errors, Servers: []Server{}}
	out.Denied = s.Denied.ByReason()
	for _, sv := range s.Servers {
		out.Servers = append(out.Servers, Server{Name: sv.Name, Addr: sv.Addr, Weight: sv.Weight, Backup: sv.Backup, Admin: string(sv.Admin),
			Status: string(sv.Status), Current: sv.Current, Queue: sv.Queue, Total: sv.Total, BytesIn: sv.BytesIn, BytesOut: sv.BytesOut,
			FailedChecks: sv.FailedChecks, Check: sv.Check, LastChange: sv.LastChange,
			Downtime: sv.Downtime, CheckDuration: sv.CheckDuration, LastCheck: sv.LastCheck})
	}
	// Servers given by name: what the name resolves to.
	for i, sv := range s.Servers {
		o := &out.Servers[i]
		o.Host, o.Resolve, o.ResolvedAt, o.StaleSince, o.ResolveError = sv.Host, sv.Resolve, sv.ResolvedAt, sv.StaleSince, sv.ResolveError
	}
	return out
}

// Resource is one planned resource of the last pass.
type Resource struct {
	Driver  string          `json:"driver"`
	Kind    string          `json:"kind"`
	ID      string          `json:"id"`
	Action  string          `json:"action"`
	State   string          `json:"state,omitempty"`
	Reason  string          `json:"reason,omitempty"`
	Details []string        `json:"details,omitempty"`
	Before  json.RawMessage `json:"before,omitempty"`
	After   json.RawMessage `json:"after,omitempty"`
}

// Status builds the current status.
func (c *Controller) Status() Status {
	st := Status{Version: StatusVersion, Node: c.o.Node, AgentVersion: c.o.Version, Time: c.o.Now().UTC(),
		Overrides: []Override{}, VRRP: []VRRPInstance{}, Services: []Service{},
		Units: []Resource{}, Tuning: []Resource{}, Drift: []Resource{}, Pending: []Resource{}}
	c.mu.Lock()
	st.Suspended = c.suspended
	st.Overrides = append(st.Overrides, c.sortedOverridesLocked()...)
	st.Passes, st.DriftCorrected = c.passes, c.corrected
	st.Fetches, st.Reporting = c.fetches, c.reporting
	last := c.last
	c.mu.Unlock()
	if c.o.Engine != nil {
		for _, in := range c.o.Engine.Status() {
			st.VRRP = append(st.VRRP, vrrpInstance(in))
		}
	}
	if c.o.Pool != nil {
		for _, s := range c.o.Pool.Stats().Services {
			st.Services = append(st.Services, service(s))
		}
	}
	if c.o.Kernel != nil {
		st.Services = append(st.Services, c.o.Kernel.KernelServices()...)
	}
	if last == nil {
		st.Applied, _ = c.lastGood()
		return st
	}
	st.Desired, st.Subject, st.Applied = last.Commit, last.Subject, last.AppliedCommit
	p := &Pass{Outcome: last.Outcome, Summary: last.Summary, Started: last.Started.UTC(), Duration: last.Duration,
		Errors: slices.Clone(last.Errors), Error: last.Err}
	st.LastPass = p
	if last.Plan != nil {
		for _, ch := range last.Plan.Changes {
			switch ch.Family() {
			case plan.FamilyUnits:
				st.Units = append(st.Units, resource(ch))
			case plan.FamilyTuning:
				st.Tuning = append(st.Tuning, resource(ch))
			case plan.FamilyRealServer:
				st.RealServer = append(st.RealServer, resource(ch))
			}
			if ch.Action == plan.Pending {
				st.Pending = append(st.Pending, resource(ch))
			}
		}
	}
	pending := len(st.Pending)
	for _, ch := range last.Drift {
		r := resource(ch)
		r.State = "corrected"
		st.Drift = append(st.Drift, r)
	}
	for _, ch := range last.Reported {
		r := resource(ch)
		r.State = "left in place"
		st.Drift = append(st.Drift, r)
	}
	for _, ch := range last.Remaining {
		st.Pending = append(st.Pending, resource(ch))
	}
	st.Outcome = drift.NodeOutcome(string(last.Outcome), pending, len(last.Remaining))
	return st
}

func resource(ch plan.Change) Resource {
	r := Resource{Driver: ch.Driver, Kind: ch.Kind, ID: ch.ID, Action: string(ch.Action), Reason: ch.Reason,
		Details: slices.Clone(ch.Details), Before: plan.JSON(ch.Before), After: plan.JSON(ch.After)}
	if ch.Kind == plan.KindUnitInstance {
		var s struct {
			Active string `json:"active"`
			Sub    string `json:"sub"`
		}
		src := r.After
		if ch.Action == plan.NoOp || ch.Action == plan.Delete || len(src) == 0 {
			src = r.Before
		}
		if json.Unmarshal(r.Before, &s) == nil && s.Active != "" {
			r.State = s.Active
			if s.Sub != "" {
				r.State += " (" + s.Sub + ")"
			}
		} else if json.Unmarshal(src, &s) == nil && s.Active != "" {
			r.State = s.Active
		}
	}
	return r
}

// arithmetic spells out how the effective priority comes from the base.
func arithmetic(in vrrp.InstanceStatus) string {
	s := fmt.Sprintf("base %d", in.BasePriority)
	if d := int(in.Priority) - int(in.BasePriority); d != 0 {
		s += fmt.Sprintf(", tracking %+d = %d", d, in.Priority)
	}
	if len(in.Faults) > 0 {
		s += "; fault: " + strings.Join(in.Faults, ", ")
	}
	if in.MasterAddr.IsValid() && in.State != vrrp.StateMaster {
		s += fmt.Sprintf("; master %s at %d", in.MasterAddr, in.MasterPriority)
	}
	return s
}
