package e2e

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/gitremote"
	"github.com/gitgw/gitgw/test/lab"
)

// pushSite is a one-node site whose only resource is a namespaced sysctl:
// every push toggles it, so every push is a real change for the agent.
func pushSite(round int) map[string]string {
	return map[string]string{
		"cue.mod/module.cue": "module: \"example.net/push-bench@v0\"\nlanguage: version: \"v0.17.0\"\n",
		"site.cue": fmt.Sprintf(`package site

// round %d
nodes: gw1: {
	interfaces: eth0: addresses: ["203.0.113.11/24"]
	tuning: sysctls: "net.ipv4.ip_forward": %d
}
`, round, round%2),
	}
}

// appliedWatcher timestamps the agent's "applied" log lines as they arrive.
type appliedWatcher struct {
	mu      sync.Mutex
	applied map[string]time.Time // commit → when its pass was logged applied
	cond    *sync.Cond
	tail    []string
}

func watchApplied(r io.Reader) *appliedWatcher {
	w := &appliedWatcher{applied: map[string]time.Time{}}
	w.cond = sync.NewCond(&w.mu)
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			now := time.Now()
			w.mu.Lock()
			w.tail = append(w.tail, line)
			if len(w.tail) > 20 {
				w.tail = w.tail[1:]
			}
			// The first revision may find the node as it wants it.
			if strings.Contains(line, `"outcome":"applied"`) || strings.Contains(line, `"outcome":"unchanged"`) {
				if i := strings.Index(line, `"commit":"`); i >= 0 {
					c := line[i+len(`"commit":"`):]
					if j := strings.IndexByte(c, '"'); j > 0 {
						if _, seen := w.applied[c[:j]]; !seen {
							w.applied[c[:j]] = now
						}
					}
				}
			}
			w.cond.Broadcast()
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *appliedWatcher) wait(commit string, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	go func() { time.Sleep(timeout); w.cond.Broadcast() }()
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		if at, ok := w.applied[commit]; ok {
			return at, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("commit %s not applied within %v; last log lines:\n%s", commit[:7], timeout, strings.Join(w.tail, "\n"))
		}
		w.cond.Wait()
	}
}

// BenchmarkPushToApplied measures the time from `git push` to the agent
// logging the pushed commit applied, over 20 pushes: for a local bare
// repository (watched with fsnotify) and for an ssh remote on 127.0.0.1
// polled every second. Target (issue "The spine"): ≤ 1 s median locally.
func BenchmarkPushToApplied(b *testing.B) {
	lab.RequireRoot(b)
	lab.RequireCommand(b, "ip", "git", "sshd")
	const rounds = 20
	results := map[string]durStats{}
	for _, mode := range []string{"local (fsnotify)", "ssh (poll 1s)"} {
		ns := lab.NewNetns(b, "push")
		repo := gitremote.NewBare(b)
		repo.Commit(b, "main", pushSite(0), "round 0")
		args := []string{"netns", "exec", ns.Name, gitgwBin, "agent", "--node", "gw1", "--state-dir", b.TempDir(),
			"--interval", "1s", "--resync", "1h", "--no-status", "--socket", filepath.Join(b.TempDir(), "gitgw.sock"),
			// Never the host's systemd or /etc/systemd/system.
			"--unit-dir", b.TempDir(), "--systemd-socket", filepath.Join(b.TempDir(), "no-systemd")}
		if strings.HasPrefix(mode, "local") {
			args = append(args, "--repo", repo.Dir)
		} else {
			// sshd runs inside the agent's namespace, on its own loopback.
			var sshd *gitremote.SSHD
			if err := ns.Do(func() error { sshd = gitremote.StartSSHD(b); return nil }); err != nil {
				b.Fatal(err)
			}
			args = append(args, "--repo", sshd.URL(repo.Dir), "--ssh-key", sshd.ClientKey, "--known-hosts", sshd.KnownHosts)
		}
		cmd := exec.Command("ip", args...)
		pr, pw := io.Pipe()
		cmd.Stdout, cmd.Stderr = io.Discard, pw
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		w := watchApplied(pr)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); pw.Close(); close(done) }()
		stop := func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		}
		if _, err := w.wait(repo.Head(b, "main"), 90*time.Second); err != nil {
			stop()
			b.Fatalf("%s: %v", mode, err)
		}
		var lat []time.Duration
		for i := 1; i <= rounds; i++ {
			start := time.Now()
			commit := repo.Commit(b, "main", pushSite(i), fmt.Sprintf("round %d", i))
			at, err := w.wait(commit, 60*time.Second)
			if err != nil {
				stop()
				b.Fatalf("%s: %v", mode, err)
			}
			lat = append(lat, at.Sub(start))
			// Let the agent settle so that rounds do not overlap.
			time.Sleep(150 * time.Millisecond)
		}
		stop()
		results[mode] = summarize(lat)
	}
	fmt.Println("\npush → applied (git commit + push until the agent logs the commit applied), 20 pushes each")
	for _, mode := range []string{"local (fsnotify)", "ssh (poll 1s)"} {
		fmt.Printf("  %-18s %s\n", mode, results[mode])
	}
	local := results["local (fsnotify)"]
	fmt.Printf("target ≤ 1 s median for a local repository: %s\n", verdict(local.Median <= time.Second))
	b.ReportMetric(local.Median.Seconds(), "s/push-local")
	b.ReportMetric(results["ssh (poll 1s)"].Median.Seconds(), "s/push-ssh")
}
