package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/gitremote"
	"github.com/gitgw/gitgw/test/lab"
)

// TestAgentStrictNeedsTrustAnchor starts the agent with
// --verify-signatures strict on a fresh state dir and no --trust-anchor:
// it must not fall back to trusting whatever the branch holds (head mode
// in disguise) but exit at once, naming the flag, having written nothing
// of the site.
func TestAgentStrictNeedsTrustAnchor(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "git", "ssh-keygen")
	keys := t.TempDir()
	trustedSSH, trustedLine := gitremote.SSHSigningKey(t, keys, "trusted")
	signers := filepath.Join(keys, "allowed_signers")
	if err := os.WriteFile(signers, []byte("ops@example.com namespaces=\"git\" "+trustedLine+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	repo := gitremote.NewBare(t)
	w := &sigWork{t: t, dir: filepath.Join(t.TempDir(), "work")}
	if _, err := gitremote.Git("", "init", "-q", "-b", "main", w.dir); err != nil {
		t.Fatal(err)
	}
	w.git("remote", "add", "origin", repo.Dir)
	w.commit(sigSite("1"), "ssh-signed by a trusted key", trustedSSH, nil)

	// The agent runs in a namespace of its own all the same: were it to
	// start, it must not touch the host.
	ns := lab.NewNetns(t, "anchor")
	state := filepath.Join(t.TempDir(), "state")
	units := filepath.Join(t.TempDir(), "units")
	a := startNetnsAgent(t, ns, "gw1",
		"--repo", repo.Dir, "--node", "gw1", "--state-dir", state, "--interval", "1s", "--resync", "1h",
		"--status-coalesce", "0", "--socket", "", "--listen", "", "--unit-dir", units, "--systemd-socket", filepath.Join(units, "none"),
		"--verify-signatures", "strict", "--allowed-signers", signers)
	var err error
	select {
	case err = <-a.exited:
		a.exited <- err
	case <-time.After(30 * time.Second):
		t.Fatalf("the agent still runs after 30s in strict mode without a trust anchor")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("agent exit: %v, want exit status 1", err)
	}
	if log := a.logs.String(); !strings.Contains(log, "no trust anchor") || !strings.Contains(log, "--trust-anchor COMMIT") {
		t.Errorf("the agent's error does not name --trust-anchor:\n%s", log)
	}
	for _, p := range []string{"source/trees", "last-applied.json", "trust-anchor.json"} {
		if _, err := os.Lstat(filepath.Join(state, p)); err == nil {
			t.Errorf("%s was written", p)
		}
	}
}

// TestTokenNotSentOverHTTP: a token (--token-file) goes out as a basic-auth
// password; over plain http:// anyone on the path reads it. gitgw refuses
// before connecting, and says which flag.
func TestTokenNotSentOverHTTP(t *testing.T) {
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Port 9 (discard) on loopback: nothing is expected to answer, and
	// the refusal must come before any attempt.
	_, stderr, code := runGitgw(t, "validate", "--repo", "http://127.0.0.1:9/site.git", "--token-file", token)
	if code != 1 {
		t.Errorf("validate over http:// with a token: exit %d, want 1", code)
	}
	for _, want := range []string{"--token-file", "plain http://", "https://"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("error does not say %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "s3cret") {
		t.Errorf("the error shows the token:\n%s", stderr)
	}
}
