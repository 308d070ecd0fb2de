package reconcile

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/l4proxy"
	"github.com/gitgw/gitgw/reconcile/control"
)

// Notes are plan-wide remarks derived from the desired state alone: which
// node the site's priorities make master of each VRRP instance, and the
// risk the site took with each service it runs without a health check.
func Notes(n *spec.Node) []string {
	if n == nil {
		return nil
	}
	return append(vrrpNotes(n), UncheckedNotes(n)...)
}

// UncheckedNotes name the node's services that run without a health
// check (unchecked: true), and the servers the check of a service leaves
// out (servers: X: unchecked: true): on every plan, not only when they
// change, since the risk lasts as long as the site says so.
func UncheckedNotes(n *spec.Node) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(n.Services)) {
		s := n.Services[name]
		if !s.Unchecked {
			var srvs []string
			for _, sn := range slices.Sorted(maps.Keys(s.Servers)) {
				if s.Servers[sn].Unchecked {
					srvs = append(srvs, sn)
				}
			}
			if s.Check != nil && len(srvs) > 0 {
				word, them := "server", "it"
				if len(srvs) > 1 {
					word, them = "servers", "them"
				}
				out = append(out, fmt.Sprintf("service %s: %s %s unchecked: true (the check never takes %s out): %s; shown as %s",
					name, word, strings.Join(srvs, ", "), them, control.UncheckedRisk, l4proxy.StatusNoCheck))
			}
			continue
		}
		proto := s.Protocol
		if proto == "" {
			proto = "tcp"
		}
		mode := string(s.Mode)
		if mode == "" {
			mode = string(spec.ModeProxy)
		}
		out = append(out, fmt.Sprintf("service %s (%s %s, unchecked: true): %s; its servers are shown as %s", name, mode, proto, control.UncheckedRisk, l4proxy.StatusNoCheck))
	}
	return out
}

func vrrpNotes(n *spec.Node) []string {
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
