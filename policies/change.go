package policies

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
)

// AllowEmptyTrailer is the commit trailer that allows a commit to remove
// every VIP of a node or every server of a service; its value says why.
const AllowEmptyTrailer = "Gitgw-Allow-Empty"

var changePolicies = []Policy{
	{"server-removal", "one commit removes at most site: policies: max_server_removal_percent of a service's servers."},
	{"allow-empty", "a commit removes every VIP of a node, or every server of a service, only with a Gitgw-Allow-Empty: trailer."},
	{"maintenance-window", "changes reach a node whose labels match a maintenance window only inside that window."},
}

// Change is one step from the last applied desired state to a new one.
type Change struct {
	// Prev is the last applied state; nil before the first apply, when the
	// change policies have nothing to protect and pass.
	Prev, Next *spec.Node
	// Trailers of the new revision's commit.
	Trailers map[string]string
	// Now is the time the change would be applied.
	Now time.Time
}

// CheckChange runs the change policies. A commit cannot loosen the rules
// that judge it: the stricter of the previous and the new settings apply
// (the lower removal cap, a policy off only when off in both, the windows
// of both).
func CheckChange(c Change) []Violation {
	if c.Prev == nil || c.Next == nil || same(c.Prev, c.Next) {
		return nil
	}
	pp, np := c.Prev.Site.Policies, c.Next.Site.Policies
	off := func(name string) bool { return slices.Contains(pp.Disable, name) && slices.Contains(np.Disable, name) }
	capPct := np.MaxServerRemovalPercent
	if pp.MaxServerRemovalPercent > 0 {
		capPct = min(capPct, pp.MaxServerRemovalPercent)
	}
	allow := trailer(c.Trailers, AllowEmptyTrailer)

	var out []Violation
	add := func(policy, path, format string, args ...any) {
		out = append(out, Violation{Policy: policy, Severity: Error, Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if !off("maintenance-window") {
		if w, i, outside := outsideWindows(c.Prev, c.Next, c.Now); outside {
			add("maintenance-window", fmt.Sprintf("site.policies.maintenance_windows.%d", i),
				"node %s changes only inside its maintenance window %s (%s); it is %s: the change is held and retried on every resync",
				c.Next.Name, w.Name, describe(w), localTime(w, c.Now))
		}
	}
	if !off("allow-empty") && allow == "" && countVIPs(c.Prev) > 0 && countVIPs(c.Next) == 0 {
		add("allow-empty", "nodes."+spec.Label(c.Next.Name), "this commit removes every VIP of node %s (%d before): say so with a %s: trailer in the commit message",
			c.Next.Name, countVIPs(c.Prev), AllowEmptyTrailer)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Prev.Services)) {
		ns, ok := c.Next.Services[name]
		if !ok {
			continue // a service removed whole takes its binds along
		}
		before := active(c.Prev.Services[name])
		after := active(ns)
		if len(before) == 0 {
			continue
		}
		var removed []string
		for _, s := range before {
			if !slices.Contains(after, s) {
				removed = append(removed, s)
			}
		}
		path := "services." + spec.Label(name) + ".servers"
		switch {
		case len(after) == 0:
			if !off("allow-empty") && allow == "" {
				add("allow-empty", path, "this commit removes every server of service %s (%s): say so with a %s: trailer in the commit message",
					name, strings.Join(before, ", "), AllowEmptyTrailer)
			}
		case len(removed)*100 > capPct*len(before):
			if !off("server-removal") {
				add("server-removal", path, "this commit removes %d of the %d servers of service %s (%s), more than the %d%% one commit may remove (site: policies: max_server_removal_percent)",
					len(removed), len(before), name, strings.Join(removed, ", "), capPct)
			}
		}
	}
	return out
}

// active lists a service's servers in rotation (not disabled), by name and
// address: a server whose address changes was removed and another added.
func active(s spec.Service) []string {
	var out []string
	for _, n := range slices.Sorted(maps.Keys(s.Servers)) {
		if sv := s.Servers[n]; !sv.Disabled {
			out = append(out, n+"="+sv.Address)
		}
	}
	return out
}

func countVIPs(n *spec.Node) int {
	c := 0
	for _, vi := range n.VRRP {
		c += len(vi.VIPs) + len(vi.ExcludedVIPs)
	}
	return c
}

func trailer(t map[string]string, k string) string {
	for name, v := range t {
		if strings.EqualFold(name, k) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func same(a, b *spec.Node) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// outsideWindows reports whether the node is governed by maintenance
// windows (of the previous or the new settings, matched on the node's
// labels) and now lies outside all of them; it returns the first such
// window and its index in the new settings (or the previous ones).
func outsideWindows(prev, next *spec.Node, now time.Time) (spec.MaintenanceWindow, int, bool) {
	type ref struct {
		w spec.MaintenanceWindow
		i int
	}
	var applies []ref
	for _, n := range []*spec.Node{next, prev} {
		for i, w := range n.Site.Policies.MaintenanceWindows {
			if matches(w.Labels, n.Node.Labels) {
				applies = append(applies, ref{w, i})
			}
		}
	}
	if len(applies) == 0 {
		return spec.MaintenanceWindow{}, 0, false
	}
	for _, a := range applies {
		if inside(a.w, now) {
			return spec.MaintenanceWindow{}, 0, false
		}
	}
	return applies[0].w, applies[0].i, true
}

func matches(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// zone is the window's time zone; an unknown one (no tzdata on the node)
// is reported by describe and the window then never opens: a policy that
// cannot be read fails closed.
func zone(w spec.MaintenanceWindow) (*time.Location, error) {
	if w.Timezone == "" || w.Timezone == "UTC" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(w.Timezone)
	if err != nil {
		return time.UTC, fmt.Errorf("time zone %q unknown on this node: %w", w.Timezone, err)
	}
	return loc, nil
}

// inside reports whether now falls in the window. A window whose end is
// not after its start runs past midnight into the next day.
func inside(w spec.MaintenanceWindow, now time.Time) bool {
	loc, err := zone(w)
	if err != nil {
		return false
	}
	t := now.In(loc)
	start, err1 := minutes(w.Start)
	end, err2 := minutes(w.End)
	if err1 != nil || err2 != nil {
		return false
	}
	m := t.Hour()*60 + t.Minute()
	onDay := func(d time.Weekday) bool {
		return len(w.Days) == 0 || slices.Contains(w.Days, strings.ToLower(d.String()[:3]))
	}
	if start < end {
		return onDay(t.Weekday()) && m >= start && m < end
	}
	return onDay(t.Weekday()) && m >= start || onDay((t.Weekday()+6)%7) && m < end
}

func minutes(hhmm string) (int, error) {
	t, err := time.Parse("15:04", hhmm)
	if err != nil {
		return 0, fmt.Errorf("maintenance window time %q: %w", hhmm, err)
	}
	return t.Hour()*60 + t.Minute(), nil
}

func describe(w spec.MaintenanceWindow) string {
	days := "every day"
	if len(w.Days) > 0 {
		days = strings.Join(w.Days, ",")
	}
	tz := w.Timezone
	if tz == "" {
		tz = "UTC"
	}
	if _, err := zone(w); err != nil {
		tz += ", " + err.Error()
	}
	return fmt.Sprintf("%s %s-%s %s", days, w.Start, w.End, tz)
}

func localTime(w spec.MaintenanceWindow, now time.Time) string {
	loc, _ := zone(w)
	return now.In(loc).Format("Mon 15:04 MST")
}
