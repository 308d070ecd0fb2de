package drift

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
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
	// "behind", "rejected", "failing", "rolled-back", "held" or "unknown".
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
}

// FleetVRRP is one virtual router across the nodes that report it.
type FleetVRRP struct {
	VRID      int               `json:"vrid"`
	Instances []string          `json:"instances"`
	Roles     map[string]string `json:"roles"`
	Masters   []string          `json:"masters"`
	// Flag is "split-brain" (two masters), "no-master" or "".
	Flag string `json:"flag,omitempty"`
}

// FleetAlert is a problem worth a human's attention.
type FleetAlert struct {
	Kind    string `json:"kind"` // split-brain, no-master, rolled-back, rejected, failing, drift, unreadable
	Subject string `json:"subject"`
	Message string `json:"message"`
}

// BuildFleet assembles the fleet view from every node's report.
func BuildFleet(head string, reports []NodeReport) Fleet {
	f := Fleet{Head: head, Nodes: []FleetNode{}, Routers: []FleetVRRP{}, Alerts: []FleetAlert{}}
	routers := map[int]*FleetVRRP{}
	for _, r := range reports {
		n := FleetNode{Node: r.Node, LastSeen: r.Time.UTC(), Subject: r.Subject, Sync: "unknown", Error: r.Err, Stale: r.Stale}
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
		case head == "":
		case st.Applied == head:
			n.Sync = "current"
		default:
			n.Sync = "behind"
		}
		if n.Drift > 0 {
			f.Alerts = append(f.Alerts, FleetAlert{"drift", r.Node, plural(n.Drift, "open drift item")})
		}
		if v, ok := VRRPOf(*st); ok {
			for _, in := range v.Instances {
				if n.Roles == nil {
					n.Roles = map[string]string{}
				}
				n.Roles[in.Name] = in.State
				rt := routers[in.VRID]
				if rt == nil {
					rt = &FleetVRRP{VRID: in.VRID, Roles: map[string]string{}, Masters: []string{}}
					routers[in.VRID] = rt
				}
				if !slices.Contains(rt.Instances, in.Name) {
					rt.Instances = append(rt.Instances, in.Name)
				}
				rt.Roles[r.Node] = in.State
				if strings.EqualFold(in.State, "MASTER") {
					rt.Masters = append(rt.Masters, r.Node)
				}
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
	for _, rt := range routers {
		slices.Sort(rt.Instances)
		slices.Sort(rt.Masters)
		name := fmt.Sprintf("VRID %d (%s)", rt.VRID, strings.Join(rt.Instances, ", "))
		switch {
		case len(rt.Masters) > 1:
			rt.Flag = "split-brain"
			f.Alerts = append(f.Alerts, FleetAlert{"split-brain", name, "masters: " + strings.Join(rt.Masters, ", ")})
		case len(rt.Masters) == 0:
			rt.Flag = "no-master"
			f.Alerts = append(f.Alerts, FleetAlert{"no-master", name, "no node reports MASTER"})
		}
		f.Routers = append(f.Routers, *rt)
	}
	slices.SortFunc(f.Routers, func(a, b FleetVRRP) int { return cmp.Compare(a.VRID, b.VRID) })
	slices.SortStableFunc(f.Alerts, func(a, b FleetAlert) int {
		return cmp.Or(cmp.Compare(alertRank(a.Kind), alertRank(b.Kind)), cmp.Compare(a.Subject, b.Subject))
	})
	return f
}

func alertRank(k string) int {
	return slices.Index([]string{"split-brain", "no-master", "rolled-back", "rejected", "failing", "unreadable", "drift"}, k)
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
		fmt.Fprintf(tw, "VRID\tINSTANCE\tROLES\tFLAG\n")
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
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", rt.VRID, strings.Join(rt.Instances, ","), strings.Join(roles, " "), flag)
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
