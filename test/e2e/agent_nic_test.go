package e2e

import (
	"bytes"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitgw/gitgw/dataplane/nic"
	"github.com/gitgw/gitgw/test/gitremote"
	"github.com/gitgw/gitgw/test/lab"
)

// nicSite is a one-node site holding only tuning (no VRRP, service or unit,
// so no other driver acts), for the interface eth0 of the agent's
// namespace.
func nicSite(rpsCPUs string, flowCnt int, nonlocal int, extra string) map[string]string {
	return map[string]string{
		"cue.mod/module.cue": "module: \"example.net/nic-e2e@v0\"\nlanguage: version: \"v0.17.0\"\n",
		"site.cue": fmt.Sprintf(`package site

site: name: "nic-e2e"

nodes: gw1: {
	interfaces: eth0: addresses: ["203.0.113.11/24"]
	tuning: {
		interfaces: eth0: {
			rps_cpus:     %q
			rps_flow_cnt: %d%s
		}
		sysctls: {
			"net.ipv4.ip_forward":       1
			"net.ipv4.ip_nonlocal_bind": %d
		}
	}
}
`, rpsCPUs, flowCnt, extra, nonlocal),
	}
}

// nicLog is the agent's stderr, written by the process and read by the test.
type nicLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *nicLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *nicLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// nicEventually polls cond until it holds or the deadline passes; cond
// returns what it saw, for the failure message.
func nicEventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var seen string
	for {
		var ok bool
		if ok, seen = cond(); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, still not %s; last seen: %s", timeout, what, seen)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// nicKnobs reads, through `ip netns exec`, what the test checks.
func nicKnobs(ns *lab.Netns) (map[string]string, error) {
	out, err := ns.Try("sh", "-c", `for q in 0 1 2 3; do
  printf 'rx-%s/rps_cpus=%s\n' $q "$(cat /sys/class/net/eth0/queues/rx-$q/rps_cpus)"
  printf 'rx-%s/rps_flow_cnt=%s\n' $q "$(cat /sys/class/net/eth0/queues/rx-$q/rps_flow_cnt)"
done
printf 'ip_forward=%s\n' "$(cat /proc/sys/net/ipv4/ip_forward)"
printf 'ip_nonlocal_bind=%s\n' "$(cat /proc/sys/net/ipv4/ip_nonlocal_bind)"
printf 'online=%s\n' "$(cat /sys/devices/system/cpu/online)"`)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(line, "=")
		m[k] = v
	}
	return m, nil
}

// nicWant checks every queue's rps_cpus (as a bitmap) and rps_flow_cnt and
// the ip_nonlocal_bind sysctl against the site's values.
func nicWant(ns *lab.Netns, rpsCPUs string, flowCnt, nonlocal int) func() (bool, string) {
	return func() (bool, string) {
		m, err := nicKnobs(ns)
		if err != nil {
			return false, err.Error()
		}
		online, err := nic.ParseCPUList(m["online"])
		if err != nil {
			return false, err.Error()
		}
		want, err := nic.DesiredCPUs(rpsCPUs, 0, nic.CPUInfo{Online: online, Possible: online}, true)
		if err != nil {
			return false, err.Error()
		}
		for q := range 4 {
			have, err := nic.ParseMask(m[fmt.Sprintf("rx-%d/rps_cpus", q)])
			if err != nil || !have.Equal(want) || m[fmt.Sprintf("rx-%d/rps_flow_cnt", q)] != fmt.Sprint(flowCnt) {
				return false, fmt.Sprint(m)
			}
		}
		return m["ip_forward"] == "1" && m["ip_nonlocal_bind"] == fmt.Sprint(nonlocal), fmt.Sprint(m)
	}
}

// TestAgentAppliesNICTuning runs `gitgw agent` inside a network namespace
// holding a veth eth0 with four queues, following a bare repository:
// a push changing rps_cpus and a sysctl is applied; an invalid push is not
// (the previous state stays, the positioned error is logged); a knob
// changed by hand is put back on the next resync.
func TestAgentAppliesNICTuning(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "git", "sh")
	repo := gitremote.NewBare(t)
	repo.Commit(t, "main", nicSite("0", 1024, 0, ""), "tuning: rps on cpu0")

	ns := lab.NewNetns(t, "e2n")
	ns.Run(t, "ip", "link", "add", "eth0", "numrxqueues", "4", "numtxqueues", "4",
		"type", "veth", "peer", "name", "eth1", "numrxqueues", "4", "numtxqueues", "4")
	ns.Run(t, "ip", "addr", "add", "203.0.113.11/24", "dev", "eth0")
	ns.Run(t, "ip", "link", "set", "eth0", "up")
	ns.Run(t, "ip", "link", "set", "eth1", "up")

	ag := startNetnsAgent(t, ns, "gw1",
		"--repo", repo.FileURL(), "--node", "gw1", "--state-dir", t.TempDir(),
		"--interval", "1s", "--resync", "2s",
		"--socket", filepath.Join(t.TempDir(), "gitgw.sock"))
	logs := ag.logs
	agentAlive := func() { t.Helper(); ag.alive(t, "the test's end") }

	nicEventually(t, 90*time.Second, "first commit applied", nicWant(ns, "0", 1024, 0))
	agentAlive()

	repo.Commit(t, "main", nicSite("all", 4096, 1, ""), "tuning: rps on every cpu, nonlocal bind")
	nicEventually(t, 60*time.Second, "second commit applied", nicWant(ns, "all", 4096, 1))

	// A misspelt field: the agent must refuse the revision, say where the
	// error is, and keep running the last good state.
	bad := repo.Commit(t, "main", nicSite("0", 256, 0, "\n\t\t\trps_cpu: \"0\""), "broken: misspelt field")
	positioned := regexp.MustCompile(`site\.cue:\d+:\d+`)
	nicEventually(t, 60*time.Second, "the invalid commit rejected with a positioned error", func() (bool, string) {
		l := logs.String()
		return strings.Contains(l, "rejected") && strings.Contains(l, bad[:7]) && positioned.MatchString(l), nicLastLines(l, 5)
	})
	if ok, seen := nicWant(ns, "all", 4096, 1)(); !ok {
		t.Fatalf("the invalid commit changed the node: %s", seen)
	}

	// A knob changed by hand is put back by the periodic resync, the last
	// good state being re-asserted while the head is invalid.
	ns.Run(t, "sh", "-c", "echo 0 > /sys/class/net/eth0/queues/rx-2/rps_cpus && echo 0 > /proc/sys/net/ipv4/ip_nonlocal_bind")
	nicEventually(t, 60*time.Second, "hand changes put back", nicWant(ns, "all", 4096, 1))
	agentAlive()
}

func nicLastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
