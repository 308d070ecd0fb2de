package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/gitremote"
)

// TestFleetServe runs `gitgw fleet --serve` against a real Git server
// process (git http-backend over https, with a token): the page shows the
// nodes' status branches, a node that starts reporting appears after a
// re-read without a restart, and SIGTERM stops the server cleanly.
func TestFleetServe(t *testing.T) {
	gitremote.RequireGit(t)
	base := t.TempDir()
	r := gitremote.NewBare(t)
	srv := gitremote.StartHTTPS(t, filepath.Dir(r.Dir), "tok-fleet")
	token := filepath.Join(base, "token")
	if err := os.WriteFile(token, []byte("tok-fleet\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	head := r.Commit(t, "main", map[string]string{"README": "site\n"}, "site")
	report := func(node string) {
		r.Commit(t, "gitgw/status/"+node, map[string]string{"status.json": `{"schema_version":1,"node":"` + node + `","applied":"` + head +
			`","desired":{"commit":"` + head + `"},"last_pass":{"outcome":"converged"}}`}, "status("+node+"): fixture\n\nGitgw-Node: "+node+"\n")
	}
	report("gw1")

	// Port 0: the command logs the address it got.
	cmd := exec.Command(gitgwBin, "fleet", "--repo", srv.RepoURL(t, r.Dir), "--token-file", token, "--ca-file", srv.CAFile,
		"--serve", "127.0.0.1:0", "--refresh", "1s", "--cache-dir", filepath.Join(t.TempDir(), "fleet.git"))
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	up := make(chan string, 1)
	// exited is closed when the process has ended, with waitErr set.
	exited := make(chan struct{})
	var waitErr error
	go func() {
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			stderr.WriteLine(sc.Text())
			var l struct{ Msg, URL string }
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "fleet page up" {
				up <- l.URL
			}
		}
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	var addr string
	select {
	case u := <-up:
		addr = strings.TrimSuffix(strings.TrimPrefix(u, "http://"), "/")
	case <-exited:
		t.Fatalf("gitgw fleet --serve exited: %v\n%s", waitErr, stderr.String())
	case <-time.After(time.Minute):
		t.Fatalf("gitgw fleet --serve never said where it listens:\n%s", stderr.String())
	}

	// waitPage polls the page until it contains want (the server starts,
	// then re-reads every second).
	waitPage := func(want string) string {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			var body string
			resp, err := http.Get("http://" + addr + "/")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				body = string(b)
				if resp.StatusCode == http.StatusOK && strings.Contains(body, want) {
					return body
				}
			}
			select {
			case <-exited:
				t.Fatalf("gitgw fleet --serve exited: %v\n%s", waitErr, stderr.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("page never showed %q (last error %v):\n%s\nstderr:\n%s", want, err, body, stderr.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	page := waitPage(`<tr id="node-gw1">`)
	if !strings.Contains(page, `<code id="head">`+head[:7]+`</code>`) || strings.Contains(page, `node-gw2`) {
		t.Errorf("first page:\n%s", page)
	}
	report("gw2")
	waitPage(`<tr id="node-gw2">`)

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("gitgw fleet --serve after SIGTERM: %v\n%s", waitErr, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("gitgw fleet --serve ignores SIGTERM")
	}
	if strings.Contains(stderr.String(), `"level":"WARN"`) {
		t.Errorf("warnings:\n%s", stderr.String())
	}
}

// lockedBuffer collects a process's stderr lines while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) WriteLine(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s + "\n")
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
