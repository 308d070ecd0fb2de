package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/gitgw/gitgw/reconcile/drift"
	"github.com/gitgw/gitgw/test/gitremote"
	"github.com/gitgw/gitgw/test/lab"
)

// sigSite is a one-node site with nothing to apply but a label, so that
// each commit is a new revision and the agent touches nothing.
func sigSite(rev string) map[string]string {
	return map[string]string{
		"cue.mod/module.cue": "module: \"example.net/sig-e2e@v0\"\nlanguage: version: \"v0.17.0\"\n",
		"site.cue": "package site\n\nsite: name: \"sig-e2e\"\n\nnodes: gw1: {\n\tlabels: rev: \"" + rev +
			"\"\n\tinterfaces: eth0: addresses: [\"203.0.113.11/24\"]\n}\n",
	}
}

// sigWork is a work clone whose commits are signed as each step says.
type sigWork struct {
	t   *testing.T
	dir string
}

func (w *sigWork) git(args ...string) string {
	w.t.Helper()
	out, err := gitremote.Git(w.dir, args...)
	if err != nil {
		w.t.Fatal(err)
	}
	return out
}

func (w *sigWork) stage(files map[string]string) {
	w.t.Helper()
	for name, content := range files {
		p := filepath.Join(w.dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			w.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			w.t.Fatal(err)
		}
	}
	w.git("add", "-A")
}

// commit commits and pushes: unsigned, SSH-signed by git itself (sshKey),
// or OpenPGP-signed (pgp) by writing the gpgsig header into the commit
// object as git does.
func (w *sigWork) commit(files map[string]string, msg, sshKey string, pgp *openpgp.Entity) string {
	w.t.Helper()
	w.stage(files)
	if sshKey != "" {
		w.git("-c", "gpg.format=ssh", "-c", "user.signingkey="+sshKey, "commit", "-q", "-S", "-m", msg)
	} else {
		w.git("commit", "-q", "-m", msg)
	}
	if pgp != nil {
		payload := w.git("cat-file", "commit", "HEAD") + "\n"
		var sig bytes.Buffer
		if err := openpgp.ArmoredDetachSign(&sig, pgp, strings.NewReader(payload), nil); err != nil {
			w.t.Fatal(err)
		}
		header := "gpgsig " + strings.ReplaceAll(strings.TrimRight(sig.String(), "\n"), "\n", "\n ") + "\n"
		head, body, _ := strings.Cut(payload, "\n\n")
		cmd := exec.Command("git", "-C", w.dir, "hash-object", "-t", "commit", "-w", "--stdin")
		cmd.Stdin = strings.NewReader(head + "\n" + header + "\n" + body)
		out, err := cmd.Output()
		if err != nil {
			w.t.Fatalf("hash-object: %v", err)
		}
		w.git("update-ref", "refs/heads/main", strings.TrimSpace(string(out)))
	}
	w.git("push", "-q", "origin", "main")
	return w.git("rev-parse", "HEAD")
}

// TestAgentVerifiesSignatures runs the agent with --verify-signatures head
// and trusted OpenPGP and SSH keys: commits that are unsigned or signed by
// an unknown key are refused (reported on the status branch, the last
// good commit keeps running); commits signed by a trusted key, in either
// format, are applied.
func TestAgentVerifiesSignatures(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "git", "ssh-keygen")
	gitremote.RequireGit(t)
	keys := t.TempDir()
	trustedSSH, trustedLine := gitremote.SSHSigningKey(t, keys, "trusted")
	otherSSH, _ := gitremote.SSHSigningKey(t, keys, "other")
	trustedPGP, trustedArmor := gitremote.PGPKey(t, "Trusted")
	otherPGP, _ := gitremote.PGPKey(t, "Other")
	signers := filepath.Join(keys, "allowed_signers")
	ring := filepath.Join(keys, "trusted.asc")
	if err := os.WriteFile(signers, []byte("ops@example.com namespaces=\"git\" "+trustedLine+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ring, trustedArmor, 0o644); err != nil {
		t.Fatal(err)
	}

	repo := gitremote.NewBare(t)
	w := &sigWork{t: t, dir: filepath.Join(t.TempDir(), "work")}
	if _, err := gitremote.Git("", "init", "-q", "-b", "main", w.dir); err != nil {
		t.Fatal(err)
	}
	w.git("remote", "add", "origin", repo.Dir)
	c1 := w.commit(sigSite("1"), "ssh-signed by a trusted key", trustedSSH, nil)

	ns := lab.NewNetns(t, "sig")
	a := &rolloutAgent{node: "gw1", state: filepath.Join(t.TempDir(), "state")}
	units := filepath.Join(t.TempDir(), "units")
	a.netnsAgent = startNetnsAgent(t, ns, "gw1",
		"--repo", repo.Dir, "--node", "gw1", "--state-dir", a.state, "--interval", "1s", "--resync", "1h",
		"--status-coalesce", "0", "--socket", "", "--listen", "", "--unit-dir", units, "--systemd-socket", filepath.Join(units, "none"),
		"--verify-signatures", "head", "--trusted-keys", ring, "--allowed-signers", signers)

	applied := func(c string) func(drift.Status) bool {
		return func(st drift.Status) bool { return st.Applied == c && st.LastPass.Outcome == drift.Converged }
	}
	refused := func(c, running, why string) {
		t.Helper()
		st := firstStatus(t, repo, a, 60*time.Second, "commit "+c[:7]+" refused", func(st drift.Status) bool {
			return st.Desired.Commit == c && st.LastPass.Outcome == drift.Rejected
		}).st
		if st.Applied != running || !strings.Contains(st.LastPass.Error, why) {
			t.Errorf("refused %.7s: running %.7s (want %.7s), error %q (want %q)", c, st.Applied, running, st.LastPass.Error, why)
		}
	}
	firstStatus(t, repo, a, 90*time.Second, "trusted SSH commit applied", applied(c1))

	c2 := w.commit(sigSite("2"), "unsigned", "", nil)
	refused(c2, c1, "commit is not signed")
	c3 := w.commit(sigSite("3"), "ssh-signed by an unknown key", otherSSH, nil)
	refused(c3, c1, "not signed by a trusted key: unknown key SHA256:")
	c4 := w.commit(sigSite("4"), "openpgp-signed by a trusted key", "", trustedPGP)
	firstStatus(t, repo, a, 60*time.Second, "trusted OpenPGP commit applied", applied(c4))
	c5 := w.commit(sigSite("5"), "openpgp-signed by an unknown key", "", otherPGP)
	refused(c5, c4, "not signed by a trusted key: OpenPGP")
	c6 := w.commit(sigSite("6"), "ssh-signed by a trusted key again", trustedSSH, nil)
	firstStatus(t, repo, a, 60*time.Second, "trusted SSH commit applied after refusals", applied(c6))
	var lines []string
	for _, e := range statusHistory(t, repo, "gw1") {
		lines = append(lines, "  "+e.subject)
	}
	t.Logf("gitgw/status/gw1:\n%s", strings.Join(lines, "\n"))
}
