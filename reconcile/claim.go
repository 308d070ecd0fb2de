package reconcile

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
)

// An agent reports under its node's name: its status branch and its alive
// ref. A second agent started under the same name (a copy-pasted unit, a
// --node typo on the peer) would break the real node's reporting, and the
// only trace would be one log line about a diverged branch. So an agent
// checks at start that nobody else holds the name (CheckClaim) and that
// the site's addresses for the node are on this host (CheckHostAddresses),
// and refuses to start otherwise.

// SelfAgentID identifies this agent process: /etc/machine-id (the host
// name when there is none), the host name, /proc/sys/kernel/random/boot_id,
// the PID and the process start time in clock ticks (/proc/self/stat).
func SelfAgentID(now time.Time) gitrepo.AgentID {
	id := gitrepo.AgentID{PID: os.Getpid(), Started: now.UTC().Truncate(time.Second)}
	id.Host, _ = os.Hostname()
	if b, err := os.ReadFile("/etc/machine-id"); err == nil {
		id.Machine = strings.TrimSpace(string(b))
	}
	if id.Machine == "" {
		id.Machine = id.Host
	}
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		id.Boot = strings.TrimSpace(string(b))
	}
	id.StartTicks, _ = processStart(id.PID)
	return id
}

// processStart is field 22 of /proc/PID/stat: when the process started,
// in clock ticks since boot.
func processStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// ProcessRunning says whether the process id names still runs on this
// host and boot: its PID exists and started when id says (a reused PID
// does not count).
func ProcessRunning(id gitrepo.AgentID) bool {
	ticks, err := processStart(id.PID)
	return err == nil && (id.StartTicks == 0 || ticks == id.StartTicks)
}

// ClaimOptions configure CheckClaim.
type ClaimOptions struct {
	Node string
	// Self is this agent (SelfAgentID).
	Self gitrepo.AgentID
	// ReadAlive reads the node's alive ref (nil: none).
	ReadAlive func(ctx context.Context) (*gitrepo.Alive, error)
	// Replace starts the agent even while another one holds the name
	// (--replace): for an operator who knows the other one is gone.
	Replace bool
	// Running says whether a process of this host and boot still runs
	// (default ProcessRunning).
	Running func(gitrepo.AgentID) bool
	Now     func() time.Time
	Logger  *slog.Logger
}

// CheckClaim refuses to start when another agent reports under this node's
// name: its alive ref is fresh (within the bound it promised) and names
// another agent, on another host, or on this host and still running. The
// name is free when the ref is stale, names a process of this host that
// is gone (this agent restarted), or was written before another boot. An
// alive ref that cannot be read does not stop the start (the network may
// be down: the agent would retry anyway).
func CheckClaim(ctx context.Context, o ClaimOptions) error {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Running == nil {
		o.Running = ProcessRunning
	}
	a, err := o.ReadAlive(ctx)
	if err != nil {
		log.Warn("start-up check skipped: the node's alive ref cannot be read", "node", o.Node, "err", err)
		return nil
	}
	now := o.Now()
	if a == nil || a.Stale(now) || a.Agent == nil {
		return nil
	}
	other := *a.Agent
	switch {
	case other.SameBoot(o.Self) && other.PID == o.Self.PID:
		return nil
	case other.SameBoot(o.Self) && !o.Running(other):
		return nil // this host's agent before a restart
	case other.Machine == o.Self.Machine && other.Host == o.Self.Host && other.Boot != o.Self.Boot:
		// This host, before a reboot. (A cloned VM shares the machine id
		// but, once named, not the host name.)
		return nil
	}
	free := a.Time.Add(a.Bound)
	if o.Replace {
		log.Warn("--replace: starting while another agent reports under this node's name; stop it, or the two fight over the status branch",
			"node", o.Node, "other", other.Describe(), "alive_at", a.Time)
		return nil
	}
	return fmt.Errorf("%w: another agent already reports as node %q: %s, alive at %s (refs/gitgw/alive/%s, refreshed within %s). "+
		"Stop that agent or start this one with the right --node; if it is gone for good, start with --replace, or wait: the name is free once its alive ref is stale (after %s)",
		ErrCannotStart, o.Node, other.Describe(), a.Time.UTC().Format(time.RFC3339), o.Node, a.Bound, free.UTC().Format(time.RFC3339))
}

// CheckHostAddresses refuses to start an agent whose node's addresses, as
// the site declares them, are not on this host while another node's are:
// the agent was started under the wrong --node (the peer's name). A node
// that declares no address, or a host that carries none of the site's
// node addresses at all (a lab, a container with its own view), is not
// judged. host is the host's addresses by interface
// (vip.ReadHostAddresses).
func CheckHostAddresses(node string, nodes map[string]spec.NodeSettings, host map[string][]netip.Prefix) error {
	on := map[netip.Addr]bool{}
	for _, ps := range host {
		for _, p := range ps {
			on[p.Addr()] = true
		}
	}
	addrs := func(n spec.NodeSettings) []netip.Addr {
		var out []netip.Addr
		for _, ifc := range n.Interfaces {
			for _, p := range ifc.Addresses {
				out = append(out, p.Addr())
			}
		}
		slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
		return out
	}
	mine := addrs(nodes[node])
	if len(mine) == 0 || slices.ContainsFunc(mine, func(a netip.Addr) bool { return on[a] }) {
		return nil
	}
	for _, other := range slices.Sorted(maps.Keys(nodes)) {
		if other == node {
			continue
		}
		for _, a := range addrs(nodes[other]) {
			if on[a] {
				return fmt.Errorf("%w: none of node %q's addresses in the site (%s) is on this host, which has node %q's address %s: "+
					"start the agent with --node %s, or correct nodes.%s.interfaces in the site",
					ErrCannotStart, node, joinAddrs(mine), other, a, other, spec.Label(node))
			}
		}
	}
	return nil
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
