package e2e

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
		return func(st drift.Status) bool {
			return st.Applied == c && (st.LastPass.Outcome == drift.Converged || st.LastPass.Outcome == drift.Incomplete)
		}
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

// writeObject stores content as an object of the given type in the work
// clone, exactly as given: `hash-object --literally` skips the checks
// that would stop git itself from writing a crafted tree, and plain git
// servers accept one (receive.fsckObjects is off by default).
func (w *sigWork) writeObject(kind string, content []byte) string {
	w.t.Helper()
	f := filepath.Join(w.t.TempDir(), "object")
	if err := os.WriteFile(f, content, 0o644); err != nil {
		w.t.Fatal(err)
	}
	return w.git("hash-object", "-w", "--literally", "-t", kind, f)
}

// treeEntry is one entry of a raw tree object: mode as git writes it
// ("40000", "100644", "120000"), any name, the object's hash.
type treeEntry struct{ mode, name, hash string }

// writeTree stores a tree object holding entries in the order given.
func (w *sigWork) writeTree(entries []treeEntry) string {
	w.t.Helper()
	var raw bytes.Buffer
	for _, e := range entries {
		h, err := hex.DecodeString(e.hash)
		if err != nil || len(h) != 20 {
			w.t.Fatalf("tree entry %q: bad hash %q", e.name, e.hash)
		}
		raw.WriteString(e.mode + " " + e.name + "\x00")
		raw.Write(h)
	}
	return w.writeObject("tree", raw.Bytes())
}

// lsTree lists the entries of a commit's root tree.
func (w *sigWork) lsTree(commit string) []treeEntry {
	w.t.Helper()
	var out []treeEntry
	for _, line := range strings.Split(w.git("ls-tree", commit), "\n") {
		meta, name, _ := strings.Cut(line, "\t")
		f := strings.Fields(meta)
		out = append(out, treeEntry{mode: strings.TrimPrefix(f[0], "0"), name: name, hash: f[2]})
	}
	return out
}

// written lists what a commit's checkout could have left: the entries of
// base (which holds only the state dir), every path under the state dir's
// exported trees, and every symbolic link anywhere under base (with a
// trailing "@"). Other state files are rewritten by every pass.
func written(t *testing.T, base, state string) []string {
	t.Helper()
	trees := filepath.Join(state, "source", "trees")
	var out []string
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			out = append(out, rel+"@")
		case filepath.Dir(p) == base, strings.HasPrefix(p, trees+string(filepath.Separator)):
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAgentStrictRefusesBeforeWriting runs the agent with
// --verify-signatures strict against commits an attacker with push access
// and no trusted key would push, and one a trusted signer should not have:
//
//   - an unsigned commit whose tree holds a chain of two symbolic links,
//     each inside the tree on paper (x/y/z/w/l1 -> ../../../.., and l2 ->
//     l1/../../../..), that resolve to the directory holding the state
//     dir, and an entry named "l2/pwned.conf" (a '/' in a name) that
//     writes through them. Nothing is written — not above the state dir,
//     not in it — the synced ref and the trust anchor stay on the last
//     good commit, and the next signed commit pushed on top of that
//     commit applies (the admin's cleanup is not a rewrite);
//   - a signed commit whose tree names one 1 MiB blob 300 times: refused
//     for its size, with the flag that sets the limit; the next signed
//     commit, on top of it, applies.
func TestAgentStrictRefusesBeforeWriting(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "git", "ssh-keygen")
	gitremote.RequireGit(t)
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
	// The history before the anchor need not be signed: the operator
	// vouches for it with --trust-anchor.
	c0 := w.commit(sigSite("0"), "unsigned history, trusted by the anchor", "", nil)
	c1 := w.commit(sigSite("1"), "ssh-signed by a trusted key", trustedSSH, nil)

	// base holds the state dir and nothing else: the symlink chain
	// resolves to base.
	base := t.TempDir()
	state := filepath.Join(base, "state")
	ns := lab.NewNetns(t, "strict")
	a := &rolloutAgent{node: "gw1", state: state}
	units := filepath.Join(t.TempDir(), "units")
	a.netnsAgent = startNetnsAgent(t, ns, "gw1",
		"--repo", repo.Dir, "--node", "gw1", "--state-dir", state, "--interval", "1s", "--resync", "1h",
		"--status-coalesce", "0", "--socket", "", "--listen", "", "--unit-dir", units, "--systemd-socket", filepath.Join(units, "none"),
		"--verify-signatures", "strict", "--allowed-signers", signers, "--trust-anchor", c0)

	applied := func(c string) func(drift.Status) bool {
		return func(st drift.Status) bool {
			return st.Applied == c && (st.LastPass.Outcome == drift.Converged || st.LastPass.Outcome == drift.Incomplete)
		}
	}
	refused := func(c, running string, why ...string) {
		t.Helper()
		st := firstStatus(t, repo, a, 60*time.Second, "commit "+c[:7]+" refused", func(st drift.Status) bool {
			return st.Desired.Commit == c && st.LastPass.Outcome == drift.Rejected
		}).st
		t.Logf("%.7s refused: %s", c, st.LastPass.Error)
		if st.Applied != running {
			t.Errorf("refused %.7s: running %.7s, want %.7s", c, st.Applied, running)
		}
		for _, s := range why {
			if !strings.Contains(st.LastPass.Error, s) {
				t.Errorf("refused %.7s: error %q, want it to say %q", c, st.LastPass.Error, s)
			}
		}
	}
	synced := func() string {
		out, err := gitremote.Git("", "--git-dir", filepath.Join(state, "source", "repo.git"), "rev-parse", "refs/gitgw/synced")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	anchor := func() string {
		b, err := os.ReadFile(filepath.Join(state, "trust-anchor.json"))
		if err != nil {
			t.Fatalf("trust anchor: %v", err)
		}
		var st struct{ Commit string }
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatalf("trust anchor: %v", err)
		}
		return st.Commit
	}
	// unchanged checks that a refused commit left the node as it was.
	unchanged := func(what, running string, before []string) {
		t.Helper()
		if got := written(t, base, state); !slices.Equal(got, before) {
			t.Errorf("%s: files changed:\nbefore %q\nafter  %q", what, before, got)
		}
		if got := synced(); got != running {
			t.Errorf("%s: synced ref moved to %.7s, want %.7s", what, got, running)
		}
		if got := anchor(); got != running {
			t.Errorf("%s: trust anchor moved to %.7s, want %.7s", what, got, running)
		}
	}

	firstStatus(t, repo, a, 90*time.Second, "trusted commit on the anchor applied", applied(c1))
	before := written(t, base, state)
	if !slices.Contains(before, filepath.Join("state", "source", "trees", c1, "site.cue")) {
		t.Fatalf("no tree of %.7s among %q", c1, before)
	}

	// The attack: unsigned, two symlinks and a '/'-named entry.
	link1 := w.writeObject("blob", []byte("../../../.."))
	link2 := w.writeObject("blob", []byte("l1/../../../.."))
	payload := w.writeObject("blob", []byte("[Service]\nExecStartPre=/bin/sh -c 'echo owned'\n"))
	dir := w.writeTree([]treeEntry{{"120000", "l1", link1}, {"120000", "l2", link2}, {"100644", "l2/pwned.conf", payload}})
	for _, name := range []string{"w", "z", "y"} {
		dir = w.writeTree([]treeEntry{{"40000", name, dir}})
	}
	root := w.writeTree(append(w.lsTree(c1), treeEntry{"40000", "x", dir}))
	c2 := w.git("commit-tree", root, "-p", c1, "-m", "unsigned: two symlinks and a '/' in a name")
	w.git("update-ref", "refs/heads/main", c2)
	w.git("push", "-q", "origin", "main")
	refused(c2, c1, "commit is not signed")
	if _, err := os.Lstat(filepath.Join(base, "pwned.conf")); err == nil {
		t.Errorf("the unsigned commit wrote %s", filepath.Join(base, "pwned.conf"))
	}
	unchanged("unsigned commit", c1, before)

	// The admin drops it: a signed commit on top of the last good one.
	w.git("reset", "-q", "--hard", c1)
	w.stage(sigSite("3"))
	w.git("-c", "gpg.format=ssh", "-c", "user.signingkey="+trustedSSH, "commit", "-q", "-S", "-m", "signed, on top of the last good commit")
	c3 := w.git("rev-parse", "HEAD")
	w.git("push", "-q", "-f", "origin", "main")
	firstStatus(t, repo, a, 60*time.Second, "signed commit after the refused one applied", applied(c3))
	if got := anchor(); got != c3 {
		t.Errorf("trust anchor %.7s after %.7s applied", got, c3)
	}

	// A trusted signer's 300 × 1 MiB tree: refused for its size.
	blob := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(blob, bytes.Repeat([]byte("# gitgw\n"), 1<<17), 0o644); err != nil {
		t.Fatal(err)
	}
	big := w.git("hash-object", "-w", blob)
	args := []string{"update-index", "--add"}
	for i := 0; i < 300; i++ {
		args = append(args, "--cacheinfo", fmt.Sprintf("100644,%s,big/f%03d.txt", big, i))
	}
	w.git(args...)
	w.git("-c", "gpg.format=ssh", "-c", "user.signingkey="+trustedSSH, "commit", "-q", "-S", "-m", "signed: one 1 MiB blob named 300 times")
	c4 := w.git("rev-parse", "HEAD")
	before = written(t, base, state)
	w.git("push", "-q", "origin", "main")
	refused(c4, c3, "more than 67108864 bytes", "--max-tree-bytes")
	unchanged("300 × 1 MiB tree", c3, before)

	// The fix, on top of it: applies (a fast-forward, every commit signed).
	c5 := w.commit(sigSite("5"), "signed: the big files removed", trustedSSH, nil)
	firstStatus(t, repo, a, 60*time.Second, "signed commit after the big tree applied", applied(c5))
}
