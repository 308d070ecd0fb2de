package gitrepo

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/gitgw/gitgw/test/gitremote"
	"github.com/gitgw/gitgw/test/lab"
)

// rsaSigningKey writes a fresh RSA private key (OpenSSH format) to
// dir/name and returns its path and authorized_keys line: RSA takes the
// rsa-sha2-512 path of the signer.
func rsaSigningKey(t *testing.T, dir, name string) (string, string) {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, name)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return path, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
}

// headOf reads node's status branch from repo.
func headOf(t *testing.T, repo, node string) BranchStatus {
	t.Helper()
	bs, err := ReadStatusBranches(testCtx(t), ReadOptions{URL: repo})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if b.Node == node {
			return b
		}
	}
	t.Fatalf("no status branch for %s", node)
	return BranchStatus{}
}

// TestStatusCommitsSigned: with a signing key, every status commit is
// SSH-signed so that VerifySignedBy accepts it for the node's key only and
// `git verify-commit` accepts it too; without one, it is unsigned. Commits
// replayed onto the remote's branch (a lost state dir) are signed again.
func TestStatusCommitsSigned(t *testing.T) {
	t.Parallel()
	keys := t.TempDir()
	edKey, edPub := gitremote.SSHSigningKey(t, keys, "gw1-ed25519")
	rsaKey, rsaPub := rsaSigningKey(t, keys, "gw1-rsa")
	_, otherPub := gitremote.SSHSigningKey(t, keys, "other")
	for _, tc := range []struct{ name, key, pub string }{{"ed25519", edKey, edPub}, {"rsa", rsaKey, rsaPub}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			r := gitremote.NewBare(t)
			w, err := NewStatusWriter(ctx, StatusOptions{Node: "gw1", URL: r.Dir, Dir: filepath.Join(t.TempDir(), "status.git"), SigningKeyFile: tc.key})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(ctx, statusFiles("gw1", 1), Message{Subject: "status(gw1): one"}); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			_ = w.Close()
			head := headOf(t, r.Dir, "gw1")
			s, err := head.VerifySignedBy(tc.pub)
			if err != nil {
				t.Fatalf("VerifySignedBy(own key): %v", err)
			}
			if s.Format != "ssh" || !strings.HasPrefix(s.Key, "SHA256:") {
				t.Errorf("signer %+v", s)
			}
			if _, err := head.VerifySignedBy(otherPub); !errors.Is(err, ErrUntrusted) {
				t.Errorf("VerifySignedBy(another key) = %v, want ErrUntrusted", err)
			}
			gitVerify(t, r.Dir, head.Commit, tc.pub)

			// A new writer on an empty state dir continues the remote's
			// branch: the replayed commit is signed as well.
			w2, err := NewStatusWriter(ctx, StatusOptions{Node: "gw1", URL: r.Dir, Dir: filepath.Join(t.TempDir(), "status.git"), SigningKeyFile: tc.key})
			if err != nil {
				t.Fatal(err)
			}
			defer w2.Close()
			if _, err := w2.Write(ctx, statusFiles("gw1", 2), Message{Subject: "status(gw1): two"}); err != nil {
				t.Fatal(err)
			}
			if err := w2.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			head2 := headOf(t, r.Dir, "gw1")
			if head2.Commit == head.Commit || len(r.Log(t, "gitgw/status/gw1")) != 2 {
				t.Fatalf("the second writer did not continue the branch: %v", subjects(r.Log(t, "gitgw/status/gw1")))
			}
			if _, err := head2.VerifySignedBy(tc.pub); err != nil {
				t.Errorf("replayed commit: %v", err)
			}
		})
	}
	t.Run("unsigned", func(t *testing.T) {
		t.Parallel()
		r := gitremote.NewBare(t)
		w := startWriter(t, StatusOptions{Node: "gw1", URL: r.Dir})
		if _, err := w.Write(testCtx(t), statusFiles("gw1", 1), Message{Subject: "status(gw1): one"}); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if _, err := headOf(t, r.Dir, "gw1").VerifySignedBy(edPub); !errors.Is(err, ErrUnsigned) {
			t.Errorf("VerifySignedBy of an unsigned commit = %v, want ErrUnsigned", err)
		}
	})
	t.Run("passphrase", func(t *testing.T) {
		t.Parallel()
		block, err := ssh.MarshalPrivateKeyWithPassphrase(mustRSA(t), "gw1", []byte("secret"))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "key")
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err = NewStatusWriter(testCtx(t), StatusOptions{Node: "gw1", URL: t.TempDir(), Dir: filepath.Join(t.TempDir(), "s.git"), SigningKeyFile: path})
		if err == nil || !strings.Contains(err.Error(), "passphrase") {
			t.Errorf("NewStatusWriter with an encrypted key = %v, want a passphrase error", err)
		}
	})
}

func mustRSA(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// gitVerify runs `git verify-commit` with pub as the only allowed signer:
// git itself (through ssh-keygen -Y verify) accepts the signature.
func gitVerify(t *testing.T, repo, commit, pub string) {
	t.Helper()
	lab.RequireCommand(t, "ssh-keygen")
	signers := filepath.Join(t.TempDir(), "allowed_signers")
	if err := os.WriteFile(signers, []byte("gw1 "+pub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := gitremote.Git(repo, "-c", "gpg.ssh.allowedSignersFile="+signers, "verify-commit", "-v", commit); err != nil {
		t.Fatalf("git verify-commit %s: %v\n%s", commit, err, out)
	}
}
