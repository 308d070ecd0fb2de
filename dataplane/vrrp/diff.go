package vrrp

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
)

// Op is what applying a config would do to one instance or VIP.
type Op string

// The operations of a Change.
const (
	OpCreate Op = "create"
	OpUpdate Op = "update"
	OpDelete Op = "delete"
	OpNoOp   Op = "no-op"
)

// Kinds of resources a Change names.
const (
	KindInstance = "vrrp_instance"
	KindVIP      = "vip"
)

// Change is one instance or VIP compared by Diff.
type Change struct {
	Kind string // KindInstance or KindVIP
	// ID is the instance name, or "instance/prefix" for a VIP.
	ID string
	Op Op
	// Before and After are a View (instances) or a prefix (VIPs); nil on
	// create and delete respectively.
	Before, After any
	Reason        string
	// Details say which node will be master after apply, which settings
	// changed and the instance's live state.
	Details []string
}

// View is how an instance appears in a plan's before and after.
type View struct {
	Interface string   `json:"interface"`
	VRID      uint8    `json:"vrid"`
	Version   uint8    `json:"version"`
	Interval  string   `json:"interval"`
	Priority  uint8    `json:"priority"`
	Preempt   bool     `json:"preempt"`
	VIPs      []string `json:"vips"`
	State     string   `json:"state,omitempty"`
}

// ViewOf is the view of a configured instance.
func ViewOf(in Instance) View {
	v := View{Interface: in.Interface, VRID: in.VRID, Version: in.Version, Interval: in.Interval.String(), Priority: in.Priority, Preempt: !in.NoPreempt}
	for _, p := range append(slices.Clone(in.VIPs), in.ExcludedVIPs...) {
		v.VIPs = append(v.VIPs, p.Prefix.String())
	}
	return v
}

// Observed is what an engine runs, as Observe reports it. It is plain
// data (JSON too), so that a plan made in another process can use a
// running agent's.
type Observed struct {
	Instances []ObservedInstance `json:"instances"`
}

// ObservedInstance is one running instance: its live status and the
// config it runs.
type ObservedInstance struct {
	Status InstanceStatus `json:"status"`
	// Applied is the config the instance runs, defaults filled, with the
	// password replaced by its digest (AuthDigest): Observe never gives a
	// secret away. Nil when not known (then the settings the status does
	// not show are taken as desired).
	Applied *Instance `json:"applied,omitempty"`
}

// Observe returns what the engine runs: every instance's status and
// applied config. It waits for a Set in progress, so that it never shows
// half of one.
func (e *Engine) Observe() Observed {
	e.setMu.Lock()
	defer e.setMu.Unlock()
	var out Observed
	for _, name := range slices.Sorted(maps.Keys(e.instances)) {
		in := e.instances[name]
		applied := redact(in.wanted)
		out.Instances = append(out.Instances, ObservedInstance{Status: in.status(), Applied: &applied})
	}
	return out
}

// redact replaces the password of a config by its digest.
func redact(in Instance) Instance {
	in.AuthPass = AuthDigest(in.AuthPass)
	return in
}

// AuthDigest is what an observed config shows of a password: a digest
// that tells a changed password from an unchanged one ("" stays "").
func AuthDigest(pass string) string {
	if pass == "" || strings.HasPrefix(pass, digestPrefix) {
		return pass
	}
	h := sha256.Sum256([]byte(pass))
	return digestPrefix + hex.EncodeToString(h[:8])
}

const digestPrefix = "sha256:"

// Desired is what Diff compares an engine's state with: this node's
// config and, to predict the master, what the site says of every router.
type Desired struct {
	// Node is this node's name.
	Node   string
	Config Config
	// Priorities are, per instance, the priority the site gives each of
	// its routers by node name, this node's included.
	Priorities map[string]map[string]int
}

// Diff compares the desired config with an engine's observed state: one
// instance change per instance and one VIP change per VIP, no-ops
// included, desired instances first in config order, then the removed
// ones by name. It is pure. The instance change's details predict the
// master after apply: from the live state (role, effective priority after
// the tracking weights, the master heard, preempt and its delay) when the
// instance runs, from the site's priorities alone when it does not.
func Diff(desired Desired, observed Observed) []Change {
	have := map[string]ObservedInstance{}
	for _, o := range observed.Instances {
		have[o.Status.Name] = o
	}
	var out []Change
	want := map[string]bool{}
	for _, raw := range desired.Config.Instances {
		in := raw.withDefaults()
		want[in.Name] = true
		after := ViewOf(in)
		c := Change{Kind: KindInstance, ID: in.Name, After: after}
		obs, running := have[in.Name]
		var haveVIPs []string
		if running {
			c.Details = predict(desired.Node, in, desired.Priorities[in.Name], &obs.Status)
			if obs.Applied != nil && !sameTracking(*obs.Applied, in) {
				c.Details[0] += "; tracking changed in site: weights counted as they stand now, until the new tracking reports"
			}
			st := obs.Status
			before := View{Interface: st.Interface, VRID: st.VRID, Version: st.Version, Priority: st.BasePriority, State: st.State.String(),
				Interval: after.Interval, Preempt: after.Preempt}
			if obs.Applied != nil {
				before.Interval, before.Preempt = obs.Applied.Interval.String(), !obs.Applied.NoPreempt
			}
			for _, p := range st.VIPs {
				before.VIPs = append(before.VIPs, p.String())
			}
			haveVIPs = before.VIPs
			c.Before = before
			var settings []string
			if obs.Applied != nil {
				settings = ChangedSettings(*obs.Applied, in)
			}
			if sameView(before, after) && len(settings) == 0 {
				c.Op = OpNoOp
			} else {
				c.Op, c.Reason = OpUpdate, "changed in site (applied without a transition)"
				if obs.Applied != nil && !sameIdentity(*obs.Applied, in) {
					c.Reason = "identity changed in site: restarted (leaves, then starts as backup)"
				}
				c.Details = append(c.Details, settings...)
			}
			c.Details = append(c.Details, fmt.Sprintf("now %s, priority %d (base %d)", st.State, st.Priority, st.BasePriority))
		} else {
			c.Details = predict(desired.Node, in, desired.Priorities[in.Name], nil)
			c.Op, c.Reason = OpCreate, "new in site"
		}
		out = append(out, c)
		for _, v := range after.VIPs {
			vc := Change{Kind: KindVIP, ID: in.Name + "/" + v, After: v, Op: OpCreate, Reason: "new in site"}
			if slices.Contains(haveVIPs, v) {
				vc.Before, vc.Op, vc.Reason = v, OpNoOp, ""
			}
			out = append(out, vc)
		}
		for _, v := range haveVIPs {
			if !slices.Contains(after.VIPs, v) {
				out = append(out, Change{Kind: KindVIP, ID: in.Name + "/" + v, Before: v, Op: OpDelete, Reason: "removed from site"})
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(have)) {
		if want[name] {
			continue
		}
		st := have[name].Status
		why := "leaves; not master here, nothing moves"
		if st.State == StateMaster {
			why = "leaves with priority 0; the backup takes over within Skew_Time"
		}
		out = append(out, Change{Kind: KindInstance, ID: name, Before: st.State.String(), Op: OpDelete,
			Reason: "removed from site", Details: []string{why}})
		for _, p := range st.VIPs {
			out = append(out, Change{Kind: KindVIP, ID: name + "/" + p.String(), Before: p.String(), Op: OpDelete, Reason: "removed from site"})
		}
	}
	return out
}

// sameView compares what the status shows of an instance (not its state).
func sameView(a, b View) bool {
	return a.Interface == b.Interface && a.VRID == b.VRID && a.Version == b.Version && a.Priority == b.Priority && slices.Equal(a.VIPs, b.VIPs)
}

// sameIdentity reports whether b can replace a in place; otherwise Set
// restarts the instance.
func sameIdentity(a, b Instance) bool {
	return a.Interface == b.Interface && a.VRID == b.VRID && a.Version == b.Version &&
		a.IPv6() == b.IPv6() && a.UnicastSrc == b.UnicastSrc && a.VMAC == b.VMAC
}

// sameTracking reports whether two configs track the same interfaces and
// checks with the same weights (defaults filled).
func sameTracking(a, b Instance) bool {
	a, b = a.withDefaults(), b.withDefaults()
	return reflect.DeepEqual(a.TrackInterfaces, b.TrackInterfaces) && reflect.DeepEqual(a.TrackChecks, b.TrackChecks)
}

// ChangedSettings names the settings of want that differ from applied,
// one line each ("Interval 100ms → 200ms"); a password by name only. Both
// are compared with their defaults filled and passwords as digests.
func ChangedSettings(applied, want Instance) []string {
	had, now := redact(applied.withDefaults()), redact(want.withDefaults())
	var out []string
	hv, wv := reflect.ValueOf(had), reflect.ValueOf(now)
	for i := 0; i < hv.NumField(); i++ {
		f := hv.Type().Field(i)
		a, b := hv.Field(i).Interface(), wv.Field(i).Interface()
		if reflect.DeepEqual(a, b) {
			continue
		}
		switch {
		case f.Name == "AuthPass":
			out = append(out, "authentication password changed")
		case f.Type.Kind() == reflect.Slice || f.Type.Kind() == reflect.Struct:
			out = append(out, f.Name+" changed")
		default:
			out = append(out, fmt.Sprintf("%s %v → %v", f.Name, a, b))
		}
	}
	return out
}

// predict says which node will be master of in once this node has
// applied it. Without a live status (the instance does not run here) it
// reads the site's priorities; with one it starts from this node's role,
// its effective priority after the new base (tracking weights kept as
// they count now), the master it hears, and preempt with its delay.
func predict(self string, in Instance, prios map[string]int, st *InstanceStatus) []string {
	nodes := slices.Sorted(maps.Keys(prios))
	var peers []string
	for _, node := range nodes {
		peers = append(peers, fmt.Sprintf("%s=%d", node, prios[node]))
	}
	list := strings.Join(peers, ", ")
	if st == nil || st.State == StateInit {
		master, best, tie := "", -1, false
		for _, node := range nodes {
			switch p := prios[node]; {
			case p > best:
				master, best, tie = node, p, false
			case p == best:
				tie = true
			}
		}
		s := fmt.Sprintf("master after apply: %s (priorities %s)", master, list)
		if tie {
			s = fmt.Sprintf("master after apply: decided by primary address (equal priorities %s)", list)
		}
		if in.NoPreempt {
			s += "; nopreempt: a running master keeps the role"
		}
		return []string{s}
	}
	eff := effectiveAfter(in.Priority, st)
	delay := ""
	if in.PreemptDelay > 0 {
		delay = fmt.Sprintf(", after preempt_delay %v", in.PreemptDelay)
	}
	var s string
	switch st.State {
	case StateFault:
		s = fmt.Sprintf("master after apply: another node: %s is in fault (%s)", self, strings.Join(st.Faults, "; "))
	case StateMaster:
		peer, pp := "", -1
		for _, node := range nodes {
			if node != self && prios[node] > pp {
				peer, pp = node, prios[node]
			}
		}
		switch {
		case pp <= int(eff):
			s = fmt.Sprintf("master after apply: %s stays master (effective priority %d; site priorities %s)", self, eff, list)
		case in.NoPreempt:
			s = fmt.Sprintf("master after apply: %s stays master: nopreempt, a running master keeps the role (%s has priority %d above its effective %d)", self, peer, pp, eff)
		default:
			s = fmt.Sprintf("master after apply: %s takes over (priority %d above %s's effective %d%s)", peer, pp, self, eff, delay)
		}
	case StateBackup:
		switch {
		case st.MasterPriority == 0 || !st.MasterAddr.IsValid():
			s = fmt.Sprintf("master after apply: %s, when its master-down timer expires (no master heard; effective priority %d)", self, eff)
		case eff > st.MasterPriority && in.NoPreempt:
			s = fmt.Sprintf("master after apply: %s (priority %d) stays: nopreempt, %s stays backup at effective %d", st.MasterAddr, st.MasterPriority, self, eff)
		case eff > st.MasterPriority:
			s = fmt.Sprintf("master after apply: %s takes over from %s (effective priority %d above its %d%s)", self, st.MasterAddr, eff, st.MasterPriority, delay)
		default:
			s = fmt.Sprintf("master after apply: %s (priority %d) stays; %s stays backup at effective %d", st.MasterAddr, st.MasterPriority, self, eff)
		}
	}
	return []string{s}
}

// effectiveAfter is the effective priority the instance will have with
// base priority base, the tracking weights counting as they do now
// (keepalived's arithmetic: clamped to 1..254 when weights apply).
func effectiveAfter(base uint8, st *InstanceStatus) uint8 {
	delta := int(st.Priority) - int(st.BasePriority)
	if delta == 0 {
		return base
	}
	return uint8(max(1, min(254, int(base)+delta)))
}
