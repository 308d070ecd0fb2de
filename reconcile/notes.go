package reconcile

import (
	"fmt"
	"sort"

	"github.com/gitgw/gitgw/cue/spec"
)

// Notes are plan-wide remarks derived from the desired state alone: which
// node the site's priorities make master of each VRRP instance.
func Notes(n *spec.Node) []string {
	if n == nil {
		return nil
	}
	var names []string
	for k := range n.VRRP {
		names = append(names, k)
	}
	sort.Strings(names)
	var out []string
	for _, k := range names {
		in := n.VRRP[k]
		master, best, tie := "", 0, false
		for node, v := range in.Nodes {
			switch {
			case v.Priority > best:
				master, best, tie = node, v.Priority, false
			case v.Priority == best:
				tie = true
				if node < master {
					master = node
				}
			}
		}
		role := "backup"
		if master == n.Name {
			role = "master"
		}
		s := fmt.Sprintf("vrrp %s (VRID %d): %s will be master (priority %d); this node %s is %s", k, in.VRID, master, best, n.Name, role)
		if tie {
			s += " — equal priorities: the highest primary address wins"
		}
		if !in.Preempt {
			s += "; nopreempt: a running master keeps the role"
		}
		out = append(out, s)
	}
	return out
}
