package gitremote

import (
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// HTTPS serves the bare repositories under a directory over https (git's
// smart HTTP protocol, through `git http-backend`), pushes included, to
// clients that present Token as the basic-auth password.
type HTTPS struct {
	// URL is the server's base URL, https://127.0.0.1:PORT.
	URL string
	// CAFile is a PEM file with the server's certificate, to trust.
	CAFile string
	// Token is the one password the server accepts.
	Token string

	root string

	mu    sync.Mutex
	stats ServerStats
	// afterAdvertise runs after each upload-pack ref advertisement
	// (OnAdvertise).
	afterAdvertise func()
}

// OnAdvertise runs fn after each ref advertisement the server sends to a
// fetch (GET info/refs?service=git-upload-pack), before the client sends
// its wants: a test moves a ref there, as a busy status repository does.
func (h *HTTPS) OnAdvertise(fn func()) {
	h.mu.Lock()
	h.afterAdvertise = fn
	h.mu.Unlock()
}

// ServerStats count what the server did: requests (each runs one git
// process), bytes sent to clients, and the CPU time (user+system) of the
// test process's children (the git processes the server ran; other
// children the test waited for count too).
type ServerStats struct {
	Requests, BytesOut int64
	CPU                time.Duration
}

// Stats is what the server did since it started.
func (h *HTTPS) Stats() ServerStats {
	h.mu.Lock()
	st := h.stats
	h.mu.Unlock()
	st.CPU = childrenCPU()
	return st
}

// Sub is s minus an earlier sample.
func (s ServerStats) Sub(before ServerStats) ServerStats {
	return ServerStats{Requests: s.Requests - before.Requests, BytesOut: s.BytesOut - before.BytesOut, CPU: s.CPU - before.CPU}
}

func childrenCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countingWriter counts the bytes of a response.
type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// StartHTTPS serves the bare repositories under root until the test ends.
func StartHTTPS(t testing.TB, root, token string) *HTTPS {
	t.Helper()
	RequireGit(t)
	gitBin, err := lookGit()
	if err != nil {
		t.Fatalf("gitremote: %v", err)
	}
	backend := &cgi.Handler{
		Path: gitBin,
		Args: []string{"http-backend"},
		Env: []string{
			"GIT_PROJECT_ROOT=" + root,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1",
			"GIT_CONFIG_GLOBAL=/dev/null",
			"GIT_CONFIG_COUNT=1",
			"GIT_CONFIG_KEY_0=http.receivepack",
			"GIT_CONFIG_VALUE_0=true",
		},
	}
	h := &HTTPS{Token: token, root: root}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pass, ok := r.BasicAuth(); !ok || pass != token {
			w.Header().Set("WWW-Authenticate", `Basic realm="gitgw-test"`)
			http.Error(w, "token required", http.StatusUnauthorized)
			return
		}
		cw := &countingWriter{ResponseWriter: w}
		backend.ServeHTTP(cw, r)
		h.mu.Lock()
		h.stats.Requests++
		h.stats.BytesOut += cw.n
		after := h.afterAdvertise
		h.mu.Unlock()
		if after != nil && strings.HasSuffix(r.URL.Path, "/info/refs") && r.URL.Query().Get("service") == "git-upload-pack" {
			after()
		}
	}))
	// Clients that refuse the certificate are part of the tests: quiet.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	h.URL = srv.URL
	h.CAFile = filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(h.CAFile, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	return h
}

// RepoURL is the https URL of a bare repository directory under root.
func (h *HTTPS) RepoURL(t testing.TB, repoDir string) string {
	t.Helper()
	rel, err := filepath.Rel(h.root, repoDir)
	if err != nil || strings.HasPrefix(rel, "..") {
		t.Fatalf("gitremote: %s is not under %s", repoDir, h.root)
	}
	return h.URL + "/" + filepath.ToSlash(rel)
}

func lookGit() (string, error) {
	out, err := Git("", "--exec-path")
	if err != nil {
		return "", err
	}
	p := filepath.Join(out, "git")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return exec.LookPath("git")
}
