package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/gitremote"
	"github.com/gitgw/gitgw/test/lab"
)

// aliveAgent is the Gitgw-Agent-Id trailer of gw1's alive ref ("" when
// there is none).
func (l *statusLab) aliveAgent(t *testing.T) string {
	t.Helper()
	msg, err := gitremote.Git(l.repo.Dir, "log", "-1", "--format=%B", "refs/gitgw/alive/gw1")
	if err != nil {
		return ""
	}
	m := regexp.MustCompile(`(?m)^Gitgw-Agent-Id: (.*)$`).FindStringSubmatch(msg)
	if m == nil {
		return ""
	}
	return m[1]
}

// waitAliveBy waits until gw1's alive ref names the agent process a.
func (l *statusLab) waitAliveBy(t *testing.T, a *agentProc) {
	t.Helper()
	pid := fmt.Sprintf(" pid=%d ", a.cmd.Process.Pid)
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(l.aliveAgent(t), pid) {
		select {
		case <-a.done:
			t.Fatalf("the agent exited before its alive ref:\n%s", a.stderr())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("gw1's alive ref never names pid %d (it names %q)", a.cmd.Process.Pid, l.aliveAgent(t))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSecondAgentSameNodeRefuses runs two real agents with the same
// --node against one repository: the second refuses to start, naming the
// first, which keeps reporting; once the first stops, the name is free and
// the second starts.
func TestSecondAgentSameNodeRefuses(t *testing.T) {
	l := newStatusLab(t)
	head := l.repo.Commit(t, "main", labFiles(t, nil), "lab site")
	first := l.startAgent(t, "--alive-interval", "1s")
	l.waitSubject(t, first, regexp.MustCompile(`\(gw1\): `+head[:7]))
	l.waitAliveBy(t, first)

	other := filepath.Join(l.base, "state2")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(other, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	second := l.startAgent(t, "--alive-interval", "1s", "--state-dir", other, "--unit-dir", filepath.Join(other, "units"))
	select {
	case <-second.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the second agent under gw1 still runs:\n%s", second.stderr())
	}
	if code := second.cmd.ProcessState.ExitCode(); code == 0 {
		t.Fatalf("the second agent exited 0:\n%s", second.stderr())
	}
	msg := second.stderr()
	for _, want := range []string{`another agent already reports as node "gw1"`, fmt.Sprintf("pid %d on host", first.cmd.Process.Pid), "--replace"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the refusal lacks %q:\n%s", want, msg)
		}
	}
	select {
	case <-first.done:
		t.Fatalf("the first agent exited:\n%s", first.stderr())
	default:
	}
	l.waitAliveBy(t, first) // still refreshing, under its own identity

	// The first agent stops: its process is gone, the name is free.
	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-first.done
	third := l.startAgent(t, "--alive-interval", "1s", "--state-dir", other, "--unit-dir", filepath.Join(other, "units"))
	l.waitAliveBy(t, third)
}

// TestAgentOnPeersAddressRefuses starts the lab's gw1 agent in a network
// namespace that has gw2's address and not gw1's: it refuses to start and
// says to use --node gw2. With gw1's address, it starts.
func TestAgentOnPeersAddressRefuses(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip")
	site := filepath.Join(repoRoot(t), "examples", "lab")
	for _, tc := range []struct {
		addr   string
		refuse bool
	}{{"203.0.113.12/24", true}, {"203.0.113.11/24", false}} {
		ns := lab.NewNetns(t, "e2c")
		ns.Run(t, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
		ns.Run(t, "ip", "link", "set", "eth0p", "up")
		ns.Run(t, "ip", "addr", "add", tc.addr, "dev", "eth0")
		ns.Run(t, "ip", "link", "set", "eth0", "up")
		state := t.TempDir()
		ag := startNetnsAgent(t, ns, "gw1", "--site", site, "--node", "gw1", "--state-dir", state,
			"--socket", "", "--listen", "", "--no-status",
			"--unit-dir", filepath.Join(state, "units"), "--systemd-socket", filepath.Join(state, "no-systemd"))
		if !tc.refuse {
			deadline := time.Now().Add(time.Minute)
			for !strings.Contains(ag.logs.String(), "agent starting") {
				ag.alive(t, "starting on its own address")
				if time.Now().After(deadline) {
					t.Fatalf("the agent on its own address does not start:\n%s", ag.logs.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
			continue
		}
		select {
		case err := <-ag.exited:
			ag.exited <- err
			if err == nil {
				t.Fatalf("the agent on gw2's address exited 0:\n%s", ag.logs.String())
			}
		case <-time.After(time.Minute):
			t.Fatalf("the agent on gw2's address still runs:\n%s", ag.logs.String())
		}
		if out := ag.logs.String(); !strings.Contains(out, `none of node "gw1"'s addresses in the site (203.0.113.11) is on this host, which has node "gw2"'s address 203.0.113.12`) ||
			!strings.Contains(out, "--node gw2") {
			t.Errorf("the refusal does not say what to do:\n%s", out)
		}
	}
}
