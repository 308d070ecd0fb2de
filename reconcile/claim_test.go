package reconcile

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
)

// TestCheckClaim: a fresh alive ref of another agent stops the start; a
// stale one, this host's agent before a restart or a reboot, an agent
// that does not say who it is, and --replace do not.
func TestCheckClaim(t *testing.T) {
	now := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	self := gitrepo.AgentID{Machine: "m-a", Host: "gw-a", Boot: "b1", PID: 200, StartTicks: 20, Started: now}
	alive := func(age time.Duration, id *gitrepo.AgentID) *gitrepo.Alive {
		return &gitrepo.Alive{Node: "gw1", Time: now.Add(-age), Bound: 3 * time.Minute, Agent: id}
	}
	other := gitrepo.AgentID{Machine: "m-b", Host: "gw-b", Boot: "b9", PID: 77, StartTicks: 5, Started: now.Add(-time.Hour)}
	sameHostRunning := gitrepo.AgentID{Machine: "m-a", Host: "gw-a", Boot: "b1", PID: 150, StartTicks: 15, Started: now.Add(-time.Hour)}
	sameHostGone := gitrepo.AgentID{Machine: "m-a", Host: "gw-a", Boot: "b1", PID: 151, StartTicks: 16, Started: now.Add(-time.Hour)}
	beforeReboot := gitrepo.AgentID{Machine: "m-a", Host: "gw-a", Boot: "b0", PID: 150, StartTicks: 15, Started: now.Add(-time.Hour)}
	clone := gitrepo.AgentID{Machine: "m-a", Host: "gw-c", Boot: "b5", PID: 150, StartTicks: 15, Started: now.Add(-time.Hour)}
	running := func(id gitrepo.AgentID) bool { return id.PID == 150 }
	for _, tc := range []struct {
		name    string
		alive   *gitrepo.Alive
		readErr error
		replace bool
		want    []string // nil: starts
	}{
		{"no alive ref", nil, nil, false, nil},
		{"another host, fresh", alive(time.Minute, &other), nil, false,
			[]string{`another agent already reports as node "gw1"`, "pid 77 on host gw-b (machine m-b", "--replace", "free once its alive ref is stale (after 2026-12-06T07:02:00Z)"}},
		{"another host, stale", alive(4*time.Minute, &other), nil, false, nil},
		{"another host, --replace", alive(time.Minute, &other), nil, true, nil},
		{"this host, another agent running", alive(time.Second, &sameHostRunning), nil, false, []string{"pid 150 on host gw-a"}},
		{"this host, the agent before a restart", alive(time.Second, &sameHostGone), nil, false, nil},
		{"this host, before a reboot", alive(time.Second, &beforeReboot), nil, false, nil},
		{"a cloned VM (same machine id, another host name)", alive(time.Second, &clone), nil, false, []string{"on host gw-c"}},
		{"an agent that does not say who it is", alive(time.Second, nil), nil, false, nil},
		{"alive ref unreadable", nil, errors.New("connection refused"), false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckClaim(context.Background(), ClaimOptions{Node: "gw1", Self: self, Replace: tc.replace, Running: running,
				Now:       func() time.Time { return now },
				ReadAlive: func(context.Context) (*gitrepo.Alive, error) { return tc.alive, tc.readErr }})
			if tc.want == nil {
				if err != nil {
					t.Fatalf("CheckClaim = %v, want the agent to start", err)
				}
				return
			}
			if !errors.Is(err, ErrCannotStart) {
				t.Fatalf("CheckClaim = %v, want ErrCannotStart", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%s", w, err)
				}
			}
		})
	}
}

// TestSelfAgentID: this process is running by its own identity; a PID
// whose start time differs (a reused PID) is not.
func TestSelfAgentID(t *testing.T) {
	id := SelfAgentID(time.Now())
	if id.PID != os.Getpid() || id.Machine == "" || id.Boot == "" || id.StartTicks == 0 {
		t.Fatalf("SelfAgentID = %+v", id)
	}
	if !ProcessRunning(id) {
		t.Fatal("this process is not running by its own identity")
	}
	reused := id
	reused.StartTicks++
	if ProcessRunning(reused) {
		t.Fatal("a reused PID (another start time) counts as running")
	}
}

// TestCheckHostAddresses: an agent on a host that carries its peer's
// address and none of its own refuses to start, naming the peer.
func TestCheckHostAddresses(t *testing.T) {
	p := netip.MustParsePrefix
	nodes := map[string]spec.NodeSettings{
		"gw1":  {Interfaces: map[string]spec.Interface{"eth0": {Addresses: []netip.Prefix{p("203.0.113.11/24")}}}},
		"gw2":  {Interfaces: map[string]spec.Interface{"eth0": {Addresses: []netip.Prefix{p("203.0.113.12/24")}}}},
		"bare": {},
	}
	for _, tc := range []struct {
		name, node string
		host       map[string][]netip.Prefix
		want       string // "": starts
	}{
		{"its own address", "gw1", map[string][]netip.Prefix{"eth0": {p("203.0.113.11/24")}}, ""},
		{"its peer's address", "gw1", map[string][]netip.Prefix{"veth0": {p("203.0.113.12/24")}},
			`none of node "gw1"'s addresses in the site (203.0.113.11) is on this host, which has node "gw2"'s address 203.0.113.12: start the agent with --node gw2`},
		{"both (a lab host)", "gw1", map[string][]netip.Prefix{"a": {p("203.0.113.12/24")}, "b": {p("203.0.113.11/24")}}, ""},
		{"none of the site's", "gw1", map[string][]netip.Prefix{"eth0": {p("198.51.100.7/24")}}, ""},
		{"a node without addresses", "bare", map[string][]netip.Prefix{"eth0": {p("203.0.113.12/24")}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckHostAddresses(tc.node, nodes, tc.host)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("CheckHostAddresses = %v, want the agent to start", err)
			case tc.want != "" && (!errors.Is(err, ErrCannotStart) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("CheckHostAddresses = %v, want ErrCannotStart with %q", err, tc.want)
			}
		})
	}
}
