package drift

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gitgw/gitgw/internal/words"
)

// NodeReport is one node's status branch as read from the repository.
type NodeReport struct {
	Node   string
	Commit string // the status commit
	// Subject of the status commit; Time its commit time (last seen).
	Subject string
	Time    time.Time
	// Status is the parsed status.json; Err says why it could not be.
	Status *Status
	Err    string
	// Alive is the node's last liveness refresh (zero: it keeps none);
	// Stale says it is older than the bound the node promised (AliveBound).
	Alive      time.Time
	AliveBound time.Duration
	Stale      bool
	// Agent names the agent process that last refreshed it ("pid 412 on
	// host gw-a (…)"), when it says.
	Agent string
}

// Fleet is the fleet view: every node, and every virtual router across them.
type Fleet struct {
	// Head is the tracked branch's head ("" when unknown).
	Head    string       `json:"head,omitempty"`
	Nodes   []FleetNode  `json:"nodes"`
	Routers []FleetVRRP  `json:"vrrp"`
	Alerts  []FleetAlert `json:"alerts"`
}

// FleetNode is one row of the fleet table.
type FleetNode struct {
	Node    string `json:"node"`
	Applied string `json:"applied_commit,omitempty"`
	Desired string `json:"desired_commit,omitempty"`
	// Sync compares the applied commit with the head: "current",
	// "behind", "rejected", "failing", "rolled-back", "held", "suspended"
	// or "unknown".
	Sync     string    `json:"sync"`
	LastSeen time.Time `json:"last_seen"`
	Outcome  string    `json:"outcome,omitempty"`
	Subject  string    `json:"last_report"`
	// Roles is the node's state per VRRP instance.
	Roles map[string]string `json:"vrrp_roles,omitempty"`
	// Proxy counts servers by health ("up": 2, "down": 1).
	Proxy map[string]int `json:"proxy_health,omitempty"`
	Drift int            `json:"drift"`
	Error string         `json:"error,omitempty"`
	// Alive is the node's last liveness refresh, when it keeps one; Stale
	// means the node did not refresh within the bound it promised: its
	// agent is stopped or cannot reach the repository.
	Alive *time.Time `json:"alive,omitempty"`
	Stale bool       `json:"stale,omitempty"`
	// Agent is the agent process that last refreshed the alive ref: where
	// to look when two agents claim one node.
	Agent string `json:"agent,omitempty"`
}

// FleetVRRP is one virtual router across the nodes that report it: the
// instances that share a VRID, an address family and a segment (a subnet
// of their interface, as the vrid-unique guardrail defines it). Two
// segments may reuse a VRID; only masters of one router are a split brain.
type FleetVRRP struct {
	VRID int `json:"vrid"`
	// Family and Segments identify the router with the VRID; no segments
	// when the nodes did not report them (an older agent): the router is
	// then keyed on the VRID alone.
	Family    string            `json:"family,omitempty"`
	Segments  []string          `json:"segments,omitempty"`
	Instances []string          `json:"instances"`
	Roles     map[string]string `json:"roles"`
	Masters   []string          `json:"masters"`
	// Flag is "split-brain" (two masters), "no-master" or "".
	Flag string `json:"flag,omitempty"`

	keys []string
}

// Name names the router in alerts: "VRID 51 on 198.51.100.0/24 (VI_1)".
func (rt FleetVRRP) Name() string {
	on := ""
	if len(rt.Segments) > 0 {
		on = " on " + strings.Join(rt.Segments, ", ")
	}
	return fmt.Sprintf("VRID %d%s (%s)", rt.VRID, on, strings.Join(rt.Instances, ", "))
}

// routerKeys are the (family, segment, VRID) an instance occupies.
func routerKeys(in VRRPInstance) []string {
	fam := cmp.Or(in.Family, "IPv4")
	if len(in.Segments) == 0 {
		return []string{fmt.Sprintf("%s|*|%d", fam, in.VRID)}
	}
	out := make([]string, 0, len(in.Segments))
	for _, s := range in.Segments {
		out = append(out, fmt.Sprintf("%s|%s|%d", fam, s, in.VRID))
	}
	return out
}

// routers groups the nodes' instances into virtual routers: instances
// that share a key are one router (merged when an instance with several
// segments joins two).
type routers struct {
	byKey map[string]*FleetVRRP
	all   []*FleetVRRP
}

func (rs *routers) add(node string, in VRRPInstance) {
	keys := routerKeys(in)
	var rt *FleetVRRP
	for _, k := range keys {
		other := rs.byKey[k]
		switch {
		case other == nil || other == rt:
		case rt == nil:
			rt = other
		default:
			// The instance joins two routers: one router after all.
			rt.Instances = append(rt.Instances, other.Instances...)
			rt.Masters = append(rt.Masters, other.Masters...)
			rt.Segments = append(rt.Segments, other.Segments...)
			maps.Copy(rt.Roles, other.Roles)
			for _, ok := range other.keys {
				rs.byKey[ok] = rt
			}
			rt.keys = append(rt.keys, other.keys...)
			rs.all = slices.DeleteFunc(rs.all, func(r *FleetVRRP) bool { return r == other })
		}
	}
	if rt == nil {
		rt = &FleetVRRP{VRID: in.VRID, Family: in.Family, Roles: map[string]string{}, Masters: []string{}}
		rs.all = append(rs.all, rt)
	}
	for _, k := range keys {
		if rs.byKey[k] == nil {
			rs.byKey[k] = rt
			rt.keys = append(rt.keys, k)
		}
	}
	for _, s := range in.Segments {
		if !slices.Contains(rt.Segments, s) {
			rt.Segments = append(rt.Segments, s)
		}
	}
	if !slices.Contains(rt.Instances, in.Name) {
		rt.Instances = append(rt.Instances, in.Name)
	}
	rt.Roles[node] = in.State
	if strings.EqualFold(in.State, "MASTER") && !slices.Contains(rt.Masters, node) {
		rt.Masters = append(rt.Masters, node)
	}
}

// FleetAlert is a problem worth a human's attention.
type FleetAlert struct {
	Kind    string `json:"kind"` // split-brain, no-master, stale, rolled-back, rejected, failing, suspended, unreadable, pending, drift
	Subject string `json:"subject"`
	Message string `json:"message"`
}

// BuildFleet assembles the fleet view from every node's report.
func BuildFleet(head string, reports []NodeReport) Fleet {
	f := Fleet{Head: head, Nodes: []FleetNode{}, Routers: []FleetVRRP{}, Alerts: []FleetAlert{}}
	rs := routers{byKey: map[string]*FleetVRRP{}}
	for _, r := range reports {
		n := FleetNode{Node: r.Node, LastSeen: r.Time.UTC(), Subject: r.Subject, Sync: "unknown", Error: r.Err, Stale: r.Stale, Agent: r.Agent}
		if !r.Alive.IsZero() {
			a := r.Alive.UTC()
			n.Alive = &a
			if a.After(n.LastSeen) {
				n.LastSeen = a
			}
		}
		if r.Stale {
			f.Alerts = append(f.Alerts, FleetAlert{"stale", r.Node, fmt.Sprintf("no liveness refresh since %s (it promised one within %s): agent stopped or cut off from the repository",
				n.LastSeen.Format(time.RFC3339), r.AliveBound)})
		}
		if r.Status == nil {
			if r.Err != "" {
				f.Alerts = append(f.Alerts, FleetAlert{"unreadable", r.Node, r.Err})
			}
			f.Nodes = append(f.Nodes, n)
			continue
		}
		st := r.Status
		n.Applied, n.Desired, n.Outcome, n.Drift = st.Applied, st.Desired.Commit, st.LastPass.Outcome, len(st.Drift)
		switch {
		case st.LastPass.Outcome == Rejected:
			n.Sync = "rejected"
			msg := Short(st.Desired.Commit) + " rejected"
			if len(st.LastPass.Errors) > 0 {
				msg += ": " + st.LastPass.Errors[0].String()
			}
			f.Alerts = append(f.Alerts, FleetAlert{"rejected", r.Node, msg})
		case st.LastPass.Outcome == Failed:
			n.Sync = "failing"
			f.Alerts = append(f.Alerts, FleetAlert{"failing", r.Node, firstLine(st.LastPass.Error)})
		case st.LastPass.Outcome == RolledBack:
			n.Sync = "rolled-back"
			f.Alerts = append(f.Alerts, FleetAlert{"rolled-back", r.Node, firstLine(st.LastPass.Error)})
		case st.LastPass.Outcome == Held:
			n.Sync = "held"
		case st.LastPass.Outcome == Suspended:
			n.Sync = "suspended"
			f.Alerts = append(f.Alerts, FleetAlert{"suspended", r.Node, Short(st.Desired.Commit) + " not applied: applying suspended by the operator (gitgw resume)"})
		case head == "":
		case st.Applied == head:
			n.Sync = "current"
		default:
			n.Sync = "behind"
		}
		if st.LastPass.Outcome == Incomplete {
			f.Alerts = append(f.Alerts, FleetAlert{"pending", r.Node, "not converged: " + strings.TrimSuffix(strings.TrimPrefix(notDone(*st), " ("), ")")})
		}
		if n.Drift > 0 {
			f.Alerts = append(f.Alerts, FleetAlert{"drift", r.Node, words.Plural(n.Drift, "open drift item")})
		}
		if v, ok := VRRPOf(*st); ok {
			for _, in := range v.Instances {
				if n.Roles == nil {
					n.Roles = map[string]string{}
				}
				n.Roles[in.Name] = in.State
				rs.add(r.Node, in)
			}
		}
		if p, ok := ProxyOf(*st); ok {
			for _, s := range p.Services {
				for _, sv := range s.Servers {
					if n.Proxy == nil {
						n.Proxy = map[string]int{}
					}
					n.Proxy[cmp.Or(sv.Health, "unknown")]++
				}
			}
		}
		f.Nodes = append(f.Nodes, n)
	}
	slices.SortFunc(f.Nodes, func(a, b FleetNode) int { return cmp.Compare(a.Node, b.Node) })
	for _, rt := range rs.all {
		slices.Sort(rt.Instances)
		rt.Instances = slices.Compact(rt.Instances)
		slices.Sort(rt.Masters)
		rt.Masters = slices.Compact(rt.Masters)
		slices.Sort(rt.Segments)
		rt.Segments = slices.Compact(rt.Segments)
		switch {
		case len(rt.Masters) > 1:
			rt.Flag = "split-brain"
			f.Alerts = append(f.Alerts, FleetAlert{"split-brain", rt.Name(), "masters: " + strings.Join(rt.Masters, ", ")})
		case len(rt.Masters) == 0:
			rt.Flag = "no-master"
			f.Alerts = append(f.Alerts, FleetAlert{"no-master", rt.Name(), "no node reports MASTER"})
		}
		f.Routers = append(f.Routers, *rt)
	}
	slices.SortFunc(f.Routers, func(a, b FleetVRRP) int {
		return cmp.Or(cmp.Compare(a.VRID, b.VRID), cmp.Compare(strings.Join(a.Segments, ","), strings.Join(b.Segments, ",")),
			cmp.Compare(a.Family, b.Family), cmp.Compare(strings.Join(a.Instances, ","), strings.Join(b.Instances, ",")))
	})
	slices.SortStableFunc(f.Alerts, func(a, b FleetAlert) int {
		return cmp.Or(cmp.Compare(alertRank(a.Kind), alertRank(b.Kind)), cmp.Compare(a.Subject, b.Subject))
	})
	return f
}

func alertRank(k string) int {
	return slices.Index([]string{"stale", "split-brain", "no-master", "rolled-back", "rejected", "failing", "suspended", "unreadable", "pending", "drift"}, k)
}

// WriteFleetText renders the fleet table; now is used for "last seen" ages.
func WriteFleetText(w io.Writer, f Fleet, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "NODE\tAPPLIED\tHEAD\tSYNC\tLAST SEEN\tVRRP\tPROXY\tDRIFT\n")
	for _, n := range f.Nodes {
		var roles []string
		for _, k := range sortedKeys(n.Roles) {
			roles = append(roles, k+"="+n.Roles[k])
		}
		var proxy []string
		for _, k := range sortedKeys(n.Proxy) {
			proxy = append(proxy, fmt.Sprintf("%d %s", n.Proxy[k], k))
		}
		seen := age(now, n.LastSeen)
		if n.Stale {
			seen += " STALE"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", n.Node, orDash(Short(n.Applied)), orDash(Short(f.Head)), n.Sync,
			seen, orDash(strings.Join(roles, " ")), orDash(strings.Join(proxy, ", ")), n.Drift)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(f.Routers) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "VRID\tSEGMENT\tINSTANCE\tROLES\tFLAG\n")
		for _, rt := range f.Routers {
			var roles []string
			for _, k := range sortedKeys(rt.Roles) {
				roles = append(roles, k+"="+rt.Roles[k])
			}
			flag := rt.Flag
			switch flag {
			case "split-brain":
				flag = "SPLIT BRAIN"
			case "no-master":
				flag = "NO MASTER"
			case "":
				flag = "ok"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", rt.VRID, orDash(strings.Join(rt.Segments, ",")), strings.Join(rt.Instances, ","), strings.Join(roles, " "), flag)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(f.Alerts) > 0 {
		fmt.Fprintln(w)
		for _, a := range f.Alerts {
			fmt.Fprintf(w, "%s: %s: %s\n", strings.ToUpper(a.Kind), a.Subject, a.Message)
		}
	}
	return nil
}

// WriteFleetJSON renders the fleet view as indented JSON.
func WriteFleetJSON(w io.Writer, f Fleet) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		FormatVersion int `json:"format_version"`
		Fleet
	}{SchemaVersion, f})
}

func age(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
